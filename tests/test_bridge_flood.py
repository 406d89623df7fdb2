"""Hostile clients against a real server in a child process: whatever they do, the server lives
and a fresh client then plays a session exactly like a local one.

The server runs in a child process because the failure this guards against is a libzmq
assertion (SIGABRT), which would kill pytest itself.
"""

from __future__ import annotations

import subprocess

import numpy as np

from bridges import Client
from bridges.fake import FakeSession
from bridges.testing import flood_and_vanish, server_process

# A flooder whose replies are large (8 x 128 x 128 x 3 bytes a step) and slow to make, so its
# inbound queue is full and replies are queued for it when it resets the connection.
HEAVY = {"height": 128, "width": 128, "chunk_frames": 8, "delay_s": 0.02}


def flood_rounds(
    proc: subprocess.Popen[str], control: str, requests: int, rounds: int = 50
) -> None:
    for round_ in range(rounds):
        try:
            flood_and_vanish(control, requests=requests, options=HEAVY,
                             linger_s=0.005 * (round_ % 7))  # fmt: skip
        except TimeoutError:
            pass  # the assertion below says why
        assert proc.poll() is None, f"the server died in round {round_} (code {proc.poll()})"


def plays_like_a_local_session(control: str) -> None:
    local = FakeSession()
    with Client(control, timeout_s=10) as client:
        remote = client.hello()
        first_local, first_remote = local.reset(seed=3), remote.reset(seed=3)
        assert np.array_equal(first_local.frames, first_remote.frames)
        for action in ["left", 2, None, "fire"]:
            want, got = local.step(action), remote.step(action)
            assert (got.tick, got.action_tick) == (want.tick, want.action_tick)
            assert np.array_equal(got.frames, want.frames)
        remote.close()


def test_fifty_clients_that_flood_and_vanish_leave_the_server_serving() -> None:
    # Calls on the socket thread (engine_threads=0) with slow ticks: the server reads slowly, so
    # each flooder's inbound queue fills. With a receive high-water mark on the ROUTER this
    # aborted libzmq 4.3.5 within 10 rounds (zeromq/libzmq#4841).
    limits = {"engine_threads": 0, "max_sessions": 64, "max_sessions_per_client": 64}
    with server_process(limits) as (proc, control):
        flood_rounds(proc, control, requests=5000)
        plays_like_a_local_session(control)
        assert proc.poll() is None


def test_flooders_against_the_default_server_leave_it_serving() -> None:
    with server_process({"max_sessions": 64, "max_sessions_per_client": 64}) as (proc, control):
        flood_rounds(proc, control, requests=3000)
        plays_like_a_local_session(control)
