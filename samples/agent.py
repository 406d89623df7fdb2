"""A scripted agent: it finds the player in each chunk's last frame and walks it to the centre.

Where no player is visible (e.g. the random-weight ``tiny`` model) it patrols: right, down, left,
up, four ticks each. Prints one line per tick: the action, where the player was seen, timing.

    python samples/agent.py --model tiny --ticks 12
    python samples/agent.py --ticks 60 --prompt "night, two balls" --out agent.gif
"""

from __future__ import annotations

import argparse

import numpy as np

from sdk import Session

PATROL = ["right", "down", "left", "up"]
PLAYER_RGB = np.array((255, 220, 0), np.float32)  # the built-in arcade world's yellow player


def find_player(frame: np.ndarray) -> tuple[float, float] | None:
    """Centre ``(x, y)`` of the player-yellow pixels of an (H, W, 3) frame, or None if fewer
    than four; pixels farther than 8 px from their median are dropped as strays."""
    ys, xs = np.nonzero(((frame.astype(np.float32) - PLAYER_RGB) ** 2).sum(-1) <= 60.0**2)
    if len(xs) < 4:
        return None
    keep = (np.abs(xs - np.median(xs)) <= 8) & (np.abs(ys - np.median(ys)) <= 8)
    if keep.sum() < 4:
        return None
    return float(xs[keep].mean() + 0.5), float(ys[keep].mean() + 0.5)


def choose(frame: np.ndarray, tick: int) -> tuple[str, tuple[float, float] | None]:
    """Step toward the centre along the farther axis; patrol when the player is not found."""
    seen = find_player(frame)
    if seen is None:
        return PATROL[(tick // 4) % len(PATROL)], None
    dx, dy = frame.shape[1] / 2 - seen[0], frame.shape[0] / 2 - seen[1]
    if max(abs(dx), abs(dy)) < 2:
        return "noop", seen
    if abs(dx) >= abs(dy):
        return ("right" if dx > 0 else "left"), seen
    return ("down" if dy > 0 else "up"), seen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="default", help="'default', 'tiny' or a checkpoint directory"
    )
    parser.add_argument("--prompt", default="day, one ball")
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the rollout to a .gif")
    args = parser.parse_args()

    with Session.load(args.model, seed=args.seed) as session:
        chunk = session.reset(prompt=args.prompt)
        frames = [chunk.frames]
        for _ in range(args.ticks):
            action, seen = choose(chunk.last_frame, chunk.tick)
            chunk = session.step(action)
            frames.append(chunk.frames)
            where = "not seen" if seen is None else f"at ({seen[0]:.1f}, {seen[1]:.1f})"
            print(f"tick {chunk.tick:4d}  {action:<5}  player {where:<16} {chunk.ms:6.1f} ms")
        if args.out:
            from sdk.media import write_video

            write_video(args.out, np.concatenate(frames), fps=session.info.fps, scale=4)
            print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
