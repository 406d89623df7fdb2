"""world.eval.bench: the benchmark command."""

from __future__ import annotations

import json

import pytest


def test_bench_measures_a_codec_setting(capsys):
    from world.eval.bench import main as bench

    args = ["--preset", "tiny", "--ticks", "17", "--window", "2", "--repeats", "4", "--steps", "1"]
    bench(args)
    base = json.loads(capsys.readouterr().out)
    bench([*args, "--codec", "temporal=1"])
    one = json.loads(capsys.readouterr().out)
    # one frame per latent frame: twice the latent frames, so twice the tokens per chunk
    assert (base["codec"], one["codec"]) == (None, "temporal=1")
    assert one["tokens_per_chunk"] == 2 * base["tokens_per_chunk"]
    with pytest.raises(SystemExit):
        bench([*args, "--codec", "frames=3"])
    assert "KEY=VALUE" in capsys.readouterr().err
