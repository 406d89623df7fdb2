"""Game worlds as plain numpy (no torch, nothing of the model): the built-in arcade world, its
actions and its captions, the game protocol (:mod:`world.games.protocol`) and the loader that
turns ``--game NAME`` into a game object. A game is something a user can write without knowing
the model.

Built-in games are named in :data:`BUILTIN`; any other game loads by import path,
``package.module:ClassName`` (the class is called with no arguments), importable from the
current directory or ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib
import os
import sys

# name -> "module:Class" of each built-in game. A new built-in game is one line here.
BUILTIN: dict[str, str] = {
    "arcade": "world.games.arcade:Game",
    "platformer": "world.games.platformer:Platformer",
}


class GameLoadError(ValueError):
    """``--game`` names nothing loadable; the message says what to give instead."""


def load_game(spec: str) -> object:
    """A new game object from a built-in name (``"arcade"``) or ``package.module:ClassName``.

    Raises:
        GameLoadError: an unknown name, a module that does not import, no such class, or a
            class that cannot be called with no arguments.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise GameLoadError(f"--game {spec!r}: give {_known()} or package.module:ClassName")
    path = BUILTIN.get(spec.strip(), spec.strip())
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise GameLoadError(
            f"--game {spec!r} is not a built-in game ({_known()}) nor an import path "
            "package.module:ClassName (e.g. --game mygames.paddle:Paddle)"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:  # a game beside the user's shell
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise GameLoadError(
            f"--game {spec!r}: cannot import {module_name!r} ({e}); run from the directory that "
            "holds it or add that directory to PYTHONPATH"
        ) from e
    cls = getattr(module, attr, None)
    if cls is None or not callable(cls):
        found = sorted(n for n, v in vars(module).items() if isinstance(v, type) and n[0] != "_")
        raise GameLoadError(
            f"--game {spec!r}: {module_name} has no class {attr!r}; classes there: {found}"
        )
    try:
        return cls()
    except TypeError as e:
        raise GameLoadError(
            f"--game {spec!r}: {attr}() failed ({e}); a game class must construct with no arguments"
        ) from e


def _known() -> str:
    return ", ".join(repr(n) for n in BUILTIN)
