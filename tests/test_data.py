"""The dataset format: write/read round trip, validation, generation and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from world.eval.detect import find_player
from world.games.actions import ACTIONS
from world.games.arcade import Game, GameConfig
from world.train.data import FORMAT, VERSION, Dataset, DatasetMeta, DatasetWriter
from world.train.datagen import EVAL_SEED, generate_dataset, main


def random_clip(rng: np.random.Generator, t: int = 8, size: int = 16, s: int | None = 3):
    frames = rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8)
    actions = rng.integers(0, len(ACTIONS), t)
    captions = [f"chunk {i} — ünïcode" for i in range(t // 4)]
    state = None if s is None else rng.normal(size=(t, s)).astype(np.float32)
    return frames, actions, captions, state


def meta(**kw) -> DatasetMeta:
    return DatasetMeta(**{"frame_size": (16, 16), "state_fields": ("a", "b", "c"), **kw})


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    writer = DatasetWriter(tmp_path / "ds", meta())
    written = [random_clip(rng) for _ in range(3)]
    events = [{"frame": 4, "chunk": 1, "prompt": "make it rain", "events": ["rain"]}]
    ids = [writer.append(*c, events=events, info={"k": i}) for i, c in enumerate(written)]
    assert ids == ["000000", "000001", "000002"]
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 3 and ds.ids == tuple(ids)
    assert ds.meta == meta()
    for i, (frames, actions, captions, state) in enumerate(written):
        clip = ds[i]
        np.testing.assert_array_equal(clip.frames, frames)
        np.testing.assert_array_equal(clip.actions, actions)
        np.testing.assert_array_equal(clip.state, state)
        assert clip.frames.dtype == np.uint8 and clip.actions.dtype == np.int64
        assert clip.captions == tuple(captions)
        assert clip.events == tuple(events) and clip.info == {"k": i}
    assert ds["000001"].id == "000001" and ds[-1].id == "000002"
    batch = ds.load_all()
    assert batch.frames.shape == (3, 8, 16, 16, 3) and batch.state.shape == (3, 8, 3)
    np.testing.assert_array_equal(batch.actions[2], written[2][1])
    assert batch.captions[0] == written[0][2]
    # appending to an existing dataset continues the numbering
    assert DatasetWriter(tmp_path / "ds", meta()).append(*random_clip(rng)) == "000003"
    assert not [p for p in (tmp_path / "ds" / "clips").iterdir() if p.name.startswith(".")]
    with np.load(tmp_path / "ds" / "clips" / "000000.npz", allow_pickle=False) as z:
        assert z["actions"].dtype == np.int16 and z["captions"].dtype == np.uint8


def test_user_recording_without_state_and_named_actions(tmp_path):
    writer = DatasetWriter(tmp_path, {"frame_size": (16, 16), "chunk_frames": 2, "fps": 30})
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    writer.append(frames, ["noop", "left", "left", "fire"], ["", "go"])
    clip = Dataset(tmp_path)[0]
    assert clip.state is None and clip.actions.tolist() == [0, 3, 3, 5]
    assert Dataset(tmp_path).load_all().state is None


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda c: (c[0].astype(np.float32),) + c[1:], "uint8"),
        (lambda c: (c[0][:, :8],) + c[1:], r"shape \(T, 16, 16, 3\)"),
        (lambda c: (c[0][:6], c[1][:6], c[2][:1], c[3][:6]), "multiple of chunk_frames=4"),
        (lambda c: (c[0], c[1][:5], c[2], c[3]), r"shape \(8,\)"),
        (lambda c: (c[0], c[1] + 10, c[2], c[3]), "action ids must be in 0..5"),
        (lambda c: (c[0], c[1].astype(float), c[2], c[3]), "integer ids or names"),
        (lambda c: (c[0], ["jump"] * 8, c[2], c[3]), "unknown action names"),
        (lambda c: (c[0], c[1], c[2][:1], c[3]), "2 strings"),
        (lambda c: (c[0], c[1], c[2], c[3][:, :2]), r"state must have shape"),
    ],
)
def test_writer_rejects_bad_clips_with_a_hint(tmp_path, change, match):
    writer = DatasetWriter(tmp_path, meta())
    with pytest.raises(ValueError, match=match):
        writer.append(*change(random_clip(np.random.default_rng(1))))
    assert Dataset(tmp_path).ids == ()


def test_writer_rejects_state_without_fields_and_mismatched_meta(tmp_path):
    frames, actions, captions, state = random_clip(np.random.default_rng(2))
    with pytest.raises(ValueError, match="state_fields"):
        DatasetWriter(tmp_path / "a", {"frame_size": (16, 16)}).append(
            frames, actions, captions, state
        )
    DatasetWriter(tmp_path / "b", meta())
    with pytest.raises(ValueError, match="frame_size"):
        DatasetWriter(tmp_path / "b", meta(frame_size=(32, 32)))
    with pytest.raises(ValueError, match="clip_frames"):
        DatasetMeta(frame_size=(16, 16), chunk_frames=4, clip_frames=6)


def test_reader_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset"):
        Dataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="meta.json is missing"):
        Dataset(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Dataset(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a chunkworld dataset"):
        Dataset(tmp_path)
    d = meta().to_json()
    d["version"] = VERSION + 1
    (tmp_path / "meta.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="format version"):
        Dataset(tmp_path)
    d["version"] = VERSION
    d["surprise"] = 1
    (tmp_path / "meta.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="unknown keys"):
        Dataset(tmp_path)
    assert meta().to_json()["format"] == FORMAT


def test_corrupt_or_foreign_clip_files(tmp_path):
    writer = DatasetWriter(tmp_path, meta())
    writer.append(*random_clip(np.random.default_rng(3)))
    clips = tmp_path / "clips"
    good = (clips / "000000.npz").read_bytes()
    (clips / "000001.npz").write_bytes(good[: len(good) // 2])  # truncated
    np.savez(clips / "000002.npz", frames=np.zeros((8, 16, 16, 3), np.uint8))  # lacks keys
    np.savez(
        clips / "000003.npz",
        frames=np.array([{"a": 1}], dtype=object),
        actions=np.zeros(8, np.int16),
        captions=np.zeros(2, np.uint8),
    )  # needs pickle
    np.savez(
        clips / "000004.npz",
        frames=np.zeros((8, 8, 8, 3), np.uint8),
        actions=np.zeros(8, np.int16),
        captions=np.zeros(2, np.uint8),
    )  # wrong size
    ds = Dataset(tmp_path)
    assert len(ds) == 5 and ds[0].frames.shape == (8, 16, 16, 3)
    with pytest.raises(ValueError, match="000001.npz is corrupt"):
        ds[1]
    with pytest.raises(ValueError, match=r"lacks \['actions', 'captions'\]"):
        ds[2]
    with pytest.raises(ValueError, match="000003.npz"):
        ds[3]
    with pytest.raises(ValueError, match="meta.json says"):
        ds[4]
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(KeyError):
        ds["999999"]


def test_load_all_needs_equal_lengths_or_a_crop(tmp_path):
    rng = np.random.default_rng(4)
    writer = DatasetWriter(tmp_path, meta())
    writer.append(*random_clip(rng, t=8))
    writer.append(*random_clip(rng, t=12))
    ds = Dataset(tmp_path)
    with pytest.raises(ValueError, match="different lengths"):
        ds.load_all()
    batch = ds.load_all(frames=8)
    assert batch.frames.shape[:2] == (2, 8) and [len(c) for c in batch.captions] == [2, 2]
    with pytest.raises(ValueError, match="multiple of chunk_frames"):
        ds.load_all(frames=6)


def test_generate_dataset_is_deterministic_and_consistent(tmp_path):
    a = generate_dataset(tmp_path / "a", 3, 16, size=32, progress=False, event_prob=0.5)
    b = generate_dataset(tmp_path / "b", 3, 16, size=32, progress=False, event_prob=0.5)
    e = generate_dataset(tmp_path / "e", 1, 16, size=32, seed=EVAL_SEED, progress=False)
    assert a.meta.clip_frames == 16 and a.meta.frame_size == (32, 32)
    assert a.meta.generator["seed_base"] == 0 and e.meta.generator["seed_base"] == EVAL_SEED
    ba, bb = a.load_all(), b.load_all()
    np.testing.assert_array_equal(ba.frames, bb.frames)
    np.testing.assert_array_equal(ba.state, bb.state)
    assert ba.captions == bb.captions
    assert not np.array_equal(ba.frames[0], e[0].frames)
    n_events = 0
    for clip in a:
        game = Game(GameConfig.for_size(32))
        game.reset(clip.info["game_seed"])
        assert clip.captions[0] == game.describe()
        for ev in clip.events:
            assert clip.captions[ev["chunk"]] == ev["prompt"] and ev["events"]
            n_events += 1
        # the state columns agree with the frames
        for t in range(len(clip)):
            x, y = find_player(clip.frames[t])
            assert (x, y) == (clip.state[t, 0], clip.state[t, 1])
        # replaying actions and prompts reproduces the clip exactly
        prompts = {ev["frame"]: ev["prompt"] for ev in clip.events}
        for t, act in enumerate(clip.actions):
            if t in prompts:
                game.apply_prompt(prompts[t])
            np.testing.assert_array_equal(game.step(int(act)), clip.frames[t])
    assert n_events > 0
    with pytest.raises(FileExistsError):
        generate_dataset(tmp_path / "a", 1, 16, progress=False)
    with pytest.raises(ValueError, match="multiple of chunk_frames"):
        generate_dataset(tmp_path / "c", 1, 10, progress=False)


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "generate",
                "--out",
                str(out),
                "--clips",
                "2",
                "--frames",
                "8",
                "--size",
                "32",
                "--quiet",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "2 clips, 16 frames of 32x32" in text and "frames/s" in text
    assert main(["info", str(out)]) == 0
    assert "2 clips" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "no dataset" in capsys.readouterr().err
    assert (
        main(
            [
                "generate",
                "--out",
                str(tmp_path / "e"),
                "--clips",
                "1",
                "--frames",
                "8",
                "--size",
                "32",
                "--eval",
                "--quiet",
            ]
        )
        == 0
    )
    assert Dataset(tmp_path / "e").meta.generator["seed_base"] == EVAL_SEED


@pytest.fixture(scope="module")
def replay_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "d"
    generate_dataset(path, n_clips=4, clip_frames=48, chunk_frames=4, seed=77, progress=False)
    return Dataset(path)


@pytest.mark.parametrize("row, chunk", [(0, 0), (1, 5), (3, 9)])
def test_replay_with_the_player_in_place_is_the_clip(replay_data, row, chunk):
    from world.train.datagen import Replayer

    clip = replay_data[row]
    where = tuple(clip.state[chunk * 4 + 3, :2])  # the player at the end of the chunk
    frames = Replayer(replay_data.path).frames_after(row, chunk, where, 2)
    assert np.array_equal(frames, clip.frames[(chunk + 1) * 4 : (chunk + 3) * 4])


@pytest.mark.parametrize("dx, dy", [(2, 0), (-1, 3), (40, -40)])
def test_replay_moves_the_player_and_nothing_else(replay_data, dx, dy):
    from world.games.actions import MOVES
    from world.games.arcade import PLAYER_RGB, PROJECTILE_RGB, GameConfig
    from world.train.datagen import Replayer

    row, chunk = 2, 4
    clip = replay_data[row]
    cfg = GameConfig.for_size(64)
    lo, hi = cfg.player_bounds()
    x, y = clip.state[chunk * 4 + 3, :2] + (dx, dy)
    frames = Replayer(replay_data.path).frames_after(row, chunk, (x, y), 3)
    x, y = min(max(x, lo), hi), min(max(y, lo), hi)  # placed inside the wall
    for t, frame in enumerate(frames):
        mx, my = MOVES[int(clip.actions[(chunk + 1) * 4 + t])]
        x = min(max(x + mx * cfg.player_speed, lo), hi)
        y = min(max(y + my * cfg.player_speed, lo), hi)
        assert find_player(frame) == (x, y), t
    true = clip.frames[(chunk + 1) * 4 : (chunk + 4) * 4]
    differ = np.any(frames != true, axis=-1)  # pixels that changed
    sprites = np.zeros_like(differ)  # the player's and its bolts' pixels, in either world
    for rgb in (PLAYER_RGB, PROJECTILE_RGB):
        sprites |= np.all(frames == rgb, axis=-1) | np.all(true == rgb, axis=-1)
    assert differ.any() and not (differ & ~sprites).any()  # balls, weather, walls: the clip's


def test_replay_needs_the_built_in_games_data(tmp_path, replay_data):
    from world.train.datagen import Replayer

    with pytest.raises(ValueError, match="not in a clip of 12 chunks"):
        Replayer(replay_data.path).frames_after(0, 10, (30, 30), 2)
    meta = json.loads((replay_data.path / "meta.json").read_text())
    meta["generator"] = {"name": "my recorder"}
    other = tmp_path / "other"
    (other / "clips").mkdir(parents=True)
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="cannot be replayed; train without --rollout-resim"):
        Replayer(other)


def test_a_clip_replayed_as_an_episode_is_the_clip_and_the_next_one_is_new(replay_data):
    from world.eval.episodes import play_episode
    from world.games.arcade import Game, GameConfig
    from world.train.datagen import Replayer, generate_clip

    replayer = Replayer(replay_data.path)
    clip = replay_data[2]
    ep = play_episode(replayer.game, replayer.script(replayer.index[2]), 12)
    assert np.array_equal(ep.frames, clip.frames)
    assert np.array_equal(ep.actions, clip.actions)
    assert tuple(ep.captions) == clip.captions
    assert np.array_equal(ep.player, clip.state[:, :2])
    part = play_episode(replayer.game, replayer.script(replayer.index[2]), 5)  # its first chunks
    assert np.array_equal(part.frames, clip.frames[:20]) and len(part.states) == 5
    # the clip its generator would write next, which the dataset does not hold
    ep = play_episode(replayer.game, replayer.script(4), 12)
    new = generate_clip(Game(GameConfig.for_size(64)), 4, 48, 4, seed=77)
    assert np.array_equal(ep.frames, new["frames"]) and ep.captions == new["captions"]
    with pytest.raises(ValueError, match="holds 12 chunks, fewer than the 13 asked"):
        play_episode(replayer.game, replayer.script(0), 13)
