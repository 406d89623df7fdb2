"""The platformer (world/games/platformer.py): protocol, physics, persistence, prompts, detectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from world.games.platformer import (
    ACTIONS,
    COLOURS,
    JUMP,
    MAX_FALL,
    PLAYER_H,
    PLAYER_W,
    SCREEN,
    TILE,
    Platformer,
    PlatformerConfig,
)
from world.games.platformer_detect import count_objects


def check_protocol(make, seeds=(0, 7), ticks=40) -> None:
    """The protocol's shape and determinism expectations, as a trainer relies on them."""
    game = make()
    acts = game.actions
    assert isinstance(acts, list) and acts[0] == "noop" and len(set(acts)) == len(acts)
    for seed in seeds:
        runs = []
        for _ in range(2):
            g = make()
            rng = np.random.default_rng(seed)
            frames = [g.reset(seed)]
            for _ in range(ticks):
                frames.append(g.step(acts[int(rng.integers(len(acts)))]))
            runs.append(np.stack(frames))
        shape = runs[0].shape[1:]
        assert runs[0].dtype == np.uint8 and len(shape) == 3 and shape[2] == 3
        assert shape[0] % 16 == 0 and shape[1] % 16 == 0
        np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("size", [32, 48, 64, 128])
def test_protocol_at_every_size(size: int) -> None:
    check_protocol(lambda: Platformer(size=size))
    assert Platformer(size=size).reset(3).shape == (size, size, 3)


def test_constructible_by_import_path_and_defaults() -> None:
    import importlib

    cls = importlib.import_module("world.games.platformer").Platformer
    g = cls()
    assert g.actions == ["noop", "left", "right", "jump", "left_jump", "right_jump"]
    assert g.reset(0).shape == (64, 64, 3)


def test_bad_calls_say_how_to_fix() -> None:
    g = Platformer()
    with pytest.raises(ValueError, match="valid: noop, left"):
        g.step("up")
    with pytest.raises(ValueError, match="multiple of 16"):
        Platformer(size=60)
    with pytest.raises(TypeError, match="seed must be an int"):
        g.reset("3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prompt is text"):
        g.apply_prompt(3)  # type: ignore[arg-type]


def test_clone_continues_identically() -> None:
    g = Platformer()
    g.reset(4)
    for a in ["right"] * 10 + ["right_jump"] * 5:
        g.step(a)
    twin = g.clone()
    for a in ["left", "jump", "noop", "right_jump"] * 10:
        np.testing.assert_array_equal(g.step(a), twin.step(a))
    assert g.apply_prompt("add a coin") == twin.apply_prompt("add a coin") == ["coin"]
    assert g.state() == twin.state()


def test_level_is_the_seeds() -> None:
    levels = {Platformer().reset(s).tobytes() for s in range(8)}
    assert len(levels) == 8
    a, b = Platformer(), Platformer()
    a.reset(11)
    b.reset(11)
    np.testing.assert_array_equal(a.tiles, b.tiles)
    assert a.state() == b.state()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=150),
)
def test_physics_properties(seed: int, actions: list[str]) -> None:
    g = Platformer()
    g.reset(seed)
    for a in actions:
        before = g.state()
        g.step(a)
        s = g.state()
        assert not g.solid(s.x, s.y), "inside a brick or a closed door"
        assert abs(s.x - before.x) <= 2
        if s.vy == -JUMP:  # a jump started this tick: only from the ground, only with jump
            assert before.on_ground and "jump" in a
        elif not before.on_ground:  # in the air gravity acts, or a landing/ceiling stops
            assert s.vy in (min(before.vy + 1, MAX_FALL), 0)
        if before.on_ground and "jump" in a and not g.solid(before.x, before.y - 1):
            assert s.y < before.y  # a jump from the ground always lifts off
        # the camera keeps the whole player in view, inside the level
        assert s.cam <= s.x and s.x + PLAYER_W <= s.cam + SCREEN
        assert 0 <= s.cam <= g.tiles.shape[1] * TILE - SCREEN
        if not s.key_taken:  # the closed door: nobody passes (the level starts left of it)
            assert s.x + PLAYER_W <= s.door_col * TILE
    for _ in range(40):  # gravity brings the player down onto something
        g.step("noop")
    s = g.state()
    assert s.on_ground and s.vy == 0 and s.y + PLAYER_H <= SCREEN - TILE


def _hop_until(g: Platformer, done, limit: int = 400, way: str = "right") -> bool:
    """Walk ``way``, jumping whenever blocked, until ``done()``; False if it never happens."""
    for _ in range(limit):
        x = g.x
        g.step(way)
        if done(g):
            return True
        if g.x == x:
            g.step(f"{way}_jump")
    return done(g)


def _hop_right_until(g: Platformer, done, limit: int = 400) -> bool:
    return _hop_until(g, done, limit)


def _in_view(g: Platformer, c: int) -> bool:
    return g.cam <= c * TILE and (c + 1) * TILE <= g.cam + SCREEN


def test_collected_coin_stays_collected_after_scrolling_away_and_back() -> None:
    checked = 0
    for seed in range(30):
        g = Platformer()
        g.reset(seed, caption="day, clear sky")
        if not _hop_right_until(g, lambda g: any(g.collected), limit=120):
            continue
        i = g.collected.index(True)
        r, c = g.coins[i]
        # away: the coin's tile leaves the view (the door may stop us: then skip the seed)
        if not _hop_right_until(g, lambda g, c=c: g.cam > (c + 1) * TILE, limit=200):
            continue
        assert g.objects(g.render()) == g.visible()
        # and back until its tile is fully in view again
        assert _hop_until(g, lambda g, c=c: _in_view(g, c), way="left")
        for _ in range(30):
            g.step("noop")
        frame = g.render()
        px = c * TILE - g.cam
        tile = frame[r * TILE : (r + 1) * TILE, px : px + TILE]
        assert g.collected[i]
        assert not np.any(np.all(tile == COLOURS["coin"], axis=-1)), "a collected coin came back"
        assert g.objects(frame) == g.visible()
        checked += 1
    assert checked >= 3, f"only {checked} seeds scrolled a collected coin away and back"


def _fetch_key(g: Platformer) -> bool:
    """A small bot: go to the key's column, jump when blocked or under a raised key."""
    r, c = g.key
    for _ in range(600):
        if g.key_taken:
            return True
        target = c * TILE + 1
        a = "right" if g.x < target else "left" if g.x > target else "noop"
        x = g.x
        g.step(a)
        if g.x == x or (abs(g.x - target) <= 2 and r < 6):
            g.step("jump" if a == "noop" else f"{a}_jump")
    return g.key_taken


def test_the_key_opens_the_door() -> None:
    opened = blocked = 0
    for seed in range(12):
        g = Platformer()
        g.reset(seed, caption="day, clear sky")
        door_x = g.door_col * TILE
        assert g.solid(door_x, 6 * TILE - PLAYER_H) and not g.key_taken
        # run at the door: unless the run picked the key up on its way, the door stops it
        if not _hop_right_until(g, lambda g: g.key_taken, limit=150):
            assert g.x + PLAYER_W <= door_x and g.objects(g.render())["doors"] == 1
            assert "a locked door" in g.describe()
            blocked += 1
        if not _fetch_key(g):
            continue
        frame = g.step("noop")
        assert g.objects(frame)["held_keys"] == 1 and g.objects(frame)["keys"] == 0
        assert not g.solid(door_x, 6 * TILE - PLAYER_H)
        assert _hop_right_until(g, lambda g, d=door_x: g.x > d + TILE, limit=300)
        assert _hop_until(g, lambda g: _in_view(g, g.door_col), way="left")  # back: still open
        assert g._door_in_view() and "an open door" in g.describe()
        assert g.objects(g.render())["doors"] == 0 and g.visible()["doors"] == 0
        opened += 1
    assert opened >= 8 and blocked >= 2, (opened, blocked)


def _frame_after(g: Platformer, prompt: str) -> tuple[list[str], np.ndarray]:
    events = g.apply_prompt(prompt)
    return events, g.step("noop")


@pytest.mark.parametrize("bank", ["prompts", "held_out_prompts"])
def test_every_prompt_kind_has_its_visible_effect(bank: str) -> None:
    g = Platformer()
    sky_night, rain = np.array(COLOURS["sky_night"]), np.array(COLOURS["rain"])
    for kind, phrasings in getattr(g, bank).items():
        for k, text in enumerate(phrasings):
            g.reset(k, caption="day, clear sky")
            if kind == "day":
                g.apply_prompt("night falls")
            if kind == "clear":
                g.apply_prompt("make it rain")
            before = g.objects(g.render())["coins"]
            events, frame = _frame_after(g, text)
            assert events == [kind], (text, events)
            night = np.all(frame == sky_night, -1).mean()
            raining = np.all(frame == rain, -1).mean()
            assert (night > 0.3) == (kind == "night"), text
            assert (raining > 0.02) == (kind == "rain"), text
            assert g.objects(frame)["coins"] == before + (kind == "coin"), text
            assert g.apply_prompt(g.describe()) == []  # a caption re-applied changes nothing


def test_prompt_banks() -> None:
    g = Platformer()
    assert set(g.prompts) == set(g.held_out_prompts) == {"night", "day", "rain", "clear", "coin"}
    for kind in g.prompts:
        assert len(g.prompts[kind]) >= 3 and len(g.held_out_prompts[kind]) >= 5
        assert not set(g.prompts[kind]) & set(g.held_out_prompts[kind])
    g.reset(0, caption="day, clear sky")
    assert g.apply_prompt("add three coins") == ["coin"] * 3
    assert g.apply_prompt("three coins in view") == []
    assert g.apply_prompt("the rain stops") == []  # already clear


def test_captions() -> None:
    g = Platformer()
    g.reset(5, caption="night, rain")
    text = g.describe()
    n = g.visible()["coins"]
    assert text.startswith("night, rain, ") and "coin" in text
    words = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight"]
    assert f"{words[n]} coin" in text


def _blur(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A model-like frame: 60% the pixel, 40% its 3x3 neighbourhood, plus noise of +-12."""
    f = frame.astype(np.float32)
    pad = np.pad(f, ((1, 1), (1, 1), (0, 0)), mode="edge")
    box = sum(pad[i : i + f.shape[0], j : j + f.shape[1]] for i in range(3) for j in range(3)) / 9
    out = 0.6 * f + 0.4 * box + rng.uniform(-12, 12, f.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [64, 32, 128])
def test_detectors_agree_with_the_game_over_policy_rollouts(size: int) -> None:
    g = Platformer(size=size)
    rng = np.random.default_rng(size)
    frames = exact = close = 0
    for seed in range(12 if size == 64 else 4):
        frame = g.reset(seed)
        g.apply_prompt(("make it rain", "night falls", "add two coins")[seed % 3])
        for t in range(150):
            frame = g.step(g.policy(rng))
            truth = g.visible()
            assert g.objects(frame) == truth, (seed, t)
            assert ("a locked door" in g.describe()) == bool(truth["doors"])
            assert ("a key," in g.describe() + ",") == bool(truth["keys"])
            px, py = g.player(frame) or (np.nan, np.nan)
            assert (px, py) == g.true_player(), (seed, t)
            if size == 64 and t % 5 == 0:  # the same on a blurred, noisy frame
                found = count_objects(_blur(frame, rng))
                frames += 1
                exact += found == truth
                close += all(abs(found[k] - truth[k]) <= 1 for k in truth)
                bx, by = g.player(_blur(frame, rng)) or (np.inf, np.inf)
                assert abs(bx - px) <= 1 and abs(by - py) <= 1
    if size == 64:
        assert close == frames and exact >= 0.95 * frames, (exact, close, frames)


def test_policy_is_play_like() -> None:
    g = Platformer()
    rng = np.random.default_rng(4)
    g.reset(0)
    stream = [g.policy(rng) for _ in range(3000)]
    g.reset(0)
    rng = np.random.default_rng(4)
    assert [g.policy(rng) for _ in range(3000)] == stream  # deterministic after reset
    assert set(stream) == set(ACTIONS)
    share = {a: stream.count(a) / len(stream) for a in ACTIONS}
    assert 0.08 <= share["noop"] <= 0.4 and min(share.values()) > 0.02
    runs, n = [], 1
    for a, b in zip(stream, stream[1:], strict=False):
        n = n + 1 if a == b else (runs.append(n) or 1)  # type: ignore[func-returns-value]
    assert max(runs) >= 16
    flips = sum(
        1
        for a, b, c in zip(stream, stream[1:], stream[2:], strict=False)
        if {a, b} == {"left", "right"} and a == c
    )
    assert flips >= 20  # alternating left/right every tick happens


def test_config_rejects_bad_levels() -> None:
    with pytest.raises(ValueError, match="level_tiles"):
        PlatformerConfig(level_tiles=10)
    with pytest.raises(TypeError, match="either"):
        Platformer(PlatformerConfig(), size=64)
