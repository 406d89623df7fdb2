"""``Session``: the front door. Owns a model, its sampler, the rollout state (KV cache, in-flight
chunks, RNG) and the caption encoder, and advances the world exactly one chunk per ``step``.

>>> from sdk import Session
>>> with Session.load("tiny", seed=0) as s:
...     c = s.reset(prompt="night, two balls")
...     c = s.step("right")
...     c.frames.shape, c.tick
((2, 32, 32, 3), 1)

Timing of actions: with ``in_flight = W`` chunks in the pipeline, the action given to the step
that returns tick ``n`` first shapes the frames returned at tick ``n + W - 1`` (``Chunk.action_tick``);
with ``W = 1`` (the default of the shipped presets) an action shows in the chunk its step returns.

Prompts: the caption in effect when a chunk is admitted conditions that chunk. ``step(prompt=...)``
and ``set_prompt`` change it from the chunk admitted at that step on; history in the KV cache is
stored under the null caption, so a prompt change never invalidates it. An empty or absent prompt
is the null caption. A chunk whose caption differs from the previous chunk's (a prompt, or the
caption of a text start drawn from noise) gets text guidance at the model's
``sampler.prompt_guidance`` scale: one more denoiser pass on its steps above level 0.3, on that
tick only. Captions longer than ``max_prompt_chars`` characters are rejected; the text encoder
reads at most its ``max_tokens`` first words. A word the model never trained on is read by its
spelling (``info.known_words``: "rainy" borrows from "rain"; ``world/core/text.py``).

Start images and videos must be uint8 arrays of exactly the model's frame size (``(H, W, 3)`` per
frame): other sizes are rejected with ``ImageError`` naming the expected size, never resized.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch

from sdk.captions import CaptionCache
from sdk.errors import (
    ArgumentError,
    NotResetError,
    SnapshotError,
)
from sdk.models import LoadedModel, fingerprint, load_model, session_info
from sdk.snapshot import Snapshot, capture, check_fits, rebuild
from sdk.spaces import Action, ActionSpace
from sdk.starts import check_options, check_prompt, check_seed
from sdk.ticks import SessionTicks
from sdk.types import Chunk, Footprint, SessionInfo
from world.core.model import WorldModel
from world.core.rollout_state import RolloutState
from world.core.sampler import PipelinedSampler

TEXT_CACHE_SIZE = 64  # encoded captions kept; a bounded LRU so memory stays flat


class Session(SessionTicks):
    """A running world. Make one with :meth:`load` (or :meth:`from_model`), then ``reset`` and
    ``step``. Not re-entrant: one thread at a time (calls are serialised by a lock)."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        seed: int = 0,
        steps: int | None = None,
        in_flight: int | None = None,
        threads: int | None = None,
        precision: str = "auto",
        prior_level: float | None = None,
        pixel_history: bool | None = None,
        palette: bool | None = None,
    ) -> None:
        """Prefer :meth:`load`. ``loaded`` is a model with its name and fingerprint."""
        self._seed = check_seed(seed)
        check_options(
            threads=threads,
            steps=steps,
            in_flight=in_flight,
            prior_level=prior_level,
            pixel_history=pixel_history,
            palette=palette,
        )
        if palette and loaded.palette is None:
            raise ArgumentError(
                f"model {loaded.name!r} keeps no palette (palette.json); write one with "
                f"'chunkworld palette --model DIR --data DATA', or leave palette at None"
            )
        try:
            self._sampler = PipelinedSampler(
                loaded.model,
                steps=steps,
                in_flight=in_flight,
                precision=precision,
                prior_level=None if prior_level is None else float(prior_level),
                pixel_history=pixel_history,
                palette=None if palette is False else loaded.palette,
            )
        except ValueError as e:
            raise ArgumentError(str(e)) from None
        self._loaded = loaded
        self._model: WorldModel | None = loaded.model
        cfg = loaded.model.cfg
        self._cfg = cfg
        self._space = ActionSpace(tuple(cfg.actions), cfg.chunk_frames)
        self._state: RolloutState | None = None
        self._tick = -1
        self._opening: int | None = None  # the opening the last text start went on from
        self._prompt = ""
        self._captions: dict[int, str] = {}  # in-flight chunk index -> its caption
        self._admitted: str | None = None  # caption of the newest admitted chunk
        self._text = CaptionCache(TEXT_CACHE_SIZE)
        self._lock = threading.RLock()
        self._closed = False

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        name_or_path: str | Path = "default",
        *,
        device: str | torch.device = "cpu",
        seed: int = 0,
        steps: int | None = None,
        in_flight: int | None = None,
        threads: int | None = None,
        precision: str = "auto",
        prior_level: float | None = None,
        pixel_history: bool | None = None,
        palette: bool | None = None,
    ) -> Session:
        """Load a model and open a session on it.

        Args:
            name_or_path: ``"default"`` (the shipped checkpoint), a preset name (``"tiny"``:
                random weights, for tests and examples), or a checkpoint directory.
            device: torch device, ``"cpu"`` or ``"cuda"``.
            seed: the seed ``reset`` uses when given none.
            steps: Euler steps per chunk (default: the model's sampler config).
            in_flight: chunks denoised together; ``steps`` must be a multiple of it.
            threads: if given, ``torch.set_num_threads(threads)`` (process-wide).
            precision: ``"auto"`` (bf16 autocast where the device's bf16 matmuls are native,
                else fp32), ``"fp32"`` or ``"bf16"``. A session's frames are deterministic at
                either; the two differ slightly, so compare runs at one precision.
            prior_level: the level an unprompted chunk starts from, the model's dynamics
                prior's guess noised to it (default: the model's ``sampler.prior_level``; 0:
                pure noise, as a model without a prior). Only with ``in_flight`` 1.
            pixel_history: True: each chunk enters the KV cache as the encoding of the frames
                you are shown, not as the sampler's latents, so drift no frame shows cannot
                build up (alternating keys and balls are kept better; one encoder pass a tick;
                docs/how-it-works.md). Default: the model's ``sampler.pixel_history``.
            palette: True: shown frames have each pixel that is clearly one of the colours
                of the model's game drawn in it (pixel history reads the frames as shown;
                world/core/palette.py); needs a model that keeps a palette. False: frames as
                decoded. Default: on where the model keeps one.

        Raises:
            UnknownModelError: unknown name, default model not installed, or broken checkpoint.
            ArgumentError: bad device, seed, steps, in_flight, precision, prior_level,
                pixel_history or palette (True for a model without one).
        """
        return cls(
            load_model(name_or_path, device=device),
            seed=seed,
            steps=steps,
            in_flight=in_flight,
            threads=threads,
            precision=precision,
            prior_level=prior_level,
            pixel_history=pixel_history,
            palette=palette,
        )

    @classmethod
    def from_model(
        cls,
        model: WorldModel,
        *,
        name: str = "custom",
        seed: int = 0,
        steps: int | None = None,
        in_flight: int | None = None,
        precision: str = "auto",
        prior_level: float | None = None,
        pixel_history: bool | None = None,
    ) -> Session:
        """Open a session on a model already in memory (training, evaluation); puts it in eval mode."""
        loaded = LoadedModel(model.eval(), name, fingerprint(model), trained=True)
        return cls(
            loaded,
            seed=seed,
            steps=steps,
            in_flight=in_flight,
            precision=precision,
            prior_level=prior_level,
            pixel_history=pixel_history,
        )

    # --- facts --------------------------------------------------------------------------------
    @property
    def action_space(self) -> ActionSpace:
        """Named keys and ``chunk_frames``; ``action_space.gym_space()`` is a gymnasium space."""
        return self._space

    @property
    def info(self) -> SessionInfo:
        """Model and sampler facts (frame size, chunk size, fps, actions, parameter counts...)."""
        return session_info(self._loaded, self._sampler)

    def describe(self) -> dict[str, Any]:
        """The facts the bridge sends to clients (a JSON-ready dict; see the bridge protocol)."""
        return self.info.wire()

    @property
    def seed(self) -> int:
        """The seed ``reset`` uses when given none."""
        return self._seed

    @property
    def tick(self) -> int | None:
        """The tick of the last chunk returned, or None before ``reset``."""
        return None if self._tick < 0 else self._tick

    @property
    def prompt(self) -> str:
        """The caption in effect ("" = null caption)."""
        return self._prompt

    @property
    def opening(self) -> tuple[int, str] | None:
        """(index, caption) of the model's opening the last ``reset`` went on from (a text
        start on a model that keeps openings), else None; None again after ``restore``."""
        o = self._loaded.openings
        return (
            None
            if o is None or self._opening is None
            else (self._opening, o.captions[self._opening])
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def footprint(self) -> Footprint:
        """Memory held by the rollout state; flat once the cache ring is full."""
        with self._lock:
            state = self._require_state("footprint")
            held = sorted(int(c) for c in state.cache.index if int(c) >= 0)
            return Footprint(
                cache_bytes=state.cache.nbytes(),
                state_bytes=state.nbytes(),
                in_flight=len(state.in_flight),
                cached_chunks=tuple(held),
                text_entries=len(self._text),
            )

    # --- the loop -----------------------------------------------------------------------------
    def reset(
        self,
        *,
        prompt: str | None = None,
        image: np.ndarray | None = None,
        video: np.ndarray | None = None,
        seed: int | None = None,
    ) -> Chunk:
        """Start a new world and return its first chunk (tick 0).

        Args:
            prompt: caption of the world ("" or None: the null caption); stays in effect.
            image: uint8 (H, W, 3) start frame. It is repeated over one chunk, encoded, and
                becomes clean history; tick 0 is its reconstruction by the codec.
            video: uint8 (T, H, W, 3), any T >= 1. Left-padded by repeating its first frame to
                a multiple of ``chunk_frames``; only the last ``history_chunks`` chunks are kept
                (older ones could not be attended to anyway). Each becomes clean history; tick 0
                is the codec's reconstruction of the last chunk.
            seed: RNG seed of this world (default: the session's seed).

        Without image or video the world starts from the caption. Where the model keeps
        openings (true first frames of its game with their captions, ``chunkworld openings``)
        it goes on from the one whose caption best matches the prompt (ties by ``seed``) as a
        video start; else tick 0 is a chunk generated from noise.

        Raises:
            ImageError: wrong dtype, shape or frame size (sizes are never resized).
            PromptError, ArgumentError, ClosedError.
        """
        started = time.perf_counter()
        with self._lock:
            state, row, shown = self._begin_reset(prompt, image, video, seed)
            if row is not None:
                shown = self._settle(
                    row, self._sampler.tick(row.state, row.actions, row.text, prompted=row.prompted)
                )
            assert shown is not None
            return self._end_reset(state, self._decode(shown), started)

    def step(self, action: Action = None, *, prompt: str | None = None) -> Chunk:
        """Advance one chunk and return it.

        Args:
            action: a key name or id held for the whole chunk, a sequence of exactly
                ``chunk_frames`` keys (one per frame), or None (noop).
            prompt: if given, the new caption from this chunk on (same as ``set_prompt``).

        Raises:
            NotResetError, ClosedError, ActionError, PromptError.
        """
        started = time.perf_counter()
        with self._lock:
            row = self._begin_step(action, prompt)
            shown = self._settle(
                row, self._sampler.tick(row.state, row.actions, row.text, prompted=row.prompted)
            )
            return self._end_step(self._decode(shown), row, started)

    def set_prompt(self, prompt: str | None) -> None:
        """Change the caption from the next admitted chunk on ("" or None: null caption).
        Before ``reset`` this has no lasting effect: ``reset`` sets its own prompt."""
        with self._lock:
            self._require_open()
            self._prompt = check_prompt(prompt, self._cfg.max_prompt_chars)

    def stream(
        self, actions: Iterable[Action], *, prompts: Mapping[int, str] | None = None
    ) -> Iterator[Chunk]:
        """Step once per action and yield each chunk as it is made.

        Args:
            actions: any iterable of actions (a list, a generator reading a controller...).
            prompts: tick -> caption; the caption is set by the step that returns that tick.

        Example: ``for c in s.stream(["right"] * 8, prompts={4: "night"}): show(c.frames)``.
        """
        prompts = dict(prompts or {})
        for action in actions:
            if self._tick < 0:
                raise NotResetError("call reset() before stream(); stream steps a running world")
            yield self.step(action, prompt=prompts.get(self._tick + 1))

    # --- save games ---------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """A copy of the whole world state; ``restore`` it to continue exactly from here."""
        with self._lock:
            self._require_open()
            state = self._require_state("snapshot")
            lm = self._loaded
            return capture(
                state,
                model=lm.name,
                fingerprint=lm.fingerprint,
                steps=self._sampler.steps,
                in_flight=self._sampler.in_flight,
                tick=self._tick,
                prompt=self._prompt,
                captions=self._captions,
                admitted=self._admitted,
            )

    def restore(self, snapshot: Snapshot) -> None:
        """Return the world to ``snapshot`` (from this or any session of the same model and
        sampler settings, or read back with ``Snapshot.load``). Works before ``reset`` too.

        Raises:
            SnapshotError: not a Snapshot, another model, other steps/in_flight, or damaged.
        """
        with self._lock:
            self._require_open()
            try:
                check_fits(snapshot, self._loaded, self._sampler.steps, self._sampler.in_flight)
                self._restore(snapshot)
            except SnapshotError as e:  # name the file a loaded snapshot came from
                source = getattr(snapshot, "source", None)
                raise SnapshotError(f"{source}: {e}" if source else str(e)) from None

    def _restore(self, snapshot: Snapshot) -> None:
        """restore() after ``check_fits``; the caller holds the lock."""
        state = rebuild(snapshot, self._sampler.new_state(seed=0), self._encode)
        self._state = state
        self._captions = dict(snapshot.captions)
        self._tick = snapshot.tick
        self._opening = None
        self._prompt = snapshot.prompt
        self._admitted = snapshot.prompt if snapshot.admitted is None else snapshot.admitted

    # --- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release the model and state. Safe to call more than once."""
        with self._lock:
            self._closed = True
            self._state = None
            self._model = None
            self._text.clear()
            self._captions = {}

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = (
            "closed" if self._closed else ("not reset" if self._tick < 0 else f"tick {self._tick}")
        )
        return f"Session(model={self._loaded.name!r}, {state})"
