"""Drive a world over the bridge: hello, reset with a prompt, 20 steps with held keys, save a GIF.

Start a server first (`chunkworld serve`), then: python samples/bridge_client.py [ENDPOINT]
"""

import sys

import numpy as np

import bridges

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555"
with bridges.connect(endpoint, timeout_s=30) as session:  # hello; closes the session on exit
    facts = session.describe()
    print(
        f"{facts['model']}: {facts['frame_width']}x{facts['frame_height']}, actions {facts['actions']}"
    )
    chunks = [session.reset(prompt="a knight walks through a forest", seed=0)]
    held = ["right"] * 10 + ["jump"] * 5 + ["left"] * 5  # one key held per chunk
    for key in held:
        chunk = session.step(key)
        print(f"tick {chunk.tick}: action lands at tick {chunk.action_tick}, {chunk.ms:.1f} ms")
        chunks.append(chunk)
frames = np.concatenate([c.frames for c in chunks])  # (T, H, W, 3) uint8
try:
    import imageio.v3 as iio
except ImportError:
    print(f"{len(frames)} frames received; install imageio to save a GIF")
else:
    iio.imwrite("bridge_client.gif", frames, duration=1000 / facts["fps"], loop=0)
    print(f"saved {len(frames)} frames to bridge_client.gif")
