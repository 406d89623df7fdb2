"""Small frozen results of the SDK: a tick's ``Chunk``, the model's ``SessionInfo``, and the
session's memory ``Footprint``. Arrays are numpy; nothing here holds a tensor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)  # holds arrays: compare frames with np.array_equal
class Chunk:
    """What one tick produced.

    Attributes:
        frames: uint8 (F, H, W, 3), C-contiguous: the chunk emitted by this tick.
        tick: 0 for ``reset``, then +1 per ``step``.
        action_tick: the tick whose frames this step's action first shapes, ``tick + in_flight
            - 1`` (with ``in_flight`` chunks in the pipeline, frames emitted now were admitted
            ``in_flight - 1`` ticks ago).
        ms: compute time of the tick, milliseconds (model, decode and bookkeeping).
        actions: int64 (F,), the per-frame action ids given at this tick (noop for ``reset``).
        prompt: the caption of the chunk admitted at this tick ("" = the null caption).
    """

    frames: np.ndarray
    tick: int
    action_tick: int
    ms: float
    actions: np.ndarray
    prompt: str

    @property
    def last_frame(self) -> np.ndarray:
        """uint8 (H, W, 3): the newest frame of the chunk."""
        return self.frames[-1]


@dataclass(frozen=True)
class SessionInfo:
    """Facts about the loaded model and sampler (``Session.info``)."""

    model: str  # preset name, "default", or the checkpoint directory
    fingerprint: str  # hash of config and weights; snapshots only restore into an equal one
    frame_height: int
    frame_width: int
    chunk_frames: int  # frames per chunk (per tick)
    fps: float
    actions: tuple[str, ...]
    history_chunks: int  # clean chunks a new chunk attends to (the KV cache ring size)
    steps: int  # Euler steps per chunk
    in_flight: int  # chunks denoised together
    prior_level: float  # level unprompted chunks start from, the prior's guess noised (0: none)
    pixel_history: bool  # chunks enter the cache as the encoding of their frames
    palette: bool  # frames snapped to the model's palette (world/core/palette.py)
    precision: str  # "bf16" (autocast) or "fp32": what the session's precision resolved to
    max_prompt_chars: int
    parameters: dict[str, int]  # parameter count per part (codec, text, denoiser)
    trained: bool  # False for random-weight presets
    card: dict[str, Any] = field(default_factory=dict)  # checkpoint's config.json extra keys
    # the words its text encoder trained on; a prompt's other words are spelled from them
    # (world/core/text.py). Empty: every word is read as its own hash bucket
    known_words: tuple[str, ...] = ()

    def unread_words(self, prompt: str | None) -> list[str]:
        """The words of ``prompt`` this model reads as nothing: not among ``known_words`` and
        sharing no spelling with them (``world/core/text.py``), e.g. ``["dusk"]`` for "bring on
        the dusk" on the default. Empty where the model keeps no list of known words."""
        from world.core.text import unread  # torch: not for every importer of these types

        return unread(prompt, self.known_words)

    @property
    def action_latency_ticks(self) -> int:
        """Ticks between giving an action and the first chunk it shapes (in_flight - 1)."""
        return self.in_flight - 1

    def wire(self) -> dict[str, Any]:
        """The facts the bridge sends to clients (a JSON-ready dict; see the bridge protocol)."""
        return {
            "model": self.model,
            "frame_height": self.frame_height,
            "frame_width": self.frame_width,
            "chunk_frames": self.chunk_frames,
            "fps": self.fps,
            "actions": list(self.actions),
            "max_prompt_chars": self.max_prompt_chars,
            "history_chunks": self.history_chunks,
            "in_flight": self.in_flight,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class Footprint:
    """Memory held by a session's rollout state; constant once the cache ring is full."""

    cache_bytes: int  # KV cache (preallocated)
    state_bytes: int  # cache + context inputs/actions + in-flight latents + generator state
    in_flight: int  # chunks in the pipeline
    cached_chunks: tuple[int, ...]  # absolute chunk indices held by the cache, oldest first
    text_entries: int  # encoded prompts kept (a bounded LRU)
