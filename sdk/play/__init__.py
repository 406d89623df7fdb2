"""Play a world like a game (``chunkworld play``): a generation thread (:mod:`sdk.play.engine`),
a pygame window (:mod:`sdk.play.window`), and action logs with exact replay (:mod:`sdk.play.log`).

>>> from sdk import Session
>>> from sdk.play import PlayOptions, Start, play
>>> with Session.load("default") as s:  # doctest: +SKIP
...     play(s, PlayOptions(start=Start(prompt="night, two balls"), record="run.mp4"))
"""

from sdk.play.engine import Engine, Shown, Start, Stats
from sdk.play.log import ActionLog, LogError, LoggedSession, replay
from sdk.play.window import NoDisplayError, PlayOptions, PlayWindow, check_display, play

__all__ = [
    "ActionLog",
    "Engine",
    "LogError",
    "LoggedSession",
    "NoDisplayError",
    "PlayOptions",
    "PlayWindow",
    "Shown",
    "Start",
    "Stats",
    "check_display",
    "play",
    "replay",
]
