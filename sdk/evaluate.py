"""``chunkworld eval``: the scorecard of a model, measured through ``Session`` as users drive it.

::

    chunkworld eval --model default --out runs/eval
    chunkworld eval --model runs/arcade/model --episodes 8 --long-ticks 300   # quicker
    chunkworld eval --model runs/catch/model --game samples.catch_game:Catch  # any game

A game other than the arcade is scored on what the game protocol allows
(``world/eval/gamecard.py``: PSNR per horizon with copy-last, key following, objects, held-out
prompts, as far as the game offers ``player``, ``objects`` and ``held_out_prompts``).

It loads the model into a :class:`sdk.Session` at its play setting (or ``--steps``), hands the
session to :func:`world.eval.scorecard.scorecard` with the true arcade engine beside it, prints
one line per bar line (value, bar, met) and writes ``<out>/scorecard.json`` and
``<out>/long_rollout.png`` (model frames above the engine's, 20 ticks of the long rollout).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sdk.cli_common import PRECISIONS
from sdk.errors import ChunkworldError


def main(argv: Sequence[str] | None = None) -> int:
    from world.eval.scorecard import ScorecardConfig, line_sense, scorecard

    p = argparse.ArgumentParser(
        prog="chunkworld eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--model", default="default", help="'default' or a model directory")
    p.add_argument("--out", default="runs/eval", help="where scorecard.json and the strip go")
    p.add_argument("--episodes", type=int, default=16, help="play-like rollouts (default 16)")
    p.add_argument("--horizon", type=int, default=16, help="ticks per rollout (default 16)")
    p.add_argument("--long-ticks", type=int, default=1000, help="long rollout ticks (0: skip)")
    p.add_argument("--prompt-trials", type=int, default=48, help="per phrasing set (default 48)")
    p.add_argument(
        "--game", default="arcade", help="the true game: 'arcade' or package.module:ClassName"
    )
    p.add_argument("--steps", type=int, default=None, help="sampler steps (model's play setting)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument(
        "--prior-level",
        type=float,
        default=None,
        help="level unprompted chunks start from, the model's dynamics prior's guess noised to "
        "it; 0: pure noise (default: the model's)",
    )
    p.add_argument(
        "--pixel-history",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sessions cache each chunk as the encoding of its frames (default: the model's)",
    )
    p.add_argument(
        "--palette",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="frames snapped to the colours of the model's game (default: on where it keeps one)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 autocast where the CPU has native bf16 (play's setting); fp32: what a "
        "CPU without it plays (default: auto)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    for name in ("episodes", "horizon", "prompt_trials"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.long_ticks < 0:
        p.error("--long-ticks must be 0 (skip) or more")

    from sdk.session import Session

    try:
        session = Session.load(
            args.model,
            steps=args.steps,
            threads=args.threads,
            prior_level=args.prior_level,
            pixel_history=args.pixel_history,
            palette=args.palette,
            precision=args.precision,
        )
    except ChunkworldError as e:
        print(f"chunkworld eval: error ({e.code}): {e}", file=sys.stderr)
        return 2
    info = session.info
    out = Path(args.out)
    config = ScorecardConfig(
        episodes=args.episodes,
        horizon=args.horizon,
        long_ticks=args.long_ticks,
        prompt_trials=args.prompt_trials,
    )

    def say(text: str) -> None:
        if not args.quiet:
            print(f"  {text}", file=sys.stderr, flush=True)

    game = None
    if args.game != "arcade":
        from world.games import load_game

        try:
            game = load_game(args.game)
        except ValueError as e:
            session.close()
            print(f"chunkworld eval: error: {e}", file=sys.stderr)
            return 2
    with session:
        if game is not None:
            from world.eval.gamecard import game_scorecard

            card = game_scorecard(
                session,
                game,
                chunk_frames=info.chunk_frames,
                history_chunks=info.history_chunks,
                episodes=args.episodes,
                horizon=args.horizon,
                long_ticks=args.long_ticks,
                out=out,
            )
        else:
            card = scorecard(
                session,
                frame_size=info.frame_height,
                chunk_frames=info.chunk_frames,
                history_chunks=info.history_chunks,
                config=config,
                out=out,
                progress=say,
            )
    card["model"] = args.model
    card["setting"] = {"steps": info.steps, **vars(args)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "scorecard.json").write_text(json.dumps(card, indent=1))
    for name, line in card["lines"].items():
        if line["bar"] is None:
            print(f"{name:<20} {line['value']:>9.4g}")
            continue
        sense = ">=" if line_sense(name, line) == "min" else "<="
        mark = "met" if line["met"] else "SHORT"
        print(f"{name:<20} {line['value']:>9.4g}   bar {sense} {line['bar']:<6g} {mark}")
    print(f"{card['met']} of {len(card['lines'])} lines met; {out / 'scorecard.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
