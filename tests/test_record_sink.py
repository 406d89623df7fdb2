"""``chunkworld serve --record DIR``: a bridge client's ``record`` requests land, exactly, in a
dataset with the served model's frame size, chunk length and key names, which the recipe's
``--data`` check accepts; a dataset of another shape at DIR is refused before serving."""

from __future__ import annotations

import numpy as np
import pytest

from bridges import connect
from bridges.testing import local_server
from sdk import Session
from sdk.cli import main
from sdk.record_sink import DatasetSink
from world.core.config import preset
from world.train.data import Dataset, DatasetMeta, DatasetWriter
from world.train.pipeline import check_recordings


def test_bridge_record_requests_land_in_a_dataset(tmp_path):
    sink = DatasetSink(tmp_path / "rec", preset("tiny"), "tiny")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    actions = np.array([0, 5, 5, 1, 2, 0])
    with local_server(lambda options: Session.load("tiny"), record_sink=sink) as server:
        with connect(server.control_endpoint) as session:
            first = session.record(frames, actions, ["day", "night", ""])
            second = session.record(frames[:2], actions[:2], ["again"])
    ds = check_recordings(str(tmp_path / "rec"))
    assert ds.meta.actions == preset("tiny").actions and ds.meta.chunk_frames == 2
    assert ds.meta.frame_size == (32, 32) and ds.ids == (first, second)
    assert np.array_equal(ds[0].frames, frames) and ds[0].actions.tolist() == actions.tolist()
    assert ds[0].captions == ("day", "night", "") and ds[1].captions == ("again",)
    assert ds[0].info == {"source": "bridge"}


def test_another_dataset_at_the_path_is_refused(tmp_path, capsys):
    DatasetWriter(tmp_path / "d", DatasetMeta(frame_size=(64, 64), chunk_frames=4))
    with pytest.raises(ValueError, match="frame_size"):
        DatasetSink(tmp_path / "d", preset("tiny"), "tiny")
    argv = ["serve", "--model", "tiny", "--record", str(tmp_path / "d")]
    argv += ["--control", "tcp://127.0.0.1:0", "--frames", "tcp://127.0.0.1:0"]
    assert main(argv) == 2
    assert f"--record {tmp_path / 'd'}" in capsys.readouterr().err
    assert len(Dataset(tmp_path / "d")) == 0
