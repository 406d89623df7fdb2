"""The platformer's words: scene captions, prompt phrasings and their parser, and its play-like
action plans.

Captions name what prompts can change and what is in view, in the arcade's style:
``"night, rain, two coins in view, a key, a locked door"``; re-applying a caption changes
nothing. Prompts are free text read with a small keyword table (words are lower-case
alphanumeric runs; the last word of a kind wins):

=======  ===============================================================================
event    words
=======  ===============================================================================
night    night, nighttime, dark, darker, darkness, dusk, evening, sunset, sets, moon
day      day, daytime, daylight, dawn, morning, sunrise, rises, bright, sunny, noon
rain     rain, rains, raining, rainy, storm, stormy, downpour, drizzle, shower, showers
clear    clear, clears, dry, sunny; or a rain word within two words of stop, stops, end,
         ends, ceases, no ("the rain stops")
coin     coin/coins with add, spawn, new, another, more, extra, appears, drop, place,
         summon, conjure; a count word or digit before "coin(s)" (default one)
=======  ===============================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from world.games.captions import NUMBER_WORDS, count_word

__all__ = ["HELD_OUT_PROMPTS", "PROMPTS", "Prompt", "describe", "parse", "plan"]

PROMPTS: dict[str, list[str]] = {
    "night": ["night falls", "it gets dark", "the sun sets", "make it night"],
    "day": ["the sun rises", "day breaks", "morning comes", "make it day"],
    "rain": ["make it rain", "it starts to rain", "a storm rolls in", "rain begins to fall"],
    "clear": ["the rain stops", "the sky clears", "the weather clears up", "make the rain stop"],
    "coin": ["spawn a coin", "add a coin", "a new coin appears", "add another coin"],
}
# Never used for training: the evaluation asks with these.
HELD_OUT_PROMPTS: dict[str, list[str]] = {
    "night": [
        "darkness covers the level",
        "evening arrives",
        "switch to nighttime",
        "the moon comes out",
        "dusk settles in",
    ],
    "day": [
        "dawn breaks over the hills",
        "it becomes bright again",
        "switch to daytime",
        "the morning light returns",
        "bring back the daylight",
    ],
    "rain": [
        "a downpour begins",
        "let it drizzle",
        "showers sweep across the level",
        "stormy weather arrives",
        "start raining",
    ],
    "clear": [
        "the storm ends",
        "dry weather returns",
        "no more rain",
        "clear skies now",
        "the downpour ceases",
    ],
    "coin": [
        "drop one more coin",
        "place an extra coin here",
        "summon a coin",
        "conjure another coin",
        "a coin appears nearby",
    ],
}

NIGHT = frozenset("night nighttime dark darker darkness dusk evening sunset sets moon".split())
DAY = frozenset("day daytime daylight dawn morning sunrise rises bright sunny noon".split())
RAIN = frozenset("rain rains raining rainy storm stormy downpour drizzle shower showers".split())
CLEAR = frozenset("clear clears dry sunny".split())
STOP = frozenset("stop stops stopped end ends ceases no".split())
SPAWN = frozenset(
    "add adds spawn spawns new another more extra appears appear drop place summon conjure".split()
)
COIN = frozenset(("coin", "coins"))
_WORD = re.compile(r"[a-z0-9]+")
RIGHT = 0.6  # runs and hops go right this often, so play gets past the first screens


@dataclass(frozen=True)
class Prompt:
    """What a prompt asks for; ``None`` / 0 means "leave as it is"."""

    time: str | None = None  # "day" | "night"
    weather: str | None = None  # "clear" | "rain"
    coins: int = 0  # coins to spawn in view


def parse(text: str) -> Prompt:
    """Parse free text with the keyword table of the module docstring."""
    ws = _WORD.findall(text.lower())
    time = weather = None
    coins = 0
    spawn = any(w in SPAWN for w in ws)
    for i, w in enumerate(ws):
        if w in NIGHT:
            time = "night"
        elif w in DAY:
            time = "day"
        if w in RAIN:
            near = ws[max(0, i - 2) : i] + ws[i + 1 : i + 3]
            weather = "clear" if any(v in STOP for v in near) else "rain"
        elif w in CLEAR:
            weather = "clear"
        if w in COIN and spawn:
            n = 1
            for j in (i - 1, i - 2):
                if j >= 0 and (ws[j].isdigit() or ws[j] in NUMBER_WORDS):
                    n = int(ws[j]) if ws[j].isdigit() else NUMBER_WORDS[ws[j]]
                    break
            coins = max(coins, min(n, 8))
    return Prompt(time, weather, coins)


def describe(night: bool, rain: bool, visible: dict[str, int], door_in_view: bool) -> str:
    """The caption of a scene: time, weather, coins in view, then a key / a door if in view."""
    n = visible["coins"]
    parts = ["night" if night else "day", "rain" if rain else "clear sky"]
    parts.append(f"{count_word(n)} coin{'' if n == 1 else 's'} in view")
    if visible["keys"]:
        parts.append("a key")
    if door_in_view:
        parts.append("a locked door" if visible["doors"] else "an open door")
    return ", ".join(parts)


def plan(rng: np.random.Generator) -> list[str]:
    """The next segment of a play-like action stream, one of

    - run (35%): left or right (right with probability ``RIGHT``) held 4..24 ticks;
    - hops (20%): left_jump or right_jump held 3..16 ticks (a jump at each landing);
    - jump (10%): jump held 1..4 ticks;
    - idle (15%): noop for 3..24 ticks;
    - alternate (12%): left and right swapped every 1..2 ticks for 4..12 ticks;
    - mash (8%): a random key every 1..2 ticks for 4..10 ticks.
    """
    kind = int(rng.choice(6, p=[0.35, 0.20, 0.10, 0.15, 0.12, 0.08]))
    if kind == 0:
        return [("left", "right")[int(rng.random() < RIGHT)]] * int(rng.integers(4, 25))
    if kind == 1:
        return [("left_jump", "right_jump")[int(rng.random() < RIGHT)]] * int(rng.integers(3, 17))
    if kind == 2:
        return ["jump"] * int(rng.integers(1, 5))
    if kind == 3:
        return ["noop"] * int(rng.integers(3, 25))
    names = ("noop", "left", "right", "jump", "left_jump", "right_jump")
    out: list[str] = []
    n, side = int(rng.integers(4, 13 if kind == 4 else 11)), int(rng.integers(2))
    while len(out) < n:
        if kind == 4:
            key, side = ("left", "right")[side], 1 - side
        else:
            key = names[int(rng.integers(len(names)))]
        out += [key] * int(rng.integers(1, 3))
    return out[:n]
