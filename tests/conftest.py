"""Shared fixtures: the random-weight tiny model (fast) and a seeded torch."""

from __future__ import annotations

import pytest
import torch

from world.config import preset
from world.model import WorldModel

# Tests use small tensors; one thread avoids OpenMP spin-wait thrashing when the machine is
# shared (two cores), e.g. with a training run, and changes no result.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model() -> WorldModel:
    torch.manual_seed(0)
    model = WorldModel(preset("tiny")).eval()
    # Random gates/outputs are zero-initialised; give them values so outputs depend on inputs.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("mod.weight", "out.weight", "out_mod.weight")):
                p.normal_(0, 0.05)
    return model
