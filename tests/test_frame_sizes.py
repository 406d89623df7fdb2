"""Every frame side the protocol allows (a multiple of 16 from 16 to 128), square or not, sizes a
model from its data, and the model plays through Session at that size with the data's own
action names; another side is refused with the rule."""

from __future__ import annotations

import numpy as np
import pytest

from sdk import Session
from world.core.checkpoint import save_checkpoint
from world.core.config import preset
from world.core.model import WorldModel
from world.train.data import DatasetMeta, DatasetWriter
from world.train.stages import data_shape


def dataset(path, h, w, actions=("noop", "jump")):
    DatasetWriter(path, DatasetMeta(frame_size=(h, w), chunk_frames=2, actions=actions))
    return str(path)


SIDES = [(s, s) for s in range(16, 129, 16)] + [(32, 48), (128, 16), (64, 96)]


@pytest.mark.parametrize("h, w", SIDES)
def test_every_allowed_side_makes_a_model_that_plays(tmp_path, h, w):
    cfg = data_shape(preset("tiny"), dataset(tmp_path / "d", h, w))
    assert cfg.frame_shape == (h, w, 3) and cfg.actions == ("noop", "jump")
    assert preset("small").replace(codec=cfg.codec)  # the small preset takes it too
    save_checkpoint(WorldModel(cfg), tmp_path / "m")
    with Session.load(str(tmp_path / "m"), seed=0) as s:
        assert s.info.actions == ("noop", "jump")
        assert (s.info.frame_height, s.info.frame_width) == (h, w)
        s.reset(image=np.zeros((h, w, 3), np.uint8))
        frames = s.step(["jump", "noop"]).frames
    assert frames.shape == (2, h, w, 3) and frames.dtype == np.uint8


@pytest.mark.parametrize("h, w", [(32, 40), (24, 24), (144, 144), (8, 8), (64, 144)])
def test_other_sizes_are_refused_with_the_rule(tmp_path, h, w):
    with pytest.raises(ValueError, match=rf"frames of {h}x{w}; .*multiples of 16 from 16 to 128"):
        data_shape(preset("tiny"), dataset(tmp_path / "d", h, w))
