"""A recorder for games that are not Python objects: frames and keys from any game loop into the
one dataset format (:mod:`world.train.data`) that ``chunkworld train --data DIR`` learns::

    from world.train.record import Recorder

    with Recorder("recordings/run1", actions=["noop", "left", "right"]) as rec:
        while playing:
            action = read_keys()             # one of the actions (a name or its index)
            frame = my_game.step(action)     # (H, W, 3) uint8, the frame that shows it
            rec.add(frame, action)
            if episode_over:
                rec.cut()                    # the next frame starts a new clip

Numpy only. Every frame is checked as it is added (dtype, shape, the size of the first frame,
a known action), so a bad recording fails at the frame that is wrong, naming it. Clips go to a
temporary directory beside ``path`` that is renamed to ``path`` when the recorder closes: a
crashed recorder leaves no half-written dataset at ``path``. A clip is cut every ``clip_frames``
frames and at ``cut()``; its frames past the last whole chunk are dropped (``dropped`` counts
them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from world.games.protocol import MAX_SIDE, SIDE_STEP
from world.train.data import DatasetMeta, DatasetWriter


class RecordingError(ValueError):
    """A frame or action that cannot go in the recording; the message names which."""


class Recorder:
    """Writes a dataset from frames and actions as a game produces them (see the module)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        actions: list[str] | tuple[str, ...],
        chunk_frames: int = 4,
        clip_frames: int = 128,
        fps: float = 15.0,
        caption: str = "",
    ) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists: record into a new directory")
        if (
            not actions
            or actions[0] != "noop"
            or not all(isinstance(a, str) and a and a == a.strip().lower() for a in actions)
            or len(set(actions)) != len(actions)
        ):
            raise RecordingError(
                f"actions={actions!r}: give distinct lower-case key names, 'noop' first"
            )
        if chunk_frames < 1 or clip_frames < chunk_frames or clip_frames % chunk_frames:
            raise RecordingError(
                f"clip_frames={clip_frames} must be a positive multiple of "
                f"chunk_frames={chunk_frames}"
            )
        self.actions = tuple(actions)
        self.chunk_frames, self.clip_frames, self.fps = chunk_frames, clip_frames, fps
        self.caption = caption
        self._tmp = self.path.with_name(f".{self.path.name}.recording{os.getpid()}")
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._writer: DatasetWriter | None = None
        self._frames: list[np.ndarray] = []
        self._ids: list[int] = []
        self.frames_added = 0
        self.dropped = 0
        self.clips = 0
        self.closed = False

    def add(self, frame: Any, action: str | int) -> None:
        """Record one frame and the action held while it was produced.

        Raises:
            RecordingError: wrong dtype or shape, a size other than the first frame's, or an
                action not in ``actions``; the message names the frame's index.
        """
        if self.closed:
            raise RecordingError(f"{self.path}: the recorder is closed")
        n = self.frames_added
        where = f"{self.path}: frame {n}"
        if not isinstance(frame, np.ndarray):
            raise RecordingError(f"{where} is {type(frame).__name__}; give a numpy array")
        if frame.dtype != np.uint8:
            raise RecordingError(
                f"{where} has dtype {frame.dtype}; frames are uint8: "
                "np.clip(x, 0, 255).astype(np.uint8)"
            )
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise RecordingError(f"{where} has shape {frame.shape}; a frame is (H, W, 3) RGB")
        h, w = frame.shape[:2]
        if self._writer is None:
            if h != w or h % SIDE_STEP or not SIDE_STEP <= h <= MAX_SIDE:
                raise RecordingError(
                    f"{where} is {h}x{w}; record square frames whose side is a multiple of "
                    f"{SIDE_STEP} from {SIDE_STEP} to {MAX_SIDE}"
                )
            meta = DatasetMeta(
                frame_size=(h, w),
                chunk_frames=self.chunk_frames,
                fps=self.fps,
                actions=self.actions,
                generator={"name": "world.train.record.Recorder"},
            )
            self._writer = DatasetWriter(self._tmp, meta)
        elif (h, w) != self._writer.meta.frame_size:
            fh, fw = self._writer.meta.frame_size
            raise RecordingError(f"{where} is {h}x{w}, the frames before it {fh}x{fw}")
        if isinstance(action, str):
            if action not in self.actions:
                raise RecordingError(
                    f"{where}: action {action!r} is not one of {list(self.actions)}"
                )
            index = self.actions.index(action)
        elif isinstance(action, (int, np.integer)) and not isinstance(action, bool):
            if not 0 <= int(action) < len(self.actions):
                raise RecordingError(
                    f"{where}: action id {int(action)} is outside 0..{len(self.actions) - 1}"
                )
            index = int(action)
        else:
            raise RecordingError(f"{where}: action {action!r}; give a name or an index")
        self._frames.append(frame.copy())
        self._ids.append(index)
        self.frames_added += 1
        if len(self._frames) == self.clip_frames:
            self.cut()

    def cut(self) -> None:
        """End the current clip (an episode ends); whole chunks of it are written."""
        keep = len(self._frames) // self.chunk_frames * self.chunk_frames
        self.dropped += len(self._frames) - keep
        if keep and self._writer is not None:
            self._writer.append(
                np.stack(self._frames[:keep]),
                np.asarray(self._ids[:keep], dtype=np.int64),
                [self.caption] * (keep // self.chunk_frames),
                info={"first_frame": self.frames_added - len(self._frames)},
            )
            self.clips += 1
        self._frames, self._ids = [], []

    def close(self) -> Path:
        """Write the open clip and move the dataset to ``path``; safe to call twice."""
        if not self.closed:
            self.closed = True
            self.cut()
            if self._writer is None or not self.clips:
                shutil.rmtree(self._tmp, ignore_errors=True)
                raise RecordingError(
                    f"{self.path}: nothing recorded (at least {self.chunk_frames} frames make a "
                    "clip); no dataset written"
                )
            os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Throw the recording away; nothing is written at ``path``."""
        self.closed = True
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif exc_type is RecordingError:  # a bad frame: the recording stops, nothing written
            self.discard()
        else:  # the game loop failed: the whole clips recorded so far are kept
            try:
                self.close()
            except RecordingError:
                pass
