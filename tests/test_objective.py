"""The denoiser's training objective: which levels its windows get."""

from __future__ import annotations

import torch

from world.core.config import preset
from world.core.model import WorldModel
from world.train.denoiser import DenoiseObjective
from world.train.stages import TrainConfig


def test_pure_noise_reaches_the_training_windows():
    model = WorldModel(preset("tiny"))
    obj = DenoiseObjective(model, TrainConfig(pure_noise=1.0, context_max=0.1))
    levels, is_ctx = obj.levels(64, 4, torch.Generator().manual_seed(0))
    assert (levels[~is_ctx] == 1.0).all() and (levels[is_ctx] <= 0.1).all()
    plain = DenoiseObjective(model, TrainConfig()).levels(64, 4, torch.Generator().manual_seed(0))
    assert (plain[0][~plain[1]] < 1.0).any()
