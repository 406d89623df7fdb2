"""The second built-in game: a side-scrolling platformer (plain numpy), implementing the game
protocol of issue 36 (``actions``, ``reset``, ``step`` and the optional parts).

Rules. The level is 8 tiles tall (the screen's height) and ``level_tiles`` wide (4 screens by
default), generated from the seed: a brick floor, one-tile bumps, floating platforms, 8..12
coins, a key, and a wall with a door in it. The player (a red block) runs 2 units a tick, falls
under gravity (+1 unit/tick², at most 4 units a tick) and jumps (-7 units/tick) only when
standing on something; bricks and the closed door are solid. Touching a coin collects it for
good; touching the key opens the door for good and shows a key in the top-left corner. The
camera scrolls with the player (a dead zone of half the screen), so things leave the view and
come back exactly as they were.

Units. Physics runs in *units*, 8 to a tile, whatever the frame size; a unit is ``size/64``
pixels (``size`` a multiple of 16, 32..256). A thing at units ``[x0, x1)`` covers the pixel
columns ``[x0*T//8, x1*T//8)`` with ``T = size//8`` pixels per tile.

Captions, prompts and the policy live in :mod:`world.games.platformer_text`; the pixel
detectors ``player(frame)`` and ``objects(frame)`` in :mod:`world.games.platformer_detect`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from world.games import platformer_detect as detect
from world.games import platformer_text as text

__all__ = ["ACTIONS", "COLOURS", "Platformer", "PlatformerConfig", "PlatformerState"]

ACTIONS: tuple[str, ...] = ("noop", "left", "right", "jump", "left_jump", "right_jump")
_MOVE = {"noop": 0, "left": -1, "right": 1, "jump": 0, "left_jump": -1, "right_jump": 1}

# Flat colours; every pair that can touch is >= 100 apart (RGB Euclidean), see detect.LABELS.
COLOURS: dict[str, tuple[int, int, int]] = detect.COLOURS

# Physics, in units (8 per tile).
TILE = 8
RUN = 2  # units a tick while left/right is held
JUMP = 7  # upward speed a jump starts with
GRAVITY = 1  # added to the vertical speed every tick
MAX_FALL = 4
PLAYER_W, PLAYER_H = 6, 8
ROWS = 8  # tiles from top to bottom (the screen's height)
SCREEN = ROWS * TILE  # the view is SCREEN x SCREEN units
DEAD_ZONE = (16, SCREEN - 16 - PLAYER_W)  # the player's left edge on screen stays in here
EMPTY, BRICK, DOOR = 0, 1, 2


@dataclass(frozen=True)
class PlatformerConfig:
    """Frame size and level size."""

    size: int = 64  # frame side in pixels: a multiple of 16 in 32..256
    level_tiles: int = 32  # level width in tiles (8 tiles to a screen)
    coins: tuple[int, int] = (8, 12)  # coins a level starts with, drawn from this range
    max_coins: int = 48  # "spawn a coin" prompts stop adding coins here

    def __post_init__(self) -> None:
        if self.size % 16 or not 32 <= self.size <= 256:
            raise ValueError(f"size must be a multiple of 16 in 32..256, got {self.size}")
        if self.level_tiles < 24:
            raise ValueError(f"level_tiles must be >= 24 (3 screens), got {self.level_tiles}")
        lo, hi = self.coins
        if not 0 <= lo <= hi <= self.max_coins:
            raise ValueError(
                f"coins must be (lo, hi) with 0 <= lo <= hi <= max_coins: {self.coins}"
            )


@dataclass(frozen=True)
class PlatformerState:
    """Everything that decides the next frames (besides the game's random generator)."""

    t: int
    x: int  # the player's left edge, units (level coordinates)
    y: int  # the player's top edge
    vy: int  # vertical speed, units a tick (down is positive)
    cam: int  # the view's left edge, units
    on_ground: bool
    night: bool
    rain: bool
    coins: tuple[tuple[int, int, bool], ...]  # (tile row, tile column, collected)
    key: tuple[int, int]  # (tile row, tile column)
    key_taken: bool  # also: the door is open
    door_col: int  # the tile column of the door (rows 5 and 6) and its wall (rows 0..4)


def generate_level(
    rng: np.random.Generator, cfg: PlatformerConfig
) -> tuple[np.ndarray, list[tuple[int, int]], tuple[int, int], int]:
    """A level from a seeded generator: (tiles (ROWS, W) int8, coins [(row, col)], key, door)."""
    w = cfg.level_tiles
    tiles = np.zeros((ROWS, w), dtype=np.int8)
    tiles[ROWS - 1] = BRICK
    door = int(rng.integers(w // 2 - 2, w // 2 + 3))
    keep_clear = set(range(door - 2, door + 3))
    for c in rng.choice(np.arange(3, w - 1), size=w // 6, replace=False):
        if int(c) not in keep_clear:
            tiles[6, c] = BRICK  # a one-tile bump on the floor
    for row, n in ((4, w // 7), (1, w // 10)):  # platforms; none over the corner key icon
        for _ in range(n):
            length, c0 = int(rng.integers(2, 5)), int(rng.integers(5, w - 4))
            cols = [c for c in range(c0, c0 + length) if c not in keep_clear]
            tiles[row, cols] = BRICK
    tiles[:5, door] = BRICK
    tiles[5:7, door] = DOOR
    free = [
        (r, c)
        for r in range(1, ROWS - 1)
        for c in range(2, w)
        if tiles[r, c] == EMPTY and c != door and (tiles[r + 1, c] != EMPTY or r >= 5)
    ]  # where a coin can sit: on something, or low enough to jump for
    left = [(r, c) for r, c in free if c < door - 1 and r >= 5]
    key = left[int(rng.integers(len(left)))]
    free = [rc for rc in free if rc != key]
    n = int(rng.integers(cfg.coins[0], cfg.coins[1] + 1))
    picks = rng.choice(len(free), size=min(n, len(free)), replace=False)
    coins = sorted(free[int(i)] for i in picks)
    return tiles, coins, key, door


class Platformer:
    """The platformer: ``reset(seed)``, then ``step(action)`` per tick; prompts at will."""

    actions: list[str] = list(ACTIONS)
    prompts = text.PROMPTS
    held_out_prompts = text.HELD_OUT_PROMPTS

    def __init__(self, config: PlatformerConfig | None = None, **overrides: object) -> None:
        if config is None:
            config = PlatformerConfig(**overrides)  # type: ignore[arg-type]
        elif overrides:
            raise TypeError("give either a PlatformerConfig or keyword fields, not both")
        self.config = config
        self.T = config.size // ROWS  # pixels per tile
        self._sprites = detect.sprites(self.T)
        self.reset(0)

    # -- life cycle ----------------------------------------------------------------------------
    def reset(self, seed: int, caption: str | None = None) -> np.ndarray:
        """Start the level of ``seed`` (and apply an optional caption); returns frame 0."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.rng = np.random.default_rng(int(seed))
        self.tiles, coins, self.key, self.door_col = generate_level(self.rng, self.config)
        self.coins = [list(rc) for rc in coins]
        self.collected = [False] * len(self.coins)
        self.key_taken = False
        self.night = bool(self.rng.random() < 0.3)
        self.rain = bool(self.rng.random() < 0.25)
        self.x, self.y, self.vy = TILE + 1, (ROWS - 1) * TILE - PLAYER_H, 0
        self.cam, self.t = 0, 0
        self._plan: list[str] = []
        self._layer: tuple[np.ndarray, np.ndarray] | None = None
        if caption:
            self.apply_prompt(caption)
        return self.render()

    def clone(self) -> Platformer:
        """An independent copy (random generator and policy plan included): a snapshot."""
        return copy.deepcopy(self)

    # -- dynamics ------------------------------------------------------------------------------
    def solid(self, x: int, y: int, w: int = PLAYER_W, h: int = PLAYER_H) -> bool:
        """Whether the box ``[x, x+w) x [y, y+h)`` (units) meets a brick, a closed door or the
        level's edge."""
        if x < 0 or y < 0 or x + w > self.tiles.shape[1] * TILE or y + h > SCREEN:
            return True
        block = self.tiles[y // TILE : (y + h - 1) // TILE + 1, x // TILE : (x + w - 1) // TILE + 1]
        return bool(np.any(block == BRICK) or (not self.key_taken and np.any(block == DOOR)))

    def on_ground(self) -> bool:
        """Whether the player stands on something (a jump can start)."""
        return self.solid(self.x, self.y + 1)

    def step(self, action: str) -> np.ndarray:
        """Apply one action, advance one tick, return the new frame."""
        if action not in _MOVE:
            raise ValueError(f"unknown action {action!r}; valid: {', '.join(ACTIONS)}")
        grounded = self.on_ground()
        dx = _MOVE[action]
        for _ in range(RUN if dx else 0):  # one unit at a time: nothing passes through a wall
            if self.solid(self.x + dx, self.y):
                break
            self.x += dx
        if "jump" in action and grounded:
            self.vy = -JUMP
        else:
            self.vy = min(self.vy + GRAVITY, MAX_FALL)
        sign = 1 if self.vy > 0 else -1
        for _ in range(abs(self.vy)):
            if self.solid(self.x, self.y + sign):
                self.vy = 0  # landed, or bumped a ceiling
                break
            self.y += sign
        self._touch()
        lo, hi = DEAD_ZONE
        cam = min(max(self.cam, self.x - hi), self.x - lo)
        self.cam = min(max(cam, 0), (self.tiles.shape[1] - ROWS) * TILE)
        self.t += 1
        return self.render()

    def _touch(self) -> None:
        """Collect the coins and the key whose tile the player overlaps (a sprite lies inside
        its tile, so the player is never drawn over one)."""
        x0, y0 = self.x, self.y

        def touches(r: int, c: int) -> bool:
            hit_x = x0 < (c + 1) * TILE and c * TILE < x0 + PLAYER_W
            return hit_x and y0 < (r + 1) * TILE and r * TILE < y0 + PLAYER_H

        for i, (r, c) in enumerate(self.coins):
            if not self.collected[i] and touches(r, c):
                self.collected[i] = True
                self._layer = None
        if not self.key_taken and touches(*self.key):
            self.key_taken = True
            self._layer = None

    def apply_prompt(self, prompt: str) -> list[str]:
        """Apply a prompt (see :mod:`world.games.platformer_text`); returns the event kinds it
        caused, e.g. ``["night"]``, ``["coin"]``, or ``[]``."""
        if not isinstance(prompt, str):
            raise TypeError(f"a prompt is text (str), got {type(prompt).__name__}")
        p = text.parse(prompt)
        events: list[str] = []
        if p.time is not None and (p.time == "night") != self.night:
            self.night = p.time == "night"
            events.append(p.time)
        if p.weather is not None and (p.weather == "rain") != self.rain:
            self.rain = p.weather == "rain"
            events.append(p.weather)
        for _ in range(p.coins):
            if self._spawn_coin():
                events.append("coin")
        return events

    def _spawn_coin(self) -> bool:
        """Put a coin on a free tile fully in view, away from the player; False if none."""
        if len(self.coins) - sum(self.collected) >= self.config.max_coins:
            return False
        taken = {tuple(rc) for rc, got in zip(self.coins, self.collected, strict=True) if not got}
        taken.add(tuple(self.key))
        c0 = -(-self.cam // TILE)
        pr, pc = (self.y + PLAYER_H // 2) // TILE, (self.x + PLAYER_W // 2) // TILE
        free = [
            (r, c)
            for r in range(1, ROWS - 1)
            for c in range(c0, (self.cam + SCREEN) // TILE)
            if self.tiles[r, c] == EMPTY
            and (r, c) not in taken
            and max(abs(r - pr), abs(c - pc)) > 1
        ]
        if not free:
            return False
        r, c = free[int(self.rng.integers(len(free)))]
        self.coins.append([r, c])
        self.collected.append(False)
        self._layer = None
        return True

    # -- reading the state ---------------------------------------------------------------------
    def state(self) -> PlatformerState:
        """A frozen snapshot of the game's state."""
        return PlatformerState(
            t=self.t,
            x=self.x,
            y=self.y,
            vy=self.vy,
            cam=self.cam,
            on_ground=self.on_ground(),
            night=self.night,
            rain=self.rain,
            coins=tuple(
                (r, c, got) for (r, c), got in zip(self.coins, self.collected, strict=True)
            ),
            key=(int(self.key[0]), int(self.key[1])),
            key_taken=self.key_taken,
            door_col=self.door_col,
        )

    def visible(self) -> dict[str, int]:
        """The true counts that :meth:`objects` reads from a frame: coins, keys and closed doors
        of which at least half the pixels are in view, and the key icon (``held_keys``)."""
        coins = sum(
            self._shown("coin", c)
            for (_, c), got in zip(self.coins, self.collected, strict=True)
            if not got
        )
        key = int(not self.key_taken and self._shown("key", self.key[1]))
        door = int(not self.key_taken and self._shown("door", self.door_col))
        return {"coins": coins, "keys": key, "doors": door, "held_keys": int(self.key_taken)}

    def describe(self) -> str:
        """A caption of the scene, e.g. ``"night, rain, two coins in view, a locked door"``."""
        return text.describe(self.night, self.rain, self.visible(), self._door_in_view())

    def _door_in_view(self) -> bool:
        """Whether at least half the door's place is in view (open or closed)."""
        return self._shown("door", self.door_col)

    def _shown(self, kind: str, c: int) -> bool:
        """Whether at least half the pixels of sprite ``kind`` in tile column ``c`` are in view."""
        m = self._sprites[kind]
        left = c * self.T - self.cam * self.T // TILE  # the tile's first pixel column on screen
        inside = m[:, max(0, -left) : max(0, self.config.size - left)].sum()
        return 2 * int(inside) >= int(m.sum())

    def policy(self, rng: np.random.Generator) -> str:
        """The next action of a play-like stream (held runs, hops, idles, alternation)."""
        if not self._plan:
            self._plan = text.plan(rng)
        return self._plan.pop(0)

    # -- pixel detectors (frames only, never the state) ----------------------------------------
    def player(self, frame: np.ndarray) -> tuple[float, float] | None:
        """The player's centre ``(x, y)`` in frame pixels, found from colours alone."""
        return detect.find_player(frame)

    def objects(self, frame: np.ndarray) -> dict[str, int]:
        """Counts of coins, keys, closed doors and the held-key icon found in a frame."""
        return detect.count_objects(frame)

    def true_player(self) -> tuple[float, float]:
        """Where :meth:`player` should find the player: its box's centre in frame pixels."""
        T = self.T
        x0, x1 = (v * T // TILE for v in (self.x - self.cam, self.x - self.cam + PLAYER_W))
        y0, y1 = (v * T // TILE for v in (self.y, self.y + PLAYER_H))
        return (x0 + x1) / 2, (y0 + y1) / 2

    # -- rendering -----------------------------------------------------------------------------
    def _level_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole level's bricks, door, coins and key as (rgb, mask), rebuilt on change."""
        if self._layer is None:
            T, (rows, cols) = self.T, self.tiles.shape
            rgb = np.zeros((rows * T, cols * T, 3), dtype=np.uint8)
            mask = np.zeros(rgb.shape[:2], dtype=bool)
            for r in range(rows):
                for c in range(cols):
                    kind = self.tiles[r, c]
                    if kind == BRICK:
                        shade = "brick_light" if (r + c) % 2 else "brick_dark"
                        self._blit(rgb, mask, r, c, "tile", shade)
                    elif kind == DOOR and not self.key_taken:
                        self._blit(rgb, mask, r, c, "tile", "door")
            for (r, c), got in zip(self.coins, self.collected, strict=True):
                if not got:
                    self._blit(rgb, mask, r, c, "coin", "coin")
            if not self.key_taken:
                self._blit(rgb, mask, self.key[0], self.key[1], "key", "key")
            self._layer = rgb, mask
        return self._layer

    def _blit(
        self, rgb: np.ndarray, mask: np.ndarray, r: int, c: int, sprite: str, colour: str
    ) -> None:
        T = self.T
        m = self._sprites[sprite]
        rgb[r * T : (r + 1) * T, c * T : (c + 1) * T][m] = COLOURS[colour]
        mask[r * T : (r + 1) * T, c * T : (c + 1) * T] |= m

    def render(self) -> np.ndarray:
        """The current frame, ``uint8 (size, size, 3)`` (a new array)."""
        s, T = self.config.size, self.T
        frame = np.empty((s, s, 3), dtype=np.uint8)
        frame[:] = COLOURS["sky_night" if self.night else "sky_day"]
        if self.rain:
            frame[detect.rain_mask(s, self.t)] = COLOURS["rain"]
        rgb, mask = self._level_layer()
        px = self.cam * T // TILE
        view = mask[:, px : px + s]
        frame[view] = rgb[:, px : px + s][view]
        x0, x1 = (v * T // TILE for v in (self.x - self.cam, self.x - self.cam + PLAYER_W))
        y0, y1 = (v * T // TILE for v in (self.y, self.y + PLAYER_H))
        frame[y0:y1, x0:x1] = COLOURS["player"]
        if self.key_taken:  # the key icon in the top-left tile (no platform ever reaches it)
            frame[:T, :T][self._sprites["key"]] = COLOURS["key"]
        return frame
