"""A scripted agent through the gymnasium adapter: it finds the player in each observation and
walks it to the centre; the reward is minus the player's distance from the centre.

Where no player is visible (e.g. the random-weight ``tiny`` model) it patrols: right, down, left,
up, four ticks each. Prints one line per tick: the action, where the player was seen, the
reward, timing. ``--log`` writes the run's action log, which ``chunkworld replay`` plays back.

    python samples/agent.py --model tiny --ticks 12
    python samples/agent.py --ticks 60 --prompt "night, two balls" --out agent.gif --log agent.log.json
"""

from __future__ import annotations

import argparse

import numpy as np

from sdk import Session
from sdk.detect import find_player
from sdk.gym_env import ChunkworldEnv
from sdk.play import LoggedSession

PATROL = ["right", "down", "left", "up"]


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


def reward(frames: np.ndarray, info: dict) -> float:
    """Minus the player's distance from the centre in the chunk's last frame (-100 if unseen)."""
    seen = find_player(frames[-1])
    if seen is None:
        return -100.0
    h, w = frames.shape[1:3]
    return -float(np.hypot(seen[0] - w / 2, seen[1] - h / 2))


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
    parser.add_argument("--log", help="write the action log here (replay: chunkworld replay LOG)")
    args = parser.parse_args()

    with Session.load(args.model) as session:
        logged = LoggedSession(session)  # a session that writes down what is done to it
        env = ChunkworldEnv(session=logged, prompt=args.prompt, reward_fn=reward, max_ticks=None)
        names = list(session.info.actions)
        obs, info = env.reset(seed=args.seed)
        frames = [env.last_chunk.frames]
        for _ in range(args.ticks):
            action, seen = choose(obs, info["tick"])
            obs, r, terminated, truncated, info = env.step(names.index(action))
            frames.append(env.last_chunk.frames)
            where = "not seen" if seen is None else f"at ({seen[0]:.1f}, {seen[1]:.1f})"
            print(
                f"tick {info['tick']:4d}  {action:<5}  player {where:<16} reward {r:7.1f}  "
                f"{env.last_chunk.ms:6.1f} ms"
            )
        if args.out:
            from sdk.media import write_video

            write_video(args.out, np.concatenate(frames), fps=session.info.fps, scale=4)
            print(f"wrote {args.out}")
        if args.log:
            logged.log.save(args.log)
            print(f"wrote {args.log}")


if __name__ == "__main__":
    main()
