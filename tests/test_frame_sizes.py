"""Every frame side the protocol allows (a multiple of 16 from 16 to 128) sizes a model from its
data, and the model plays through Session at that size with the data's own action names; a
non-square dataset or another side is refused with the rule."""

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


@pytest.mark.parametrize("side", range(16, 129, 16))
def test_every_allowed_side_makes_a_model_that_plays(tmp_path, side):
    cfg = data_shape(preset("tiny"), dataset(tmp_path / "d", side, side))
    assert cfg.codec.frame_size == side and cfg.actions == ("noop", "jump")
    assert preset("small").replace(codec=cfg.codec)  # the small preset takes it too
    save_checkpoint(WorldModel(cfg), tmp_path / "m")
    with Session.load(str(tmp_path / "m"), seed=0) as s:
        assert s.info.actions == ("noop", "jump") and s.info.frame_height == side
        s.reset(image=np.zeros((side, side, 3), np.uint8))
        frames = s.step(["jump", "noop"]).frames
    assert frames.shape == (2, side, side, 3) and frames.dtype == np.uint8


@pytest.mark.parametrize("h, w", [(32, 48), (24, 24), (144, 144), (8, 8)])
def test_other_sizes_are_refused_with_the_rule(tmp_path, h, w):
    with pytest.raises(ValueError, match=rf"frames of {h}x{w}; .*multiple of 16 from 16 to 128"):
        data_shape(preset("tiny"), dataset(tmp_path / "d", h, w))
