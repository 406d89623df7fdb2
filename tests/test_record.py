"""The Recorder (world/train/record.py) writes the dataset format the recipe's data stage writes,
from any game loop; bad frames and bad recordings are refused naming the file and the frame,
and nothing half-written is left at the destination. ``chunkworld train --data`` checks
recordings the same way before training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from world.train.data import Dataset
from world.train.pipeline import RecipeConfig, check_recordings, make_world
from world.train.record import Recorder, RecordingError

ACTIONS = ["noop", "left", "right"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def samples_importable():
    """``samples.catch_game`` imports from the repository root, as from a user's shell there."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT))
        yield


def frame(i: int, size: int = 16) -> np.ndarray:
    f = np.zeros((size, size, 3), np.uint8)
    f[i % size, (3 * i) % size] = (255, 200, 0)
    return f


@settings(max_examples=15, deadline=None)
@given(n=st.integers(4, 40), clip=st.sampled_from([4, 8, 12]), cut_at=st.integers(0, 40))
def test_recorded_frames_and_actions_read_back_exactly(tmp_path_factory, n, clip, cut_at):
    path = tmp_path_factory.mktemp("rec") / "data"
    ids = [(i * 7) % 3 for i in range(n)]
    segments = [cut_at, n - cut_at] if 0 < cut_at < n else [n]  # the frames between cuts
    pieces = [min(clip, seg - k) for seg in segments for k in range(0, seg, clip)]
    if all(p < 4 for p in pieces):  # not one whole chunk: refused, and nothing written
        with pytest.raises(RecordingError, match="nothing recorded"):
            with Recorder(path, actions=ACTIONS, chunk_frames=4, clip_frames=clip) as rec:
                for i in range(n):
                    rec.add(frame(i), ids[i])
                    if i + 1 == cut_at:
                        rec.cut()
        assert not path.exists()
        return
    with Recorder(path, actions=ACTIONS, chunk_frames=4, clip_frames=clip) as rec:
        for i in range(n):
            rec.add(frame(i), ACTIONS[ids[i]] if i % 2 else ids[i])  # names and ids alike
            if i + 1 == cut_at:
                rec.cut()
    ds = Dataset(path)
    assert ds.meta.actions == tuple(ACTIONS) and ds.meta.frame_size == (16, 16)
    got_frames = np.concatenate([c.frames for c in ds])
    got_ids = np.concatenate([c.actions for c in ds])
    starts = [c.info["first_frame"] for c in ds]
    expect = np.concatenate([np.arange(s, s + len(c)) for s, c in zip(starts, ds, strict=True)])
    assert np.array_equal(got_frames, np.stack([frame(i) for i in expect]))
    assert got_ids.tolist() == [ids[i] for i in expect]
    assert all(len(c) % 4 == 0 and len(c) <= clip for c in ds)
    assert len(got_ids) + rec.dropped == n
    assert check_recordings(str(path)) is not None


@pytest.mark.parametrize(
    "bad, match",
    [
        (frame(5).astype(np.float32), r"frame 5 has dtype float32"),
        (np.zeros((32, 32, 3), np.uint8), r"frame 5 is 32x32, the frames before it 16x16"),
        (np.zeros((16, 16), np.uint8), r"frame 5 has shape \(16, 16\)"),
        ([[0]], r"frame 5 is list"),
    ],
)
def test_a_bad_frame_names_the_frame_and_writes_nothing(tmp_path, bad, match):
    path = tmp_path / "data"
    with pytest.raises(RecordingError, match=match):
        with Recorder(path, actions=ACTIONS, chunk_frames=4, clip_frames=4) as rec:
            for i in range(5):
                rec.add(frame(i), "left")
            rec.add(bad, "left")
    assert not path.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "action, match",
    [
        ("jump", r"frame 0: action 'jump' is not one of"),
        (3, r"id 3 is outside 0..2"),
        (1.0, r"action 1.0; give a name or an index"),
    ],
)
def test_unknown_actions_are_refused(tmp_path, action, match):
    with pytest.raises(RecordingError, match=match):
        with Recorder(tmp_path / "d", actions=ACTIONS) as rec:
            rec.add(frame(0), action)
    assert not (tmp_path / "d").exists()


def test_a_crashed_game_loop_keeps_whole_clips_only(tmp_path):
    path = tmp_path / "d"
    with pytest.raises(KeyError):
        with Recorder(path, actions=ACTIONS, chunk_frames=4, clip_frames=8) as rec:
            for i in range(11):
                rec.add(frame(i), "noop")
            raise KeyError("the game crashed")
    ds = Dataset(path)
    assert [len(c) for c in ds] == [8] and rec.dropped == 3


@pytest.mark.parametrize("actions", [[], ["left", "noop"], ["noop", "Left"], ["noop", "a", "a"]])
def test_refuses_bad_action_names(tmp_path, actions):
    with pytest.raises(RecordingError, match="distinct lower-case key names, 'noop' first"):
        Recorder(tmp_path / "d", actions=actions)


def test_refuses_an_existing_directory_and_an_empty_recording(tmp_path):
    with pytest.raises(FileExistsError):
        Recorder(tmp_path, actions=ACTIONS)
    with pytest.raises(RecordingError, match="nothing recorded"):
        with Recorder(tmp_path / "e", actions=ACTIONS) as rec:
            rec.add(frame(0), "noop")
    assert not (tmp_path / "e").exists()


def _recording(path, n=16):
    with Recorder(path, actions=ACTIONS, chunk_frames=4, clip_frames=8) as rec:
        for i in range(n):
            rec.add(frame(i), i % 3)
    return sorted((path / "clips").glob("*.npz"))


def test_truncated_clip_file_is_named(tmp_path):
    files = _recording(tmp_path / "d")
    files[1].write_bytes(files[1].read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"clip file {files[1]} is corrupt"):
        check_recordings(str(tmp_path / "d"))


def test_wrong_dtype_and_mixed_sizes_in_files_are_named(tmp_path):
    files = _recording(tmp_path / "d")
    np.savez_compressed(
        files[0],
        frames=np.zeros((8, 16, 16, 3), np.float32),
        actions=np.zeros(8, np.int16),
        captions=np.frombuffer(b'["", ""]', np.uint8),
    )
    with pytest.raises(ValueError, match=rf"clip file {files[0]}: frames are float32"):
        check_recordings(str(tmp_path / "d"))
    np.savez_compressed(
        files[0],
        frames=np.zeros((8, 32, 32, 3), np.uint8),
        actions=np.zeros(8, np.int16),
        captions=np.frombuffer(b'["", ""]', np.uint8),
    )
    with pytest.raises(ValueError, match=rf"clip file {files[0]}: frames are uint8 \(8, 32, 32"):
        check_recordings(str(tmp_path / "d"))


def test_unknown_action_in_a_file_names_file_and_frame(tmp_path):
    files = _recording(tmp_path / "d")
    actions = np.zeros(8, np.int16)
    actions[5] = 7
    np.savez_compressed(
        files[1],
        frames=np.zeros((8, 16, 16, 3), np.uint8),
        actions=actions,
        captions=np.frombuffer(b'["", ""]', np.uint8),
    )
    with pytest.raises(ValueError, match=rf"clip file {files[1]}: frame 5 has action id 7"):
        check_recordings(str(tmp_path / "d"))
    with pytest.raises(ValueError, match="frame 5 has action id 7"):
        make_world(RecipeConfig(data=str(tmp_path / "d"), out=str(tmp_path / "r"), preset="tiny"))


def test_train_on_recordings_end_to_end(tmp_path):
    """A game loop recorded with the Recorder trains with --data on the tiny preset; the model
    has the recording's frame size and action names."""
    from samples.catch_game import Catch
    from sdk import Session
    from world.games.actions import held_key_actions

    game, path = Catch(), tmp_path / "rec"
    with Recorder(path, actions=Catch.actions, chunk_frames=2, clip_frames=32) as rec:
        for episode in range(12):
            game.reset(episode)
            keys = held_key_actions(np.random.default_rng(episode), 32, 3)
            for k in keys:
                rec.add(game.step(Catch.actions[k]), int(k))
            rec.cut()
    with pytest.raises(ValueError, match=r"chunks of 2 frames.*chunk_frames=4"):
        make_world(RecipeConfig(data=str(path), out=str(tmp_path / "x"), preset="small"))
    rc = RecipeConfig(data=str(path), out=str(tmp_path / "run"), preset="tiny", minutes=0.4)
    model = make_world(rc)
    with Session.load(str(model), seed=0) as s:
        assert s.info.actions == ("noop", "left", "right") and s.info.frame_height == 32
        assert s.reset(prompt="").frames.shape[1:] == (32, 32, 3)
        assert s.step("right").frames.dtype == np.uint8
    assert not (tmp_path / "run" / "data").exists()  # the recordings are used where they are
