"""The samples run and the scripted agent steers toward the centre."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _agent():
    spec = importlib.util.spec_from_file_location("agent_sample", ROOT / "samples" / "agent.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "top_left, action",
    [
        ((4, 4), "right"),
        ((12, 20), "left"),
        ((4, 14), "down"),
        ((22, 14), "up"),
        ((13, 13), "noop"),
    ],
)
def test_agent_walks_to_centre(top_left: tuple[int, int], action: str) -> None:
    agent = _agent()
    frame = np.zeros((32, 32, 3), np.uint8)
    y, x = top_left
    frame[y : y + 6, x : x + 6] = (255, 220, 0)  # the player's yellow, 6 px square
    got, seen = agent.choose(frame, 0)
    assert got == action and seen == (x + 3.0, y + 3.0)


def test_agent_patrols_without_player() -> None:
    agent = _agent()
    blank = np.zeros((32, 32, 3), np.uint8)
    assert [agent.choose(blank, t)[0] for t in (0, 3, 4, 8, 12, 16)] == [
        "right",
        "right",
        "down",
        "left",
        "up",
        "right",
    ]


def test_agent_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "agent.py"), "--model", "tiny", "--ticks", "2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [["tick", "1", "right"], ["tick", "2", "right"]]


def test_agent_finds_the_player_where_the_game_put_it() -> None:
    """The sample's own detector (samples import only sdk) reads the arcade world's frames as
    the evaluation's detector does."""
    from world.eval.detect import find_player
    from world.games.arcade import Game, GameConfig

    agent = _agent()
    game = Game(GameConfig.for_size(64))
    for seed in range(6):
        frame = game.reset(seed=seed)
        assert agent.find_player(frame) == pytest.approx(find_player(frame), abs=1e-6)
        assert agent.find_player(frame) == pytest.approx(
            (game.state().player_x, game.state().player_y), abs=1
        )
