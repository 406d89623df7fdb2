"""Interactive play in a pygame window (``chunkworld play``, ``samples/play.py``).

Keymap (held keys are sampled once per chunk)::

    arrows / WASD   move            space   fire
    P               pause / resume  N       one tick while paused
    R               reset           F5 / F9 quick-save / quick-load (a snapshot in memory)
    Esc / Q         quit

The window shows each chunk's frames at the model's fps; generation happens between chunks, so
on a slow machine the world runs slower than real time rather than skipping frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sdk.session import Session
from sdk.snapshot import Snapshot

MOVES = {
    "up": ("K_UP", "K_w"),
    "down": ("K_DOWN", "K_s"),
    "left": ("K_LEFT", "K_a"),
    "right": ("K_RIGHT", "K_d"),
    "fire": ("K_SPACE",),
}


@dataclass(frozen=True)
class PlayOptions:
    prompt: str = ""
    seed: int = 0
    scale: int = 0  # window pixels per frame pixel; 0 = fit about 512 pixels
    image: np.ndarray | None = None
    max_ticks: int | None = None  # stop after this many ticks (for demos and tests)


def held_action(pressed: Any, names: tuple[str, ...], pygame: Any) -> str:
    """The action for the keys held now: fire wins, then the first held direction, else noop."""
    for name in ("fire", "up", "down", "left", "right"):
        if name in names and any(pressed[getattr(pygame, k)] for k in MOVES[name]):
            return name
    return "noop"


def play(session: Session, options: PlayOptions | None = None) -> int:
    """Run the UI until the window is closed or Esc; returns the number of ticks played."""
    import pygame

    opts = options or PlayOptions()
    info = session.info
    scale = opts.scale or max(1, 512 // info.frame_height)
    pygame.init()
    screen = pygame.display.set_mode((info.frame_width * scale, info.frame_height * scale))
    clock = pygame.time.Clock()
    font = pygame.font.Font(None, 20)
    paused, single, ticks = False, False, 0
    saved: Snapshot | None = None
    chunk = session.reset(prompt=opts.prompt, seed=opts.seed, image=opts.image)
    try:
        while opts.max_ticks is None or ticks < opts.max_ticks:
            for event in pygame.event.get():
                if event.type == pygame.QUIT or (
                    event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q)
                ):
                    return ticks
                if event.type == pygame.KEYDOWN:
                    if event.key == pygame.K_p:
                        paused = not paused
                    elif event.key == pygame.K_n:
                        single = True
                    elif event.key == pygame.K_r:
                        chunk = session.reset(prompt=opts.prompt, seed=opts.seed, image=opts.image)
                    elif event.key == pygame.K_F5:
                        saved = session.snapshot()
                    elif event.key == pygame.K_F9 and saved is not None:
                        session.restore(saved)
            if not paused or single:
                single = False
                action = held_action(pygame.key.get_pressed(), info.actions, pygame)
                chunk = session.step(action)
                ticks += 1
            frames = chunk.frames if not paused else chunk.frames[-1:]
            for frame in frames:
                surface = pygame.surfarray.make_surface(
                    np.ascontiguousarray(frame.transpose(1, 0, 2))
                )
                screen.blit(pygame.transform.scale_by(surface, scale), (0, 0))
                status = f"tick {chunk.tick}  {chunk.ms:.0f} ms" + (
                    "  PAUSED (N: step)" if paused else ""
                )
                screen.blit(font.render(status, True, (255, 255, 255)), (4, 4))
                pygame.display.flip()
                clock.tick(info.fps)
        return ticks
    finally:
        pygame.display.quit()
