"""The built-in game: actions, dynamics, captions/events and the detectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from world.eval.detect import detect_events, find_player
from world.games.actions import ACTIONS, DIRECTIONS, MOVES, action_id, play_like_actions
from world.games.arcade import (
    PLAYER_RGB,
    PROJECTILE_RGB,
    SKY_RGB,
    Game,
    GameConfig,
    describe_scene,
    state_fields,
)
from world.games.captions import (
    COLOUR_NAMES,
    EVENT_TEMPLATES,
    event_prompts,
    parse_prompt,
    possible_events,
    sample_chunk_caption,
)

PLAIN = GameConfig(random_scene=False, n_balls=1)
seeds = st.integers(0, 2**31 - 1)


def run(game: Game, seed: int, actions, prompts=None) -> np.ndarray:
    frames = [game.reset(seed)]
    for t, a in enumerate(actions):
        if prompts and t in prompts:
            game.apply_prompt(prompts[t])
        frames.append(game.step(int(a)))
    return np.stack(frames)


# -- actions ------------------------------------------------------------------------------------
def test_action_ids_and_errors():
    assert ACTIONS == ("noop", "up", "down", "left", "right", "fire")
    assert [action_id(n) for n in ACTIONS] == list(range(6))
    assert action_id("LEFT") == 3 and action_id(np.int64(5)) == 5
    for bad in ("jump", 6, -1, True, 1.5):
        with pytest.raises(ValueError, match="noop"):
            action_id(bad)


def test_play_like_actions_are_held_and_cover_every_action():
    a = play_like_actions(np.random.default_rng(0), 20_000)
    assert a.dtype == np.int64 and a.shape == (20_000,)
    np.testing.assert_array_equal(a, play_like_actions(np.random.default_rng(0), 20_000))
    share = np.bincount(a, minlength=len(ACTIONS)) / len(a)
    assert all(share[d] >= 0.12 for d in DIRECTIONS), share
    assert share.min() >= 0.05, share
    runs = np.diff(np.flatnonzero(np.diff(a) != 0))
    assert runs.mean() > 2
    assert len(play_like_actions(np.random.default_rng(1), 0)) == 0
    assert len(play_like_actions(np.random.default_rng(1), 7)) == 7


# -- dynamics -----------------------------------------------------------------------------------
def test_same_seed_same_frames_different_seed_different_frames():
    acts = play_like_actions(np.random.default_rng(3), 150)
    prompts = {40: "make it rain", 80: "night falls, add a ball", 120: "paint the walls blue"}
    a = run(Game(), 7, acts, prompts)
    b = run(Game(), 7, acts, prompts)
    assert a.dtype == np.uint8 and a.shape == (151, 64, 64, 3)
    np.testing.assert_array_equal(a, b)
    c = run(Game(), 8, acts, prompts)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("action", ["up", "down", "left", "right"])
def test_walls_block_the_player(action):
    game = Game()
    game.reset(5)
    for _ in range(100):
        game.step(action)
    lo, hi = game.config.player_bounds()
    s = game.state()
    assert (lo, hi) == (6, 58)
    expected = {
        "up": ("player_y", lo),
        "down": ("player_y", hi),
        "left": ("player_x", lo),
        "right": ("player_x", hi),
    }[action]
    assert getattr(s, expected[0]) == expected[1]


@settings(max_examples=10, deadline=None)
@given(seeds)
def test_each_action_moves_the_player_by_its_speed(seed):
    game = Game()
    game.reset(seed)
    lo, hi = game.config.player_bounds()
    moved_free = 0
    for a in play_like_actions(np.random.default_rng(seed), 300):
        before = game.state()
        game.step(int(a))
        after = game.state()
        dx, dy = MOVES[a]
        want_x = before.player_x + 2 * dx
        want_y = before.player_y + 2 * dy
        if lo <= want_x <= hi and lo <= want_y <= hi:
            assert (after.player_x, after.player_y) == (want_x, want_y)
            moved_free += dx != 0 or dy != 0
        else:
            assert (after.player_x, after.player_y) == (
                min(max(want_x, lo), hi),
                min(max(want_y, lo), hi),
            )
    # the run must exercise free moves; over seeds 0..2999 the fewest were 54, and hypothesis
    # once found a seed with exactly 50 (play-like actions pause, and hold keys against walls)
    assert moved_free > 20


@settings(max_examples=4, deadline=None)
@given(seeds)
def test_balls_stay_inside_the_walls(seed):
    game = Game()
    game.reset(seed, caption="six balls")
    c = game.config
    lo, hi = c.wall + c.ball_radius, c.size - c.wall - c.ball_radius
    speeds = np.abs(game.state_vector()[8:].reshape(6, 4)[:, 2:])
    xy = np.empty((5000, 6, 2), np.float32)
    for t in range(5000):
        game.step(0)
        xy[t] = game.state_vector()[8:].reshape(6, 4)[:, :2]
    # centres are half-integers; the disc reaches r + 0.5 from the centre
    assert (xy - 0.5 >= lo).all() and (xy + 0.5 <= hi).all()
    np.testing.assert_array_equal(np.abs(game.state_vector()[8:].reshape(6, 4)[:, 2:]), speeds)
    assert len(game.state().balls) == 6


def test_balls_move_at_constant_velocity_and_bounce():
    game = Game(PLAIN)
    game.reset(11)
    positions = []
    for _ in range(200):
        game.step("noop")
        positions.append(game.state().balls[0])
    p = np.array(positions)
    assert set(np.abs(p[:, 2])) <= {1.0, 2.0} and len(set(p[:, 2])) == 2  # bounced in x
    inner = np.abs(np.diff(p[:, 0]))
    assert (inner <= 2).all()  # a bounce mirrors the overshoot at the wall


def test_fire_shoots_a_bolt_that_flies_up_to_the_wall():
    game = Game(PLAIN)
    game.reset(2)
    for _ in range(30):
        game.step("down")
    frame = game.step("fire")
    s = game.state()
    assert len(s.projectiles) == 1
    x, y = s.projectiles[0]
    assert x == s.player_x and y < s.player_y
    assert (frame == PROJECTILE_RGB).all(-1).sum() == 8  # a 2x4 bolt
    ys = [y]
    while game.state().projectiles:
        game.step("noop")
        ys += [p[1] for p in game.state().projectiles]
    assert np.all(np.diff(ys) == -4)
    assert ys[-1] - 2 >= game.config.wall and ys[-1] - 2 - 4 < game.config.wall
    # held fire shoots every fire_cooldown frames
    game.reset(2)
    for _ in range(30):
        game.step("down")
    counts = []
    for _ in range(12):
        game.step("fire")
        counts.append(len(game.state().projectiles))
    assert counts[0] == 1 and counts[4] == 2 and counts[8] == 3


def test_state_vector_matches_state_and_fields():
    game = Game()
    game.reset(4, caption="add two balls, make it snow")
    game.step("fire")
    v = game.state_vector()
    np.testing.assert_array_equal(v, game.state().vector(game.config.max_balls))
    assert len(v) == len(state_fields(game.config.max_balls))
    assert v[0] == game.state().player_x and v[3] == 2  # snow


def test_clone_is_independent():
    game = Game()
    game.reset(9)
    twin = game.clone()
    a = [game.step(i % 6) for i in range(20)]
    b = [twin.step(i % 6) for i in range(20)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    game.apply_prompt("add a ball")
    twin.apply_prompt("add a ball")
    assert game.state() == twin.state()


@pytest.mark.parametrize("size", [32, 96, 128, 256])
def test_other_sizes(size):
    game = Game(GameConfig.for_size(size))
    frame = game.reset(1, caption="rain, three green balls")
    assert frame.shape == (size, size, 3)
    for _ in range(10):
        frame = game.step("right")
    s = game.state()
    assert find_player(frame) == (s.player_x, s.player_y)
    ev = detect_events(frame)
    assert ev["weather"] == "rain" and ev["ball_colour"] == "green"


def test_config_validation():
    for bad in (
        dict(size=31),
        dict(size=300),
        dict(player_size=5),
        dict(wall=20),
        dict(n_balls=9),
        dict(ball_speeds=()),
    ):
        with pytest.raises(ValueError):
            GameConfig(**bad)


# -- captions and events ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, field, value",
    [
        ("night turns to day", "time", "day"),
        ("it gets dark", "time", "night"),
        ("make it rain", "weather", "rain"),
        ("a storm rolls in", "weather", "rain"),
        ("the rain stops", "weather", "clear"),
        ("let it snow", "weather", "snow"),
        ("add two balls", "add_balls", 2),
        ("spawn", "add_balls", 1),
        ("remove a ball", "remove_balls", 1),
        ("three balls", "ball_count", 3),
        ("a ball", "ball_count", None),
        ("paint the walls red", "wall_colour", "red"),
        ("Gray border", "wall_colour", "grey"),
        ("red balls and green walls", "ball_colour", "red"),
        ("red balls and green walls", "wall_colour", "green"),
        ("everything turns blue", "ball_colour", "blue"),
        ("everything turns blue", "wall_colour", "blue"),
    ],
)
def test_parse_prompt(text, field, value):
    assert getattr(parse_prompt(text), field) == value


START = {
    "night": "day, clear sky",
    "day": "night",
    "rain": "clear sky",
    "snow": "clear sky",
    "clear": "rain",
    "spawn": "one ball",
}


@pytest.mark.parametrize("kind", list(EVENT_TEMPLATES))
def test_every_event_prompt_triggers_its_event(kind):
    for template in EVENT_TEMPLATES[kind]:
        for c in COLOUR_NAMES if "{c}" in template else [None]:
            prompt = template.format(c=c, w="rain")
            game = Game(PLAIN)
            game.reset(0, caption=START.get(kind, "brown balls, brown walls"))
            if c == "brown":
                game.apply_prompt("grey balls, grey walls")
            before = game.render()
            want = f"{kind}:{c}" if c else kind
            assert game.apply_prompt(prompt) == [want], prompt
            assert not np.array_equal(before, game.render()), prompt
    assert len(event_prompts()) == sum(
        len(COLOUR_NAMES) if "{c}" in t else 2 if "{w}" in t else 1
        for ts in EVENT_TEMPLATES.values()
        for t in ts
    )


@pytest.mark.parametrize(
    "prompt, event, check",
    [
        ("night falls", "night", lambda e: e["is_night"]),
        ("make it rain", "rain", lambda e: e["weather"] == "rain"),
        ("it starts snowing", "snow", lambda e: e["weather"] == "snow"),
        ("add a ball", "spawn", lambda e: e["ball_count"] == 2),
        ("make the balls blue", "ball_colour:blue", lambda e: e["ball_colour"] == "blue"),
        ("paint the walls green", "wall_colour:green", lambda e: e["wall_colour"] == "green"),
    ],
)
def test_events_change_the_frame_and_are_detected(prompt, event, check):
    game = Game(PLAIN)  # day, clear, one red ball, grey walls
    frame = game.reset(21)
    before = detect_events(frame)
    assert before == {
        "is_night": False,
        "weather": "clear",
        "wall_colour": "grey",
        "ball_colour": "red",
        "ball_count": 1,
        "player": (game.state().player_x, game.state().player_y),
    }
    assert not check(before)
    assert game.apply_prompt(prompt) == [event]
    changed = 0
    for _ in range(40):
        after = game.step("noop")
        changed += (after != frame).any(-1).mean()
        s = game.state()
        (x0, y0, *_), *rest = s.balls
        apart = all((x0 - x) ** 2 + (y0 - y) ** 2 > 49 for x, y, *_ in rest)
        near_player = any(
            abs(x - s.player_x) < 7 and abs(y - s.player_y) < 7 for x, y, *_ in s.balls
        )
        if apart and not near_player:
            assert check(detect_events(after)), detect_events(after)
    if event in ("night", "rain", "snow"):
        assert changed / 40 > 0.08  # visible over much of the frame, every frame
    assert game.apply_prompt(prompt) in ([], ["spawn"])  # repeating is a no-op (but spawn)


def test_weather_pattern_moves_deterministically():
    game = Game(PLAIN)
    game.reset(0, caption="rain")
    a = game.render()
    game.step("noop")
    b = game.render()
    rain = np.array([110, 140, 255])
    ma, mb = (a == rain).all(-1), (b == rain).all(-1)
    assert ma.sum() > 300 and not np.array_equal(ma, mb)
    # one frame later the streaks have fallen 2 px and slid 1 px left
    np.testing.assert_array_equal(ma[10:40, 11:40], mb[12:42, 10:39])


def test_scene_description_round_trip():
    for seed in range(20):
        game = Game()
        game.reset(seed)
        text = game.describe()
        assert text == describe_scene(game.state())
        assert game.apply_prompt(text) == []  # re-applying the scene changes nothing
        other = Game()
        other.reset(seed + 1000, caption=text)
        assert other.describe() == text


def test_sample_chunk_caption():
    game = Game()
    game.reset(3)
    rng = np.random.default_rng(0)
    n_events = 0
    for _ in range(400):
        caption, is_event = sample_chunk_caption(rng, game.state(), 0.12, game.config.max_balls)
        if is_event:
            n_events += 1
            assert game.apply_prompt(caption), caption
        else:
            assert caption == game.describe()
    assert 20 < n_events < 80
    assert set(possible_events(game.state(), 6)) >= {"ball_colour", "wall_colour"}


# -- detectors ----------------------------------------------------------------------------------
def blur3(frame: np.ndarray) -> np.ndarray:
    f = np.pad(frame.astype(np.float32), ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = frame.shape[:2]
    return sum(f[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9


@settings(max_examples=25, deadline=None)
@given(seeds, st.integers(0, 60))
def test_find_player_clean_noisy_and_blurred(seed, steps):
    game = Game()
    game.reset(seed, caption=["", "orange balls", "night, snow", "rain, pink walls"][seed % 4])
    rng = np.random.default_rng(seed)
    frame = game.render()
    for a in play_like_actions(rng, steps):
        frame = game.step(int(a))
    s = game.state()
    x, y = find_player(frame)
    assert abs(x - s.player_x) <= 0.5 and abs(y - s.player_y) <= 0.5
    noisy = blur3(frame) + rng.normal(0, 10, frame.shape)
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    x, y = find_player(noisy)
    assert abs(x - s.player_x) <= 2 and abs(y - s.player_y) <= 2
    noisy2 = np.clip(blur3(np.clip(frame + rng.normal(0, 10, frame.shape), 0, 255)), 0, 255)
    x, y = find_player(noisy2.astype(np.uint8))
    assert abs(x - s.player_x) <= 2 and abs(y - s.player_y) <= 2


def test_find_player_none_without_player():
    frame = np.zeros((64, 64, 3), np.uint8) + np.array(SKY_RGB["day"], np.uint8)
    assert find_player(frame) is None
    frame[10:12, 10:12] = PLAYER_RGB  # a few stray pixels are not a player
    assert find_player(frame) is None


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_detect_events_reads_random_scenes(seed):
    game = Game()
    frame = game.reset(seed)
    s = game.state()
    c = game.config
    reach = c.player_size / 2 + c.ball_radius + 1
    # A ball under the player is hidden (seed 306: 11 of its pixels show); no detector sees it.
    assume(
        all(abs(bx - s.player_x) > reach or abs(by - s.player_y) > reach for bx, by, *_ in s.balls)
    )
    ev = detect_events(frame)
    assert ev["is_night"] == s.night
    assert ev["weather"] == s.weather
    assert ev["wall_colour"] == s.wall_colour
    assert ev["ball_colour"] == s.ball_colour
    assert 1 <= ev["ball_count"] <= len(s.balls)
    assert ev["player"] == (s.player_x, s.player_y)


def test_colours_are_distinct():
    from world.games.arcade import PALETTE, WEATHER_RGB

    colours = {
        "player": PLAYER_RGB,
        "bolt": PROJECTILE_RGB,
        **{f"sky_{k}": v for k, v in SKY_RGB.items()},
        **WEATHER_RGB,
        **PALETTE,
    }
    names = list(colours)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            d = np.linalg.norm(np.subtract(colours[a], colours[b]))
            assert d >= 75, (a, b, d)
    assert "yellow" not in COLOUR_NAMES and "white" not in COLOUR_NAMES
