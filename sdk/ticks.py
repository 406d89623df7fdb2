"""A session's ``reset`` and ``step``, split around the sampler's tick.

``_begin_reset`` and ``_begin_step`` check the arguments and build the tick's row; the sampler
ticks it, alone (``Session``, sdk/session.py) or with other sessions' rows in one pass
(``SessionBatch``, sdk/batch.py); ``_settle`` records the captions of the chunks the tick
admitted, and ``_end_reset`` / ``_end_step`` make the chunk the caller gets. ``Session`` is the
one subclass: the attributes declared here are its state, set in its ``__init__``.

A chunk's frames come from :func:`shown_frames`: a tick's own frames where the sampler decoded
them on the way into its cache (pixel history), else its latents decoded, so no chunk is decoded
twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sdk.captions import CaptionCache
from sdk.errors import ClosedError, NotResetError
from sdk.models import LoadedModel
from sdk.spaces import Action, ActionSpace
from sdk.starts import check_prompt, check_seed, history_chunks, start_clip
from sdk.types import Chunk
from world.core.batched import Row
from world.core.config import ModelConfig
from world.core.model import WorldModel
from world.core.rollout_state import RolloutState, TickResult
from world.core.sampler import PipelinedSampler

# a chunk to show: the latents of a clip start's last chunk, or a tick's result
Shown = torch.Tensor | TickResult


class SessionTicks:
    """The tick plumbing of ``Session`` (see the module docstring)."""

    _cfg: ModelConfig
    _loaded: LoadedModel
    _model: WorldModel | None
    _sampler: PipelinedSampler
    _space: ActionSpace
    _text: CaptionCache
    _seed: int
    _closed: bool
    _state: RolloutState | None
    _tick: int  # -1 before reset
    _prompt: str
    _captions: dict[int, str]  # in-flight chunk index -> its caption
    _admitted: str | None  # caption of the newest admitted chunk
    _opening: int | None  # the opening the last text start went on from

    def _require_open(self) -> WorldModel:
        if self._closed or self._model is None:
            raise ClosedError("this session is closed; open a new one with Session.load(...)")
        return self._model

    def _require_state(self, what: str) -> RolloutState:
        self._require_open()
        if self._state is None:
            raise NotResetError(f"call reset() (or restore a snapshot) before {what}()")
        return self._state

    def _encode(self, caption: str) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._model is not None
        return self._text.get(self._model, caption)

    def _begin_reset(
        self, prompt: str | None, image: Any, video: Any, seed: int | None
    ) -> tuple[RolloutState, Row | None, Shown | None]:
        """Check the arguments, start a state; a text start returns the row to tick, a clip
        start the latents of tick 0."""
        model = self._require_open()
        caption = check_prompt(prompt, self._cfg.max_prompt_chars)
        use_seed = self._seed if seed is None else check_seed(seed)
        h, w, _ = self._cfg.frame_shape
        clip = start_clip(image, video, (h, w), self._cfg.chunk_frames)
        openings, self._opening = self._loaded.openings, None
        if clip is None and openings is not None:  # a text start goes on from the closest opening
            pick = openings.pick(caption, use_seed)
            clip = openings.frames[pick]  # decoded at the model's first text start
            self._opening = pick
        state = self._sampler.new_state(seed=use_seed)
        self._captions = {}
        self._prompt = caption
        self._admitted = None if clip is None else caption  # a text start is a prompt
        if clip is None:
            return state, self._row(state, np.zeros(self._cfg.chunk_frames, dtype=np.int64)), None
        latents = None  # the clip becomes clean history; tick 0 shows the last chunk's decoding
        for part in history_chunks(clip, self._cfg.chunk_frames, self._cfg.history_chunks):
            x = torch.from_numpy(part).to(self._sampler.device)[None]  # (1, F, H, W, 3)
            latents = model.codec.encode(x)
            self._sampler.add_history(state, latents)
        return state, None, latents

    def _end_reset(self, state: RolloutState, frames: np.ndarray, started: float) -> Chunk:
        self._state = state
        self._tick = 0
        return self._chunk(frames, np.zeros(self._cfg.chunk_frames, dtype=np.int64), started)

    def _begin_step(self, action: Action, prompt: str | None) -> Row:
        self._require_open()
        state = self._require_state("step")
        ids = self._space.parse(action)
        if prompt is not None:
            self._prompt = check_prompt(prompt, self._cfg.max_prompt_chars)
        return self._row(state, ids)

    def _end_step(self, frames: np.ndarray, row: Row, started: float) -> Chunk:
        self._tick += 1
        return self._chunk(frames, row.actions[0].cpu().numpy(), started)

    def _row(self, state: RolloutState, ids: np.ndarray) -> Row:
        """The sampler's arguments for a tick with the current caption."""
        assert self._model is not None
        actions = torch.as_tensor(ids, dtype=torch.long, device=self._sampler.device)[None]
        # a caption that just changed is a prompt: that chunk gets text guidance
        prompted = bool(self._prompt) and self._prompt != self._admitted
        return Row(state, actions, self._encode(self._prompt), prompted)

    def _settle(self, row: Row, result: TickResult) -> TickResult:
        """After the tick: record the captions of the chunks admitted; the tick's result."""
        self._admitted = self._prompt
        state = row.state
        for f in state.in_flight:  # chunks admitted this tick carry the current caption
            self._captions.setdefault(f.chunk, self._prompt)
        live = {f.chunk for f in state.in_flight}
        self._captions = {c: p for c, p in self._captions.items() if c in live}
        return result

    def _decode(self, chunk: Shown) -> np.ndarray:
        assert self._model is not None
        return shown_frames(self._sampler, [chunk])[0]

    def _chunk(self, frames: np.ndarray, ids: np.ndarray, started: float) -> Chunk:
        ms = (time.perf_counter() - started) * 1000.0
        return Chunk(
            frames=frames,
            tick=self._tick,
            action_tick=self._tick + self._sampler.in_flight - 1,
            ms=ms,
            actions=ids.copy(),
            prompt=self._prompt,
        )


def shown_frames(sampler: PipelinedSampler, chunks: Sequence[Shown]) -> list[np.ndarray]:
    """The frames of one model's chunks, (F, H, W, 3) uint8 each: a tick's ``frames`` where it
    has them (pixel history decodes each world alone on the way into its cache), the others
    decoded in one codec pass. At batch B the codec's kernels may round a few values one level
    apart from batch 1 (within the tolerance of sdk/batch.py's docstring); one pass is several
    times cheaper than B."""
    own = [c.frames if isinstance(c, TickResult) else None for c in chunks]
    todo = [
        c.latents if isinstance(c, TickResult) else c
        for c, f in zip(chunks, own, strict=True)
        if f is None
    ]
    decoded = iter(sampler.decode(torch.cat(todo)).cpu().numpy() if todo else ())
    return [np.ascontiguousarray(next(decoded) if f is None else f[0].cpu().numpy()) for f in own]
