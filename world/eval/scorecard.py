"""The scorecard: every line of the world-model bar, measured on what a user gets.

It drives anything shaped like a session (:class:`Steppable`: ``sdk.Session`` is one) exactly as
the README does, with the true arcade engine stepped beside it on the same actions and prompts,
on seeds no training run uses (``SEED`` on; data use seed bases 0 to a few hundred thousand).
World code never imports the SDK: ``chunkworld eval`` builds the Session and hands it over::

    chunkworld eval --model default --out runs/eval          # JSON, lines met, a 1,000-tick strip

Each start is a video start: the engine's first ``history_chunks`` chunks, played with no-op
actions, as ``Session.reset(video=...)`` stores them (no-op actions, no caption). What it reports,
each with the bar's threshold (:data:`BAR`) and copy-last-frame beside the PSNR:

- ``following``: play-like streams, the player within 2 px of the engine's (every frame);
- ``idle``: 64 no-op frames, the player within 1 px of the engine's (which does not move);
- ``alternating_lr`` / ``alternating_ud``: keys switching every frame, within 2 px;
- ``balls_mean16`` / ``balls_tick16``: the ball count equal to the engine's, over ticks 1-16
  and at tick 16; ``balls_per_tick`` per horizon;
- ``long_balls``: over a ``long_ticks`` rollout, the largest gap between the model's and the
  engine's mean ball count in any 100-tick window; ``long_wall_kept``: frames whose wall colour
  and time of day are the engine's (no prompt given);
- ``bolt``: frames where the engine shows a bolt and the model does too;
- ``prompts_train`` / ``prompts_heldout``: the event visible within 2 ticks, for the training
  templates and for :data:`HELD_OUT_PROMPTS` (written before any training, never trained on);
  ``prompt_wreck_free``: prompted ticks whose frames still show the player and whose PSNR is
  within 3 dB of the unprompted first tick's mean;
- ``psnr_tick1`` / ``psnr_mean16``, ``psnr_per_tick`` and ``copy_last_per_tick``;
- ``text_start_player``: caption starts (:data:`TEXT_STARTS`) whose first chunk shows the
  player, and still does after 4 ticks of play-like keys; ``text_start_scene``: of what those
  captions ask for as the engine parses them (time of day, weather, ball count and colour, wall
  colour), the share their first chunk shows (:func:`scene_asked`);
- ``fps``: generated frames per second over the long rollout (``chunkworld bench`` measures
  speed properly; this is the evaluation's own pace).

Beside the lines, ``units`` holds each line per unit it was measured on (a rollout, a start, a
prompt trial, a caption check; the bolt: frames drawn per rollout) and ``trials`` the settings
that chose them, so two scorecards of the same trials compare unit by unit (``chunkworld compare``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from world.eval.detect import LABELS, classify, detect_events, find_player
from world.eval.metrics import psnr
from world.games.actions import ACTIONS, play_like_actions
from world.games.arcade import Game, GameConfig
from world.games.captions import COLOUR_NAMES, event_prompt, parse_prompt, possible_events

SEED = 5_000_000  # first held-out seed: far above every seed base a training run uses

# line -> (threshold, "min" | "max"): met when value >= threshold ("min") or <= ("max")
BAR: dict[str, tuple[float, str]] = {
    "following": (0.99, "min"),
    "idle": (0.95, "min"),
    "alternating_lr": (0.95, "min"),
    "alternating_ud": (0.95, "min"),
    "balls_mean16": (0.80, "min"),
    "balls_tick16": (0.60, "min"),
    "long_balls": (0.5, "max"),
    "long_wall_kept": (0.99, "min"),
    "bolt": (0.80, "min"),
    "prompts_train": (0.90, "min"),
    "prompts_heldout": (0.85, "min"),
    "prompt_wreck_free": (1.0, "min"),
    "psnr_tick1": (31.0, "min"),
    "psnr_mean16": (25.0, "min"),
    "beats_copy_last": (1.0, "min"),
    "text_start_player": (1.0, "min"),
    "text_start_scene": (1.0, "min"),
    "fps": (30.0, "min"),
}


def line_sense(name: str, line: dict[str, Any]) -> str:
    """A line's sense: "min" (it must reach its bar) or "max" (it must stay under it)."""
    return str(line.get("sense", BAR.get(name, (0.0, "min"))[1]))


# Prompts in words the training templates (world/games/captions.py EVENT_TEMPLATES) never use
# together: at least five per event kind. The engine parses each to exactly its event (tested).
# "{c}" is a colour name, "{w}" the current weather.
HELD_OUT_PROMPTS: dict[str, tuple[str, ...]] = {
    "night": (
        "make it dark",
        "switch to nighttime",
        "bring on the darkness",
        "let the evening begin",
        "turn the lights down to dusk",
    ),
    "day": (
        "make it daytime",
        "bring back the daylight",
        "switch to morning",
        "let the dawn come",
        "turn it bright again",
    ),
    "rain": (
        "bring a thunderstorm",
        "start a drizzle",
        "let the showers come",
        "a downpour begins",
        "switch to rainy weather",
    ),
    "snow": (
        "bring some snowfall",
        "let it be snowy",
        "flurries begin",
        "switch to snowy weather",
        "start a snowfall",
    ),
    "clear": (
        "no more {w}",
        "the {w} ends",
        "the {w} ceases",
        "let the weather be dry",
        "switch to clear weather",
    ),
    "spawn": (
        "put in an extra ball",
        "bring one more ball",
        "spawn another ball",
        "add one new ball",
        "an extra ball appears",
    ),
    "ball_colour": (
        "colour the balls {c}",
        "the balls become {c}",
        "switch the balls to {c}",
        "recolour every ball {c}",
        "give the balls a {c} coat",
    ),
    "wall_colour": (
        "colour the walls {c}",
        "the border becomes {c}",
        "switch the walls to {c}",
        "recolour the border {c}",
        "give the walls a {c} coat",
    ),
}

TEXT_STARTS: tuple[str, ...] = (
    "a ball bounces",
    "night, two balls",
    "day, clear sky, one red ball, grey walls",
    "rain, blue walls",
    "snow at night, three green balls",
    "day, snow, two pink balls, brown walls",
    "night, rain, one cyan ball, orange walls",
    "an empty arena",
)


def scene_asked(caption: str, seen: dict[str, Any]) -> list[bool]:
    """For each thing ``caption`` asks of a scene (as the engine parses it,
    :func:`world.games.captions.parse_prompt`), whether ``seen`` (:func:`detect_events` of a
    frame) shows it."""
    p = parse_prompt(caption)
    checks = []
    if p.time is not None:
        checks.append(seen["is_night"] == (p.time == "night"))
    if p.weather is not None:
        checks.append(seen["weather"] == p.weather)
    if p.ball_count is not None:
        checks.append(seen["ball_count"] == p.ball_count)
    if p.ball_colour is not None:
        checks.append(seen["ball_colour"] == p.ball_colour)
    if p.wall_colour is not None:
        checks.append(seen["wall_colour"] == p.wall_colour)
    return checks


class Steppable(Protocol):
    """What the scorecard drives: ``sdk.Session``'s ``reset`` and ``step``, returning chunks
    with ``frames`` (F, H, W, 3) uint8."""

    def reset(
        self,
        *,
        prompt: str | None = None,
        image: np.ndarray | None = None,
        video: np.ndarray | None = None,
        seed: int | None = None,
    ) -> Any: ...

    def step(self, action: Any = None, *, prompt: str | None = None) -> Any: ...


@dataclass(frozen=True)
class ScorecardConfig:
    episodes: int = 16  # play-like rollouts of ``horizon`` ticks (and half as many per key test)
    horizon: int = 16  # ticks per rollout
    long_ticks: int = 1000  # ticks of the long rollout (0: skip it)
    prompt_trials: int = 48  # per phrasing set (training templates, held-out phrasings)
    seed: int = SEED  # first held-out seed


def held_out_prompt(rng: np.random.Generator, kind: str, state: Any) -> str:
    """A held-out phrasing of event ``kind`` that changes ``state``."""
    text = HELD_OUT_PROMPTS[kind][int(rng.integers(len(HELD_OUT_PROMPTS[kind])))]
    if "{c}" in text:
        now = state.ball_colour if kind == "ball_colour" else state.wall_colour
        choices = [c for c in COLOUR_NAMES if c != now]
        return text.format(c=choices[int(rng.integers(len(choices)))])
    return text.format(w=state.weather) if "{w}" in text else text


def bolt_shown(frame: np.ndarray) -> bool:
    """A bolt on the frame: at least 3 pixels of its magenta (a bolt is 2x4)."""
    return int((classify(frame) == LABELS.index("projectile")).sum()) >= 3


def event_seen(kind: str, truth: Any, frames: np.ndarray) -> bool:
    """Whether any of ``frames`` shows event ``kind`` as the engine's state ``truth`` has it."""
    for fr in frames:
        d = detect_events(fr)
        if kind in ("day", "night") and d["is_night"] == truth.night:
            return True
        if kind in ("clear", "rain", "snow") and d["weather"] == truth.weather:
            return True
        if kind == "spawn" and d["ball_count"] == len(truth.balls):
            return True
        if kind == "ball_colour" and d["ball_colour"] == truth.ball_colour:
            return True
        if kind == "wall_colour" and d["wall_colour"] == truth.wall_colour:
            return True
    return False


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR capped at 60 dB (equal frames would average to infinity)."""
    return min(psnr(a, b), 60.0)


def _near(a: tuple[float, float] | None, b: tuple[float, float] | None, tol: float) -> bool:
    return a is not None and b is not None and float(np.hypot(a[0] - b[0], a[1] - b[1])) <= tol


class _Pair:
    """A session and the engine, started alike and stepped alike."""

    def __init__(self, session: Steppable, frame_size: int, chunk_frames: int, history: int):
        self.session, self.f, self.k = session, chunk_frames, history
        self.config = GameConfig.for_size(frame_size)

    def start(self, seed: int) -> Game:
        game = Game(self.config)
        game.reset(seed)
        video = np.stack([game.step(0) for _ in range(self.k * self.f)])
        self.session.reset(video=video, seed=seed)
        return game

    def tick(self, game: Game, ids: Sequence[int] | np.ndarray, prompt: str | None = None):
        """(engine frames, model frames, seconds the model took) of one tick."""
        if prompt is not None:
            game.apply_prompt(prompt)
        true = np.stack([game.step(int(a)) for a in ids])
        t0 = time.perf_counter()
        chunk = self.session.step([ACTIONS[int(a)] for a in ids], prompt=prompt)
        return true, np.asarray(chunk.frames), time.perf_counter() - t0


def _strip(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Model frames above engine frames, one column per sampled tick, 2 px gaps."""
    cols = []
    for gen, true in pairs:
        gap = np.full((2, gen.shape[1], 3), 255, np.uint8)
        cols.append(np.concatenate([gen, gap, true], 0))
        cols.append(np.full((cols[-1].shape[0], 2, 3), 255, np.uint8))
    return np.concatenate(cols[:-1], 1)


def scorecard(
    session: Steppable,
    *,
    frame_size: int,
    chunk_frames: int,
    history_chunks: int,
    config: ScorecardConfig | None = None,
    out: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every line of :data:`BAR` on ``session``; returns ``{"lines": {name: {value,
    bar, met}}, ...details}`` and, with ``out``, writes ``long_rollout.png`` there."""
    sc = config or ScorecardConfig()
    f, h = chunk_frames, sc.horizon
    pair = _Pair(session, frame_size, chunk_frames, history_chunks)
    say = progress or (lambda _: None)
    v: dict[str, Any] = {}

    # 1. play-like rollouts: following, balls, bolts, PSNR against copy-last
    follow: list[bool] = []
    bolts: list[bool] = []
    ball_hits = np.zeros((sc.episodes, h, f), bool)
    # each line per unit it is measured on (rollout, start, trial): world/eval/compare.py
    units: dict[str, list[float]] = {"following": [], "bolt": []}
    ps, cl = np.zeros((sc.episodes, h)), np.zeros((sc.episodes, h))
    for e in range(sc.episodes):
        say(f"rollout {e + 1}/{sc.episodes}")
        seed = sc.seed + e
        game = pair.start(seed)
        last = game.render()
        seen_bolts = len(bolts)
        acts = play_like_actions(np.random.default_rng(seed + 17), h * f)
        for t in range(h):
            true, gen, _ = pair.tick(game, acts[t * f : (t + 1) * f])
            ps[e, t] = _psnr(gen, true)
            cl[e, t] = _psnr(np.broadcast_to(last, true.shape), true)
            last = true[-1]
            for i in range(f):
                follow.append(_near(find_player(gen[i]), find_player(true[i]), 2.0))
                dt, dg = detect_events(true[i]), detect_events(gen[i])
                ball_hits[e, t, i] = dg["ball_count"] == dt["ball_count"]
                if bolt_shown(true[i]):
                    bolts.append(bolt_shown(gen[i]))
        units["following"].append(float(np.mean(follow[-h * f :])))
        units["bolt"].append(float(sum(bolts[seen_bolts:])))  # frames drawn, of the engine's
    v["following"] = float(np.mean(follow))
    v["balls_mean16"] = float(ball_hits.mean())
    v["balls_tick16"] = float(ball_hits[:, -1].mean())
    v["bolt"] = float(np.mean(bolts)) if bolts else float("nan")
    v["psnr_tick1"] = float(ps[:, 0].mean())
    v["psnr_mean16"] = float(ps.mean())
    v["beats_copy_last"] = float(bool(np.all(ps.mean(0) > cl.mean(0))))
    units["balls_mean16"] = ball_hits.mean(axis=(1, 2)).tolist()
    units["balls_tick16"] = ball_hits[:, -1].mean(axis=1).tolist()
    units["psnr_tick1"] = ps[:, 0].tolist()
    units["psnr_mean16"] = ps.mean(1).tolist()
    details: dict[str, Any] = {
        "balls_per_tick": ball_hits.mean(axis=(0, 2)).round(3).tolist(),
        "psnr_per_tick": ps.mean(0).round(2).tolist(),
        "copy_last_per_tick": cl.mean(0).round(2).tolist(),
        "bolt_frames": len(bolts),
    }

    # 2. keys: idle and alternating, from held-out starts
    tests = {
        "idle": (["noop"] * f, 1.0),
        "alternating_lr": (["left", "right"] * f, 2.0),
        "alternating_ud": (["up", "down"] * f, 2.0),
    }
    for name, (pattern, tol) in tests.items():
        say(name)
        ids = [ACTIONS.index(a) for a in pattern[:f]]
        ok = []
        for e in range(max(sc.episodes // 2, 1)):
            game = pair.start(sc.seed + 1000 + e)
            for _ in range(h):
                true, gen, _ = pair.tick(game, ids)
                ok += [
                    _near(find_player(g), find_player(t), tol)
                    for g, t in zip(gen, true, strict=True)
                ]
            units.setdefault(name, []).append(float(np.mean(ok[-h * f :])))
        v[name] = float(np.mean(ok))

    # 3. prompts: training templates and held-out phrasings, each at the first generated tick
    clean_tick1 = v["psnr_tick1"]
    wreck_free = []
    for phrasing, draw in (("prompts_train", event_prompt), ("prompts_heldout", held_out_prompt)):
        say(phrasing)
        rng = np.random.default_rng(sc.seed)
        hits = []
        for trial in range(sc.prompt_trials):
            seed = sc.seed + 10_000 + trial
            game = pair.start(seed)
            kinds = possible_events(game.state(), game.config.max_balls)
            kind = kinds[trial % len(kinds)]
            prompt = draw(rng, kind, game.state())
            acts = play_like_actions(np.random.default_rng(seed + 17), 2 * f)
            true, gen, _ = pair.tick(game, acts[:f], prompt)
            true2, gen2, _ = pair.tick(game, acts[f:])
            hits.append(event_seen(kind, game.state(), np.concatenate([gen, gen2])))
            wreck_free.append(
                find_player(gen[-1]) is not None and _psnr(gen, true) >= clean_tick1 - 3.0
            )
        v[phrasing] = float(np.mean(hits))
        units[phrasing] = [float(x) for x in hits]
    v["prompt_wreck_free"] = float(np.mean(wreck_free))
    units["prompt_wreck_free"] = [float(x) for x in wreck_free]

    # 4. text starts: the player at tick 0 and after 4 ticks of play; the scene asked for
    say("text starts")
    shown, asked = [], []
    for i, caption in enumerate(TEXT_STARTS):
        seed = sc.seed + 3000 + i
        first = np.asarray(session.reset(prompt=caption, seed=seed).frames)[-1]
        acts = play_like_actions(np.random.default_rng(seed), 4 * f)
        for t in range(4):
            later = session.step([ACTIONS[int(a)] for a in acts[t * f : (t + 1) * f]])
        last = np.asarray(later.frames)[-1]
        shown.append(find_player(first) is not None and find_player(last) is not None)
        asked += scene_asked(caption, detect_events(first))
    v["text_start_player"] = float(np.mean(shown))
    v["text_start_scene"] = float(np.mean(asked))
    units["text_start_player"] = [float(x) for x in shown]
    units["text_start_scene"] = [float(x) for x in asked]
    details["text_start_scene_checks"] = len(asked)

    # 5. the long rollout: balls per 100-tick window, wall colour and time of day, pace
    if sc.long_ticks:
        seed = sc.seed + 2000
        game = pair.start(seed)
        acts = play_like_actions(np.random.default_rng(seed + 17), sc.long_ticks * f)
        counts, kept, spent, picked = [], [], 0.0, []
        every = max(sc.long_ticks // 20, 1)
        for t in range(sc.long_ticks):
            if t % 50 == 0:
                say(f"long rollout tick {t}/{sc.long_ticks}")
            true, gen, sec = pair.tick(game, acts[t * f : (t + 1) * f])
            spent += sec
            dg, dt = detect_events(gen[-1]), detect_events(true[-1])
            counts.append((dg["ball_count"], dt["ball_count"]))
            kept.append(dg["wall_colour"] == dt["wall_colour"] and dg["is_night"] == dt["is_night"])
            if t % every == every - 1:
                picked.append((gen[-1], true[-1]))
        c = np.asarray(counts, float)
        windows = [
            (float(c[i : i + 100, 0].mean()), float(c[i : i + 100, 1].mean()))
            for i in range(0, len(c), 100)
        ]
        v["long_balls"] = max(abs(a - b) for a, b in windows)
        v["long_wall_kept"] = float(np.mean(kept))
        v["fps"] = sc.long_ticks * f / spent
        details["long_ball_windows"] = [[round(a, 2), round(b, 2)] for a, b in windows]
        if out is not None:
            import imageio.v3 as iio

            out.mkdir(parents=True, exist_ok=True)
            iio.imwrite(out / "long_rollout.png", _strip(picked))

    lines = {}
    for name, (bar, sense) in BAR.items():
        if name in v:
            value = v[name]
            met = bool(value >= bar) if sense == "min" else bool(value <= bar)
            lines[name] = {"value": round(float(value), 4), "bar": bar, "met": met}
    return {
        "lines": lines,
        "met": sum(x["met"] for x in lines.values()),
        **details,
        "trials": asdict(sc),
        "units": {k: [round(x, 4) for x in u] for k, u in units.items() if k in lines},
    }
