"""What this machine's CPUs offer: native bf16, and whether other work already keeps them busy.

bf16 autocast pays only where the matmuls are native (:func:`bf16_enabled`): on a CPU with
AVX-512 but without AVX512-BF16, a 2048^3 matmul ran at 212 GFLOP/s in fp32 against 47 in bf16,
and a denoiser training step was 3.5x slower under autocast; on one with AVX512-BF16 a play tick
of the shipped default took 29 ms against 33, and decoding its chunk 12 against 18 (2026-12-01;
README, Benchmarks, "Precision").

Two torch processes that each run as many threads as there are cores do not share the cores
evenly: their threads spin waiting for one another. On two cores, ``chunkworld generate`` took
5.96 s a tick beside a training run against about 62 ms alone (2026-11-30, README Benchmarks).
The long commands (``train``, ``tune-decoder``, ``eval``, ``following``, ``bench``, and the
sampler commands of ``sdk.cli``) call :func:`warn_if_busy` as they start, so a user learns why a
run crawls before waiting for it, and what to do.

The measure is the CPU time the other processes use over a short window (``/proc/<pid>/stat``,
Linux), not the load average: the load average decays over a minute, so it still reads a job
that has just ended as busy, and a script that runs one command after another would be warned
for nothing. Where ``/proc`` is missing, no warning is given.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch


def busy_message(threads: int, busy: float, cores: int) -> str | None:
    """The warning for a command about to run ``threads`` torch threads on ``cores`` cores while
    other processes keep ``busy`` cores busy, or None when enough cores are free."""
    if cores - busy >= min(threads, cores) - 0.5:
        return None
    return (
        f"warning: other processes keep {busy:.1f} of this machine's {cores} cores busy, and this "
        f"command runs {threads} torch threads; torch jobs that compete for the cores can run "
        "many times slower than alone. Wait for the other job, or give each job fewer threads "
        "(--threads N, the jobs' threads summing to at most the cores)."
    )


def cpu_seconds_by_process() -> dict[int, float]:
    """CPU seconds (user and system) each visible process has used so far, by pid; empty where
    there is no ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    seconds = {}
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return {}
    for pid in entries:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the process ended meanwhile
            continue
        # the fields from the third (state) on: the second, the command name, may hold spaces
        fields = stat[stat.rindex(b")") + 2 :].split()
        seconds[int(pid)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return seconds


def others_busy(window_s: float = 0.2) -> float | None:
    """Cores the other processes kept busy over the next ``window_s`` seconds, or None where
    this cannot be measured."""
    me = os.getpid()
    before = cpu_seconds_by_process()
    if not before:
        return None
    t0 = time.perf_counter()
    time.sleep(window_s)
    after = cpu_seconds_by_process()
    wall = time.perf_counter() - t0
    used = sum(after[p] - before[p] for p in after.keys() & before.keys() if p != me)
    return max(0.0, used / wall)


def cpu_name() -> str:
    """This machine's CPU model and its native bf16 (``"AMD EPYC (avx512_bf16)"``): figures
    measured on one CPU do not carry to another (two cores' bf16 matmul peak was 1,511 GFLOP/s
    in one session and about 415 on an AMD EPYC without AMX in the next: docs/many-worlds.md)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or platform.machine()
    names = [ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")]
    native = [f for f in ("amx_bf16", "avx512_bf16") if f in info.split()]
    return f"{names[0] if names else 'unknown CPU'} ({', '.join(native) or 'no native bf16'})"


def usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def warn_if_busy(threads: int) -> None:
    """Print :func:`busy_message` for this machine to stderr, if there is one."""
    busy = others_busy()
    if busy is None:
        return
    message = busy_message(threads, busy, usable_cores())
    if message:
        print(message, file=sys.stderr)


PRECISIONS = ("auto", "fp32", "bf16")


def bf16_enabled(precision: str, device: torch.device | str = "cpu") -> bool:
    """Whether ``precision`` (``"auto"``, ``"fp32"`` or ``"bf16"``) means bf16 autocast on
    ``device``: ``"auto"`` only where bf16 matmuls are native (a CPU with AVX512-BF16 or AMX, a
    GPU that supports bf16)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
