"""The samples and the README's API example run, and the scripted agent steers toward the centre.

Each sample is run as a user runs it (a subprocess from the repository root) on the ``tiny``
model or a bridge server on a loopback port, briefly."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from bridges.fake import FakeSession
from bridges.testing import local_server
from sdk import Session
from sdk.cli import build_parser
from sdk.cli_serve import session_factory
from sdk.play import ActionLog, replay

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
    assert all("reward  -100.0" in line for line in lines)  # no player in tiny's frames


def test_agent_log_replays_its_run(tmp_path: Path) -> None:
    """The agent plays through the gymnasium adapter on a logged session; its log replays to
    the very frames it wrote."""
    argv = ["--model", "tiny", "--ticks", "5", "--seed", "3", "--prompt", "night"]
    argv += ["--out", str(tmp_path / "run.npy"), "--log", str(tmp_path / "run.log.json")]
    got = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "agent.py"), *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr
    log = ActionLog.load(tmp_path / "run.log.json")
    assert log.events[0] == {"op": "reset", "seed": 3, "prompt": "night", "start": "caption"}
    assert [e["actions"] for e in log.events[1:]] == [[4, 4]] * 4 + [[2, 2]]  # patrol
    with Session.load("tiny") as s:
        frames = np.concatenate([c.frames for c in replay(s, log)])
    assert np.array_equal(np.load(tmp_path / "run.npy"), frames.repeat(4, 1).repeat(4, 2))


def test_agent_imports_only_the_sdk() -> None:
    source = (ROOT / "samples" / "agent.py").read_text()
    imported = set(re.findall(r"^(?:from|import) (\w+)", source, flags=re.M))
    assert imported == {"__future__", "argparse", "numpy", "sdk"}


def _run_bridge_client(endpoint: str, out: Path, ticks: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "samples" / "bridge_client.py"), endpoint]
        + ["--ticks", str(ticks), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_bridge_client_drives_a_real_tiny_world(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "--model", "tiny", "--device", "cpu"])
    out = tmp_path / "run.gif"
    with local_server(session_factory(args)) as server:
        got = _run_bridge_client(server.control_endpoint, out, ticks=4)
    assert got.returncode == 0, got.stderr
    ticks = [line.split(":")[0] for line in got.stdout.splitlines() if line.startswith("tick")]
    assert ticks == ["tick 1", "tick 2", "tick 3", "tick 4"]
    assert "right" in got.stdout and "fire" in got.stdout and "no " not in got.stdout
    assert iio.imread(out, index=None).shape == (5 * 2, 32, 32, 3)  # reset + 4 ticks, 2 frames


def test_bridge_client_keeps_to_the_worlds_action_schema(tmp_path: Path) -> None:
    """A world without 'fire' (the old sample sent 'jump' and crashed): the sample holds the
    world's first action instead and every step is accepted."""

    def factory(options: dict) -> FakeSession:
        return FakeSession(height=16, width=16, chunk_frames=3, actions=("noop", "left", "right"))

    out = tmp_path / "run.gif"
    with local_server(factory) as server:
        got = _run_bridge_client(server.control_endpoint, out, ticks=8)
    assert got.returncode == 0, got.stderr
    assert "this world has no 'fire' action; holding 'noop' instead" in got.stdout
    steps = [line.split(", ")[0] for line in got.stdout.splitlines() if line.startswith("tick")]
    assert steps == [
        f"tick {t}: {k}" for t, k in enumerate(["right"] * 4 + ["noop"] * 2 + ["left"] * 2, 1)
    ]
    assert iio.imread(out, index=None).shape == (9 * 3, 16, 16, 3)


def _readme_api_example() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    example = [b for b in blocks if "Session.load(" in b and "snap.save(" in b]
    assert len(example) == 1, (
        "the README's Session example is the python block that saves a snapshot"
    )
    return example[0]


@pytest.mark.parametrize("model", ["tiny", "default"])
def test_readme_api_example_runs(model: str, tmp_path: Path) -> None:
    """The README's Session example as written (tiny) and with the shipped default model, whose
    chunks have another number of frames."""
    code = _readme_api_example().replace('"tiny"', f'"{model}"')
    got = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert lines[-5:] == ["7 day, snow", "8 night", "9 night", "10 night", "4"]
    assert (tmp_path / "world.snapshot.safetensors").is_file()


def test_play_sample_runs_headless_and_records(tmp_path: Path) -> None:
    out = tmp_path / "run.npy"
    got = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "play.py"), "--model", "tiny", "--headless"]
        + ["--max-ticks", "3", "--record", str(out), "--prompt", "night"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines()[-1] == "played 3 ticks"
    assert np.load(out).shape == (4 * 2, 32, 32, 3)  # the start and 3 ticks of 2 frames


def _planner():
    spec = importlib.util.spec_from_file_location("planner_sample", ROOT / "samples" / "planner.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["planner_sample"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


class _SquareWorld:
    """A world shaped like a Session for the planner: a player square moved 8 px per tick."""

    MOVES = {"noop": (0, 0), "up": (0, -8), "down": (0, 8), "left": (-8, 0), "right": (8, 0)}

    def __init__(self, x: int, y: int) -> None:
        self.pos = (x, y)
        self.steps = 0

    def snapshot(self) -> tuple[int, int]:
        return self.pos

    def restore(self, pos: tuple[int, int]) -> None:
        self.pos = pos

    def step(self, action: str):
        dx, dy = self.MOVES[action]
        self.pos = (min(max(self.pos[0] + dx, 3), 55), min(max(self.pos[1] + dy, 3), 55))
        self.steps += 1
        frame = np.zeros((64, 64, 3), np.uint8)
        frame[self.pos[1] : self.pos[1] + 6, self.pos[0] : self.pos[0] + 6] = (255, 220, 0)
        return type("C", (), {"last_frame": frame})()


@pytest.mark.parametrize(
    "target, action",
    [((50.0, 30.0), "right"), ((10.0, 30.0), "left"), ((30.0, 6.0), "up"), ((30.0, 55.0), "down")],
)
def test_planner_imagines_each_action_and_takes_the_best(target, action: str) -> None:
    world = _SquareWorld(27, 27)  # centre (30, 30)
    got, d = _planner().plan(world, target, lookahead=2)
    assert got == action and world.pos == (27, 27) and world.steps == 5 * 2  # restored after
    moved = {"right": (46, 30), "left": (14, 30), "up": (30, 14), "down": (30, 46)}[action]
    assert d == pytest.approx(np.hypot(moved[0] - target[0], moved[1] - target[1]))


def test_planner_stays_on_the_target() -> None:
    world = _SquareWorld(27, 27)
    assert _planner().plan(world, (30.0, 30.0), lookahead=1) == ("noop", 0.0)


def test_planning_leaves_no_trace_in_the_world() -> None:
    """The planned run equals a plain run of the actions it chose: imagining restores exactly."""
    planner = _planner()
    with Session.load("tiny") as s:
        ep, _ = planner.run_episode(s, policy="plan", seed=3, ticks=3, lookahead=1, image=None)
        plain = [s.reset(seed=3, prompt="day, one ball").frames]
        plain += [s.step(a).frames for a in ep.actions]
    assert all(np.array_equal(x, y) for x, y in zip(ep.frames, plain, strict=True))


def test_planner_script_runs(tmp_path: Path) -> None:
    got = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "planner.py"), "--model", "tiny", "--ticks", "2"]
        + ["--lookahead", "1", "--out", str(tmp_path / "p.gif"), "--plot", str(tmp_path / "p.png")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert got.returncode == 0, got.stderr
    assert "starting from a caption instead" in got.stdout  # tiny's frames are 32x32
    assert got.stdout.splitlines()[-2] == "plan: mean final distance 45.3 px over 1 seeds"
    assert iio.imread(tmp_path / "p.gif", index=None).shape == (3 * 2, 32, 32, 3)
    assert iio.imread(tmp_path / "p.png").ndim == 3


def _tiny_server():
    args = build_parser().parse_args(["serve", "--model", "tiny", "--device", "cpu"])
    return local_server(session_factory(args))


VIEWER = f"""
import runpy, sys
sys.argv = ["bridge_viewer.py"] + sys.argv[1:]
runpy.run_path({str(ROOT / "samples" / "bridge_viewer.py")!r}, run_name="__main__")
print("torch imported:", "torch" in sys.modules)
"""


def test_bridge_viewer_plays_without_torch() -> None:
    with _tiny_server() as server:
        got = subprocess.run(
            [sys.executable, "-c", VIEWER, server.control_endpoint]
            + ["--headless", "--chunks", "3", "--prompt", "night", "--scale", "2"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert [line.split("  ")[:2] for line in lines[:3]] == [
        ["tick 1", "noop"],
        ["tick 2", "noop"],
        ["tick 3", "noop"],
    ]
    assert all("round trip" in line and "server" in line for line in lines[:3])
    assert lines[-1] == "torch imported: False"


def test_bridge_viewer_watches_another_session() -> None:
    import bridges

    with _tiny_server() as server, bridges.connect(server.control_endpoint) as driver:
        driver.reset(prompt="day")
        viewer = subprocess.Popen(
            [sys.executable, "-c", VIEWER, server.control_endpoint]
            + ["--headless", "--chunks", "2", "--observe", driver.observer_token],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        ticks = 0
        while viewer.poll() is None and ticks < 2000:  # step until the viewer has seen 2 chunks
            ticks = driver.step("right").tick
        out, err = viewer.communicate(timeout=60)
    assert viewer.returncode == 0, err
    watched = [line for line in out.splitlines() if "(watching)" in line]
    assert len(watched) == 2 and out.splitlines()[-1] == "torch imported: False"
    seen = [int(line.split()[1]) for line in watched]
    assert 1 <= seen[0] < seen[1] <= ticks  # the driver's ticks, in order


def test_every_sample_is_listed_and_run_here() -> None:
    listed = (ROOT / "samples" / "README.md").read_text()
    this = Path(__file__).read_text()
    for sample in sorted((ROOT / "samples").glob("*.py")):
        assert f"`{sample.name}`" in listed, f"samples/README.md does not list {sample.name}"
        assert f'"{sample.name}"' in this, f"no test here runs {sample.name}"


def test_readme_gymnasium_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "gymnasium.make" in b
    ]
    code = block + "\nprint(obs.shape, obs.dtype, info['tick'], reward in (0.0, 1.0))\n"
    got = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines()[-1] == "(32, 32, 3) uint8 1 True"


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


def test_many_worlds_sample_evaluates_every_world() -> None:
    got = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "many_worlds.py"), "--model", "tiny",
         "--worlds", "3", "--ticks", "2", "--episodes", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [["world", str(i)] for i in range(3)]
    assert lines[3].startswith("mean over 3 worlds: toward centre ")
    assert lines[4].endswith("generated frames/s (3 worlds)")
    source = (ROOT / "samples" / "many_worlds.py").read_text()
    imports = re.findall(r"^(?:from|import) (\w+)", source, flags=re.M)
    assert set(imports) <= {"__future__", "argparse", "time", "typing", "numpy", "sdk"}


def test_catch_game_sample_follows_the_protocol() -> None:
    """The example game of docs/your-game.md; tests/test_your_game.py trains it end to end."""
    from world.games.protocol import validate_game

    path = ROOT / "samples" / "catch_game.py"
    assert path.name == "catch_game.py"
    spec = importlib.util.spec_from_file_location("catch_sample", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = validate_game(module.Catch())
    assert summary["actions"] == ["noop", "left", "right"] and summary["frame_size"] == (32, 32)


def test_dodge_game_sample_counts_what_it_draws() -> None:
    """The game a stranger wrote from docs/your-game.md alone: valid, and its pixel detectors
    agree with its own state over a policy rollout (the evaluation reads them)."""
    from world.games.protocol import validate_game

    path = ROOT / "samples" / "dodge_game.py"
    spec = importlib.util.spec_from_file_location("dodge_sample", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    game = module.Dodge()
    assert validate_game(game)["optional"] == ["describe", "policy", "player", "objects"]
    frame, rng = game.reset(11), np.random.default_rng(11)
    for _ in range(300):
        frame = game.step(game.policy(rng))
        assert game.objects(frame) == {"rocks": len(game.rocks)}
        x, y = game.player(frame)
        assert (x, y) == (game.x + (module.SHIP_W - 1) / 2, module.SIZE - 3)
