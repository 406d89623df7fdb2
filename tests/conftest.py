"""Shared fixtures: the random-weight tiny model (fast), a seeded torch, a fake text backend, a
tiny dataset for training runs."""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from world.core.config import ModelConfig, PriorConfig, preset
from world.core.model import WorldModel
from world.core.text import words
from world.train.datagen import generate_dataset

# Tests use small tensors; one thread avoids OpenMP spin-wait thrashing when the machine is
# shared (two cores), e.g. with a training run, and changes no result.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model() -> WorldModel:
    return _tiny(preset("tiny"))


@pytest.fixture(scope="session")
def tiny_local_model() -> WorldModel:
    """The tiny model with a local convolution branch in every block."""
    cfg = preset("tiny")
    return _tiny(cfg.replace(denoiser=dataclasses.replace(cfg.denoiser, local_conv=8)))


@pytest.fixture(scope="session")
def tiny_wide_local_model(tiny_local_model: WorldModel) -> WorldModel:
    """``tiny_local_model``'s weights on frames 32 high and 48 wide (a 4x6 token grid); the bias
    per token place, shaped by the grid, is its own."""
    cfg = tiny_local_model.cfg
    model = WorldModel(cfg.replace(codec=dataclasses.replace(cfg.codec, frame_width=48)))
    same = {n: v for n, v in tiny_local_model.state_dict().items() if n != "denoiser.pos_bias"}
    model.load_state_dict(same, strict=False)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_fine_model() -> WorldModel:
    """The tiny model on a latent grid twice as fine (4 px a cell), two by two cells a token
    (as the ``large`` preset's tokens are), with a local branch."""
    cfg = preset("tiny")
    return _tiny(
        cfg.replace(
            codec=dataclasses.replace(cfg.codec, spatial=4, widths=(16,)),
            denoiser=dataclasses.replace(cfg.denoiser, patch=2, local_conv=8),
        )
    )


@pytest.fixture(scope="session")
def tiny_primed_model() -> WorldModel:
    """The tiny model with a dynamics prior (width 8, one block) that chunks start from at 0.4."""
    cfg = preset("tiny")
    return _tiny(
        cfg.replace(
            prior=PriorConfig(width=8, blocks=1),
            sampler=dataclasses.replace(cfg.sampler, prior_level=0.4),
        )
    )


def _tiny(cfg: ModelConfig) -> WorldModel:
    torch.manual_seed(0)
    model = WorldModel(cfg).eval()
    # Random gates/outputs are zero-initialised; give them values so outputs depend on inputs.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("mod.weight", "out.weight", "out_mod.weight")):
                p.normal_(0, 0.05)
    return model


class FakeSentenceModel:
    """A stand-in for a sentence-transformers model: a fixed vector per bag of words."""

    def __init__(self, width: int = 24) -> None:
        self.width = width
        self.calls: list[list[str]] = []

    def encode(self, sentences: list[str]) -> np.ndarray:
        self.calls.append(list(sentences))
        out = np.zeros((len(sentences), self.width), np.float32)
        for i, s in enumerate(sentences):
            for w in words(s):
                out[i, zlib.crc32(w.encode()) % self.width] += 1.0
        return out


@pytest.fixture
def fake_sentence_model() -> type[FakeSentenceModel]:
    """The class of a fake frozen text backend (width 24 by default)."""
    return FakeSentenceModel


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A dataset of 12 clips of 16 frames at 32x32, two frames a chunk, for training runs."""
    path = tmp_path_factory.mktemp("data") / "train"
    generate_dataset(path, n_clips=12, clip_frames=16, chunk_frames=2, size=32, progress=False)
    return path
