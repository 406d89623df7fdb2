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


def test_bench_sessions_reports_every_count(capsys):
    from world.eval.bench import main as bench

    bench(
        ["--sessions", "1,3", "--preset", "tiny", "--ticks", "2", "--warm", "1", "--threads", "1"]
    )
    out = json.loads(capsys.readouterr().out)
    runs = out["runs"]
    assert [r["sessions"] for r in runs] == [1, 3]
    assert runs[0]["fps_vs_first"] == 1.0
    assert out["chunk_ms"] == round(1000 * 2 / 15, 1)  # tiny: 2 frames a chunk at 15 fps
    for r in runs:
        dtype = {"bf16": "bfloat16", "fp32": "float32"}[out["precision"]]
        assert r["sampler_share_of_peak"] == round(
            r["sampler_gflops"] / out["matmul_peak_gflops"][dtype], 3
        )
        assert r["p99_below_chunk"] == (r["tick_ms_p99"] < out["chunk_ms"])
    assert runs[1]["sampler_gflop_per_tick"] > runs[0]["sampler_gflop_per_tick"]
    assert out["largest_real_time_sessions"] in (0, 1, 3)
