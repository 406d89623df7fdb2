"""The ``chunkworld`` command: generate videos, inspect models, play, serve, and the tools of
training, evaluation and benchmarking (``chunkworld SUBCOMMAND --help`` for each manual)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sdk.cli_help import (
    GENERATE_HELP,
    INFO_HELP,
    KEYS_HELP,
    MAIN_HELP,
    PLAY_HELP,
    REPLAY_HELP,
    SERVE_HELP,
)
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
    "eval": (
        "sdk.evaluate",
        "the scorecard: every bar line, through a Session, against the true game",
    ),
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
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        p.add_argument(
            "--precision",
            default="auto",
            choices=(
                "auto",
                "fp32",
                "bf16",
            ),  # world.core.cpus.PRECISIONS; the parser imports no torch
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
VIDEO_SUFFIXES = (".gif", ".mp4", ".webm", ".mkv", ".npy")


def check_output_path(path: str, what: str) -> None:
    """Refuse an output path that cannot be written, before any work: an unknown extension, a
    folder that does not exist or is not writable, or a video type whose writer is missing."""
    import importlib.util
    import os

    out = Path(path)
    if out.is_dir():
        raise ArgumentError(
            f"{what} {path} is a folder; give a file name such as {out / 'run.gif'}"
        )
    suffix = out.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ArgumentError(
            f"{what} {path}: unknown output type {suffix or '(none)'!r}; end the name in "
            + ", ".join(VIDEO_SUFFIXES)
        )
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ArgumentError(f"{what} {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise ArgumentError(f"{what} {path}: folder {folder} is not writable; pick another")
    if suffix in (".mp4", ".webm", ".mkv") and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ArgumentError(
            f"{what} {path}: writing {suffix} needs imageio-ffmpeg, which the play extra "
            f"installs (pip install 'chunkworld[play]', or bash scripts/setup.sh); or write a .gif"
        )


def _session(args: argparse.Namespace, seed: int = 0) -> Any:
    import torch

    from sdk.session import Session
    from world.core.cpus import warn_if_busy

    session = Session.load(
        args.model,
        device=args.device,
        seed=seed,
        steps=args.steps,
        in_flight=args.in_flight,
        threads=args.threads,
        precision=args.precision,
        prior_level=args.prior_level,
    )
    warn_if_busy(torch.get_num_threads())
    return session


def cmd_generate(args: argparse.Namespace) -> int:
    check_output_path(args.out, "generate --out")  # before the rollout, not after it
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
    with _session(args, args.seed) as s:
        if args.restore:
            s.restore(Snapshot.load(args.restore))
            first = None
            if args.prompt:
                s.set_prompt(args.prompt)
        else:
            image = read_image(args.image) if args.image else None
            video = read_video(args.video) if args.video else None
            first = s.reset(prompt=args.prompt, image=image, video=video, seed=args.seed)
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
        f"prompt         up to {info.max_prompt_chars} characters",
        f"parameters     {params:,} ("
        + ", ".join(f"{k} {v:,}" for k, v in info.parameters.items())
        + ")",
    ]
    card = info.card.get("card", {})
    if card:
        step = info.card.get("step")
        made = f"{card.get('name', '')}, {card.get('date', '')}"
        lines.append(f"card           {made}" + (f", {step:,} training steps" if step else ""))
    ev = card.get("evaluation", {})
    if {"psnr_1_db", "psnr_avg16_db", "action_following", "prompt_success"} <= set(ev):
        lines.append(
            f"evaluated      PSNR {ev['psnr_1_db']:.2f} dB one chunk ahead, "
            f"{ev['psnr_avg16_db']:.2f} over 16; following {100 * ev['action_following']:.1f}%, "
            f"prompts {100 * ev['prompt_success']:.1f}%"
        )
        if "evaluation_command" in card:
            lines.append(f"               ({card['evaluation_command']})")
    from sdk.models import DEFAULT_DIR  # imports torch: not at the parser's import

    where = DEFAULT_DIR if model == "default" else Path(model)
    if (where / "MODEL_CARD.md").is_file():
        lines.append(f"model card     {where / 'MODEL_CARD.md'}")
    lines.append(f"full record    chunkworld info --model {model} --json")
    return lines


def cmd_play(args: argparse.Namespace) -> int:
    import os

    from sdk.media import read_image, read_video
    from sdk.play import LoggedSession, PlayOptions, Start, check_display, play

    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    check_display()  # before loading the model: say at once when there is no window to open
    if args.record:
        check_output_path(args.record, "play --record")
    image = read_image(args.image) if args.image else None
    video = read_video(args.video) if args.video else None
    with _session(args, args.seed) as s:
        start: Start | None = Start(prompt=args.prompt, seed=args.seed, image=image, video=video)
        log = None
        if args.restore:  # play on from the snapshot; the log starts with loading it
            run = LoggedSession(s)
            run.load(args.restore)
            if args.prompt:
                run.set_prompt(args.prompt)
            start, log = None, run.log
        ticks = play(
            s,
            PlayOptions(
                start=start,
                scale=args.scale,
                max_ticks=args.max_ticks,
                record=args.record,
                save=args.save,
                log=log,
                paced=not args.unpaced,
            ),
        )
    print(f"played {ticks} ticks", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import os

    import numpy as np

    from sdk.media import write_video
    from sdk.play import ActionLog, PlayOptions, check_display, play, replay
    from sdk.session import Session

    if args.out:
        check_output_path(args.out, "replay --out")
    if args.play:
        if args.headless:
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        check_display()
    log = ActionLog.load(args.log)
    with Session.load(
        log.model,
        device=args.device,
        steps=log.steps,
        in_flight=log.in_flight,
        precision=log.precision,
        prior_level=log.prior_level,
    ) as s:
        chunks = list(replay(s, log, until=args.until))
        frames = np.concatenate([c.frames for c in chunks]) if chunks else None
        last = chunks[-1].tick if chunks else None
        print(f"replayed {len(chunks)} chunks of {args.log}, last tick {last}", file=sys.stderr)
        if args.out and frames is not None:
            write_video(args.out, frames, fps=s.info.fps, scale=args.scale)
            print(f"wrote {args.out}", file=sys.stderr)
        if args.check:
            want = np.load(args.check, allow_pickle=False)
            if frames is None or want.shape != frames.shape:
                got = None if frames is None else frames.shape
                print(f"replay differs: {got} frames against {want.shape}", file=sys.stderr)
                return 1
            bad = np.flatnonzero((want != frames).reshape(len(want), -1).any(axis=1))
            if len(bad):
                print(f"replay differs from frame {bad[0]} on ({len(bad)} frames)", file=sys.stderr)
                return 1
            print(f"identical: {len(want)} frames, bit for bit", file=sys.stderr)
        if args.play:
            if args.until is not None:  # the branch: the log up to the tick, then the player's
                log.events = log.events[: _events_until(log, args.until)]
            play(s, PlayOptions(start=None, log=log, max_ticks=args.max_ticks))
    return 0


def _events_until(log: Any, tick: int) -> int:
    """How many of the log's events a replay ``until`` ``tick`` runs (that step included)."""
    current = -1
    for n, event in enumerate(log.events):
        if event["op"] == "reset":
            current = 0
        elif event["op"] == "step":
            current += 1
            if current >= tick:
                return n + 1
    return len(log.events)


def session_factory(args: argparse.Namespace) -> Callable[[dict[str, Any]], Any]:
    """One model loaded once; each client's ``hello`` options make a Session on it."""
    from sdk.models import load_model
    from sdk.session import Session

    loaded = load_model(args.model, device=args.device)
    # every hello option is an int in these bounds (advertised in the hello reply's limits)
    bounds = {"seed": (0, 2**63 - 1), "steps": (1, 64), "in_flight": (1, 8)}

    def factory(options: dict[str, Any]) -> Session:
        unknown = sorted(set(options) - set(bounds))
        if unknown:
            raise ValueError(f"unknown session options {unknown}; allowed: {sorted(bounds)}")
        for key, value in options.items():
            low, high = bounds[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"option {key!r} must be an int in {low}..{high}, got {value!r}")
        return Session(
            loaded,
            seed=options.get("seed", 0),
            steps=options.get("steps", args.steps),
            in_flight=options.get("in_flight", args.in_flight),
            precision=args.precision,
            prior_level=args.prior_level,
        )

    factory.option_bounds = bounds  # type: ignore[attr-defined]
    from sdk.batch import step_together  # clients ready together step in one pass

    factory.step_many = step_together  # type: ignore[attr-defined]
    factory.model_config = loaded.model.cfg  # type: ignore[attr-defined]
    return factory


def cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses
    import logging

    import torch
    import zmq

    from bridges.limits import ServerLimits
    from bridges.server import BindError, check_bind, serve
    from sdk.serve_threads import apply_serve_threads
    from world.core.cpus import warn_if_busy

    try:  # a refused bind is one line, before the model loads
        check_bind(args.control, args.frames, curve_keys_dir=args.keys, insecure=args.insecure)
    except BindError as exc:
        print(f"chunkworld serve: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        apply_serve_threads(args.threads)  # 1 unless --threads: the server's threads need a core
    except ArgumentError as exc:
        print(f"chunkworld serve: error: {exc}", file=sys.stderr)
        return 2
    warn_if_busy(torch.get_num_threads())
    limits = ServerLimits()
    changes = {
        k: v
        for k, v in (("max_sessions", args.max_sessions), ("idle_ttl_s", args.idle_ttl))
        if v is not None
    }
    limits = dataclasses.replace(limits, **changes)
    if args.ray is not None:  # calls wait on their actors: as many engine threads as sessions
        limits = dataclasses.replace(limits, engine_threads=limits.max_sessions)
    if args.ray is not None and args.record:
        print(
            "chunkworld serve: error: --record keeps a local model's sessions; drop --ray or --record",
            file=sys.stderr,
        )
        return 2
    try:
        if args.ray is None:
            factory = session_factory(args)
        else:
            from sdk.cluster import serve_factory

            factory = serve_factory(args)
    except (ImportError, RuntimeError, ConnectionError) as e:  # no ray; no cluster; no actors
        print(f"chunkworld serve: error: {e}", file=sys.stderr)
        return 2
    sink = None
    if args.record:
        from sdk.record_sink import DatasetSink

        try:
            sink = DatasetSink(args.record, factory.model_config, args.model)  # type: ignore[attr-defined]
        except (ValueError, OSError) as e:
            print(f"chunkworld serve: error: --record {args.record}: {e}", file=sys.stderr)
            return 2
    try:
        serve(
            factory,
            record_sink=sink,
            control=args.control,
            frames=args.frames,
            curve_keys_dir=args.keys,
            insecure=args.insecure,
            limits=limits,
        )
    except zmq.ZMQError as e:  # a busy port or an address this machine does not have
        reason = zmq.strerror(e.errno) if e.errno is not None else str(e)
        print(
            f"chunkworld serve: error: cannot bind {args.control} / {args.frames} ({reason}); "
            f"stop the program using it or pick free ports with --control and --frames",
            file=sys.stderr,
        )
        return 2
    except ValueError as e:  # a non-loopback endpoint without keys or --insecure
        print(f"chunkworld serve: error: {e}", file=sys.stderr)
        return 2
    finally:
        getattr(factory, "shutdown", lambda: None)()  # Ray's actors
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from bridges.keys import generate_keys

    for role, path in generate_keys(args.dir, client_name=args.client_name).items():
        print(f"{role:<14} {path}")
    return 0


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
