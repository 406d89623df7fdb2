"""``chunkworld serve`` picks its torch threads itself: 1 unless ``--threads N``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from sdk.errors import ArgumentError
from sdk.serve_threads import SERVE_THREADS, serve_threads


def test_the_default_is_one_thread_and_threads_overrides_it() -> None:
    assert SERVE_THREADS == 1
    assert serve_threads(None) == 1
    assert serve_threads(3) == 3


@pytest.mark.parametrize("bad", [0, -2, 257, True, "2", 1.0])
def test_a_bad_thread_count_is_refused_with_the_fix(bad: object) -> None:
    with pytest.raises(ArgumentError, match=r"--threads"):
        serve_threads(bad)  # type: ignore[arg-type]


def _served_threads(*extra: str) -> str:
    """The server's log line naming its torch threads (started without OMP_NUM_THREADS, so the
    count is the server's own choice), then SIGTERM."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    command = [sys.executable, "-m", "sdk.cli", "serve", "--model", "tiny", *extra]
    command += ["--control", "tcp://127.0.0.1:*", "--frames", "tcp://127.0.0.1:*"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "torch threads:" in line:
                return line.split("torch threads:", 1)[1].strip()
        raise AssertionError(f"the server exited ({proc.wait()}) without naming its threads")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_the_server_runs_the_model_on_one_thread_unless_told() -> None:
    assert _served_threads().startswith("1 intra-op, 1 inter-op")
    assert _served_threads("--threads", "2").startswith("2 intra-op, 1 inter-op")


def test_serve_refuses_a_bad_thread_count_in_one_line() -> None:
    got = subprocess.run(
        [sys.executable, "-m", "sdk.cli", "serve", "--model", "tiny", "--threads", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 2
    assert got.stderr.strip().splitlines()[-1].startswith("chunkworld serve: error: --threads 0")
