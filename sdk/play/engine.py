"""The play engine: one thread that owns the session and generates ahead of the window.

The window (``sdk.play.window``) and the engine meet in a short queue of frames. The engine
starts a tick when the frames still queued would run out before a tick of average length ends,
so the window never waits when the model is fast enough and an action waits as little as it can:
with ``q`` frames queued at ``fps``, a key pressed now shows after at most ``q / fps`` seconds
plus one tick. Held keys are read when a tick starts (the chunk boundary); a key tapped and
released between two boundaries still counts once.

Everything that changes the world (reset, step, prompt, save, load) runs on the engine's thread,
in the order asked, and is written to the run's :class:`~sdk.play.log.ActionLog`. No pygame here.
"""

from __future__ import annotations

import collections
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ChunkworldError
from sdk.play.log import ActionLog, LoggedSession
from sdk.session import Session
from sdk.types import Chunk


@dataclass(frozen=True, eq=False)
class Start:
    """Where a world starts: a caption, an image or a video, each with or without a prompt."""

    prompt: str = ""
    seed: int = 0
    image: np.ndarray | None = None
    video: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return (
            "image" if self.image is not None else "video" if self.video is not None else "caption"
        )


@dataclass(frozen=True, eq=False)
class Shown:
    """One frame on its way to the screen, with the facts of the tick that made it."""

    frame: np.ndarray  # uint8 (H, W, 3)
    tick: int
    action: str  # the action held for this frame's chunk (names joined by "|" if they vary)
    prompt: str


@dataclass(frozen=True)
class Stats:
    """What the HUD shows, read with :meth:`Engine.stats`."""

    tick: int  # tick of the newest chunk made (-1 before the first)
    tick_ms: float  # mean compute time of the last ticks
    generated_fps: float  # frames the model makes per second of compute (chunk_frames / tick)
    model_fps: float  # frames per second of the world
    queued: int  # frames made and not yet shown
    paused: bool
    prompt: str  # the caption in effect
    pending_prompt: str | None  # typed, applied at the next tick
    action: str  # the action of the newest chunk
    message: str  # the last notice (saved, loaded, an error), "" for none
    ticks_played: int  # steps since the engine started

    @property
    def slower_than_real_time(self) -> bool:
        """True when a tick takes longer to make than to show."""
        return self.generated_fps > 0 and self.generated_fps < self.model_fps


class Engine:
    """Generates a session's chunks on a thread of its own; see the module docstring.

    Args:
        session: the session to play; the engine's thread is its only user until ``stop``.
        start: how ``reset`` starts the world; ``None`` plays on from the session's state
            (after a restore or a replay), logging into ``log``.
        log: the run's log so far (default: a new one).
        max_ticks: stop generating after this many steps.
        on_chunk: called on the engine's thread with each chunk made (a recorder).
    """

    def __init__(
        self,
        session: Session,
        start: Start | None = Start(),
        *,
        log: ActionLog | None = None,
        max_ticks: int | None = None,
        on_chunk: Callable[[Chunk], None] | None = None,
    ) -> None:
        self.session = session
        self.run = LoggedSession(session, log)
        self.start = start
        self.max_ticks = max_ticks
        self.on_chunk = on_chunk
        info = session.info
        self.fps = info.fps
        self.chunk_frames = info.chunk_frames
        self.names = info.actions
        self._frames: collections.deque[Shown] = collections.deque()
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._held = 0  # action id held now
        self._tapped: int | None = None  # pressed since the last boundary (may be released)
        self._paused = False
        self._single = 0
        self._pending_prompt: str | None = None
        self._tick_ms: collections.deque[float] = collections.deque(maxlen=8)
        self._tick = -1
        self._action = "noop"
        self._message = ""
        self._played = 0
        self._compute_ms = 0.0  # summed over the steps, for the run's mean
        self._stop = False
        self._done = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="chunkworld-play", daemon=True)

    # --- asked from the window (any thread) -----------------------------------------------------
    def begin(self) -> Engine:
        self._thread.start()
        return self

    def hold(self, action: int) -> None:
        """The action id held now (0 = noop); read at the next chunk boundary."""
        with self._cond:
            self._held = int(action)

    def tap(self, action: int) -> None:
        """A key went down: counts at the next boundary even if released before it."""
        with self._cond:
            self._tapped = int(action)

    def set_prompt(self, prompt: str) -> None:
        """The caption from the next tick on."""
        with self._cond:
            self._pending_prompt = prompt
            self._cond.notify_all()

    def toggle_pause(self) -> None:
        with self._cond:
            self._paused = not self._paused
            self._cond.notify_all()

    def single_step(self) -> None:
        """One tick while paused."""
        with self._cond:
            self._single += 1
            self._cond.notify_all()

    def command(self, name: str, arg: Any = None) -> None:
        """``"reset"``, ``"save"`` (arg: path) or ``"load"`` (arg: path), run in order."""
        self._commands.put((name, arg))
        with self._cond:
            self._cond.notify_all()

    def next_frame(self) -> Shown | None:
        """The next frame to show, or None when none is ready (the model is behind)."""
        with self._cond:
            shown = self._frames.popleft() if self._frames else None
            self._cond.notify_all()
            return shown

    def stats(self) -> Stats:
        with self._cond:
            ms = float(np.mean(self._tick_ms)) if self._tick_ms else 0.0
            return Stats(
                tick=self._tick,
                tick_ms=ms,
                generated_fps=self.chunk_frames * 1000.0 / ms if ms else 0.0,
                model_fps=self.fps,
                queued=len(self._frames),
                paused=self._paused,
                prompt=self.session.prompt,
                pending_prompt=self._pending_prompt,
                action=self._action,
                message=self._message,
                ticks_played=self._played,
            )

    def run_generated_fps(self) -> float:
        """Frames per second of compute over every step so far (the model's rate, whole run)."""
        with self._cond:
            if not self._played:
                return 0.0
            return self.chunk_frames * self._played * 1000.0 / self._compute_ms

    @property
    def done(self) -> bool:
        """The engine has stopped (``max_ticks`` reached, ``stop`` called, or an error)."""
        return self._done

    @property
    def log(self) -> ActionLog:
        return self.run.log

    def stop(self) -> None:
        """Stop the thread and wait for it (the tick under way finishes first). Safe twice."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    # --- the engine's thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self.start is not None:
                self._reset()
            while not self._stop_now():
                self._do_commands()
                if self.max_ticks is not None and self._played >= self.max_ticks:
                    break
                if not self._wait_for_room():
                    continue
                self._step()
        except BaseException as e:  # shown by the window, re-raised by play()
            self.error = e
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _stop_now(self) -> bool:
        with self._cond:
            return self._stop

    def _lead_frames(self) -> int:
        """Frames to keep queued: those shown while one average tick is made, plus one."""
        ms = float(np.mean(self._tick_ms)) if self._tick_ms else 0.0
        return math.ceil(ms / 1000.0 * self.fps) + 1

    def _wait_for_room(self) -> bool:
        """Block until a tick should start; False if something else needs doing first."""
        with self._cond:
            while True:
                if self._stop or not self._commands.empty():
                    return False
                if self._paused and not self._single:
                    self._cond.wait(0.1)
                    continue
                if len(self._frames) >= self._lead_frames():
                    self._cond.wait(0.1)
                    continue
                if self._single:
                    self._single -= 1
                return True

    def _boundary(self) -> tuple[int, str | None]:
        """The action and the new caption of the tick about to start (the chunk boundary)."""
        with self._cond:
            action = self._tapped if self._tapped is not None else self._held
            self._tapped = None
            prompt, self._pending_prompt = self._pending_prompt, None
            return action, prompt

    def _step(self) -> None:
        action, prompt = self._boundary()
        started = time.perf_counter()
        try:
            chunk = self.run.step(action, prompt=prompt)
        except ChunkworldError as e:  # e.g. a prompt too long: say so, play on without it
            self._notice(f"{type(e).__name__}: {e}")
            chunk = self.run.step(action)
        ms = (time.perf_counter() - started) * 1000.0
        self._played += 1
        self._compute_ms += ms
        self._publish(chunk, ms)

    def _reset(self) -> None:
        s = self.start or Start()
        with self._cond:
            self._frames.clear()
        started = time.perf_counter()
        chunk = self.run.reset(prompt=s.prompt, seed=s.seed, image=s.image, video=s.video)
        self._publish(chunk, (time.perf_counter() - started) * 1000.0)

    def _publish(self, chunk: Chunk, ms: float) -> None:
        ids = [int(a) for a in chunk.actions]
        action = "|".join(dict.fromkeys(self.names[a] for a in ids))
        with self._cond:
            self._tick_ms.append(ms)
            self._tick, self._action = chunk.tick, action
            for frame in chunk.frames:
                self._frames.append(Shown(frame, chunk.tick, action, chunk.prompt))
            self._cond.notify_all()
        if self.on_chunk is not None:
            self.on_chunk(chunk)

    def _notice(self, text: str) -> None:
        with self._cond:
            self._message = text

    def _do_commands(self) -> None:
        while True:
            try:
                name, arg = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                if name == "reset":
                    self._reset()
                    self._notice("reset")
                elif name == "save":
                    self.run.save(arg)
                    self._notice(f"saved the world to {arg}")
                elif name == "load":
                    self.run.load(arg)
                    with self._cond:
                        self._frames.clear()
                        self._tick = self.session.tick if self.session.tick is not None else -1
                    self._notice(f"loaded {arg} (tick {self._tick})")
                else:
                    raise AssertionError(f"unknown command {name!r}")
            except (ChunkworldError, OSError) as e:
                self._notice(f"{name} failed: {e}")


def default_save_path(model: str) -> Path:
    """Where F5 saves and F9 loads when no ``--save`` is given."""
    stem = Path(model).name or "world"
    return Path(f"chunkworld-{stem}.snapshot.safetensors")
