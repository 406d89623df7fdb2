"""Benchmark of many worlds stepped together: prints JSON, asserts nothing.

    chunkworld bench --sessions 1,4,16,64 --threads 1     # the shipped default, play setting
    chunkworld bench --sessions 1,4 --preset tiny --ticks 5
    chunkworld bench --sessions 1,16 --pixel-history      # chunks cached through their frames

For each count N, N worlds (their own seeds and actions, the null caption) start from text and
run ``--warm`` ticks (the cache ring fills), then ``--ticks`` timed ticks, each one batched tick
(``world.core.batched.tick_rows``: what ``sdk.SessionBatch.step`` runs) plus one decode pass.
Reported per N: aggregate generated fps (N * chunk_frames / mean tick), the per-session tick
latency p50/p99 (a member's chunk arrives when the batched tick ends), the chunk's duration at the
model's fps (the real-time bar), the FLOPs of one tick (``torch.utils.flop_counter``) over its
median time as GFLOP/s, split into the sampler (denoiser, prior and cache passes) and the decode,
and the sampler's share of the matmul peak measured in the same run at the precision it runs
at (``precision``: bfloat16 where the CPU has native bf16, else float32); and the same for the
denoiser's own passes (its denoise steps and cache pass, timed and counted apart:
``denoiser_*``), the figure the many-worlds bar names. Also the process's
peak RSS. Another load on the machine (a training run) slows every figure: say so beside them.
With ``--pixel-history`` each world's frames are decoded (and encoded again) inside the tick, as
the sampler caches them, so there is no decode pass (``decode_gflops`` null) and the sampler's
time, FLOPs and share of the peak hold the codec's with the denoiser's.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from world.core.batched import Row, tick_rows
from world.core.checkpoint import checkpoint_dir, load_checkpoint
from world.core.config import preset
from world.core.cpus import cpu_name, warn_if_busy
from world.core.model import WorldModel
from world.core.palette import Palette, load_palette
from world.core.sampler import PipelinedSampler
from world.eval.bench import matmul_peak


def _rows(sampler: PipelinedSampler, states: list[Any], gen: torch.Generator) -> list[Row]:
    cfg = sampler.cfg
    text = sampler.model.encode_text([None])
    acts = torch.randint(0, len(cfg.actions), (len(states), 1), generator=gen)
    return [
        Row(st, a.expand(1, cfg.chunk_frames).contiguous(), text)
        for st, a in zip(states, acts, strict=True)
    ]


class _DenoiserMeter:
    """The denoiser's own share of a tick: its passes (``forward``, the denoise steps, and
    ``encode_history``, the cache pass) wrapped on the instance while the bench runs; their
    seconds summed into ``seconds``, or while ``counting`` is set their FLOPs into ``flops``
    (``torch.utils.flop_counter``) instead."""

    def __init__(self, denoiser: torch.nn.Module) -> None:
        self.denoiser, self.seconds, self.flops, self.counting = denoiser, 0.0, 0, False
        for name in ("forward", "encode_history"):
            setattr(denoiser, name, self._wrap(getattr(denoiser, name)))

    def _wrap(self, f: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            if self.counting:
                with FlopCounterMode(display=False) as counter:
                    out = f(*args, **kwargs)
                self.flops += counter.get_total_flops()
                return out
            t = time.perf_counter()
            out = f(*args, **kwargs)
            self.seconds += time.perf_counter() - t
            return out

        return run

    def close(self) -> None:
        for name in ("forward", "encode_history"):
            delattr(self.denoiser, name)  # the class's methods again


def _tick(sampler: PipelinedSampler, rows: list[Row]) -> tuple[float, float]:
    """One batched tick and every world's decode; (sampler seconds, decode seconds)."""
    t0 = time.perf_counter()
    results = tick_rows(sampler, rows)
    t1 = time.perf_counter()
    todo = [r.latents for r in results if r.frames is None]  # pixel history: decoded already
    if todo:
        sampler.decode(torch.cat(todo))  # one pass, as SessionBatch
    return t1 - t0, time.perf_counter() - t1


def run_one(
    sampler: PipelinedSampler, n: int, ticks: int, warm: int, meter: _DenoiserMeter
) -> dict[str, Any]:
    """Measure ``n`` worlds stepped together (see the module docstring)."""
    cfg = sampler.cfg
    gen = torch.Generator().manual_seed(n)
    states = [sampler.new_state(seed=i) for i in range(n)]
    for _ in range(1 + warm):  # the text start, then fill the cache ring
        _tick(sampler, _rows(sampler, states, gen))
    rows = _rows(sampler, states, gen)
    with FlopCounterMode(display=False) as counter:
        tick_rows(sampler, rows)
    flops_sampler = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        sampler.decode(torch.zeros(1, cfg.latent_frames, cfg.codec.latent_channels,
                                   *cfg.codec.grid))  # fmt: skip
    flops_decode = counter.get_total_flops() * n  # linear in the batch
    meter.counting, meter.flops = True, 0
    tick_rows(sampler, _rows(sampler, states, gen))
    meter.counting, flops_denoiser = False, meter.flops
    samp, dec, den = [], [], []
    for _ in range(ticks):
        meter.seconds = 0.0
        s, d = _tick(sampler, _rows(sampler, states, gen))
        samp.append(s)
        dec.append(d)
        den.append(meter.seconds)
    total = sorted(s + d for s, d in zip(samp, dec, strict=True))
    mean = statistics.fmean(total)
    p99 = total[min(len(total) - 1, round(0.99 * (len(total) - 1)))]
    med_s = statistics.median(samp)
    return {
        "sessions": n,
        "aggregate_fps": round(n * cfg.chunk_frames / mean, 1),
        "tick_ms_p50": round(statistics.median(total) * 1000, 1),
        "tick_ms_p99": round(p99 * 1000, 1),
        "sampler_ms_p50": round(med_s * 1000, 1),
        "decode_ms_p50": round(statistics.median(dec) * 1000, 1),
        "sampler_gflop_per_tick": round(flops_sampler / 1e9, 2),
        "sampler_gflops": round(flops_sampler / med_s / 1e9, 1),
        "denoiser_ms_p50": round(statistics.median(den) * 1000, 1),
        "denoiser_gflop_per_tick": round(flops_denoiser / 1e9, 2),
        "denoiser_gflops": round(flops_denoiser / statistics.median(den) / 1e9, 1),
        # with pixel history there is no decode pass: the sampler's figures hold the codec's
        "decode_gflops": (
            None if sampler.pixel_history else round(flops_decode / statistics.median(dec) / 1e9, 1)
        ),
    }


def run(
    model: WorldModel,
    sessions: list[int],
    ticks: int,
    warm: int,
    pixel_history: bool | None = None,
    palette: Palette | None = None,
) -> dict[str, Any]:
    sampler = PipelinedSampler(
        model, precision="auto", pixel_history=pixel_history, palette=palette
    )
    peak = matmul_peak()
    # the peak of the precision the sampler runs at: float32 where the CPU has no native bf16
    # (its bf16 matmul is emulated, slower than float32, and no yardstick for a float32 pass)
    dtype = "bfloat16" if sampler.runs_at == "bf16" else "float32"
    chunk_ms = 1000.0 * model.cfg.chunk_frames / model.cfg.fps
    out: list[dict[str, Any]] = []
    meter = _DenoiserMeter(model.denoiser)
    try:
        for n in sessions:
            r = run_one(sampler, n, ticks, warm, meter)
            top = peak[dtype]
            for part in ("sampler", "denoiser"):
                share = None if top is None else round(r[f"{part}_gflops"] / top, 3)
                r[f"{part}_share_of_peak"] = share
            r["p99_below_chunk"] = r["tick_ms_p99"] < chunk_ms
            out.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)  # progress: one line per count
    finally:
        meter.close()
    base = out[0]["aggregate_fps"]
    for r in out:
        r["fps_vs_first"] = round(r["aggregate_fps"] / base, 2)
    real_time = [r["sessions"] for r in out if r["p99_below_chunk"]]
    return {
        "machine": cpu_name(),
        "chunk_ms": round(chunk_ms, 1),
        "matmul_peak_gflops": peak,
        "precision": sampler.runs_at,
        "pixel_history": sampler.pixel_history,
        "palette": palette is not None,
        "threads": torch.get_num_threads(),
        "runs": out,
        "largest_real_time_sessions": max(real_time) if real_time else 0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="chunkworld bench --sessions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sessions", required=True, help="comma-separated world counts: 1,4,16,64")
    p.add_argument("--model", default="default", help="checkpoint (default: the shipped default)")
    p.add_argument("--preset", default=None, help="random weights of a preset instead of --model")
    p.add_argument("--ticks", type=int, default=30, help="timed ticks per count (default 30)")
    p.add_argument("--warm", type=int, default=3, help="untimed ticks after the start (default 3)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument(
        "--pixel-history",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="cache each chunk as the encoding of its frames (default: the model's setting)",
    )
    p.add_argument(
        "--palette",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="snap frames to the model's palette (default: on where its directory keeps one)",
    )
    args = p.parse_args(argv)
    try:
        counts = [int(x) for x in args.sessions.split(",")]
        assert counts and all(c >= 1 for c in counts)
    except (ValueError, AssertionError):
        p.error(f"--sessions takes positive ints separated by commas, got {args.sessions!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    warn_if_busy(torch.get_num_threads())
    palette = None
    if args.preset:
        torch.manual_seed(0)
        model = WorldModel(preset(args.preset)).eval()
    else:
        model, _ = load_checkpoint(args.model)
        model.eval()
        palette = None if args.palette is False else load_palette(checkpoint_dir(args.model))
    if args.palette and palette is None:
        p.error(f"--palette: {args.preset or args.model} keeps no palette.json")
    result = run(model, counts, args.ticks, args.warm, args.pixel_history, palette)
    result["model"] = args.preset or args.model
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
