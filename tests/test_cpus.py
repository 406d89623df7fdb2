"""The warning the long commands print when other work already keeps the CPUs busy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from world.core import cpus


@pytest.mark.parametrize(
    ("threads", "busy", "cores", "warns"),
    [
        (2, 0.0, 2, False),  # an idle machine
        (2, 0.4, 2, False),  # background noise
        (2, 0.6, 2, True),  # the threshold: fewer than 1.5 cores free for 2 threads
        (2, 2.0, 2, True),  # a training run on both cores
        (1, 1.0, 2, False),  # one thread beside a one-thread job
        (1, 1.6, 2, True),
        (4, 0.4, 2, False),  # more threads than cores: judged against the cores
        (2, 2.0, 16, False),  # a big machine with room left
    ],
)
def test_busy_message_only_when_too_few_cores_are_free(threads, busy, cores, warns):
    message = cpus.busy_message(threads, busy, cores)
    assert (message is not None) == warns
    if warns:
        assert f"keep {busy:.1f} of this machine's {cores} cores" in message
        assert "--threads N" in message


@given(st.integers(1, 64), st.integers(1, 64))
def test_an_idle_machine_never_warns(threads, cores):
    assert cpus.busy_message(threads, 0.0, cores) is None


def test_others_busy_counts_only_the_other_processes(monkeypatch):
    me = cpus.os.getpid()
    snapshots = iter([{me: 0.0, 1: 5.0, 2: 1.0}, {me: 9.0, 1: 5.4, 3: 7.0}])
    monkeypatch.setattr(cpus, "cpu_seconds_by_process", lambda: next(snapshots))
    clock = iter([10.0, 10.2])
    monkeypatch.setattr(cpus.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(cpus.time, "sleep", lambda s: None)
    # pid 1 used 0.4 s in 0.2 s: two cores; this process and the pids seen once do not count
    assert cpus.others_busy() == pytest.approx(2.0)


def test_others_busy_is_unknown_without_proc(monkeypatch, capsys):
    monkeypatch.setattr(cpus, "cpu_seconds_by_process", dict)
    assert cpus.others_busy() is None
    cpus.warn_if_busy(2)
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_spinning_process_is_seen_and_warned_of(monkeypatch, capsys):
    spin = subprocess.Popen(
        [sys.executable, "-c", "print('go', flush=True)\nwhile True: pass"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert spin.stdout is not None and spin.stdout.readline() == "go\n"
        busy = cpus.others_busy(window_s=1.0)
        assert busy is not None and busy > 0.5  # about one core, less when the machine is full
        monkeypatch.setattr(cpus, "usable_cores", lambda: 1)
        cpus.warn_if_busy(1)
        assert "cores busy" in capsys.readouterr().err
    finally:
        spin.kill()
        spin.wait()


@pytest.mark.parametrize(
    "flags, native",
    [("avx512f avx512_bf16", "avx512_bf16"), ("amx_bf16 amx_tile avx512_bf16", "amx_bf16, avx512_bf16"),
     ("avx2 fma", "no native bf16")],
)  # fmt: skip
def test_cpu_name_says_the_model_and_its_native_bf16(monkeypatch, flags, native):
    info = f"processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu {flags} sse\n"
    monkeypatch.setattr(cpus.Path, "read_text", lambda self: info)
    assert cpus.cpu_name() == f"Some CPU 9000 ({native})"
