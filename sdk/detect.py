"""Reading the built-in game back from frames, for agents and samples.

The built-in arcade world draws every role in its own flat colour, so a frame (true or generated)
says where things are. This module is the SDK's one door to that: samples and user agents import
``sdk.detect``, never the model package's internals.

>>> import numpy as np
>>> from sdk.detect import find_player
>>> frame = np.zeros((32, 32, 3), np.uint8)
>>> frame[4:10, 4:10] = (255, 220, 0)  # the player's yellow square
>>> find_player(frame)
(7.0, 7.0)
"""

from __future__ import annotations

import numpy as np

from world.eval.detect import find_player as _find_player

__all__ = ["find_player"]


def find_player(frame: np.ndarray) -> tuple[float, float] | None:
    """Centre ``(x, y)`` in pixels of the built-in game's player in a uint8 ``(H, W, 3)`` frame,
    or None when no player is drawn (too few player-coloured pixels, as in the untrained
    ``tiny`` model's frames). Stray yellowish pixels far from the rest do not pull the centre."""
    return _find_player(frame)
