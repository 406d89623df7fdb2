"""The scorecard of a world trained on any game of the protocol (:mod:`world.games.protocol`).

The arcade has its own lines (:mod:`world.eval.scorecard`); any other game gets what the
protocol allows, measured through a session (``sdk.Session``) with the true game stepped beside
it on the same keys, on held-out seeds (:data:`world.eval.scorecard.SEED` on):

- ``psnr_per_tick`` against the game at each horizon 1..``horizon`` ticks, with
  ``copy_last_per_tick`` (the start's last frame held) beside it; ``beats_copy_last`` is the
  share of horizons where the model is ahead;
- ``following`` (when the game has ``player``): frames where the player the game finds in the
  model's frame is within 2 px of where it finds it in the true frame, on held-key streams;
  ``idle`` the same with the no-op held, ``alternating`` with two keys switching every frame;
- ``objects`` (when the game has ``objects``): over a ``long_ticks`` rollout, each kind's mean
  count per 100-tick window in the model's frames and the game's, and the largest gap;
- ``prompts_heldout`` (when the game has ``held_out_prompts`` and ``apply_prompt``): prompts
  whose generated frames over the next 2 ticks are closer (PSNR) to the true game with the prompt
  applied than to the true game without it (only phrasings that change the game count);
- ``long_rollout.png``: model frames above the game's, 20 ticks of the long rollout;
- ``units`` and ``trials``, as the arcade's scorecard keeps them, for ``chunkworld compare``
  (following, idle, alternating and PSNR one tick ahead per rollout or start).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from world.eval.metrics import psnr
from world.eval.scorecard import SEED, Steppable, _strip
from world.games.actions import held_key_actions


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return min(psnr(a, b), 60.0)


def _start(session: Steppable, game: Any, seed: int, f: int, k: int) -> np.ndarray:
    game.reset(seed)
    video = np.stack([game.step(game.actions[0]) for _ in range(k * f)])
    session.reset(video=video, seed=seed)
    return video


def _tick(session: Steppable, game: Any, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    true = np.stack([game.step(a) for a in names])
    return true, np.asarray(session.step(names).frames)


def game_scorecard(
    session: Steppable,
    game: Any,
    *,
    chunk_frames: int,
    history_chunks: int,
    episodes: int = 8,
    horizon: int = 16,
    long_ticks: int = 1000,
    out: Path | None = None,
) -> dict[str, Any]:
    """Measure ``session`` against ``game``; returns ``{"lines": {name: {value, bar, met}},
    ...details}`` and, with ``out``, writes ``long_rollout.png`` there."""
    f, k, acts = chunk_frames, history_chunks, list(game.actions)
    has_player = callable(getattr(game, "player", None))
    has_objects = callable(getattr(game, "objects", None))
    gen_psnr = np.zeros((episodes, horizon))
    copy_psnr = np.zeros((episodes, horizon))
    near: list[bool] = []
    extra: dict[str, float] = {}
    # per rollout or start, for a paired comparison (world/eval/compare.py)
    units: dict[str, list[float]] = {"following": [], "idle": [], "alternating": []}
    for e in range(episodes):
        before = len(near)
        last = _start(session, game, SEED + e, f, k)[-1]
        ids = held_key_actions(np.random.default_rng(SEED + e), horizon * f, len(acts))
        for t in range(horizon):
            true, gen = _tick(session, game, [acts[i] for i in ids[t * f : (t + 1) * f]])
            gen_psnr[e, t] = np.mean([_psnr(g, x) for g, x in zip(gen, true, strict=True)])
            copy_psnr[e, t] = np.mean([_psnr(last, x) for x in true])
            if has_player:
                near += _following(game, gen, true)
        if len(near) > before:
            units["following"].append(float(np.mean(near[before:])))
    if has_player:
        keys = len(acts) - 1
        for name, pattern in (("idle", [0]), ("alternating", [1, 2 if keys > 1 else 0])):
            hits: list[bool] = []
            for e in range(max(1, episodes // 2)):
                _start(session, game, SEED + 100 + e, f, k)
                ids = np.resize(pattern, horizon * f)
                before = len(hits)
                for t in range(horizon):
                    true, gen = _tick(session, game, [acts[i] for i in ids[t * f : (t + 1) * f]])
                    hits += _following(game, gen, true)
                if len(hits) > before:
                    units[name].append(float(np.mean(hits[before:])))
            if hits:
                extra[name] = float(np.mean(hits))
    per_tick, copy_tick = gen_psnr.mean(0), copy_psnr.mean(0)
    lines: dict[str, dict[str, Any]] = {
        "psnr_tick1": _line(float(per_tick[0]), None),
        "beats_copy_last": _line(float(np.mean(per_tick > copy_tick)), 1.0),
    }
    if near:
        lines["following"] = _line(float(np.mean(near)), 0.98)
    for name, value in extra.items():
        lines[name] = _line(value, 0.98)
    result: dict[str, Any] = {
        "game": f"{type(game).__module__}.{type(game).__qualname__}",
        "psnr_per_tick": [round(float(v), 2) for v in per_tick],
        "copy_last_per_tick": [round(float(v), 2) for v in copy_tick],
    }
    if long_ticks:
        _start(session, game, SEED + episodes, f, k)
        ids = held_key_actions(np.random.default_rng(SEED + episodes), long_ticks * f, len(acts))
        counts: dict[str, list[tuple[int, int]]] = {}
        shown: list[tuple[np.ndarray, np.ndarray]] = []
        for t in range(long_ticks):
            true, gen = _tick(session, game, [acts[i] for i in ids[t * f : (t + 1) * f]])
            if t % max(1, long_ticks // 20) == 0 and len(shown) < 20:
                shown.append((gen[-1], true[-1]))
            if has_objects:
                g, x = game.objects(gen[-1]), game.objects(true[-1])
                for kind in set(g) | set(x):
                    counts.setdefault(kind, []).append((g.get(kind, 0), x.get(kind, 0)))
        if counts:
            windows: dict[str, Any] = {}
            gap = 0.0
            for kind, pairs in sorted(counts.items()):
                arr = np.asarray(pairs, dtype=float)
                n = max(1, len(arr) // 100)
                chunks = np.array_split(arr, n)
                model_m = [round(float(c[:, 0].mean()), 2) for c in chunks]
                true_m = [round(float(c[:, 1].mean()), 2) for c in chunks]
                gap = max(gap, *(abs(a - b) for a, b in zip(model_m, true_m, strict=True)))
                windows[kind] = {"model": model_m, "game": true_m}
            result["objects_per_100_ticks"] = windows
            lines["long_objects"] = _line(round(gap, 3), 0.5, "max")
        if out is not None and shown:
            import imageio.v3 as iio

            Path(out).mkdir(parents=True, exist_ok=True)
            iio.imwrite(Path(out) / "long_rollout.png", _strip(shown))
    held = getattr(game, "held_out_prompts", None)
    if held and callable(getattr(game, "apply_prompt", None)):
        by_kind = _prompts(session, game, held, f, k, trials=max(2, episodes))
        if by_kind:
            lines["prompts_heldout"] = _line(float(np.mean(list(by_kind.values()))), 0.85)
            result["prompts_heldout_by_kind"] = by_kind
    result["lines"] = lines
    result["met"] = sum(bool(x["met"]) for x in lines.values())
    units["psnr_tick1"] = gen_psnr[:, 0].tolist()
    result["units"] = {n: [round(x, 4) for x in u] for n, u in units.items() if n in lines}
    result["trials"] = {"episodes": episodes, "horizon": horizon, "long_ticks": long_ticks}
    return result


def _following(game: Any, gen: np.ndarray, true: np.ndarray) -> list[bool]:
    """Per frame where the game finds its player in the true frame: is it within 2 px in the
    generated one?"""
    out = []
    for g, x in zip(gen, true, strict=True):
        a, b = game.player(g), game.player(x)
        if b is not None:
            out.append(a is not None and float(np.hypot(a[0] - b[0], a[1] - b[1])) <= 2.0)
    return out


def _prompts(
    session: Steppable, game: Any, held: dict[str, list[str]], f: int, k: int, trials: int
) -> dict[str, float]:
    """Per event kind, the share of held-out phrasings (that change the game) whose next 2 ticks
    the model draws closer to the prompted game than to the unprompted one."""
    noop = [game.actions[0]] * f
    out: dict[str, float] = {}
    for i, (kind, phrasings) in enumerate(sorted(held.items())):
        hits = []
        for j in range(trials):
            text = phrasings[j % len(phrasings)]
            _start(session, game, SEED + 200 + 31 * i + j, f, k)
            plain = copy.deepcopy(game)
            if not game.apply_prompt(text):
                continue  # the phrasing changes nothing here (e.g. rain while it rains)
            gen = np.concatenate(
                [np.asarray(session.step(noop, prompt=text).frames)]
                + [np.asarray(session.step(noop).frames)]
            )
            prompted = np.stack([game.step(a) for a in noop + noop])
            unprompted = np.stack([plain.step(a) for a in noop + noop])
            to_p = np.mean([_psnr(g, x) for g, x in zip(gen, prompted, strict=True)])
            to_u = np.mean([_psnr(g, x) for g, x in zip(gen, unprompted, strict=True)])
            if not np.array_equal(prompted, unprompted):
                hits.append(bool(to_p > to_u))
        if hits:
            out[kind] = round(float(np.mean(hits)), 4)
    return out


def _line(value: float, bar: float | None, kind: str = "min") -> dict[str, Any]:
    met = None if bar is None else (value >= bar if kind == "min" else value <= bar)
    return {"value": round(value, 4), "bar": bar, "met": met, "sense": kind}
