"""The play window (pygame): draws the engine's frames at the world's fps, reads the keys, and
shows what is going on.

Keys (also shown at the bottom of the window)::

    arrows / WASD  move          space  fire          0-9  action by id
    Enter          type a prompt (Enter applies it from the next tick, Esc cancels)
    P  pause       N  one tick while paused           R  reset
    F5 save the world to a file   F9 load it back     + / -  window scale
    F12 screenshot (PNG)          V  start / stop recording (video + action log + dataset)
    Esc / Q  quit

The HUD under the picture: the tick, the frames per second the model generates and the window
draws, the tick's compute time, the action held, the prompt in effect, and a red line when the
model is slower than real time (then the world runs slower, it never skips frames).
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ChunkworldError
from sdk.play.engine import Engine, Shown, Start, default_save_path
from sdk.play.log import ActionLog
from sdk.session import Session
from sdk.types import Chunk

KEY_NAMES = {  # action name -> pygame key constant names
    "up": ("K_UP", "K_w"),
    "down": ("K_DOWN", "K_s"),
    "left": ("K_LEFT", "K_a"),
    "right": ("K_RIGHT", "K_d"),
    "fire": ("K_SPACE",),
    "jump": ("K_SPACE", "K_UP", "K_w"),  # a game with both up and jump keeps up on the arrows
}
HELP = (
    "arrows/WASD move  space fire/jump  Enter prompt  P pause  N step  R reset",
    "F5/F9 save/load  +/- scale  F12 shot  V record  Esc quit",
)
HUD_LINE = 16  # pixels per HUD line
HUD_LINES = 6


def chord(names: Sequence[str], held: list[int]) -> int:
    """The action that held actions (ids, oldest first) mean together: the newest one, or an
    action named for it and other held ones joined by ``_`` (left held, then jump: ``left_jump``);
    the one naming the most keys, then the one whose keys were pressed most recently."""
    newest = held[-1]
    pressed = {names[i]: at for at, i in enumerate(held)}  # action name -> when, the last time
    best, rank = newest, (1, len(held) - 1)
    for i, name in enumerate(names):
        parts = name.split("_")
        if len(parts) > 1 and names[newest] in parts and set(parts) <= pressed.keys():
            mine = (len(parts), min(pressed[p] for p in parts))
            if mine > rank:
                best, rank = i, mine
    return best


class NoDisplayError(ChunkworldError, RuntimeError):
    """``chunkworld play`` was asked for a window where there is no display."""


def check_display() -> None:
    """Raise ``NoDisplayError`` when a window cannot be shown (Linux without X11 or Wayland and
    no SDL video driver chosen). ``SDL_VIDEODRIVER=dummy`` (``--headless``) plays offscreen."""
    if not sys.platform.startswith("linux") or os.environ.get("SDL_VIDEODRIVER"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    raise NoDisplayError(
        "no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset). To make a video "
        "without a window run `chunkworld generate --actions 'right*8,left*8' --out run.gif`; to "
        "play offscreen anyway (tests, recording) add --headless"
    )


@dataclass(frozen=True, eq=False)
class PlayOptions:
    """How ``play`` starts and what it keeps.

    ``record`` starts recording at once to that video path (``.gif``, ``.mp4``, or ``.npy`` for
    exact frames); its action log goes to ``<record>.log.json``. ``save`` is the snapshot file of
    F5/F9. ``max_ticks`` quits after that many steps (demos, tests).
    """

    start: Start | None = Start()  # None: play on from the session's state
    scale: int = 0  # window pixels per frame pixel; 0 = fit about 512 pixels
    max_ticks: int | None = None
    record: str | None = None
    save: str | None = None
    shots: str = "."  # folder for screenshots and recordings started with V
    log: ActionLog | None = None  # the run so far (when playing on after a replay)
    paced: bool = True  # False: draw each frame as soon as it is made (offscreen runs, tests)


class Recorder:
    """Every chunk made while on; ``finish`` writes the video, the run's action log and a
    dataset of the frames with the keys that made them (``<video>.data/``, the format
    ``chunkworld train --data`` learns)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.chunks: list[np.ndarray] = []
        self.frames_at: dict[int, np.ndarray] = {}  # tick -> the frames emitted then
        self.keys_for: dict[int, np.ndarray] = {}  # tick -> the action ids that shaped them

    def add(self, chunk: Chunk) -> None:
        self.chunks.append(chunk.frames)
        self.frames_at[chunk.tick] = chunk.frames
        self.keys_for[chunk.action_tick] = chunk.actions

    def write_dataset(self, names: tuple[str, ...], chunk_frames: int) -> str:
        """The recorded ticks whose keys are known, as a dataset beside the video."""
        from world.train.record import Recorder as DataRecorder

        ticks = sorted(t for t in self.frames_at if t in self.keys_for)
        if not ticks:
            return ""
        path = self.path.with_name(self.path.name + ".data")
        clip = len(ticks) * chunk_frames
        with DataRecorder(path, actions=names, chunk_frames=chunk_frames, clip_frames=clip) as rec:
            for t in ticks:
                for frame, key in zip(self.frames_at[t], self.keys_for[t], strict=True):
                    rec.add(frame, int(key))
        return f", dataset {path}"

    def finish(self, log: ActionLog) -> str:
        from sdk.media import write_video

        log.save(self.path.with_name(self.path.name + ".log.json"))
        if not self.chunks:
            return f"recorded no frames; action log {self.path}.log.json"
        write_video(self.path, np.concatenate(self.chunks), fps=self.fps)
        return f"recorded {sum(map(len, self.chunks))} frames to {self.path} (+ .log.json)"


class PlayWindow:
    """The window around an :class:`Engine`; ``run()`` plays until quit. ``on_frame`` is called
    once per loop with the window (tests post scripted events from it)."""

    def __init__(
        self,
        session: Session,
        options: PlayOptions | None = None,
        *,
        on_frame: Callable[[PlayWindow], None] | None = None,
    ) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pg = pygame
        self.session = session
        self.options = opts = options or PlayOptions()
        self.on_frame = on_frame
        info = session.info
        self.info = info
        self.scale = opts.scale or max(1, 512 // info.frame_height)
        self.save_path = Path(opts.save) if opts.save else default_save_path(info.model)
        self.recorder: Recorder | None = None
        if opts.record:
            self.recorder = Recorder(Path(opts.record), info.fps)
        self.engine = Engine(
            session,
            opts.start,
            log=opts.log,
            max_ticks=opts.max_ticks,
            on_chunk=self._on_chunk,
        )
        self.keymap = self._keymap()
        self.held: list[int] = []  # pygame keys held, oldest first
        self.typing: str | None = None  # the prompt box's text while it is open
        self.last_shown: Shown | None = None
        self.drawn: deque[float] = deque(maxlen=64)  # times frames were drawn
        self.frames_drawn = 0
        self.first_drawn = self.last_drawn = 0.0
        self.notice = ""
        self.quit = False

    # --- setup ------------------------------------------------------------------------------------
    def _keymap(self) -> dict[int, int]:
        """pygame key -> action id: the named keys, and digits for every id."""
        pg, names = self.pg, self.info.actions
        out: dict[int, int] = {}
        for i in range(min(10, len(names))):
            out[getattr(pg, f"K_{i}")] = i
        for name, keys in KEY_NAMES.items():
            if name in names:
                for k in keys:
                    out.setdefault(getattr(pg, k), names.index(name))
        return out

    def _on_chunk(self, chunk: Chunk) -> None:
        if self.recorder is not None:
            self.recorder.add(chunk)

    def _open(self) -> None:
        pg = self.pg
        w, h = self.info.frame_width * self.scale, self.info.frame_height * self.scale
        self.screen = pg.display.set_mode((max(w, 480), h + HUD_LINE * HUD_LINES + 4))
        pg.display.set_caption(f"chunkworld play: {self.info.model}")

    # --- the loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        """Play until Esc, the window closing, or ``max_ticks``; returns the ticks played."""
        pg = self.pg
        pg.display.init()
        pg.font.init()
        self.font = pg.font.Font(None, 18)
        self._open()
        period = 1.0 / self.info.fps if self.options.paced else 0.0
        due = time.perf_counter()
        last_hud = 0.0
        self.engine.begin()
        try:
            while not self.quit:
                dirty = self._events()
                if self.on_frame is not None:
                    self.on_frame(self)
                now = time.perf_counter()
                drew = False
                if now >= due:
                    shown = self.engine.next_frame()
                    if shown is not None:
                        self._draw_frame(shown)
                        self.drawn.append(now)
                        # keep the cadence; after a wait for the model, start it anew
                        due = due + period if now - due < period else now + period
                        dirty = drew = True
                    elif self.engine.done:
                        break
                    else:
                        due = now  # the model is behind: draw as soon as a frame comes
                if dirty or now - last_hud > 0.25:
                    self._draw_hud()
                    pg.display.flip()
                    last_hud = now
                wait = min(due - time.perf_counter(), 0.005)
                time.sleep(max(wait, 0.0 if drew else 0.001))  # never spin while the model works
        finally:
            self.engine.stop()
            if self.recorder is not None:
                print(self.recorder.finish(self.engine.log), file=sys.stderr)
                self.recorder = None
            pg.display.quit()
        if self.engine.error is not None:
            raise self.engine.error
        return self.engine.stats().ticks_played

    def _events(self) -> bool:
        """Handle pending input; True if the HUD needs redrawing."""
        pg = self.pg
        events = pg.event.get()
        for event in events:
            if event.type == pg.QUIT:
                self.quit = True
            elif event.type == pg.KEYDOWN:
                self._key_down(event)
            elif event.type == pg.KEYUP and event.key in self.held:
                self.held.remove(event.key)
                self._hold()
            elif event.type == pg.TEXTINPUT and self.typing is not None:
                room = self.info.max_prompt_chars - len(self.typing)
                self.typing += event.text[: max(0, room)]
        return bool(events)

    def _hold(self) -> None:
        """The held keys' action (``chord``) is the action held."""
        mapped = [self.keymap[k] for k in self.held if k in self.keymap]
        self.engine.hold(chord(self.info.actions, mapped) if mapped and self.typing is None else 0)

    def _key_down(self, event: Any) -> None:
        pg, key = self.pg, event.key
        if self.typing is not None:  # the prompt box has the keyboard
            if key == pg.K_RETURN or key == pg.K_KP_ENTER:
                self.engine.set_prompt(self.typing)
                unread = self.info.unread_words(self.typing)
                self.notice = f"prompt from the next tick: {self.typing!r}" + (
                    f" (unknown to this world: {', '.join(unread)})" if unread else ""
                )
                self.typing = None
            elif key == pg.K_ESCAPE:
                self.typing = None
            elif key == pg.K_BACKSPACE:
                self.typing = self.typing[:-1]
            return
        if key in self.keymap:
            self.held.append(key)
            self.engine.tap(chord(self.info.actions, [self.keymap[k] for k in self.held]))
            self._hold()
        elif key in (pg.K_ESCAPE, pg.K_q):
            self.quit = True
        elif key in (pg.K_RETURN, pg.K_KP_ENTER):
            self.typing = ""
            self.held.clear()
            self._hold()
        elif key == pg.K_p:
            self.engine.toggle_pause()
        elif key == pg.K_n:
            self.engine.single_step()
        elif key == pg.K_r:
            self.engine.command("reset")
        elif key == pg.K_F5:
            self.engine.command("save", self.save_path)
        elif key == pg.K_F9:
            self.engine.command("load", self.save_path)
        elif key in (pg.K_PLUS, pg.K_EQUALS, pg.K_KP_PLUS, pg.K_MINUS, pg.K_KP_MINUS):
            grow = key not in (pg.K_MINUS, pg.K_KP_MINUS)
            self.scale = min(16, self.scale + 1) if grow else max(1, self.scale - 1)
            self._open()
            if self.last_shown is not None:
                self._draw_frame(self.last_shown)
        elif key == pg.K_F12:
            self.notice = self.screenshot()
        elif key == pg.K_v:
            self.toggle_recording()

    # --- drawing ----------------------------------------------------------------------------------
    def _draw_frame(self, shown: Shown) -> None:
        pg = self.pg
        surface = pg.surfarray.make_surface(np.ascontiguousarray(shown.frame.transpose(1, 0, 2)))
        self.screen.blit(pg.transform.scale_by(surface, self.scale), (0, 0))
        self.last_shown = shown
        self.frames_drawn += 1
        self.last_drawn = time.perf_counter()
        if self.frames_drawn == 1:
            self.first_drawn = self.last_drawn

    def summary(self) -> str:
        """The run's rates: frames drawn per second between the first and last drawn, against
        the frames per second the model generated (compute time only) and the world's fps."""
        span = self.last_drawn - self.first_drawn
        drawn = (self.frames_drawn - 1) / span if span > 0 else 0.0
        return (
            f"drew {self.frames_drawn} frames at {drawn:.1f} fps; the model generated "
            f"{self.engine.run_generated_fps():.1f} fps; the world runs at {self.info.fps:g} fps"
        )

    def drawn_fps(self) -> float:
        """Frames drawn per second over the last (up to) 64 frames."""
        if len(self.drawn) < 2:
            return 0.0
        return (len(self.drawn) - 1) / max(self.drawn[-1] - self.drawn[0], 1e-9)

    def hud_lines(self) -> list[tuple[str, tuple[int, int, int]]]:
        """The HUD's text lines and colours (what ``_draw_hud`` renders)."""
        s = self.engine.stats()
        white, red, grey, yellow = (255, 255, 255), (255, 90, 90), (170, 170, 170), (255, 220, 0)
        lines = [
            (
                f"tick {max(s.tick, 0)}   generated {s.generated_fps:.1f} fps   drawn "
                f"{self.drawn_fps():.1f} fps   tick {s.tick_ms:.0f} ms   world {s.model_fps:g} fps",
                white,
            )
        ]
        if s.paused:
            lines.append(("PAUSED: N one tick, P resume", yellow))
        elif s.slower_than_real_time:
            lines.append(
                (f"model slower than real time ({s.generated_fps / s.model_fps:.2f}x)", red)
            )
        else:
            lines.append(("real time", grey))
        lines.append((f"action {s.action}   prompt {s.prompt!r}", white))
        if self.typing is not None:
            lines.append((f"prompt> {self.typing}_   (Enter apply, Esc cancel)", yellow))
        else:
            rec = "REC  " if self.recorder is not None else ""
            lines.append((rec + (s.message or self.notice), red if rec else grey))
        lines += [(text, grey) for text in HELP]
        return lines

    def _draw_hud(self) -> None:
        top = self.info.frame_height * self.scale
        width = self.screen.get_width()
        self.screen.fill((0, 0, 0), (0, top, width, self.screen.get_height() - top))
        for n, (text, colour) in enumerate(self.hud_lines()):
            surface = self.font.render(text, True, colour)
            self.screen.blit(surface, (4, top + 2 + n * HUD_LINE))

    # --- files --------------------------------------------------------------------------------------
    def screenshot(self) -> str:
        """Write the frame on screen, at the window's scale, to a PNG; returns a notice."""
        if self.last_shown is None:
            return "no frame to save yet"
        import imageio.v3 as iio

        frame = self.last_shown.frame.repeat(self.scale, 0).repeat(self.scale, 1)
        path = Path(self.options.shots) / f"chunkworld-tick{self.last_shown.tick}.png"
        iio.imwrite(path, frame)
        return f"screenshot {path}"

    def toggle_recording(self) -> None:
        """Start recording the chunks made from now, or stop and write them."""
        if self.recorder is None:
            path = Path(self.options.shots) / f"chunkworld-{time.strftime('%Y%m%d-%H%M%S')}.gif"
            self.recorder = Recorder(path, self.info.fps)
            self.notice = f"recording to {path}"
        else:
            recorder, self.recorder = self.recorder, None
            try:
                self.notice = recorder.finish(self.engine.log)
                self.notice += recorder.write_dataset(self.info.actions, self.info.chunk_frames)
            except (ChunkworldError, OSError, ValueError) as e:
                self.notice = f"recording failed: {e}"


def play(session: Session, options: PlayOptions | None = None) -> int:
    """Play ``session`` in a window until quit; returns the ticks played.

    Raises:
        NoDisplayError: no display (set ``SDL_VIDEODRIVER=dummy`` to play offscreen).
    """
    check_display()
    window = PlayWindow(session, options)
    ticks = window.run()
    print(window.summary(), file=sys.stderr)
    return ticks
