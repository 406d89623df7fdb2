"""Caption vocabulary of the built-in game: scene descriptions, event prompts and their parser.

A caption is free text. Two kinds are used in generated data:

- the **scene description** of the current state, e.g. ``"night, snow, two red balls, grey
  walls"`` (:func:`describe_scene`). It names everything an event can change, so a world can be
  started from text (``Game.reset(seed, caption=...)`` applies it) and re-applying it is a no-op;
- an **event prompt**, e.g. ``"make it rain"`` (:data:`EVENT_TEMPLATES`), issued at a chunk
  boundary; the game applies it from the first frame of that chunk on.

:func:`parse_prompt` turns text into a :class:`Prompt` with a small keyword table (words are
lower-case alphanumeric runs, matched exactly):

=============  ==========================================================================
event          words
=============  ==========================================================================
night          night, nighttime, dark, darker, darkness, dusk, evening, sunset, sets
day            day, daytime, daylight, dawn, morning, sunrise, rises, bright, brighter,
               sunny, noon
rain           rain, rains, raining, rainy, storm, storms, stormy, thunderstorm, downpour,
               drizzle, shower, showers
snow           snow, snows, snowing, snowy, snowfall, blizzard, flurries
clear          clear, clears, sunny, dry; or a weather word within two words of
               stop, stops, stopped, end, ends, ceases, no  ("the rain stops")
spawn          add, adds, spawn, spawns, new, another, more, extra, appears, appear, drop
               together with ball/balls; the count is a number word or digit before
               "ball(s)" (default 1): "add two balls"
remove         remove, removes, fewer, less, pop, vanishes, disappears + ball/balls
ball count     a number + ball(s) with no spawn/remove word ("three balls") sets the count
recolour       a colour word (red, green, blue, purple, orange, pink, cyan, grey, brown;
               aliases gray, violet, teal) applies to the nearest of ball(s) /
               wall(s) / border(s) in the text, or to both when neither is named
=============  ==========================================================================

When several words of one kind appear, the last one wins ("night turns to day" -> day).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

TIMES: tuple[str, ...] = ("day", "night")
WEATHERS: tuple[str, ...] = ("clear", "rain", "snow")
# Colours balls and walls can take (RGB values live in world/games/arcade.py). None is yellow, the
# player's colour, and none is white, the snow's.
COLOUR_NAMES: tuple[str, ...] = (
    "red",
    "green",
    "blue",
    "purple",
    "orange",
    "pink",
    "cyan",
    "grey",
    "brown",
)
COLOUR_ALIASES: dict[str, str] = {"gray": "grey", "violet": "purple", "teal": "cyan"}

NIGHT_WORDS = frozenset("night nighttime dark darker darkness dusk evening sunset sets".split())
DAY_WORDS = frozenset(
    "day daytime daylight dawn morning sunrise rises bright brighter sunny noon".split()
)
RAIN_WORDS = frozenset(
    "rain rains raining rainy storm storms stormy thunderstorm downpour drizzle shower showers".split()
)
SNOW_WORDS = frozenset("snow snows snowing snowy snowfall blizzard flurries".split())
CLEAR_WORDS = frozenset("clear clears sunny dry".split())
STOP_WORDS = frozenset("stop stops stopped end ends ceases no".split())
SPAWN_WORDS = frozenset("add adds spawn spawns new another more extra appears appear drop".split())
REMOVE_WORDS = frozenset("remove removes fewer less pop vanishes disappears".split())
BALL_WORDS = frozenset(("ball", "balls"))
WALL_WORDS = frozenset(("wall", "walls", "border", "borders"))
NUMBER_WORDS: dict[str, int] = {
    "zero": 0,
    "no": 0,
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
}
_COUNT_NAMES = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight")

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Prompt:
    """What a caption asks for; ``None`` / 0 means "leave as it is"."""

    time: str | None = None  # "day" | "night"
    weather: str | None = None  # "clear" | "rain" | "snow"
    ball_colour: str | None = None  # a name of COLOUR_NAMES
    wall_colour: str | None = None
    add_balls: int = 0  # balls to spawn
    remove_balls: int = 0  # balls to remove (the newest first)
    ball_count: int | None = None  # an absolute number of balls ("three balls")


def words(text: str | None) -> list[str]:
    """Lower-case alphanumeric words, as the text encoder sees them."""
    return _WORD.findall((text or "").lower())


def _number_before(ws: list[str], i: int) -> tuple[int, str] | None:
    """A count word or digit among the two words before position ``i`` ("two red balls")."""
    for j in (i - 1, i - 2):
        if j >= 0 and (ws[j].isdigit() or ws[j] in NUMBER_WORDS):
            return (int(ws[j]) if ws[j].isdigit() else NUMBER_WORDS[ws[j]]), ws[j]
    return None


def parse_prompt(text: str | None) -> Prompt:
    """Parse free text with the keyword table of the module docstring."""
    ws = words(text)
    time = weather = ball_colour = wall_colour = None
    for i, w in enumerate(ws):
        if w in NIGHT_WORDS:
            time = "night"
        elif w in DAY_WORDS:
            time = "day"
        if w in RAIN_WORDS or w in SNOW_WORDS:
            near = ws[max(0, i - 2) : i] + ws[i + 1 : i + 3]
            stopped = any(v in STOP_WORDS for v in near)
            weather = "clear" if stopped else ("rain" if w in RAIN_WORDS else "snow")
        elif w in CLEAR_WORDS:
            weather = "clear"

    # Colours: each colour word goes to the nearest ball/wall word (ties: the following one).
    targets = [
        (i, "ball" if w in BALL_WORDS else "wall")
        for i, w in enumerate(ws)
        if w in BALL_WORDS or w in WALL_WORDS
    ]
    for i, w in enumerate(ws):
        name = COLOUR_ALIASES.get(w, w)
        if name not in COLOUR_NAMES:
            continue
        if targets:
            _, target = min(targets, key=lambda t: (abs(t[0] - i), t[0] < i))
            if target == "ball":
                ball_colour = name
            else:
                wall_colour = name
        else:
            ball_colour = wall_colour = name

    add = remove = 0
    count = None
    spawn = any(w in SPAWN_WORDS for w in ws)
    drop = any(w in REMOVE_WORDS for w in ws)
    for i, w in enumerate(ws):
        if w not in BALL_WORDS:
            continue
        found = _number_before(ws, i)
        n = 1 if found is None else found[0]
        if drop:
            remove = max(remove, n)
        elif spawn:
            add = max(add, n)
        elif found is not None and found[1] not in ("a", "an"):
            count = n  # "three balls" sets the count; "a ball" alone does nothing
    if spawn and not drop and add == 0 and "spawn" in ws:
        add = 1
    return Prompt(time, weather, ball_colour, wall_colour, add, remove, count)


def count_word(n: int) -> str:
    return _COUNT_NAMES[n] if 0 <= n < len(_COUNT_NAMES) else str(n)


def describe_scene(state: Any) -> str:
    """The scene description of a game state (anything with ``night``, ``weather``,
    ``balls``, ``ball_colour``, ``wall_colour``): ``"day, clear sky, two red balls, grey walls"``.
    """
    n = len(state.balls)
    sky = {"clear": "clear sky", "rain": "rain", "snow": "snow"}[state.weather]
    balls = f"{count_word(n)} {state.ball_colour} ball{'' if n == 1 else 's'}"
    return f"{'night' if state.night else 'day'}, {sky}, {balls}, {state.wall_colour} walls"


# Event prompts used in generated data. Every template parses to exactly its event
# (tests/test_game.py checks it); "{c}" is a colour name, "{w}" the current weather.
EVENT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "night": ("it gets dark", "night falls", "the sun sets", "darkness falls", "evening comes"),
    "day": ("the sun rises", "day breaks", "it becomes day", "morning comes", "it gets bright"),
    "rain": ("make it rain", "it starts to rain", "a storm rolls in", "rain begins to fall"),
    "snow": ("it starts snowing", "make it snow", "snow begins to fall", "a blizzard arrives"),
    "clear": ("the sky clears", "the weather clears up", "the {w} stops"),
    "spawn": ("add a ball", "spawn a new ball", "another ball appears", "drop in one more ball"),
    "ball_colour": ("the balls turn {c}", "make the balls {c}", "paint the balls {c}"),
    "wall_colour": ("paint the walls {c}", "the walls turn {c}", "make the border {c}"),
}
EVENT_KINDS: tuple[str, ...] = tuple(EVENT_TEMPLATES)


def event_prompts() -> list[str]:
    """Every concrete event prompt the data generator can issue (templates filled in)."""
    out: list[str] = []
    for templates in EVENT_TEMPLATES.values():
        for t in templates:
            if "{c}" in t:
                out += [t.format(c=c) for c in COLOUR_NAMES]
            elif "{w}" in t:
                out += [t.format(w=w) for w in ("rain", "snow")]
            else:
                out.append(t)
    return out


def possible_events(state: Any, max_balls: int) -> list[str]:
    """Event kinds that would visibly change ``state``."""
    kinds = ["day" if state.night else "night"]
    kinds += [w for w in WEATHERS if w != state.weather]
    if len(state.balls) < max_balls:
        kinds.append("spawn")
    kinds += ["ball_colour", "wall_colour"]
    return kinds


def event_prompt(rng: np.random.Generator, kind: str, state: Any) -> str:
    """A random prompt of event ``kind`` that changes ``state`` (a new colour, say)."""
    templates = EVENT_TEMPLATES[kind]
    t = templates[int(rng.integers(len(templates)))]
    if "{c}" in t:
        current = state.ball_colour if kind == "ball_colour" else state.wall_colour
        choices = [c for c in COLOUR_NAMES if c != current]
        t = t.format(c=choices[int(rng.integers(len(choices)))])
    elif "{w}" in t:
        t = t.format(w=state.weather)
    return t


def sample_chunk_caption(
    rng: np.random.Generator, state: Any, event_prob: float = 0.12, max_balls: int = 6
) -> tuple[str, bool]:
    """The caption of the next chunk: ``(event prompt, True)`` with probability ``event_prob``
    (the caller applies it to the game before the chunk's first frame), else
    ``(describe_scene(state), False)``.
    """
    if rng.random() < event_prob:
        kinds = possible_events(state, max_balls)
        return event_prompt(rng, kinds[int(rng.integers(len(kinds)))], state), True
    return describe_scene(state), False
