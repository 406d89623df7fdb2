"""Openings: a text start goes on from the model's closest true start (world/core/openings.py).

The pick is the best word match (rarer words weigh more, ties by seed); the files round-trip
exactly; openings come from clips whose scene holds one caption; and a text start on a model
with openings is exactly the video start of the opening it picked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdk import Session
from sdk.errors import CheckpointLoadError
from sdk.models import random_model
from world.core.checkpoint import save_checkpoint
from world.core.openings import (
    INDEX_FILE,
    SHEET_FILE,
    Openings,
    caption_words,
    load_openings,
    save_openings,
)
from world.train.data import DatasetMeta, DatasetWriter
from world.train.openings import (
    game_openings,
    main,
    openings_from_dataset,
    write_game_openings,
    write_openings,
)

CAPTIONS = (
    "day, clear sky, two red balls, grey walls",
    "night, rain, one red ball, grey walls",
    "day, snow, three cyan balls, grey walls",
    "night, clear sky, two pink balls, blue walls",
)


def _frames(n: int, t: int = 4, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, t, h, w, 3), dtype=np.uint8)


def test_caption_words_fold_case_punctuation_and_plurals_and_keep_pairs():
    assert caption_words("RED balls, grey walls!") == {
        "red",
        "ball",
        "grey",
        "wall",
        "red ball",
        "ball grey",
        "grey wall",
    }
    assert caption_words("glass sky") == {"glass", "sky", "glass sky"}  # "ss", short words kept
    assert caption_words("") == frozenset()


def test_a_colour_goes_with_what_it_colours():
    o = Openings(_frames(2), ("blue balls, grey walls", "red balls, blue walls"))
    assert o.pick("blue walls", seed=0) == 1
    assert o.pick("blue balls", seed=0) == 0


def test_the_pick_is_the_caption_sharing_the_rarest_words():
    o = Openings(_frames(4), CAPTIONS)
    assert o.pick(CAPTIONS[2], seed=0) == 2
    assert o.pick("snow", seed=5) == 2  # only one opening has snow
    assert o.pick("pink balls at night", seed=1) == 3  # night is shared by two; pink by one
    assert o.pick("blue walls", seed=9) == 3  # "wall" is in every caption, "blue" in one


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,", max_size=40), st.integers(0, 2**32))
def test_the_pick_always_has_the_best_score(caption, seed):
    captions = (*CAPTIONS, "day, clear sky, no balls, grey walls")
    o = Openings(_frames(5), captions)
    i = o.pick(caption, seed)
    assert i == o.pick(caption, seed)  # deterministic
    want = caption_words(caption)
    shared = [len(want & caption_words(c)) for c in captions]
    if not any(shared):  # no word in common with any: the seed picks among all
        return
    assert shared[i] > 0


def test_ties_go_to_the_seed():
    o = Openings(_frames(4), ("a", "a", "a", "a"))
    assert {o.pick("", s) for s in range(40)} == {0, 1, 2, 3}


def test_openings_round_trip_exactly(tmp_path):
    o = Openings(_frames(3, t=4, h=32, w=48), CAPTIONS[:3])
    save_openings(tmp_path, o)
    back = load_openings(tmp_path, (32, 48))
    assert back is not None and back.captions == o.captions
    assert np.array_equal(back.frames, o.frames)
    assert load_openings(tmp_path / "nothing", (32, 48)) is None


def test_openings_that_do_not_fit_the_model_are_refused(tmp_path):
    save_openings(tmp_path, Openings(_frames(2), CAPTIONS[:2]))
    with pytest.raises(ValueError, match=r"openings.png.*64x64"):
        load_openings(tmp_path, (64, 64))
    (tmp_path / INDEX_FILE).write_text(json.dumps({"frames": 4, "captions": list(CAPTIONS[:3])}))
    with pytest.raises(ValueError, match="3 openings of 4 frames"):
        load_openings(tmp_path, (32, 32))
    (tmp_path / SHEET_FILE).unlink()
    with pytest.raises(ValueError, match="cannot read the openings"):
        load_openings(tmp_path, (32, 32))


def test_openings_are_decoded_at_first_use(tmp_path):
    """Loading reads the sheet's header only: a sheet whose pixels are cut off loads, and its
    first use says which file cannot be read."""
    save_openings(tmp_path, Openings(_frames(3, t=4, h=32, w=48), CAPTIONS[:3]))
    sheet = tmp_path / SHEET_FILE
    sheet.write_bytes(sheet.read_bytes()[:64])  # the header survives, the pixels do not
    o = load_openings(tmp_path, (32, 48))
    assert o is not None and len(o) == 3 and o.pick("red balls", 0) in (0, 1, 2)
    with pytest.raises(ValueError, match="cannot read the openings"):
        _ = o.frames


def _dataset(path, clips):
    """``clips``: a list of per-chunk caption tuples, 2 frames a chunk, 32x32."""
    w = DatasetWriter(path, DatasetMeta(frame_size=(32, 32), chunk_frames=2))
    for i, caps in enumerate(clips):
        frames = _frames(1, t=2 * len(caps), seed=i)[0]
        w.append(frames, np.zeros(len(frames), dtype=np.int64), list(caps))
    return path


def test_openings_come_from_scenes_that_hold_one_caption(tmp_path):
    from world.train.data import Dataset

    ds = Dataset(
        _dataset(
            tmp_path / "d",
            [
                ("night", "it starts to rain", "rain"),  # an event inside the opening: skipped
                ("night", "night", "night"),
                ("day", "day", "paint the walls red"),  # event after the opening: kept
                ("night", "night", "night"),  # a caption seen: after the distinct ones
                ("snow", "snow"),
            ],
        )
    )
    o = openings_from_dataset(ds, frames=4)
    assert o.captions == ("night", "day", "snow", "night")
    assert np.array_equal(o.frames[0], ds[1].frames[:4])
    assert openings_from_dataset(ds, frames=4, count=2).captions == ("night", "day")
    with pytest.raises(ValueError, match="under one caption"):
        openings_from_dataset(ds, frames=8)


class _Scenes:
    """A game of the protocol with three scenes, the third rare: its caption is its scene, and
    ``changing`` makes the caption differ at every chunk."""

    actions = ["noop", "go"]

    def __init__(self, size: int = 32, changing: bool = False) -> None:
        self.size, self.changing, self.resets, self.ticks = size, changing, 0, 0

    def reset(self, seed: int) -> np.ndarray:
        self.resets += 1
        self.scene = "snow" if seed % 40 == 0 else ("night", "day")[seed % 2]
        self.ticks = 0
        return self._frame()

    def step(self, action: str) -> np.ndarray:
        self.ticks += 1
        return self._frame()

    def describe(self) -> str:
        return f"{self.scene} {self.ticks}" if self.changing else self.scene

    def _frame(self) -> np.ndarray:
        f = np.zeros((self.size, self.size, 3), np.uint8)
        f[..., 0] = {"night": 10, "day": 200, "snow": 255}[self.scene]
        f[0, 0, 1] = self.ticks
        return f


def test_a_game_gives_every_scene_it_captions_an_opening():
    game = _Scenes()
    o = game_openings(game, frames=4, chunk=2, count=1, clips=2000, patience=300)
    assert sorted(o.captions) == ["day", "night", "snow"]  # every scene, count or not
    assert o.frames.shape == (3, 4, 32, 32, 3)
    assert [int(f[0, 0, 0, 0]) for f in o.frames] == [
        {"night": 10, "day": 200, "snow": 255}[c] for c in o.captions
    ]
    assert 300 < game.resets < 2000  # stopped once 300 clips in a row brought nothing new
    more = game_openings(_Scenes(), frames=4, chunk=2, count=8, clips=2000, patience=300)
    assert len(more) == 8 and sorted(set(more.captions)) == ["day", "night", "snow"]
    assert len(set(more.captions[:3])) == 3  # the distinct ones first
    with pytest.raises(ValueError, match="one caption"):
        game_openings(_Scenes(changing=True), frames=4, chunk=2, clips=50, patience=10)


def test_game_openings_must_fit_the_model(tmp_path):
    model = save_checkpoint(random_model("tiny"), tmp_path / "model")
    o = write_game_openings(model, _Scenes(), count=1, clips=400)
    back = load_openings(model, (32, 32))
    assert back is not None and back.captions == o.captions
    assert np.array_equal(back.frames, o.frames)
    with pytest.raises(ValueError, match=r"draws \(64, 64\).*needs \(32, 32\)"):
        write_game_openings(model, _Scenes(size=64), clips=10)


def test_the_openings_command_plays_the_arcade_at_the_models_size(tmp_path, capsys):
    model = save_checkpoint(random_model("tiny"), tmp_path / "model")
    main(["--model", str(model), "--game", "arcade", "--count", "4", "--clips", "300"])
    o = load_openings(model, (32, 32))
    assert o is not None and len(o) >= 4 and len(set(o.captions)) == len(o.captions)
    assert o.frames.shape[1:] == (4, 32, 32, 3)  # the tiny model's history: 2 chunks of 2
    assert f"{len(o)} openings of 4 frames" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="error: --game 'nope'"):
        main(["--model", str(model), "--game", "nope"])


@pytest.fixture(scope="module")
def tiny_with_openings(tmp_path_factory):
    root = tmp_path_factory.mktemp("openings")
    model = save_checkpoint(random_model("tiny"), root / "model")
    data = _dataset(root / "d", [("night, two balls",) * 2, ("day, snow",) * 2, ("rain",) * 2])
    write_openings(model, data)
    return model


def test_a_text_start_is_the_video_start_of_the_opening_it_picks(tiny_with_openings):
    with Session.load(str(tiny_with_openings), seed=4) as s:
        opening = load_openings(tiny_with_openings, (32, 32))
        assert opening is not None
        i = opening.pick("snow by day", 4)
        assert opening.captions[i] == "day, snow"
        text = [s.reset(prompt="snow by day").frames, s.step("right").frames]
        video = [s.reset(prompt="snow by day", video=opening.frames[i]).frames]
        video.append(s.step("right").frames)
    assert all(np.array_equal(a, b) for a, b in zip(text, video, strict=True))


def test_a_session_says_which_opening_its_text_start_took(tiny_with_openings):
    with Session.load(str(tiny_with_openings), seed=4) as s:
        assert s.opening is None
        s.reset(prompt="snow by day")
        assert s.opening == (1, "day, snow")
        snap = s.snapshot()
        s.reset(prompt="rain", video=_frames(1, t=4)[0])
        assert s.opening is None  # a video start
        s.reset(prompt="rain")
        assert s.opening == (2, "rain")
        s.restore(snap)
        assert s.opening is None
    with Session.load("tiny") as s:  # no openings: drawn from noise
        s.reset(prompt="rain")
        assert s.opening is None


def test_broken_openings_fail_the_load_with_the_file_named(tiny_with_openings, tmp_path):
    import shutil

    model = shutil.copytree(tiny_with_openings, tmp_path / "m")
    (model / SHEET_FILE).write_bytes(b"not a png")
    with pytest.raises(CheckpointLoadError, match="openings"):
        Session.load(str(model))


def test_batched_text_starts_take_the_same_openings_as_one_session(tiny_with_openings):
    from sdk import SessionBatch

    prompts, seeds = ["snow by day", "rain", "night, two balls"], [1, 2, 3]
    with SessionBatch.load(str(tiny_with_openings), size=3) as worlds:
        got = [c.frames for c in worlds.reset(prompts=prompts, seeds=seeds)]
        got_next = [c.frames for c in worlds.step(["right", "left", "noop"])]
    with Session.load(str(tiny_with_openings)) as s:
        for p, sd, a, b, act in zip(
            prompts, seeds, got, got_next, ["right", "left", "noop"], strict=True
        ):
            assert np.array_equal(s.reset(prompt=p, seed=sd).frames, a)
            assert np.array_equal(s.step(act).frames, b)
