"""Drive a world over the bridge: hello, reset with a prompt, steps with held keys, save a GIF.

The keys come from the action schema the server sends in its hello (``describe()["actions"]``),
so the script works with any model: a key the world lacks is replaced by the world's first
action (its noop) and said so.

Start a server first (``chunkworld serve``), then:

    python samples/bridge_client.py                         # tcp://127.0.0.1:5555
    python samples/bridge_client.py tcp://127.0.0.1:7000 --ticks 8 --out run.gif
"""

import argparse

import imageio.v3 as iio
import numpy as np

import bridges

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5555")
parser.add_argument("--ticks", type=int, default=20, help="steps after the reset")
parser.add_argument("--prompt", default="day, one ball")
parser.add_argument("--out", default="bridge_client.gif", help="where to write the GIF")
args = parser.parse_args()

with bridges.connect(args.endpoint, timeout_s=30) as session:  # hello; closes the session on exit
    facts = session.describe()  # the hello's model facts, among them the action schema
    actions: list[str] = facts["actions"]  # names; a name's index is its id
    print(f"{facts['model']}: {facts['frame_width']}x{facts['frame_height']}, actions {actions}")

    def key(name: str) -> str:
        """``name`` if this world has it, else its first action (by convention the noop)."""
        if name in actions:
            return name
        print(f"this world has no {name!r} action; holding {actions[0]!r} instead")
        return actions[0]

    # one key held per chunk: half the ticks right, a quarter fire, a quarter left
    half, quarter = args.ticks // 2, args.ticks // 4
    held = [key("right")] * half + [key("fire")] * quarter
    held += [key("left")] * (args.ticks - len(held))
    chunks = [session.reset(prompt=args.prompt, seed=0)]
    for name in held:
        chunk = session.step(name)
        print(
            f"tick {chunk.tick}: {name}, action lands at tick {chunk.action_tick}, {chunk.ms:.1f} ms"
        )
        chunks.append(chunk)
frames = np.concatenate([c.frames for c in chunks])  # (T, H, W, 3) uint8
iio.imwrite(args.out, frames, extension=".gif", duration=1000 / facts["fps"], loop=0)
print(f"saved {len(frames)} frames to {args.out}")
