"""The built-in game world: a small, crisp, deterministic arena that a video model can learn.

A square frame surrounded by a wall. A yellow square (the player, a colour nothing else uses)
moves 2 px per frame with up/down/left/right and is blocked by the wall; ``fire`` shoots a
magenta bolt upwards that flies until it reaches the wall. One to three balls (up to six after
"spawn" events) move at a constant integer velocity and bounce off the wall. Captions change the
scene (see :mod:`world.games.captions` for the keyword table): day/night (sky colour), weather (a
moving pattern of rain streaks or snow flakes drawn behind the sprites), new balls, and the
colour of balls and walls. Flat colours only, no per-frame noise: everything is a pure function
of the seed, the actions and the prompts.

Coordinates are continuous pixels: pixel ``(row i, column j)`` spans ``[j, j+1) x [i, i+1)``,
so its centre is ``(j + 0.5, i + 0.5)``; ``x`` grows to the right, ``y`` downwards. The player's
centre is always a whole number (its side is even) and a ball's centre a half-integer (its disc
is ``2r+1`` pixels across).

Frames are ``uint8 (size, size, 3)``. ``step(action)`` applies the action, advances the world one
frame and returns the new frame, so the frame returned by ``step(a)`` is the first to show ``a``.

The detectors that read these facts back from a frame (a true one or a generated one) live in
:mod:`world.eval.detect`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from world.games.actions import ACTIONS, FIRE, MOVES, action_id
from world.games.captions import (
    COLOUR_NAMES,
    WEATHERS,
    describe_scene,
    parse_prompt,
)

__all__ = [
    "ACTIONS",
    "BALL_RGB_DEFAULT",
    "PALETTE",
    "PLAYER_RGB",
    "PROJECTILE_RGB",
    "SKY_RGB",
    "WEATHER_RGB",
    "Game",
    "GameConfig",
    "GameState",
    "describe_scene",
    "state_fields",
]

# ---------------------------------------------------------------------------------------------
# Colours. The player's yellow and the bolt's magenta are used by nothing else; every pair of
# colours below is at least 75 apart (Euclidean RGB), so a nearest-colour detector can tell them
# apart on a slightly noisy frame.
PLAYER_RGB = (255, 220, 0)
PROJECTILE_RGB = (255, 0, 255)
SKY_RGB = {"day": (176, 216, 240), "night": (18, 22, 48)}
WEATHER_RGB = {"rain": (110, 140, 255), "snow": (250, 250, 250)}
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "purple": (140, 50, 190),
    "orange": (240, 110, 20),
    "pink": (250, 120, 190),
    "cyan": (0, 190, 200),
    "grey": (128, 128, 128),
    "brown": (130, 80, 40),
}
assert tuple(PALETTE) == COLOUR_NAMES
BALL_RGB_DEFAULT = "red"
WALL_RGB_DEFAULT = "grey"


@dataclass(frozen=True)
class GameConfig:
    """Geometry and dynamics of the game. ``GameConfig.for_size(n)`` scales the defaults."""

    size: int = 64  # side of the square frame, pixels (32..256)
    wall: int = 3  # thickness of the border wall, pixels
    player_size: int = 6  # side of the square player, pixels (even, so its centre is whole)
    player_speed: int = 2  # pixels per frame while a direction is held
    ball_radius: int = 3  # a ball is a disc 2r+1 pixels across
    ball_speeds: tuple[int, ...] = (1, 2)  # |vx| and |vy| of a ball are drawn from these, px/frame
    n_balls: int | None = None  # balls at reset; None: drawn from 1..3 by the seed
    max_balls: int = 6  # "spawn" events stop adding balls here
    projectile_size: tuple[int, int] = (2, 4)  # width, height of a bolt, pixels (even)
    projectile_speed: int = 4  # pixels per frame, upwards
    fire_cooldown: int = 4  # frames between two bolts while fire is held
    max_projectiles: int = 8  # bolts on screen at once
    weather_scale: int = 1  # pixel scale of the 16x16 weather tile and its speed
    random_scene: bool = True  # reset draws time of day, weather and colours from the seed;
    # False: day, clear sky, red balls, grey walls (captions given to reset still apply)

    def __post_init__(self) -> None:
        if not 32 <= self.size <= 256:
            raise ValueError(f"size must be in 32..256, got {self.size}")
        if self.player_size % 2 or self.player_size < 2:
            raise ValueError(f"player_size must be even and >= 2, got {self.player_size}")
        if any(v % 2 or v < 2 for v in self.projectile_size):
            raise ValueError(f"projectile_size must be even and >= 2, got {self.projectile_size}")
        inner = self.size - 2 * self.wall
        if self.wall < 1 or inner < 4 * max(self.player_size, 2 * self.ball_radius + 1):
            raise ValueError(
                f"wall={self.wall} leaves {inner} px inside a {self.size} px frame: too small for "
                f"player_size={self.player_size} and ball_radius={self.ball_radius}"
            )
        if not self.ball_speeds or min(self.ball_speeds) < 1:
            raise ValueError(f"ball_speeds must be positive integers, got {self.ball_speeds}")
        if self.n_balls is not None and not 0 <= self.n_balls <= self.max_balls:
            raise ValueError(
                f"n_balls must be in 0..max_balls={self.max_balls}, got {self.n_balls}"
            )

    @classmethod
    def for_size(cls, size: int, **overrides: object) -> GameConfig:
        """Defaults scaled from the 64 px design to ``size`` px (walls, sprites and speeds)."""
        s = size / 64
        fields: dict[str, object] = dict(
            size=size,
            wall=max(2, round(3 * s)),
            player_size=max(4, 2 * round(3 * s)),
            player_speed=max(1, round(2 * s)),
            ball_radius=max(2, round(3 * s)),
            ball_speeds=tuple(sorted({max(1, round(v * s)) for v in (1, 2)})),
            projectile_size=(max(2, 2 * round(s)), max(4, 4 * round(s))),
            projectile_speed=max(2, round(4 * s)),
            weather_scale=max(1, round(s)),
        )
        fields.update(overrides)
        return cls(**fields)  # type: ignore[arg-type]

    def player_bounds(self) -> tuple[int, int]:
        """Smallest and largest coordinate of the player's centre (same for x and y)."""
        half = self.player_size // 2
        return self.wall + half, self.size - self.wall - half


def state_fields(max_balls: int = 6) -> list[str]:
    """Names of the columns of :meth:`GameState.vector` (datasets store them in ``meta.json``).

    Colours and weather are indices into ``COLOUR_NAMES`` / ``WEATHERS``; absent balls are NaN.
    """
    names = ["player_x", "player_y", "night", "weather", "ball_colour", "wall_colour"]
    names += ["n_balls", "n_projectiles"]
    for i in range(max_balls):
        names += [f"ball{i}_x", f"ball{i}_y", f"ball{i}_vx", f"ball{i}_vy"]
    return names


@dataclass(frozen=True)
class GameState:
    """Everything that decides the next frames (besides the game's random generator)."""

    t: int  # frames stepped since reset
    player_x: float  # centre of the player, continuous pixels
    player_y: float
    balls: tuple[tuple[float, float, float, float], ...]  # (x, y, vx, vy) of each ball's centre
    projectiles: tuple[tuple[float, float], ...]  # (x, y) centre of each bolt
    night: bool  # dark sky
    weather: str  # "clear" | "rain" | "snow"
    ball_colour: str  # a name of PALETTE
    wall_colour: str
    fire_cooldown: int  # frames until fire can shoot again

    def vector(self, max_balls: int = 6) -> np.ndarray:
        """float32 vector with the columns of :func:`state_fields` (``max_balls`` slots)."""
        v = np.full(len(state_fields(max_balls)), np.nan, dtype=np.float32)
        v[:8] = (
            self.player_x,
            self.player_y,
            float(self.night),
            WEATHERS.index(self.weather),
            COLOUR_NAMES.index(self.ball_colour),
            COLOUR_NAMES.index(self.wall_colour),
            len(self.balls),
            len(self.projectiles),
        )
        for i, ball in enumerate(self.balls[:max_balls]):
            v[8 + 4 * i : 12 + 4 * i] = ball
        return v


# Weather tiles (16x16, repeated over the frame) and their motion in pixels per frame.
def _rain_tile() -> np.ndarray:
    tile = np.zeros((16, 16), dtype=bool)
    for y0, x0 in ((0, 2), (3, 10), (6, 5), (9, 13), (12, 1), (13, 8)):
        for k in range(5):  # a streak slanting down-left, along its motion
            tile[(y0 + k) % 16, (x0 - k // 2) % 16] = True
    return tile


def _snow_tile() -> np.ndarray:
    tile = np.zeros((16, 16), dtype=bool)
    for y0, x0 in ((1, 3), (2, 8), (5, 11), (6, 1), (9, 6), (13, 14), (11, 0), (14, 9)):
        tile[y0 : y0 + 2, x0 : x0 + 2] = True  # 2x2 flakes
    return tile


_WEATHER_TILES = {"rain": _rain_tile(), "snow": _snow_tile()}
_WEATHER_MOTION = {"rain": (-1, 2), "snow": (0, 1)}  # (dx, dy) per frame: rain falls slanted


class Game:
    """The game: ``reset(seed)``, then ``step(action)`` per frame; ``apply_prompt(text)`` at will.

    It follows the game protocol (:mod:`world.games.protocol`): ``actions``, ``reset``, ``step``,
    ``describe`` and ``apply_prompt``."""

    actions: list[str] = list(ACTIONS)  # the protocol's key names; the index is the action id

    def __init__(self, config: GameConfig | None = None) -> None:
        self.config = config or GameConfig()
        c = self.config
        r = c.ball_radius
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        self._disc = xx * xx + yy * yy <= r * r + r
        k = c.weather_scale
        self._tiles = {
            name: np.kron(t, np.ones((k, k), dtype=bool)) for name, t in _WEATHER_TILES.items()
        }
        dy, dx = np.nonzero(self._disc)
        self._disc_offsets = (dy - r) * c.size + (dx - r)  # flat pixel offsets of a ball's disc
        self._backgrounds: dict[tuple[bool, str, int], np.ndarray] = {}
        self._rgb = {name: np.array(v, dtype=np.uint8) for name, v in PALETTE.items()}
        self.reset(0)

    # -- life cycle ----------------------------------------------------------------------------
    def reset(self, seed: int, caption: str | None = None) -> np.ndarray:
        """Start a new game from ``seed`` (and an optional scene caption); returns frame 0."""
        c = self.config
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        lo, hi = c.player_bounds()
        self._px, self._py = (int(v) for v in self.rng.integers(lo, hi + 1, size=2))
        n = int(self.rng.integers(1, 4)) if c.n_balls is None else c.n_balls
        night = bool(self.rng.random() < 0.3)
        weather = WEATHERS[int(self.rng.choice(3, p=(0.6, 0.2, 0.2)))]
        ball_colour = COLOUR_NAMES[int(self.rng.integers(len(COLOUR_NAMES)))]
        wall_colour = (
            WALL_RGB_DEFAULT
            if self.rng.random() < 0.5
            else COLOUR_NAMES[int(self.rng.integers(len(COLOUR_NAMES)))]
        )
        if not c.random_scene:
            night, weather, ball_colour, wall_colour = (
                False,
                "clear",
                BALL_RGB_DEFAULT,
                WALL_RGB_DEFAULT,
            )
        self.night, self.weather = night, weather
        self.ball_colour, self.wall_colour = ball_colour, wall_colour
        self._balls = np.zeros((0, 4), dtype=np.int64)  # pixel column, row of the centre, vx, vy
        for _ in range(n):
            self._spawn_ball()
        self._projectiles: list[list[int]] = []  # [x, y] centres
        self._cooldown = 0
        self.t = 0
        if caption:
            self.apply_prompt(caption)
        return self.render()

    def place_player(self, x: float, y: float) -> tuple[int, int]:
        """Move the player's centre to the nearest pixel of ``(x, y)`` inside its bounds, as if
        it had stood there all along; returns where it went. The next ``step`` moves it from
        there. The world model's training uses this to continue a clip from where a generated
        frame drew the player (``world.train.datagen.Replayer``)."""
        lo, hi = self.config.player_bounds()
        self._px, self._py = (min(max(int(round(v)), lo), hi) for v in (x, y))
        return self._px, self._py

    @property
    def player_position(self) -> tuple[int, int]:
        """The player's centre, (x, y) in pixels."""
        return self._px, self._py

    @property
    def ball_area(self) -> int:
        """Pixels of one ball's disc (a detector counts balls by coloured area over this)."""
        return int(self._disc.sum())

    def clone(self) -> Game:
        """An independent copy (random generator included): a snapshot to fork or restore."""
        return copy.deepcopy(self)

    def _spawn_ball(self) -> None:
        c = self.config
        lo, hi = c.wall + c.ball_radius, c.size - 1 - c.wall - c.ball_radius
        x, y = (int(v) for v in self.rng.integers(lo, hi + 1, size=2))
        speeds = np.asarray(c.ball_speeds)
        v = speeds[self.rng.integers(len(speeds), size=2)] * self.rng.choice((-1, 1), size=2)
        self._balls = np.vstack([self._balls, [[x, y, int(v[0]), int(v[1])]]])

    # -- dynamics ------------------------------------------------------------------------------
    def step(self, action: int | str) -> np.ndarray:
        """Apply one action, advance one frame, return the new frame."""
        a = action_id(action)
        c = self.config
        dx, dy = MOVES[a]
        lo, hi = c.player_bounds()
        self._px = min(max(self._px + dx * c.player_speed, lo), hi)
        self._py = min(max(self._py + dy * c.player_speed, lo), hi)

        pw, ph = c.projectile_size
        for p in self._projectiles:
            p[1] -= c.projectile_speed
        self._projectiles = [p for p in self._projectiles if p[1] - ph // 2 >= c.wall]
        if self._cooldown > 0:
            self._cooldown -= 1
        if a == FIRE and self._cooldown == 0 and len(self._projectiles) < c.max_projectiles:
            y = self._py - c.player_size // 2 - ph // 2
            if y - ph // 2 >= c.wall:
                self._projectiles.append([self._px, y])
                self._cooldown = c.fire_cooldown

        if len(self._balls):
            b = self._balls
            b[:, :2] += b[:, 2:]
            blo, bhi = c.wall + c.ball_radius, c.size - 1 - c.wall - c.ball_radius
            low, high = b[:, :2] < blo, b[:, :2] > bhi
            pos = b[:, :2]
            pos[low] = 2 * blo - pos[low]
            pos[high] = 2 * bhi - pos[high]
            vel = b[:, 2:]
            vel[low | high] *= -1
        self.t += 1
        return self.render()

    def apply_prompt(self, text: str) -> list[str]:
        """Apply a caption's events (see :mod:`world.games.captions`); returns those that changed
        something, e.g. ``["night", "spawn", "wall_colour:red"]``."""
        p = parse_prompt(text)
        events: list[str] = []
        if p.time is not None and p.time != ("night" if self.night else "day"):
            self.night = p.time == "night"
            events.append(p.time)
        if p.weather is not None and p.weather != self.weather:
            self.weather = p.weather
            events.append(p.weather)
        target = len(self._balls) + p.add_balls - p.remove_balls
        if p.ball_count is not None:
            target = p.ball_count
        target = min(max(target, 0), self.config.max_balls)
        while len(self._balls) < target:
            self._spawn_ball()
            events.append("spawn")
        while len(self._balls) > target:
            self._balls = self._balls[:-1]
            events.append("remove")
        if p.ball_colour is not None and p.ball_colour != self.ball_colour:
            self.ball_colour = p.ball_colour
            events.append(f"ball_colour:{p.ball_colour}")
        if p.wall_colour is not None and p.wall_colour != self.wall_colour:
            self.wall_colour = p.wall_colour
            events.append(f"wall_colour:{p.wall_colour}")
        return events

    def state(self) -> GameState:
        """A frozen snapshot of the game's state."""
        return GameState(
            t=self.t,
            player_x=float(self._px),
            player_y=float(self._py),
            balls=tuple(
                (x + 0.5, y + 0.5, float(vx), float(vy)) for x, y, vx, vy in self._balls.tolist()
            ),
            projectiles=tuple((float(x), float(y)) for x, y in self._projectiles),
            night=self.night,
            weather=self.weather,
            ball_colour=self.ball_colour,
            wall_colour=self.wall_colour,
            fire_cooldown=self._cooldown,
        )

    def state_vector(self) -> np.ndarray:
        """``self.state().vector(config.max_balls)``, computed without building the state."""
        c = self.config
        v = np.full(8 + 4 * c.max_balls, np.nan, dtype=np.float32)
        v[:8] = (
            self._px,
            self._py,
            float(self.night),
            WEATHERS.index(self.weather),
            COLOUR_NAMES.index(self.ball_colour),
            COLOUR_NAMES.index(self.wall_colour),
            len(self._balls),
            len(self._projectiles),
        )
        n = len(self._balls)
        if n:
            b = self._balls.astype(np.float32)
            b[:, :2] += 0.5
            v[8 : 8 + 4 * n] = b.ravel()
        return v

    def describe(self) -> str:
        """The scene description of the current state (:func:`world.games.captions.describe_scene`)."""
        return describe_scene(self.state())

    # -- rendering -----------------------------------------------------------------------------
    def _background(self) -> np.ndarray:
        """Sky and weather of the current frame (cached per time of day, weather and phase)."""
        key = (self.night, self.weather, self.t % 16)
        bg = self._backgrounds.get(key)
        if bg is None:
            s, k = self.config.size, self.config.weather_scale
            bg = np.empty((s, s, 3), dtype=np.uint8)
            bg[:] = SKY_RGB["night" if self.night else "day"]
            if self.weather != "clear":
                tile = self._tiles[self.weather]
                n = tile.shape[0]
                dx, dy = _WEATHER_MOTION[self.weather]
                ar = np.arange(s)
                rows = (ar - dy * k * self.t) % n
                cols = (ar - dx * k * self.t) % n
                bg[tile[np.ix_(rows, cols)]] = WEATHER_RGB[self.weather]
            if len(self._backgrounds) >= 96:
                self._backgrounds.clear()
            self._backgrounds[key] = bg
        return bg

    def render(self) -> np.ndarray:
        """The current frame, ``uint8 (size, size, 3)`` (a new array)."""
        c = self.config
        s, w = c.size, c.wall
        frame = self._background().copy()
        flat = frame.reshape(-1, 3)
        if len(self._balls):
            centres = self._balls[:, 1] * s + self._balls[:, 0]
            flat[(centres[:, None] + self._disc_offsets).ravel()] = self._rgb[self.ball_colour]
        hw, hh = c.projectile_size[0] // 2, c.projectile_size[1] // 2
        for x, y in self._projectiles:
            frame[y - hh : y + hh, x - hw : x + hw] = PROJECTILE_RGB
        h = c.player_size // 2
        frame[self._py - h : self._py + h, self._px - h : self._px + h] = PLAYER_RGB
        wall = self._rgb[self.wall_colour]
        frame[:w] = wall
        frame[-w:] = wall
        frame[:, :w] = wall
        frame[:, -w:] = wall
        return frame
