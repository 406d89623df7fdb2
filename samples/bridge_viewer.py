"""A bridge viewer: play a world served by `chunkworld serve`, or watch someone else's session,
in a pygame window. It imports no torch and no model: only `bridges` and pygame.

Keys: arrows/WASD move, space fire (whatever the server's action schema names), Enter types a
prompt (Enter sends it, Esc cancels), Esc quits. The title line shows the tick, the round trip
of each step as this client saw it, and the server's own time for the tick.

    chunkworld serve --model default &
    python samples/bridge_viewer.py                          # play on tcp://127.0.0.1:5555
    python samples/bridge_viewer.py --observe TOKEN   # watch a session read-only: its observer token
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import bridges
from bridges.client import Observer

KEYS = {"up": ("K_UP", "K_w"), "down": ("K_DOWN", "K_s"), "left": ("K_LEFT", "K_a")}
KEYS |= {"right": ("K_RIGHT", "K_d"), "fire": ("K_SPACE",)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5555")
    parser.add_argument(
        "--observe",
        metavar="TOKEN",
        help="watch the session whose observer token (RemoteSession.observer_token) this is",
    )
    parser.add_argument("--prompt", default="", help="caption of the world you play")
    parser.add_argument("--scale", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=None, help="quit after this many chunks")
    parser.add_argument("--headless", action="store_true", help="no window (SDL dummy driver)")
    args = parser.parse_args()
    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    with bridges.connect(args.endpoint, timeout_s=30) as session:
        facts = session.describe()
        actions: list[str] = facts["actions"]
        keymap = {
            getattr(pygame, k): actions.index(name)
            for name, keys in KEYS.items()
            if name in actions
            for k in keys
        }
        pygame.display.init()
        pygame.font.init()
        w, h = facts["frame_width"] * args.scale, facts["frame_height"] * args.scale
        screen = pygame.display.set_mode((max(w, 360), h + 20))
        font = pygame.font.Font(None, 18)
        observer = None
        if args.observe:  # someone else's session, on the frames endpoint our hello told us
            observer = Observer(session.frames_endpoint, args.observe, timeout_s=0.1)
        else:
            session.reset(prompt=args.prompt or None)
        held: list[int] = []
        typing: str | None = None
        shown = 0
        while args.chunks is None or shown < args.chunks:
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    return
                if event.type == pygame.KEYDOWN and typing is not None:
                    if event.key == pygame.K_RETURN:
                        session.set_prompt(typing)
                        typing = None
                    elif event.key == pygame.K_ESCAPE:
                        typing = None
                    elif event.key == pygame.K_BACKSPACE:
                        typing = typing[:-1]
                elif event.type == pygame.KEYDOWN:
                    if event.key == pygame.K_ESCAPE:
                        return
                    if event.key == pygame.K_RETURN and observer is None:
                        typing = ""
                    elif event.key in keymap:
                        held.append(event.key)
                elif event.type == pygame.KEYUP and event.key in held:
                    held.remove(event.key)
                elif event.type == pygame.TEXTINPUT and typing is not None:
                    typing += event.text
            sent = time.perf_counter()
            if observer is not None:
                chunk = observer.recv()
                if chunk is None:
                    continue
                action = "(watching)"
            else:
                action = actions[keymap[held[-1]]] if held else actions[0]
                chunk = session.step(action)
            trip = (time.perf_counter() - sent) * 1000
            shown += 1
            status = (
                f"tick {chunk.tick}  {action}  round trip {trip:.0f} ms  server {chunk.ms:.0f} ms"
            )
            if typing is not None:
                status = f"prompt> {typing}_"
            print(status)
            for frame in chunk.frames:  # paced at the world's fps
                image = pygame.surfarray.make_surface(
                    np.ascontiguousarray(frame.transpose(1, 0, 2))
                )
                screen.fill((0, 0, 0))
                screen.blit(pygame.transform.scale_by(image, args.scale), (0, 0))
                screen.blit(font.render(status, True, (255, 255, 255)), (4, h + 3))
                pygame.display.flip()
                time.sleep(1 / facts["fps"])
        if observer is not None:
            observer.close()


if __name__ == "__main__":
    main()
