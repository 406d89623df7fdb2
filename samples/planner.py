"""A planning agent: each tick it snapshots the world, imagines every candidate action held for
a few ticks, restores, and takes the action whose imagined future ends nearest a target.

The goal is read from the frames (``sdk.detect.find_player``): walk the built-in game's player to
a target point. ``--policy random`` is the baseline. Writes a video with the target marked and a
PNG plot of the distance to the target over time (the plot needs matplotlib).

    python samples/planner.py --seeds 100 101 102 --ticks 14 --out planner.gif --plot planner.png
    python samples/planner.py --policy random --seeds 100 101 102 --ticks 14
    python samples/planner.py --model tiny --ticks 2 --lookahead 1     # a quick try, no player
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import imageio.v3 as iio
import numpy as np

from sdk import Session
from sdk.detect import find_player

CANDIDATES = ("noop", "up", "down", "left", "right")


def distance(frame: np.ndarray, target: tuple[float, float]) -> float:
    """Pixels from the player to the target; the frame's diagonal when no player is seen."""
    seen = find_player(frame)
    if seen is None:
        return float(np.hypot(*frame.shape[:2]))
    return float(np.hypot(seen[0] - target[0], seen[1] - target[1]))


def plan(session: Session, target: tuple[float, float], lookahead: int) -> tuple[str, float]:
    """The candidate whose imagined ``lookahead`` ticks end nearest the target, and that
    distance. The world is restored after each imagined future: planning leaves no trace."""
    here = session.snapshot()
    best, best_d = CANDIDATES[0], float("inf")
    for action in CANDIDATES:
        for _ in range(lookahead):
            chunk = session.step(action)
        d = distance(chunk.last_frame, target)
        if d < best_d:  # ties keep the earlier candidate (noop first: do not wander)
            best, best_d = action, d
        session.restore(here)
    return best, best_d


@dataclass
class Episode:
    actions: list[str] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)  # (F, H, W, 3) per tick
    distances: list[float] = field(default_factory=list)  # after each tick, from the true frame


def run_episode(
    session: Session,
    *,
    policy: str,
    seed: int,
    ticks: int,
    lookahead: int,
    image: np.ndarray | None,
) -> tuple[Episode, tuple[float, float]]:
    """One episode from ``image`` (None: from the caption "day, one ball"); the target is drawn
    from the seed, inside the walls."""
    rng = np.random.default_rng(seed)
    size = session.info.frame_height
    target = (float(rng.uniform(0.2, 0.8) * size), float(rng.uniform(0.2, 0.8) * size))
    chunk = session.reset(
        image=image, seed=seed, prompt=None if image is not None else "day, one ball"
    )
    ep = Episode(frames=[chunk.frames], distances=[distance(chunk.last_frame, target)])
    for _ in range(ticks):
        if policy == "plan":
            action, _ = plan(session, target, lookahead)
        else:
            action = CANDIDATES[int(rng.integers(len(CANDIDATES)))]
        chunk = session.step(action)
        ep.actions.append(action)
        ep.frames.append(chunk.frames)
        ep.distances.append(distance(chunk.last_frame, target))
    return ep, target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="default", help="'default', 'tiny' or a checkpoint")
    parser.add_argument("--image", default="docs/start.png", help="start frame (model size)")
    parser.add_argument("--policy", choices=("plan", "random"), default="plan")
    parser.add_argument("--seeds", type=int, nargs="+", default=[100])
    parser.add_argument("--ticks", type=int, default=14)
    parser.add_argument("--lookahead", type=int, default=2, help="imagined ticks per candidate")
    parser.add_argument("--out", help="video of the first seed (.gif/.mp4), target in cyan")
    parser.add_argument("--plot", help="PNG plot of the distance to the target per tick")
    args = parser.parse_args()

    finals, curves = [], []
    with Session.load(args.model) as session:
        size = session.info.frame_height
        image = iio.imread(args.image)[..., :3]
        if image.shape != (size, size, 3):  # e.g. the tiny preset: start from a caption
            print(f"{args.image} is not {size}x{size}: starting from a caption instead")
            image = None
        for seed in args.seeds:
            ep, target = run_episode(
                session,
                policy=args.policy,
                seed=seed,
                ticks=args.ticks,
                lookahead=args.lookahead,
                image=image,
            )
            finals.append(ep.distances[-1])
            curves.append(ep.distances)
            print(
                f"seed {seed}: target ({target[0]:.0f}, {target[1]:.0f}), distance "
                f"{ep.distances[0]:.1f} -> {ep.distances[-1]:.1f} px, actions {' '.join(ep.actions)}"
            )
            if args.out and seed == args.seeds[0]:
                frames = np.concatenate(ep.frames).copy()
                x, y = (int(np.clip(v, 0, size - 1)) for v in target)
                frames[:, y, max(0, x - 2) : x + 3] = frames[:, max(0, y - 2) : y + 3, x] = (
                    0,
                    255,
                    255,
                )
                iio.imwrite(
                    args.out, frames, extension=".gif", duration=1000 / session.info.fps, loop=0
                )
                print(f"wrote {args.out}")
    print(f"{args.policy}: mean final distance {np.mean(finals):.1f} px over {len(finals)} seeds")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3))
        for seed, curve in zip(args.seeds, curves, strict=True):
            ax.plot(curve, label=f"seed {seed}")
        ax.set(xlabel="tick", ylabel="distance to target (px)", title=f"policy: {args.policy}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
