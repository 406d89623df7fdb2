"""Import boundaries, checked by scanning the source and by importing:

- world never imports sdk, bridges, zmq or pygame; bridges never imports torch, world or sdk;
  samples import sdk and bridges, never world or torch;
- inside world, each room imports only downward: ``world.core`` (what play needs) nothing of
  ``world.games``, ``world.train`` or ``world.eval``; ``world.games`` is plain numpy: neither
  torch nor any other room of world, so a user can write a game without knowing the model."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> module prefixes its sources may not import ("world.train" also bars world.train.x)
FORBIDDEN = {
    "world": {"sdk", "bridges", "zmq", "pygame"},
    "world/core": {"world.games", "world.train", "world.eval"},
    "world/games": {"torch", "world.core", "world.train", "world.eval"},
    "bridges": {"torch", "world", "sdk"},
    "samples": {"world", "torch"},
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, dotted in full (``from a.b import c`` gives a.b)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant):
                names.add(str(node.args[0].value))
    return names


def barred(modules: set[str], prefixes: set[str]) -> list[str]:
    return sorted(m for m in modules for p in prefixes if m == p or m.startswith(p + "."))


def test_barred_matches_whole_names():
    assert barred({"world.core.model", "worldly", "torchvision", "torch"}, {"world", "torch"}) == [
        "torch",
        "world.core.model",
    ]
    assert barred({"world.core", "world.games.arcade"}, {"world.games"}) == ["world.games.arcade"]


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_source_never_imports_forbidden(folder):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no sources found under {folder}/"
    bad = {str(f.relative_to(ROOT)): barred(imported_modules(f), FORBIDDEN[folder]) for f in files}
    assert {f: b for f, b in bad.items() if b} == {}


def loaded_after_importing(package: str, prefixes: tuple[str, ...]) -> str:
    """Import every module of ``package`` in a fresh interpreter; the loaded modules that start
    with one of ``prefixes``, comma-separated."""
    code = (
        f"import importlib, pkgutil, sys, {package} as p\n"
        f"for m in pkgutil.walk_packages(p.__path__, '{package}.'):\n"
        "    if m.name.endswith('__main__'): continue\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(k for k in sys.modules if k.startswith({prefixes!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_bridges_loads_no_torch():
    assert loaded_after_importing("bridges", ("torch", "world", "sdk")) == ""


def test_importing_world_loads_no_sdk_or_bridges():
    assert loaded_after_importing("world", ("sdk", "bridges", "zmq", "pygame")) == ""


def test_importing_world_core_loads_no_other_room_of_world():
    assert loaded_after_importing("world.core", ("world.games", "world.train", "world.eval")) == ""


def test_importing_world_games_loads_no_torch_and_no_model():
    prefixes = ("torch", "world.core", "world.train", "world.eval")
    assert loaded_after_importing("world.games", prefixes) == ""
