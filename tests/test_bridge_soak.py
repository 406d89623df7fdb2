"""The soak benchmark (bridges/soak.py) in miniature: two clients and an observer play through
it and it reports every interval; its figures are a benchmark's, not asserted here."""

from __future__ import annotations

import os

from bridges.soak import rss_kib, soak


def test_rss_is_read_from_proc() -> None:
    assert rss_kib() > 1000  # this interpreter takes more than 1 MiB
    assert rss_kib(os.getpid()) > 1000


def test_a_short_soak_reports_each_interval_and_ends_with_the_server_alive(capsys) -> None:
    summary = soak(ticks=60, every=20, server="fake", reset_every=25)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith('{"tick"')]
    assert [int(r.split(",")[0].split(":")[1]) for r in rows] == [20, 40, 60]
    assert summary["server_alive_at_end"] is True
    assert (summary["clients"], summary["observers"], summary["ticks_per_client"]) == (2, 1, 60)
    assert 0 <= summary["observer_chunks"] <= 60 + 3  # the first session's chunks, resets included
