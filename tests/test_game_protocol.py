"""The game protocol's checker (world/games/protocol.py) says exactly what is wrong with a game,
with the seed and tick that reproduce it, and the loader (world/games/__init__.py) turns --game
into a game or a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from world.games import BUILTIN, GameLoadError, load_game
from world.games.arcade import Game as Arcade
from world.games.protocol import GameError, GameProtocol, check_frame, validate_game


class Good:
    """A minimal correct game: a dot that moves with the keys."""

    actions = ["noop", "left", "right"]

    def __init__(self, h: int = 32, w: int = 32) -> None:
        self.h, self.w = h, w

    def reset(self, seed: int) -> np.ndarray:
        self.x = int(np.random.default_rng(seed).integers(0, self.w))
        self.t = 0
        return self.render()

    def step(self, action: str) -> np.ndarray:
        self.x = (self.x + {"noop": 0, "left": -1, "right": 1}[action]) % self.w
        self.t += 1
        return self.render()

    def render(self) -> np.ndarray:
        f = np.zeros((self.h, self.w, 3), np.uint8)
        f[self.t % self.h, self.x] = 255
        return f


def test_a_good_game_passes_and_is_summarised():
    assert isinstance(Good(), GameProtocol)
    assert validate_game(Good()) == {
        "actions": ["noop", "left", "right"],
        "frame_size": (32, 32),
        "optional": [],
    }


def test_the_arcade_follows_the_protocol():
    summary = validate_game(Arcade())
    assert summary["actions"] == ["noop", "up", "down", "left", "right", "fire"]
    assert summary["frame_size"] == (64, 64)
    assert summary["optional"] == ["describe", "apply_prompt"]


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 200), w=st.integers(1, 200))
def test_sides_must_be_multiples_of_16_up_to_128(h, w):
    ok = all(s % 16 == 0 and 16 <= s <= 128 for s in (h, w))
    if ok:
        assert validate_game(Good(h, w), ticks=2)["frame_size"] == (h, w)
    else:
        with pytest.raises(GameError, match=rf"frame of {h}x{w}.*multiple of 16 from 16 to 128"):
            validate_game(Good(h, w), ticks=2)


@settings(max_examples=20, deadline=None)
@given(dtype=st.sampled_from(["float32", "float64", "int64", "uint16", "int8", "bool"]))
def test_wrong_dtype_is_named(dtype):
    class Floaty(Good):
        def render(self):
            return super().render().astype(dtype)

    with pytest.raises(GameError, match=rf"reset\(0\) returned dtype {dtype}; frames are uint8"):
        validate_game(Floaty())


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 4), (32, 32, 1), (2, 32, 32, 3)])
def test_wrong_shape_is_named(shape):
    class Shaped(Good):
        def render(self):
            return np.zeros(shape, np.uint8)

    with pytest.raises(GameError, match=rf"returned shape \({shape[0]}, "):
        validate_game(Shaped())


def test_not_an_array_is_named():
    class Listy(Good):
        def render(self):
            return super().render().tolist()

    with pytest.raises(GameError, match="returned list; return a numpy array"):
        validate_game(Listy())


def test_frames_that_change_size_name_the_tick():
    class Grows(Good):
        def render(self):
            return np.zeros((48 if self.t >= 5 else 32, 32, 3), np.uint8)

    with pytest.raises(
        GameError, match=r"at tick 5 after reset\(seed=0\).*48x32 after frames of 32x32"
    ):
        validate_game(Grows())


def test_sizes_that_differ_between_seeds():
    class BySeed(Good):
        def reset(self, seed):
            self.h = 32 if seed == 0 else 48
            return super().reset(seed)

    with pytest.raises(
        GameError, match=r"reset\(seed=1\) gives 48x32 frames, reset\(seed=0\) 32x32"
    ):
        validate_game(BySeed())


def test_a_non_deterministic_reset_is_caught():
    class Clocky(Good):
        calls = 0

        def reset(self, seed):
            Clocky.calls += 1
            self.x, self.t = Clocky.calls % self.w, 0
            return self.render()

    with pytest.raises(GameError, match=r"reset\(seed=0\) gave a different frame the second"):
        validate_game(Clocky())


def test_a_non_deterministic_step_names_seed_and_tick():
    class Drifts(Good):
        plays = 0

        def reset(self, seed):
            Drifts.plays += 1
            return super().reset(seed)

        def step(self, action):
            frame = super().step(action)
            if Drifts.plays == 2 and self.t == 7:
                frame[0, 0] = 1
            return frame

    with pytest.raises(GameError, match=r"at tick 7 after reset\(seed=0\) gave a different"):
        validate_game(Drifts())


@settings(max_examples=20, deadline=None)
@given(tick=st.integers(1, 40), seed=st.integers(0, 2))
def test_a_step_that_raises_names_seed_and_tick(tick, seed):
    class Breaks(Good):
        def step(self, action):
            if self.t + 1 == tick and self.seed == seed:
                raise ZeroDivisionError("boom")
            return super().step(action)

        def reset(self, s):
            self.seed = s
            return super().reset(s)

    with pytest.raises(
        GameError,
        match=rf"raised ZeroDivisionError: boom \(reproduce: reset\(seed={seed}\) .* tick {tick}\)",
    ):
        validate_game(Breaks(), seeds=(0, 1, 2), ticks=40)


@pytest.mark.parametrize(
    "actions, match",
    [
        ([], "non-empty list"),
        (None, "non-empty list"),
        ("left", "non-empty list"),
        (["noop", 3], r"holds \[3\]"),
        (["noop", ""], r"holds \[''\]"),
        (["noop", "left", "left"], r"names \['left'\] more than once"),
        (
            ["stay", "left"],
            r"starts with 'stay'; the first action is the no-op and is named 'noop'",
        ),
        (["noop", "Left"], r"has \['Left'\]; names are lower case"),
        (["noop", " up"], r"has \[' up'\]"),
    ],
)
def test_bad_action_lists(actions, match):
    game = Good()
    game.actions = actions  # type: ignore[assignment]
    with pytest.raises(GameError, match=match):
        validate_game(game)


def test_a_policy_key_not_in_the_list_is_named():
    class Cheats(Good):
        def policy(self, rng):
            return "jump" if self.t == 3 else "left"

    with pytest.raises(GameError, match=r"policy returned 'jump' at tick 4 \(seed 0\), not one"):
        validate_game(Cheats())


def test_missing_methods_and_bad_optional_parts():
    class NoStep:
        actions = ["noop"]

        def reset(self, seed):
            return np.zeros((16, 16, 3), np.uint8)

    with pytest.raises(GameError, match=r"has no step\(\) method"):
        validate_game(NoStep())

    class BadDescribe(Good):
        def describe(self):
            return 3

    with pytest.raises(GameError, match=r"describe\(\) returned int; return a str"):
        validate_game(BadDescribe())

    class FewHeldOut(Good):
        held_out_prompts = {"rain": ["a", "b"]}

    with pytest.raises(GameError, match="fewer than 5 phrasings for {'rain': 2}"):
        validate_game(FewHeldOut())

    class BadObjects(Good):
        def objects(self, frame):
            return {"coins": 1.5}

    with pytest.raises(GameError, match="return dict"):
        validate_game(BadObjects())


def test_check_frame_accepts_allowed_frames():
    f = np.zeros((16, 128, 3), np.uint8)
    assert check_frame(f, "x") is f


def test_load_game_builtin_and_by_path():
    assert set(BUILTIN) >= {"arcade"}
    assert isinstance(load_game("arcade"), Arcade)
    assert isinstance(load_game("world.games.arcade:Game"), Arcade)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("chess", r"not a built-in game \('arcade', 'platformer'\) nor an import path"),
        ("", "give 'arcade', 'platformer'"),
        ("no_such_module_xyz:Game", "cannot import 'no_such_module_xyz'"),
        ("world.games.arcade:Nope", r"has no class 'Nope'; classes there: \[.*'Game'"),
        ("world.games.arcade:GameConfig.bad", "has no class"),
        ("world.games.arcade:PALETTE", "has no class"),
        ("world.games.arcade:GameState", "construct with no arguments"),
    ],
)
def test_load_game_errors_say_what_to_give(spec, match):
    with pytest.raises(GameLoadError, match=match):
        load_game(spec)


@settings(max_examples=25, deadline=None)
@given(n_actions=st.integers(1, 9), seed=st.integers(0, 10_000))
def test_held_key_actions_cover_the_keys_deterministically(n_actions, seed):
    from world.games.actions import held_key_actions

    a = held_key_actions(np.random.default_rng(seed), 4000, n_actions)
    b = held_key_actions(np.random.default_rng(seed), 4000, n_actions)
    assert np.array_equal(a, b) and a.dtype == np.int64 and len(a) == 4000
    assert a.min() >= 0 and a.max() < n_actions
    assert set(np.unique(a)) == set(range(n_actions))  # 4000 frames reach every key
    edges = np.diff(np.r_[0, (a == 0).astype(int), 0])  # +1 where a no-op run starts, -1 after
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    assert runs.max() >= 8  # a pause long enough to learn stillness


def test_held_key_actions_refuse_no_keys():
    from world.games.actions import held_key_actions

    with pytest.raises(ValueError, match="n_actions >= 1"):
        held_key_actions(np.random.default_rng(0), 10, 0)


def test_every_built_in_game_loads_by_name_and_passes_the_checker():

    from world.games.platformer import Platformer

    assert set(BUILTIN) == {"arcade", "platformer"}
    game = load_game("platformer")
    assert isinstance(game, Platformer)
    summary = validate_game(game)
    assert summary["actions"][0] == "noop" and summary["frame_size"] == (64, 64)
    assert {"player", "objects", "held_out_prompts"} <= set(summary["optional"])
    assert validate_game(load_game("arcade"))["frame_size"] == (64, 64)
