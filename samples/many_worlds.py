"""Evaluate a simple policy in many worlds at once, through the gymnasium vector env (all the
worlds step in one forward pass: ``sdk.SessionBatch``).

The policy walks the player toward the centre (``sdk.detect.find_player``; patrols where no
player is seen, as on the random-weight ``tiny`` model); the reward is minus the player's
distance from the centre (-100 when unseen). Each world plays episodes of ``--ticks`` ticks
(truncation, then autoreset). Prints each world's mean reward against a random policy's in the
same worlds (same seeds), and the generated frames per second of the whole run.

    python samples/many_worlds.py --model tiny --worlds 4 --ticks 3
    python samples/many_worlds.py --worlds 16 --ticks 40 --threads 2
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from sdk.detect import find_player
from sdk.gym_vector import ChunkworldVectorEnv

ACTIONS = ["noop", "up", "down", "left", "right"]


def reward(frames: np.ndarray, info: dict[str, Any]) -> float:
    seen = find_player(frames[-1])
    if seen is None:
        return -100.0
    h, w = frames.shape[1:3]
    return -float(np.hypot(seen[0] - w / 2, seen[1] - h / 2))


def toward_centre(frame: np.ndarray, tick: int, names: list[str]) -> int:
    """Step toward the centre along the farther axis; patrol when the player is not seen."""
    seen = find_player(frame)
    if seen is None:
        return names.index(["right", "down", "left", "up"][(tick // 4) % 4])
    dx, dy = frame.shape[1] / 2 - seen[0], frame.shape[0] / 2 - seen[1]
    if max(abs(dx), abs(dy)) < 2:
        return names.index("noop")
    if abs(dx) >= abs(dy):
        return names.index("right" if dx > 0 else "left")
    return names.index("down" if dy > 0 else "up")


def evaluate(envs: ChunkworldVectorEnv, policy: str, steps: int, seed: int) -> np.ndarray:
    """Mean reward per world over ``steps`` vector steps (autoreset steps not counted)."""
    names = list(envs.batch[0].info.actions)
    rng = np.random.default_rng(seed)
    obs, info = envs.reset(seed=seed)
    total, counted = np.zeros(envs.num_envs), np.zeros(envs.num_envs)
    fresh = np.zeros(envs.num_envs, dtype=bool)  # this step is an autoreset: no reward
    for _ in range(steps):
        if policy == "random":
            acts = rng.integers(0, len(names), envs.num_envs)
        else:
            acts = np.array(
                [toward_centre(o, int(t), names) for o, t in zip(obs, info["tick"], strict=True)]
            )
        obs, r, term, trunc, info = envs.step(acts)
        total += np.where(fresh, 0.0, r)
        counted += ~fresh
        fresh = term | trunc
    return total / np.maximum(counted, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="default", help="'default', 'tiny' or a directory")
    parser.add_argument("--worlds", type=int, default=16)
    parser.add_argument("--ticks", type=int, default=20, help="episode length (truncation)")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per world")
    parser.add_argument("--prompt", default="day, one ball")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    envs = ChunkworldVectorEnv(
        args.worlds, model=args.model, prompt=args.prompt, reward_fn=reward,
        max_ticks=args.ticks, threads=args.threads,
    )  # fmt: skip
    steps = args.episodes * (args.ticks + 1)  # + 1: the autoreset step after each episode
    chunk = envs.batch[0].info.chunk_frames
    started = time.perf_counter()
    ours = evaluate(envs, "centre", steps, args.seed)
    took = time.perf_counter() - started
    theirs = evaluate(envs, "random", steps, args.seed)
    envs.close()
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        print(f"world {i:3d}  toward centre {a:8.2f}   random {b:8.2f}")
    print(
        f"mean over {args.worlds} worlds: toward centre {ours.mean():.2f}, random {theirs.mean():.2f}"
    )
    print(f"{args.worlds * steps * chunk / took:.1f} generated frames/s ({args.worlds} worlds)")


if __name__ == "__main__":
    main()
