"""Bridge benchmark (no model): `python -m bridges.bench` or `chunkworld bench bridge`.

Starts a server with the fake session in a child process on loopback TCP, then measures from
this process: round-trip latency of `step` carrying one uint8 (4, 64, 64, 3) chunk (p50/p99),
the latency the bridge adds over calling the fake directly, steps per second, and PUB
throughput seen by one subscriber while stepping. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

from bridges.client import Client, Observer
from bridges.fake import FakeSession

TARGET_ADDED_P50_MS = 0.3
TARGET_STEPS_PER_S = 5000.0
SERVER_CODE = (
    "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr);"
    "from bridges import ServerLimits, serve; from bridges.fake import {factory};"
    "serve({factory}, control='tcp://127.0.0.1:*', frames='tcp://127.0.0.1:*',"
    " limits=ServerLimits(engine_threads={engine_threads}))"
)


def _start_server(engine_threads: int, batched: bool = False) -> tuple[subprocess.Popen[str], str]:
    factory = "batched_fake_factory" if batched else "fake_factory"
    code = SERVER_CODE.format(engine_threads=engine_threads, factory=factory)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"serving control (\S+) frames", line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe empty
            return proc, found.group(1)
    raise RuntimeError(f"bench server did not start (exit code {proc.wait()})")


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def run(steps: int = 3000, warmup: int = 300, height: int = 64, width: int = 64,
        chunk_frames: int = 4, engine_threads: int = 1) -> dict[str, Any]:  # fmt: skip
    """Run the benchmark and return its figures."""
    options = {"height": height, "width": width, "chunk_frames": chunk_frames}
    local = FakeSession(**options)  # type: ignore[arg-type]
    local.reset()
    local_times = []
    for i in range(steps):
        started = time.perf_counter()
        local.step(i % 7)
        local_times.append(time.perf_counter() - started)
    proc, control = _start_server(engine_threads)
    try:
        with Client(control, timeout_s=5.0) as client:
            session = client.hello(**options)
            session.reset()
            for i in range(warmup):
                session.step(i % 7)
                client.ping()
            pings = []
            for _ in range(steps // 2):
                started = time.perf_counter()
                client.ping()
                pings.append(time.perf_counter() - started)
            times = []
            began = time.perf_counter()
            for i in range(steps):
                started = time.perf_counter()
                session.step(i % 7)
                times.append(time.perf_counter() - started)
            elapsed = time.perf_counter() - began
            pub = _pub_throughput(session, steps)
            session.close()
    finally:
        proc.terminate()
        proc.wait(10)
    p50, p99 = _percentiles(times)
    local_p50, _ = _percentiles(local_times)
    steps_per_s = steps / elapsed
    figures = {
        "chunk": [chunk_frames, height, width, 3],
        "chunk_bytes": chunk_frames * height * width * 3,
        "transport": "tcp loopback, server in a child process",
        "engine_threads": engine_threads,
        "steps": steps,
        "local_step_p50_ms": round(local_p50, 4),
        "step_rtt_p50_ms": round(p50, 4),
        "step_rtt_p99_ms": round(p99, 4),
        "added_p50_ms": round(p50 - local_p50, 4),
        "steps_per_s": round(steps_per_s, 1),
        "ping_rtt_p50_ms": round(_percentiles(pings)[0], 4),
        **pub,
        "targets": {"added_p50_ms": TARGET_ADDED_P50_MS, "steps_per_s": TARGET_STEPS_PER_S},
    }
    figures["meets_targets"] = bool(
        p50 - local_p50 <= TARGET_ADDED_P50_MS and steps_per_s >= TARGET_STEPS_PER_S
    )
    return figures


def _pub_throughput(session: Any, steps: int) -> dict[str, Any]:
    """Step while one subscriber (a thread here) counts what the PUB socket delivers."""
    received = {"chunks": 0, "bytes": 0, "first_seq": -1, "last_seq": -1}
    stop = threading.Event()

    def listen(observer: Observer) -> None:
        while not stop.is_set():
            chunk = observer.recv(0.2)
            if chunk is not None:
                received["chunks"] += 1
                received["bytes"] += chunk.frames.nbytes
                if received["first_seq"] < 0:
                    received["first_seq"] = chunk.seq
                received["last_seq"] = chunk.seq

    with session.observe() as observer:
        listener = threading.Thread(target=listen, args=(observer,), daemon=True)
        listener.start()
        time.sleep(0.3)  # let the subscription reach the server
        began = time.perf_counter()
        for i in range(steps):
            session.step(i % 7)
        elapsed = time.perf_counter() - began
        time.sleep(0.3)
        stop.set()
        listener.join()
    span = received["last_seq"] - received["first_seq"] + 1 if received["chunks"] else 0
    return {
        "pub_mb_per_s": round(received["bytes"] / elapsed / 1e6, 2),
        "pub_chunks_received": received["chunks"],
        "pub_chunks_dropped": max(0, span - received["chunks"]),
    }


FLOOD_CODE = (
    "import sys, zmq; from bridges.wire import encode, decode;"
    "s = zmq.Context().socket(zmq.DEALER); s.connect(sys.argv[1]);"
    "s.send_multipart([b'', *encode('hello', id=1, body={'versions': [2], 'options': {'delay_s': float(sys.argv[3])}})]);"
    "sid = decode(s.recv_multipart()[1:], max_message_bytes=1 << 30).body['session'];"
    "s.send_multipart([b'', *encode('reset', id=2, session=sid)]); s.recv_multipart();"
    "n = 3\n"
    "while True:\n"
    "    for _ in range(100):\n"
    "        kind = 'step' if sys.argv[2] == 'steps' and n % 4 == 0 else 'ping'\n"
    "        s.send_multipart([b'', *encode(kind, id=n, session=sid)]); n += 1\n"
    "        if n % 3 == 0: s.send_multipart([b'', b'cwb/2', b'\\xc1'])\n"
    "    while s.poll(0): s.recv_multipart()\n"
)


def fairness(steps: int = 1000, flooders: int = 1, delay_s: float = 0.0,
             engine_threads: int = 1, flood: str = "requests",
             batched: bool = False) -> dict[str, Any]:  # fmt: skip
    """Median step round trip of one client alone, then while `flooders` other clients each keep
    the server busy as fast as they can, 100 requests at a time: pings and malformed messages
    (`flood="requests"`), plus steps on their own session (`flood="steps"`: they also share the
    engine). Each tick of the fake sleeps `delay_s` (a stand-in for a model); `batched`: the
    server steps queued sessions together, one sleep per batch (`bridges.fake.fake_step_many`)."""
    proc, control = _start_server(engine_threads, batched)
    floods: list[subprocess.Popen[bytes]] = []
    try:
        with Client(control, timeout_s=10.0) as client:
            session = client.hello(delay_s=delay_s)
            session.reset()

            def median_ms() -> float:
                times = []
                for i in range(steps):
                    started = time.perf_counter()
                    session.step(i % 7)
                    times.append(time.perf_counter() - started)
                return _percentiles(times)[0]

            median_ms()  # warm up
            quiet = median_ms()
            floods = [subprocess.Popen([sys.executable, "-c", FLOOD_CODE, control, flood, str(delay_s)])
                      for _ in range(flooders)]  # fmt: skip
            time.sleep(1.0)
            flooded = median_ms()
            assert all(f.poll() is None for f in floods), "a flooding client stopped"
    finally:
        for flooder in floods:
            flooder.kill()
            flooder.wait(10)
        proc.terminate()
        proc.wait(10)
    return {
        "steps": steps, "flooders": flooders, "tick_delay_s": delay_s,
        "engine_threads": engine_threads, "flood": flood, "batched": batched,
        "quiet_step_rtt_p50_ms": round(quiet, 3), "flooded_step_rtt_p50_ms": round(flooded, 3),
        "ratio": round(flooded / quiet, 3), "target_ratio": 1.25,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    if "--soak" in (sys.argv[1:] if argv is None else argv):  # a long soak: bridges/soak.py
        from bridges.soak import main as soak_main

        soak_main(argv)
        return
    parser = argparse.ArgumentParser(prog="chunkworld bench bridge", description=__doc__)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--chunk-frames", type=int, default=4)
    parser.add_argument(
        "--engine-threads", type=int, default=1, help="0: calls on the socket thread"
    )
    parser.add_argument(
        "--fairness", action="store_true",
        help="instead: one client's median step round trip alone and under other clients' flood",
    )  # fmt: skip
    parser.add_argument("--flooders", type=int, default=1, help="with --fairness")
    parser.add_argument(
        "--flood", choices=["requests", "steps"], default="requests", help="with --fairness"
    )
    parser.add_argument("--tick-delay", type=float, default=0.0, help="with --fairness: s/tick")
    parser.add_argument(
        "--batched", action="store_true",
        help="with --fairness: the server steps queued sessions together (fake_step_many)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.fairness:
        print(
            json.dumps(
                fairness(
                    args.steps,
                    args.flooders,
                    args.tick_delay,
                    args.engine_threads,
                    args.flood,
                    args.batched,
                ),
                indent=1,
            )
        )
        return
    figures = run(args.steps, args.warmup, args.height, args.width, args.chunk_frames,
                  args.engine_threads)  # fmt: skip
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
