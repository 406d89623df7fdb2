"""The command line around play: ``generate --out`` is checked before any work, mp4 works with
the play extra (or says how to get it), and ``serve`` on a busy port is a one-line error."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

import sdk.cli_common
from sdk.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model fails the test: the checks must come first."""

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(sdk.cli_common, "open_session", fail)


@pytest.mark.parametrize(
    "out, message",
    [
        ("run.avi", "unknown output type '.avi'; end the name in .gif, .mp4, .webm, .mkv, .npy"),
        ("run", "unknown output type '(none)'"),
        ("missing/run.gif", "folder {tmp}/missing does not exist; create it first"),
        (".", "is a folder; give a file name such as"),
    ],
)
def test_generate_checks_out_before_the_rollout(
    out: str, message: str, tmp_path: Path, no_model: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / out if out != "." else tmp_path
    assert main(["generate", "--model", "tiny", "--out", str(path)]) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and err.count("\n") == 1


def test_play_record_is_checked_before_the_model_loads(
    tmp_path: Path, no_model: None, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    assert main(["play", "--record", str(tmp_path / "nowhere" / "r.mp4")]) == 2
    assert "play --record" in capsys.readouterr().err


def test_mp4_without_its_writer_says_how_to_get_it(
    tmp_path: Path, no_model: None, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "imageio_ffmpeg" else real(name, *a),
    )
    assert main(["generate", "--model", "tiny", "--out", str(tmp_path / "run.mp4")]) == 2
    assert "pip install 'chunkworld[play]'" in capsys.readouterr().err


def test_mp4_is_written_with_the_play_extra(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")  # the play extra, installed by scripts/setup.sh
    out = tmp_path / "run.mp4"
    argv = ["generate", "--model", "tiny", "--ticks", "2", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    assert iio.imread(out, index=None).shape == (3 * 2, 32, 32, 3)  # reset + 2 ticks, 2 frames


def test_serve_on_a_busy_port_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        got = subprocess.run(
            [sys.executable, "-m", "sdk.cli", "serve", "--model", "tiny"]
            + ["--control", f"tcp://127.0.0.1:{port}", "--frames", "tcp://127.0.0.1:*"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    assert got.returncode == 2
    lines = [line for line in got.stderr.splitlines() if line.startswith("chunkworld serve")]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], got.stderr
    assert lines[0].startswith("chunkworld serve: error:") and "in use" in lines[0]
    assert "Traceback" not in got.stderr
