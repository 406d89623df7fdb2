"""Benchmark of the world-model core: prints JSON, asserts nothing.

    chunkworld bench                    # default play preset, random weights
    chunkworld bench --preset tiny --ticks 200
    chunkworld bench --steps 1 --codec temporal=2   # the play setting with another codec
    chunkworld bench --steps 1 --precision fp32     # without bf16 autocast
    chunkworld bench --sessions 1,4,16,64           # many worlds in one pass (batch_bench.py)

For W = 1 and W = 4 (in flight), with the ring cache and with the window recomputed without a
cache, it reports the latency of tick 10 and of tick ``--ticks`` (1,000 by default). The two are
measured paired: the rollout state is copied before each, and ``--repeats`` rounds time one tick
from a fresh copy of either, interleaved (early, late, late, early, ...), so the load of the rest
of the machine falls on both alike and the ratio is not at the mercy of one noisy window. The
medians of the live run's first and last ``--window`` ticks are reported beside them. Also: the
FLOPs of one tick (counted by ``torch.utils.flop_counter``) divided by its median time, beside a
matmul peak measured in the same run; the peak resident memory of the process; decode time per
chunk. ``--precision`` as a Session's (``auto``: bf16 autocast where the CPU has native bf16).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from world.core.codec import codec_setting
from world.core.config import preset
from world.core.cpus import PRECISIONS, bf16_enabled, cpu_name, warn_if_busy
from world.core.model import WorldModel
from world.core.rollout_state import RolloutState
from world.core.sampler import PipelinedSampler


def matmul_peak(n: int = 2048, repeats: int = 8) -> dict[str, float | None]:
    """GFLOP/s of an n x n x n matmul, float32 and bfloat16 (median of ``repeats``).

    bfloat16 only where the CPU's bf16 matmuls are native (else None): an emulated one ran at
    0.3 GFLOP/s on an AMD EPYC without AVX512-BF16 (float32: 177), a minute per matmul, and
    nothing there runs at bf16 (``precision="auto"`` is float32)."""
    out: dict[str, float | None] = {"float32": None, "bfloat16": None}
    dtypes = (torch.float32, torch.bfloat16) if bf16_enabled("auto") else (torch.float32,)
    for dtype in dtypes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        out[str(dtype).removeprefix("torch.")] = round(2 * n**3 / statistics.median(times) / 1e9, 1)
    return out


def _timed_tick(sampler: PipelinedSampler, state: RolloutState, actions, text) -> float:
    t0 = time.perf_counter()
    sampler.tick(state, actions, text)
    return time.perf_counter() - t0


def _ticks(
    model: WorldModel,
    in_flight: int,
    steps: int,
    use_cache: bool,
    ticks: int,
    window: int,
    repeats: int,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Latency at tick 10 and at tick ``ticks``, measured two ways.

    Paired (the headline figures): the rollout state is copied just before tick 9 and just
    before tick ``ticks - 1``; then ``repeats`` rounds each take a fresh copy of either, run one
    tick untimed (it pays for touching the fresh copy's memory) and time the next: tick 10 or
    tick ``ticks``. Rounds alternate early, late, late, early, ... so load from the rest of the
    machine falls on both alike. Live: medians of ``window`` consecutive ticks of the run itself, at its start and
    its end (what a player sees, noise included).
    """
    sampler = PipelinedSampler(
        model, steps=steps, in_flight=in_flight, use_cache=use_cache, precision=precision
    )
    state = sampler.new_state(seed=0)
    text = model.encode_text(["day, clear sky, two red balls, grey walls"])
    actions = torch.zeros(1, model.cfg.chunk_frames, dtype=torch.long)
    live: list[float] = []
    flops = 0
    cache_bytes = []
    early_state = None
    for i in range(ticks - 1):
        if i == 9:
            early_state = state.clone()
        if i == 10:
            cache_bytes.append(state.cache.nbytes() + state.context_inputs.nbytes)
        if i == 12:  # count the FLOPs of one steady-state tick
            with FlopCounterMode(display=False) as counter:
                sampler.tick(state, actions, text)
            flops = counter.get_total_flops()
            live.append(float("nan"))
            continue
        live.append(_timed_tick(sampler, state, actions, text))
    assert early_state is not None
    late_state = state.clone()
    cache_bytes.append(state.cache.nbytes() + state.context_inputs.nbytes)
    early: list[float] = []
    late: list[float] = []
    for r in range(repeats):
        order = (early_state, late_state) if r % 2 == 0 else (late_state, early_state)
        for src in order:
            work = src.clone()
            sampler.tick(work, actions, text)
            (early if src is early_state else late).append(
                _timed_tick(sampler, work, actions, text)
            )
    med_early, med_late = statistics.median(early), statistics.median(late)
    ratios = sorted(b / a for a, b in zip(early, late, strict=True))
    q = len(ratios) // 4
    live_early = statistics.median(t for t in live[10 : 10 + window] if t == t)
    live_late = statistics.median(t for t in live[-window:] if t == t)
    return {
        "tick_ms_at_10": round(med_early * 1e3, 2),
        f"tick_ms_at_{ticks}": round(med_late * 1e3, 2),
        "late_over_early": round(med_late / med_early, 3),
        "late_over_early_pairs_iqr": [round(ratios[q], 3), round(ratios[-1 - q], 3)],
        "repeats": repeats,
        "live_ms_first_window": round(live_early * 1e3, 2),
        "live_ms_last_window": round(live_late * 1e3, 2),
        "gflop_per_tick": round(flops / 1e9, 3),
        "achieved_gflop_s": round(flops / 1e9 / med_late, 1) if flops else None,
        "cache_bytes_at_10_and_end": cache_bytes,
    }


def run(
    preset_name: str,
    ticks: int,
    window: int,
    steps: int,
    threads: int,
    repeats: int,
    codec: str = "",
    precision: str = "auto",
) -> dict[str, Any]:
    """Benchmark ``preset_name`` with random weights; ``codec`` overrides fields of its codec
    (``"temporal=2"``, parsed by :func:`world.core.codec.codec_setting`)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = preset(preset_name)
    cfg = cfg.replace(codec=codec_setting(codec, cfg.codec))
    model = WorldModel(cfg).eval()
    play = PipelinedSampler(model, precision=precision)
    peak = matmul_peak()
    result: dict[str, Any] = {
        "preset": preset_name,
        "codec": codec or None,
        "date": time.strftime("%Y-%m-%d"),
        "machine": cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "tokens_per_chunk": cfg.tokens_per_chunk,
        "chunk_frames": cfg.chunk_frames,
        "history_chunks": cfg.history_chunks,
        "steps": steps,
        "precision": play.runs_at,
        "ticks": ticks,
        "matmul_peak_gflop_s": peak,
        "parameters": model.parameter_count(),
    }
    z = torch.randn(1, cfg.latent_frames, cfg.codec.latent_channels, *cfg.codec.grid)
    dec = []
    for _ in range(10):
        t0 = time.perf_counter()
        play.decode(z)
        dec.append(time.perf_counter() - t0)
    result["decode_ms_per_chunk"] = round(statistics.median(dec) * 1e3, 2)
    for w in (1, 4):
        for use_cache in (True, False):
            key = f"W{w}_{'cache' if use_cache else 'recompute'}"
            # Recompute holds no state that grows; a short run shows its cost.
            n = ticks if use_cache else min(ticks, 20 + window)
            result[key] = _ticks(model, w, max(steps, w), use_cache, n, window, repeats, precision)
    for w in (1, 4):
        c, r = result[f"W{w}_cache"], result[f"W{w}_recompute"]
        result[f"W{w}_cache_speedup"] = round(r["tick_ms_at_10"] / c["tick_ms_at_10"], 2)
        ms = c[f"tick_ms_at_{ticks}"] + result["decode_ms_per_chunk"]
        result[f"W{w}_frames_per_s"] = round(cfg.chunk_frames / (ms / 1e3), 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main(argv: list[str] | None = None) -> None:
    if any(a == "--sessions" or a.startswith("--sessions=") for a in argv or []):
        from world.eval import batch_bench  # many worlds stepped together

        batch_bench.main(argv)
        return
    p = argparse.ArgumentParser(
        prog="chunkworld bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="small", help="model preset (default: small, the play size)")
    p.add_argument("--ticks", type=int, default=1000, help="the late tick measured (default 1000)")
    p.add_argument("--repeats", type=int, default=40, help="paired early/late timings (default 40)")
    p.add_argument("--window", type=int, default=20, help="ticks per live median (default 20)")
    p.add_argument("--steps", type=int, default=4, help="Euler steps per chunk (default 4)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument(
        "--codec",
        default="",
        metavar="KEY=VALUE[,...]",
        help="override fields of the preset's codec, e.g. temporal=2 (as chunkworld train --codec)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="as a Session plays (default auto: bf16 autocast where the CPU has native bf16)",
    )
    a = p.parse_args(argv)
    if a.ticks < 2 * a.window + 13:
        p.error(f"--ticks must be at least {2 * a.window + 13} for --window {a.window}")
    if a.repeats < 4:
        p.error(f"--repeats must be at least 4, got {a.repeats}")
    warn_if_busy(a.threads or torch.get_num_threads())
    try:
        result = run(
            a.preset, a.ticks, a.window, a.steps, a.threads, a.repeats, a.codec, a.precision
        )
    except ValueError as e:  # a bad --codec setting, with the codec's own message
        p.error(str(e))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
