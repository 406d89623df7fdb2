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


@pytest.mark.parametrize("pixel_history", [False, True])
def test_bench_sessions_counts_the_denoisers_own_share(capsys, pixel_history):
    from world.eval.bench import main as bench

    flag = "--pixel-history" if pixel_history else "--no-pixel-history"
    args = ["--sessions", "1,2", "--preset", "tiny", "--ticks", "2", "--warm", "1"]
    bench([*args, "--threads", "1", flag])
    out = json.loads(capsys.readouterr().out)
    dtype = {"bf16": "bfloat16", "fp32": "float32"}[out["precision"]]
    for r in out["runs"]:
        assert 0 < r["denoiser_ms_p50"] <= r["sampler_ms_p50"]
        assert r["denoiser_share_of_peak"] == round(
            r["denoiser_gflops"] / out["matmul_peak_gflops"][dtype], 3
        )
        # tiny has no prior: without pixel history every sampler FLOP is the denoiser's; with it
        # the codec's round trip is the sampler's too (a few MFLOP at tiny: below the rounding)
        if pixel_history:
            assert r["denoiser_gflop_per_tick"] <= r["sampler_gflop_per_tick"]
            assert r["decode_gflops"] is None
        else:
            assert r["denoiser_gflop_per_tick"] == r["sampler_gflop_per_tick"]
    assert out["runs"][1]["denoiser_gflop_per_tick"] > out["runs"][0]["denoiser_gflop_per_tick"]
