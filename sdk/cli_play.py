"""``chunkworld play`` and ``chunkworld replay``: play a world in a pygame window, and replay an
action log bit for bit (its video, a check against recorded frames, or play on from a tick). The
parser is ``sdk/cli.py``'s."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sdk import cli_common


def cmd_play(args: argparse.Namespace) -> int:
    import os

    from sdk.media import read_image, read_video
    from sdk.play import LoggedSession, PlayOptions, Start, check_display, play

    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    check_display()  # before loading the model: say at once when there is no window to open
    if args.record:
        cli_common.check_output_path(args.record, "play --record")
    image = read_image(args.image) if args.image else None
    video = read_video(args.video) if args.video else None
    with cli_common.open_session(args, args.seed) as s:
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
        cli_common.check_output_path(args.out, "replay --out")
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
        pixel_history=log.pixel_history,
        palette=log.palette,
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
