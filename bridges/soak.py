"""A long soak of the bridge: `chunkworld bench bridge --soak` or `python -m bridges.soak`.

Starts a server in a child process (`--server fake`: the fake session; `--server tiny`:
`chunkworld serve --model tiny`, a real model), then two clients each play their own session
for `--ticks` ticks (steps, with a reset every `--reset-every`), side by side on threads, while an
observer subscribes to the first session's chunks. Every `--every` ticks it prints one JSON line:
the server's and this process's resident memory (VmRSS from /proc), the p50 tick round trip of
the last interval, and what the observer received. The last line is a summary: RSS growth from
the first interval to the end (a leak shows as steady growth; the bar is <= 2%) and the ratio of
the last interval's p50 to the first's (the bar is <= 1.05). A benchmark, not a test: its figures
depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bridges.client import Client

FAKE_SERVER = (
    "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr);"
    "from bridges import serve; from bridges.fake import fake_factory;"
    "serve(fake_factory, control='tcp://127.0.0.1:*', frames='tcp://127.0.0.1:*')"
)
MODEL_SERVER = ["-m", "sdk.cli", "serve", "--control", "tcp://127.0.0.1:*"]
MODEL_SERVER += ["--frames", "tcp://127.0.0.1:*", "--model"]
TARGET_RSS_GROWTH = 0.02
TARGET_P50_RATIO = 1.05


def rss_kib(pid: int | str = "self") -> int:
    """Resident memory of a process in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_server(server: str) -> tuple[subprocess.Popen[str], str]:
    """The server in a child process, and its control endpoint."""
    args = ["-c", FAKE_SERVER] if server == "fake" else [*MODEL_SERVER, server]
    proc = subprocess.Popen([sys.executable, *args], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"serving control (\S+) frames", line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe empty
            return proc, found.group(1)
    raise RuntimeError(f"soak server did not start (exit code {proc.wait()})")


class Player(threading.Thread):
    """One client playing its own session; records each tick's round trip."""

    def __init__(self, control: str, ticks: int, reset_every: int, options: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.client = Client(control, timeout_s=30.0)
        self.session = self.client.hello(**options)
        self.session.reset()
        self.ticks, self.reset_every = ticks, reset_every
        self.times: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            actions = len(self.session.facts["actions"])
            for i in range(self.ticks):
                started = time.perf_counter()
                if self.reset_every and i and i % self.reset_every == 0:
                    self.session.reset()
                else:
                    self.session.step(i % max(1, actions))
                self.times.append(time.perf_counter() - started)
        except BaseException as e:  # reported by soak()
            self.error = e

    def close(self) -> None:
        self.session.close()
        self.client.close()


def soak(ticks: int = 10_000, every: int = 1000, server: str = "fake",
         reset_every: int = 2500) -> dict[str, Any]:  # fmt: skip
    """Run the soak, printing a JSON line per interval; returns the summary."""
    proc, control = start_server(server)
    players: list[Player] = []
    try:
        players = [
            Player(control, ticks, reset_every, {} if server == "fake" else {"seed": seed})
            for seed in (1, 2)
        ]
        observed = {"chunks": 0}
        stop = threading.Event()

        def watch() -> None:
            with players[0].session.observe() as observer:
                while not stop.is_set():
                    if observer.recv(0.2) is not None:
                        observed["chunks"] += 1

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(0.5)  # let the subscription reach the server
        for p in players:
            p.start()
        rows: list[dict[str, Any]] = []
        marks = [*range(every, ticks, every), ticks]
        for mark in marks:
            while min(len(p.times) for p in players) < mark and any(p.is_alive() for p in players):
                time.sleep(0.05)
            if min(len(p.times) for p in players) < mark:
                break  # a player stopped early: its error is raised below
            window = [t for p in players for t in p.times[mark - every : mark]]
            row = {
                "tick": mark,
                "server_rss_kib": rss_kib(proc.pid),
                "client_rss_kib": rss_kib(),
                "tick_rtt_p50_ms": round(float(np.median(window)) * 1e3, 3),
                "observer_chunks": observed["chunks"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        for p in players:
            p.join()
        stop.set()
        watcher.join(5)
        errors = [repr(p.error) for p in players if p.error is not None]
        if errors:
            raise RuntimeError(f"a client failed: {errors}")
    finally:
        for p in players:
            try:
                p.close()
            except Exception:  # the server may be gone already; the soak's result says so
                pass
        alive = proc.poll() is None
        proc.terminate()
        proc.wait(30)
    first, last = rows[0], rows[-1]
    growth = last["server_rss_kib"] / first["server_rss_kib"] - 1
    ratio = last["tick_rtt_p50_ms"] / first["tick_rtt_p50_ms"]
    return {
        "server": server, "clients": 2, "observers": 1, "ticks_per_client": ticks,
        "reset_every": reset_every, "server_alive_at_end": alive,
        "server_rss_kib_first": first["server_rss_kib"], "server_rss_kib_last": last["server_rss_kib"],
        "server_rss_growth": round(growth, 4), "target_rss_growth": TARGET_RSS_GROWTH,
        "tick_p50_ms_first": first["tick_rtt_p50_ms"], "tick_p50_ms_last": last["tick_rtt_p50_ms"],
        "tick_p50_ratio": round(ratio, 3), "target_p50_ratio": TARGET_P50_RATIO,
        "observer_chunks": last["observer_chunks"],
        "meets_targets": bool(alive and growth <= TARGET_RSS_GROWTH and ratio <= TARGET_P50_RATIO),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="chunkworld bench bridge --soak", description=__doc__)
    parser.add_argument("--soak", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ticks", type=int, default=10_000, help="per client")
    parser.add_argument("--every", type=int, default=1000, help="ticks between RSS lines")
    parser.add_argument("--reset-every", type=int, default=2500, help="0: never reset")
    parser.add_argument(
        "--server", default="fake", help="'fake' (no model) or a model for chunkworld serve"
    )
    args = parser.parse_args(argv)
    print(json.dumps(soak(args.ticks, args.every, args.server, args.reset_every), indent=1))


if __name__ == "__main__":
    main()
