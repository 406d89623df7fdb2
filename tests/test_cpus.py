"""The warning the long commands print when other work already keeps the CPUs busy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from world import cpus


@pytest.mark.parametrize(
    ("threads", "load", "cores", "warns"),
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
def test_busy_message_only_when_too_few_cores_are_free(threads, load, cores, warns):
    message = cpus.busy_message(threads, load, cores)
    assert (message is not None) == warns
    if warns:
        assert f"load {load:.1f} on {cores} cores" in message and "--threads N" in message


@given(st.integers(1, 64), st.integers(1, 64))
def test_an_idle_machine_never_warns(threads, cores):
    assert cpus.busy_message(threads, 0.0, cores) is None


def test_warn_if_busy_reads_the_load_average(monkeypatch, capsys):
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cpus.os, "getloadavg", lambda: (2.5, 2.0, 1.0))
    cpus.warn_if_busy(2)
    assert "load 2.5 on 2 cores" in capsys.readouterr().err
    monkeypatch.setattr(cpus.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    cpus.warn_if_busy(2)
    assert capsys.readouterr().err == ""


def test_warn_if_busy_is_silent_without_a_load_average(monkeypatch, capsys):
    def unavailable():
        raise OSError("no load average")

    monkeypatch.setattr(cpus.os, "getloadavg", unavailable)
    cpus.warn_if_busy(2)
    assert capsys.readouterr().err == ""
