"""Where ``record`` requests of ``chunkworld serve --record DIR`` land: a dataset (the format
``chunkworld train --data DIR`` learns) with the served model's frame size, chunk length and key
names. The bridge checks each request before it reaches the sink (frame size, whole chunks, key
ids, one caption per chunk); each clip is written to a temporary name and renamed, so a reader
never sees half of one. A client records what its own game showed::

    session.record(frames, action_ids, captions)   # bridges.client: uint8 (T, H, W, 3), (T,)
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from world.core.config import ModelConfig
from world.train.data import DatasetMeta, DatasetWriter


class DatasetSink:
    """A :class:`bridges.RecordSink` writing clips into one dataset; safe from several threads."""

    def __init__(self, path: str | Path, cfg: ModelConfig, model: str) -> None:
        h, w, _ = cfg.frame_shape
        meta = DatasetMeta(
            frame_size=(h, w),
            chunk_frames=cfg.chunk_frames,
            fps=cfg.fps,
            actions=cfg.actions,
            generator={"name": "chunkworld serve --record", "model": model},
        )
        self.writer = DatasetWriter(path, meta)  # ValueError: a dataset of another shape there
        self.lock = threading.Lock()

    def append(self, frames: np.ndarray, actions: np.ndarray, captions: list[str]) -> str:
        with self.lock:
            return self.writer.append(frames, actions, captions, info={"source": "bridge"})
