"""Whether other work already keeps this machine's CPUs busy.

Two torch processes that each run as many threads as there are cores do not share the cores
evenly: their threads spin waiting for one another. On two cores, ``chunkworld generate`` took
5.96 s a tick beside a training run against about 62 ms alone (2026-11-30, README Benchmarks).
The long commands (``train``, ``tune-decoder``, ``eval``, ``diagnose``, ``bench``, and the
sampler commands of ``sdk.cli``) call :func:`warn_if_busy` as they start, so a user learns why a
run crawls before waiting for it, and what to do.

The measure is the one-minute load average: the number of threads that wanted a core, averaged
over about a minute. A process that has only just started adds little to it.
"""

from __future__ import annotations

import os
import sys


def busy_message(threads: int, load: float, cores: int) -> str | None:
    """The warning for a command about to run ``threads`` torch threads on ``cores`` cores while
    ``load`` threads already want one, or None when enough cores are free."""
    free = cores - load
    if free >= min(threads, cores) - 0.5:
        return None
    return (
        f"warning: the CPUs are already busy (load {load:.1f} on {cores} cores), and this "
        f"command runs {threads} torch threads; torch jobs that compete for the cores can run "
        "many times slower than alone. Wait for the other job, or give each job fewer threads "
        "(--threads N, the jobs' threads summing to at most the cores)."
    )


def warn_if_busy(threads: int) -> None:
    """Print :func:`busy_message` for this machine to stderr, if there is one."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # the platform does not report a load average
        return
    message = busy_message(threads, load, os.cpu_count() or 1)
    if message:
        print(message, file=sys.stderr)
