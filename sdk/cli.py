"""The ``chunkworld`` command: generate videos, inspect models, play, serve, and the tools of
training, evaluation and benchmarking (``chunkworld SUBCOMMAND --help`` for each manual)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdk import cli_common
from sdk.cli_help import (
    GENERATE_HELP,
    INFO_HELP,
    KEYS_HELP,
    MAIN_HELP,
    PLAY_HELP,
    REPLAY_HELP,
    SERVE_HELP,
)
from sdk.cli_play import cmd_play, cmd_replay
from sdk.cli_serve import cmd_keys, cmd_serve
from sdk.errors import ArgumentError, ChunkworldError

# Subcommands owned by other packages: argv after the name is handed to their main(argv).
DELEGATES: dict[str, tuple[str, str]] = {
    "train": (
        "sdk.train",
        "train a world from a game in one resumable command (chunkworld train --help)",
    ),
    "tune-decoder": (
        "world.train.decoder",
        "sharpen a trained model's decoder, its latents kept (chunkworld tune-decoder --help)",
    ),
    "train-prior": (
        "world.train.prior",
        "train a dynamics prior the sampler starts chunks from (chunkworld train-prior --help)",
    ),
    "openings": (
        "world.train.openings",
        "keep a model's openings, so its text starts hold a world (chunkworld openings --help)",
    ),
    "palette": (
        "world.train.palette",
        "keep the colours a model's game is drawn in, which its frames snap to (--help)",
    ),
    "eval": (
        "sdk.evaluate",
        "the scorecard: every bar line, through a Session, against the true game",
    ),
    "compare": ("world.eval.compare", "which scorecard lines two models differ on beyond chance"),
    "bench": ("world.eval.bench", "benchmark tick time and memory; 'bench bridge' for the bridge"),
    "data": (
        "world.train.datagen",
        "make datasets from the built-in game (chunkworld data --help)",
    ),
    "following": (
        "world.eval.following",
        "where action following fails: the player's error, broken down (chunkworld following -h)",
    ),
}


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _model_args(p: argparse.ArgumentParser, *, sampler: bool = True) -> None:
    p.add_argument(
        "--model",
        default="default",
        help="'default', a preset ('tiny' = random weights) or a checkpoint directory "
        "(default: %(default)s)",
    )
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    if sampler:
        p.add_argument(
            "--steps", type=int, default=None, help="Euler steps per chunk (model default)"
        )
        p.add_argument(
            "--in-flight",
            type=int,
            default=None,
            help="chunks denoised together; steps must be a multiple (model default)",
        )
        p.add_argument(
            "--prior-level",
            type=float,
            default=None,
            help="level unprompted chunks start from, the model's dynamics prior's guess "
            "noised to it; 0: pure noise (model default)",
        )
        p.add_argument(
            "--pixel-history",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="each chunk enters the KV cache as the encoding of its shown frames (model "
            "default)",
        )
        p.add_argument(
            "--palette",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="snap frames to the colours of the model's game (default: on where the model "
            "keeps a palette.json)",
        )
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        p.add_argument(
            "--precision",
            default="auto",
            choices=cli_common.PRECISIONS,
            help="auto: bf16 autocast where the CPU has native bf16 (default: %(default)s)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chunkworld", description=MAIN_HELP, formatter_class=_formatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser(
        "generate",
        help="roll out a world and write a gif/mp4",
        description=GENERATE_HELP,
        formatter_class=_formatter,
    )
    _model_args(g)
    start = g.add_mutually_exclusive_group()
    start.add_argument(
        "--image", metavar="PATH", help="start image (png/jpg/.npy), model frame size"
    )
    start.add_argument(
        "--video", metavar="PATH", help="start video (gif/.npy; mp4 needs imageio-ffmpeg)"
    )
    start.add_argument("--restore", metavar="PATH", help="start from a snapshot file")
    g.add_argument("--prompt", default="", help="caption at the start ('' = null caption)")
    g.add_argument(
        "--prompt-at",
        action="append",
        default=[],
        metavar="TICK:CAPTION",
        help="change the caption at a tick (repeatable), e.g. 12:night",
    )
    g.add_argument(
        "--actions", default="", metavar="SCRIPT", help="action script or .json file (see above)"
    )
    g.add_argument(
        "--ticks",
        type=int,
        default=None,
        help="steps after the start (default: length of the script, or 32)",
    )
    g.add_argument("--seed", type=int, default=0, help="RNG seed (default: %(default)s)")
    g.add_argument("--scale", type=int, default=1, help="upscale the output by this factor")
    g.add_argument("--out", required=True, metavar="PATH", help="output .gif, .mp4 or .npy")
    g.add_argument("--save-snapshot", metavar="PATH", help="save the final world state here")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_generate)

    i = sub.add_parser(
        "info",
        help="model card, action space, chunk size, fps",
        description=INFO_HELP,
        formatter_class=_formatter,
    )
    _model_args(i, sampler=False)
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "play",
        help="play interactively in a pygame window",
        description=PLAY_HELP,
        formatter_class=_formatter,
    )
    _model_args(p)
    p.add_argument("--prompt", default="", help="caption of the world (with any start)")
    pstart = p.add_mutually_exclusive_group()
    pstart.add_argument("--image", metavar="PATH", help="start image (model frame size)")
    pstart.add_argument("--video", metavar="PATH", help="start video (gif/.npy/mp4)")
    pstart.add_argument("--restore", metavar="PATH", help="start from a snapshot file")
    p.add_argument("--seed", type=int, default=0, help="RNG seed (default: %(default)s)")
    p.add_argument("--scale", type=int, default=0, help="window pixels per frame pixel (0: auto)")
    p.add_argument("--max-ticks", type=int, default=None, help="quit after this many ticks")
    p.add_argument(
        "--record", metavar="PATH", help="record to a .gif/.mp4/.npy from the start (+ .log.json)"
    )
    p.add_argument("--save", metavar="PATH", help="snapshot file of F5 (save) and F9 (load)")
    p.add_argument(
        "--headless",
        action="store_true",
        help="no window: play offscreen (SDL dummy video driver), e.g. to record or test",
    )
    p.add_argument(
        "--unpaced",
        action="store_true",
        help="draw each frame as soon as it is made, faster than the world's fps if the model is",
    )
    p.set_defaults(func=cmd_play)

    r = sub.add_parser(
        "replay",
        help="replay an action log bit for bit; write its video or play on from a tick",
        description=REPLAY_HELP,
        formatter_class=_formatter,
    )
    r.add_argument("log", help="an action log (.log.json, written by play --record)")
    r.add_argument("--out", metavar="PATH", help="write the replayed frames (.gif/.mp4/.npy)")
    r.add_argument(
        "--check",
        metavar="FRAMES",
        help="compare with recorded frames (.npy): exit 1 if any differ",
    )
    r.add_argument("--until", type=int, default=None, help="stop after the step of this tick")
    r.add_argument("--play", action="store_true", help="then play on from there in a window")
    r.add_argument("--headless", action="store_true", help="with --play: no window (tests)")
    r.add_argument("--max-ticks", type=int, default=None, help="with --play: quit after these")
    r.add_argument("--scale", type=int, default=1, help="upscale --out by this factor")
    r.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    r.set_defaults(func=cmd_replay)

    s = sub.add_parser(
        "serve",
        help="serve worlds over the ZeroMQ bridge",
        description=SERVE_HELP,
        formatter_class=_formatter,
    )
    _model_args(s)
    s.add_argument(
        "--control", default="tcp://127.0.0.1:5555", help="ROUTER endpoint (default: %(default)s)"
    )
    s.add_argument(
        "--frames", default="tcp://127.0.0.1:5556", help="PUB endpoint (default: %(default)s)"
    )
    s.add_argument("--keys", metavar="DIR", help="CURVE key folder (chunkworld keys DIR)")
    s.add_argument("--insecure", action="store_true", help="allow non-loopback without CURVE")
    s.add_argument("--max-sessions", type=int, default=None, help="live sessions on the server")
    s.add_argument(
        "--idle-ttl", type=float, default=None, help="close sessions idle this many seconds"
    )
    s.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    s.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="host sessions on Ray actors: 'auto', HOST:PORT, or none (RAY_ADDRESS, else a Ray "
        "started here); needs chunkworld[cluster]",
    )
    s.add_argument("--ray-workers", type=int, default=None, help="with --ray: actors (one a node)")
    s.add_argument(
        "--record", metavar="DIR", help="keep clients' record requests in a dataset (train --data)"
    )
    s.set_defaults(func=cmd_serve)

    k = sub.add_parser(
        "keys",
        help="make CURVE keys for serving beyond loopback",
        description=KEYS_HELP,
        formatter_class=_formatter,
    )
    k.add_argument("dir", help="folder for the key files (created)")
    k.add_argument("--client-name", default="client", help="name of the client key pair")
    k.set_defaults(func=cmd_keys)

    for name, (_, text) in DELEGATES.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


# --- commands ---------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    cli_common.check_output_path(args.out, "generate --out")  # before the rollout, not after it
    if args.save_snapshot:
        folder = Path(args.save_snapshot).parent
        if not folder.is_dir():
            raise ArgumentError(
                f"generate --save-snapshot {args.save_snapshot}: folder {folder} does not exist"
            )
    import numpy as np
    from tqdm import tqdm

    from sdk.media import parse_actions, parse_prompt_at, read_image, read_video, write_video
    from sdk.snapshot import Snapshot

    script = parse_actions(args.actions) if args.actions else []
    prompts = parse_prompt_at(args.prompt_at)
    ticks = args.ticks if args.ticks is not None else (len(script) or 32)
    if ticks < 0:
        raise SystemExit("chunkworld generate: error: --ticks must be >= 0")
    with cli_common.open_session(args, args.seed) as s:
        if args.restore:
            s.restore(Snapshot.load(args.restore))
            first = None
            if args.prompt:
                s.set_prompt(args.prompt)
        else:
            image = read_image(args.image) if args.image else None
            video = read_video(args.video) if args.video else None
            first = s.reset(prompt=args.prompt, image=image, video=video, seed=args.seed)
            if s.opening is not None and not args.quiet:
                print(f"text start: opening {s.opening[0]}, {s.opening[1]!r}", file=sys.stderr)
        frames = [first.frames] if first is not None else []
        actions = [script[i] if i < len(script) else None for i in range(ticks)]
        bar = tqdm(total=ticks, unit="tick", disable=args.quiet, file=sys.stderr)
        for chunk in s.stream(actions, prompts=prompts):
            frames.append(chunk.frames)
            bar.update(1)
            bar.set_postfix(ms=f"{chunk.ms:.0f}")
        bar.close()
        if args.save_snapshot:
            s.snapshot().save(args.save_snapshot)
        fps = s.info.fps
    if not frames:
        raise SystemExit("chunkworld generate: error: nothing to write (give --ticks > 0)")
    out = write_video(args.out, np.concatenate(frames), fps=fps, scale=args.scale)
    if not args.quiet:
        print(f"wrote {out} ({sum(len(f) for f in frames)} frames at {fps:g} fps)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from sdk.session import Session

    with Session.load(args.model, device=args.device) as s:
        info = s.info
        doc = {
            **s.describe(),
            "fingerprint": info.fingerprint,
            "trained": info.trained,
            "parameters": info.parameters,
            "action_latency_ticks": info.action_latency_ticks,
            "precision": info.precision,
            "prior_level": info.prior_level,
            "pixel_history": info.pixel_history,
            "palette": info.palette,
            "known_words": list(info.known_words),
            "card": info.card,
        }
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    print("\n".join(info_summary(info, args.model)))
    return 0


def info_summary(info: Any, model: str) -> list[str]:
    """A few readable lines about a model (``chunkworld info``): what a player and a script need,
    the card's headline figures and where the rest is; ``--json`` prints the full record."""
    params = sum(info.parameters.values())
    prior = f", prior level {info.prior_level:g}" if info.prior_level else ""
    lines = [
        f"model          {info.model}{'' if info.trained else '  (random weights, untrained)'}",
        f"fingerprint    {info.fingerprint}",
        f"frames         {info.frame_height}x{info.frame_width} RGB, {info.chunk_frames} per chunk "
        f"(one chunk per tick) at {info.fps:g} fps",
        "actions        " + ", ".join(f"{i}={n}" for i, n in enumerate(info.actions)),
        f"history        {info.history_chunks} chunks in the KV cache",
        f"sampler        {info.steps} step(s) per chunk, {info.in_flight} in flight{prior}, "
        f"precision {info.precision}",
        f"latency        an action shows {info.action_latency_ticks} tick(s) after it is given",
        f"prompt         up to {info.max_prompt_chars} characters"
        + (f"; knows {len(info.known_words)} words, spells others" if info.known_words else ""),
        f"parameters     {params:,} ("
        + ", ".join(f"{k} {v:,}" for k, v in info.parameters.items())
        + ")",
    ]
    shown = [
        *(["cached as shown (pixel history)"] if info.pixel_history else []),
        *(["pixels clearly a game colour drawn in it"] if info.palette else []),
    ]
    if shown:
        lines.insert(6, "frames out     " + "; ".join(shown))
    card = info.card.get("card", {})
    if card:
        step = info.card.get("step")
        made = f"{card.get('name', '')}, {card.get('date', '')}"
        lines.append(f"card           {made}" + (f", {step:,} training steps" if step else ""))
    ev = card.get("evaluation", {})
    said = _evaluated(ev.get("lines", {}))
    if said:
        lines.append(f"evaluated      {said}")
        if "evaluation_command" in card:
            lines.append(f"               ({card['evaluation_command']})")
    from world.core.checkpoint import checkpoint_dir  # imports torch: not at the parser's import

    where = checkpoint_dir(model)
    if (where / "MODEL_CARD.md").is_file():
        lines.append(f"model card     {where / 'MODEL_CARD.md'}")
    lines.append(f"full record    chunkworld info --model {model} --json")
    return lines


def _evaluated(score: dict[str, Any]) -> str:
    """A card's scorecard (``chunkworld eval``, kept in ``card.evaluation.lines``) in one line;
    "" when it has none."""
    v = {k: row["value"] for k, row in score.items() if isinstance(row, dict) and "value" in row}
    if not {"psnr_tick1", "psnr_mean16", "following", "idle", "prompts_train"} <= set(v):
        return ""
    return (
        f"PSNR {v['psnr_tick1']:.2f} / {v['psnr_mean16']:.2f} dB (1 / 16 ticks); following "
        f"{100 * v['following']:.1f}%, idle {100 * v['idle']:.1f}%, prompts "
        f"{100 * v['prompts_train']:.1f}%"
    )


def _delegate(command: str, rest: list[str]) -> int:
    module_name = DELEGATES[command][0]
    if command == "bench" and rest[:1] == ["bridge"]:
        module_name, rest = "bridges.bench", rest[1:]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        print(
            f"chunkworld {command}: {module_name} is not part of this installation yet",
            file=sys.stderr,
        )
        return 2
    result = module.main(rest)
    return int(result) if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chunkworld`` command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in DELEGATES:
        return _delegate(args_list[0], args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ChunkworldError as e:
        print(f"chunkworld {args.command}: error ({e.code}): {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
