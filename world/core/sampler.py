"""The pipelined sampler: ``W`` chunks in flight, ``S`` Euler steps each, one chunk out per tick.

A tick admits a chunk, runs network passes until the oldest chunk in flight is clean, emits it
and encodes it into the KV cache as history (the cache pass: at ``context_level``, the null
caption). Its parts each have a file of their own:

- the noise schedule (the grid, noising, the Euler step): ``world/core/schedule.py``;
- the pipeline of chunks in flight (their levels on the grid, one pass's batch, with a worked
  example): ``world/core/inflight.py``;
- guidance over history and caption: ``world/core/guidance.py``;
- the dynamics prior a chunk may start from: ``world/core/prior.py``.

Warm-up: the first tick must also emit a chunk, so it runs S passes and admits a filler chunk
every ``m = S / W`` passes (with the tick's action and caption: held keys) until W are in flight.
Hence an action given at tick n first shapes the chunk emitted at tick ``n + W - 1``.

With a dynamics prior (``prior_level`` = ``L`` > 0) and W = 1, an unprompted chunk whose previous
chunk is held enters not at pure noise but as the prior's guess noised to ``L``, and walks the
grid scaled by ``L`` (``InFlight.top``); prompted chunks and text starts enter at pure noise.

All state that changes (cache, in-flight chunks, RNG) lives in ``RolloutState``
(``world/core/rollout_state.py``), passed in explicitly; the sampler itself holds only the network
and fixed settings.

Pixel history (``pixel_history``): an emitted chunk enters the cache not as the sampler's
latents but as the codec's encoding of its decoded 8-bit frames, the frames the user is shown, so
drift no frame shows cannot build up in the history (``TickResult.frames`` hands those frames on,
so the chunk is decoded once).

A palette (``palette``, ``world/core/palette.py``): shown frames have each pixel that is clearly
one of the game's colours drawn in it; with pixel history the cache reads those frames.

Precision: ``"fp32"`` by default (training's self-rollout, tests); the play path (``sdk.Session``,
``chunkworld eval``) passes ``"auto"``, bf16 autocast for the network and the decoder where the
device's bf16 matmuls are native. Each precision is deterministic on its own; the two give frames
that differ slightly (the shipped decoder's bf16 frames about 59 dB from its fp32 ones).
"""

from __future__ import annotations

import copy

import torch

from world.core import inflight
from world.core.cache import KVCache, RowCache
from world.core.cpus import bf16_enabled
from world.core.guidance import Guidance
from world.core.model import WorldModel
from world.core.palette import Palette
from world.core.rollout_state import InFlight, RolloutState, TickResult, Trace
from world.core.schedule import add_noise, euler_step, sampling_grid


class PipelinedSampler:
    """Advance a world one chunk per ``tick``; see the module docstring for the schedule."""

    def __init__(
        self,
        model: WorldModel,
        *,
        steps: int | None = None,
        in_flight: int | None = None,
        shift: float | None = None,
        context_level: float | None = None,
        guidance_history: float | None = None,
        guidance_text: float | None = None,
        prompt_guidance: float | None = None,
        guidance_min_level: float = 0.3,
        use_cache: bool = True,
        precision: str = "fp32",  # "auto": bf16 autocast where native (world.core.cpus.bf16_enabled)
        prompt_steps: int | None = None,
        prior_level: float | None = None,
        pixel_history: bool | None = None,
        palette: Palette | None = None,
    ) -> None:
        sc = model.cfg.sampler
        self.model = model
        self.cfg = model.cfg
        self.steps = sc.steps if steps is None else steps
        self.in_flight = sc.in_flight if in_flight is None else in_flight
        if self.in_flight < 1 or self.steps % self.in_flight:
            raise ValueError(
                f"steps ({self.steps}) must be a positive multiple of in_flight ({self.in_flight}); "
                f"for example steps={self.in_flight * max(1, self.steps // self.in_flight)}"
            )
        self.spacing = self.steps // self.in_flight  # m: forwards between admissions
        self.shift = sc.shift if shift is None else shift
        self.grid = sampling_grid(self.steps, self.shift)
        self.context_level = sc.context_level if context_level is None else context_level
        self.guidance = Guidance(
            history=sc.guidance_history if guidance_history is None else guidance_history,
            text=sc.guidance_text if guidance_text is None else guidance_text,
            prompt=sc.prompt_guidance if prompt_guidance is None else prompt_guidance,
            min_level=guidance_min_level,
        )
        self.use_cache = use_cache
        self.precision = precision
        self.bf16 = bf16_enabled(precision, self.device)
        self._null_text: tuple[torch.Tensor, torch.Tensor] | None = None
        self.prior_level = sc.prior_level if prior_level is None else prior_level
        if self.prior_level and not (0.0 < self.prior_level < 1.0 and model.prior is not None):
            raise ValueError(
                f"prior_level={self.prior_level:g}: give a level in (0, 1) for a model with a "
                "dynamics prior (chunkworld train-prior adds one), or 0 to start from pure noise"
            )
        self.pixel_history = sc.pixel_history if pixel_history is None else bool(pixel_history)
        self.palette = palette
        # prompted chunks and text starts (no history yet) with more steps, when asked and W = 1
        start = sc.prompt_steps if prompt_steps is None else prompt_steps
        self._start: PipelinedSampler | None = None  # this sampler with more steps
        self._first: PipelinedSampler | None = None  # ... and for a text start's first chunk
        self._start = self._with_steps(start)
        self._first = self._with_steps(sc.start_steps or start)

    def _with_steps(self, steps: int) -> PipelinedSampler | None:
        """A copy of this sampler taking ``steps`` Euler steps, or None where that is no more
        than its own (or W > 1)."""
        if self.in_flight != 1 or steps <= self.steps:
            return None
        other = copy.copy(self)
        other._start = other._first = None
        other.steps = other.spacing = steps
        other.grid = sampling_grid(steps, self.shift)
        return other

    def runner(self, state: RolloutState, prompted: bool) -> PipelinedSampler:
        """The sampler that runs this state's next tick: the one taking ``start_steps`` for a
        text start's first chunk, ``prompt_steps`` for a prompted chunk, else this one."""
        if self._first is not None and not state.in_flight and state.next_chunk == 0:
            return self._first
        if self._start is not None and not state.in_flight and prompted:
            return self._start
        return self

    @property
    def prompt_steps(self) -> int:
        """Euler steps of a prompted chunk and of a text start's first chunk."""
        return self._start.steps if self._start is not None else self.steps

    # --- state ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def new_state(self, *, batch: int = 1, seed: int = 0) -> RolloutState:
        cfg, d = self.cfg, self.cfg.denoiser
        c = cfg.codec
        cache = KVCache.allocate(
            layers=d.depth,
            batch=batch,
            kv_heads=d.kv_heads,
            slots=cfg.history_chunks,
            tokens_per_chunk=cfg.tokens_per_chunk,
            head_dim=d.head_dim,
            device=self.device,
        )
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed)
        k = cfg.history_chunks
        return RolloutState(
            cache=cache,
            context_inputs=torch.zeros(
                k, batch, cfg.latent_frames, c.latent_channels, *c.grid, device=self.device
            ),
            context_actions=torch.zeros(
                k, batch, cfg.chunk_frames, dtype=torch.long, device=self.device
            ),
            generator=gen,
        )

    def null_text(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._null_text is None or self._null_text[0].shape[0] != batch:
            with torch.no_grad():
                self._null_text = self.model.encode_text([None] * batch)
        return self._null_text

    def _randn(self, state: RolloutState, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=state.generator, device=self.device)

    # --- the cache pass ---------------------------------------------------------------------
    @torch.no_grad()
    def add_history(
        self, state: RolloutState, latents: torch.Tensor, actions: torch.Tensor | None = None
    ) -> int:
        """Make a clean chunk history: noise it to ``context_level``, encode it into the cache.

        Used for every emitted chunk, and directly for image/video starts.
        latents (B, Tl, C, h, w); actions (B, F) (None = noop). Returns the chunk index.
        """
        if state.in_flight:
            raise RuntimeError("add_history needs an empty pipeline (no chunks in flight)")
        return self._commit(state, latents, actions, state.next_chunk, advance=True)

    def _commit(
        self,
        state: RolloutState,
        latents: torch.Tensor,
        actions: torch.Tensor | None,
        chunk: int,
        advance: bool,
    ) -> int:
        b = latents.shape[0]
        if actions is None:
            actions = torch.zeros(b, self.cfg.chunk_frames, dtype=torch.long, device=self.device)
        x_ctx = add_noise(latents, self._randn(state, latents.shape), self.context_level)
        slot = state.cache.slot_of(chunk)
        state.context_inputs[slot] = x_ctx
        state.context_actions[slot] = actions
        if self.use_cache:
            tokens, mask = self.null_text(b)
            with self._precision():
                self.model.denoiser.encode_history(
                    state.cache, chunk, x_ctx, self.context_level, actions, (tokens, mask)
                )
        else:
            state.cache.index[slot] = chunk  # bookkeeping only: the recompute path reads inputs
        state.last_clean = x_ctx[:, -1]
        state.last_clean_chunk = chunk
        if advance:
            state.next_chunk = chunk + 1
        return chunk

    # --- one tick ---------------------------------------------------------------------------
    @torch.no_grad()
    def tick(
        self,
        state: RolloutState,
        actions: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor],
        *,
        prompted: bool = False,
    ) -> TickResult:
        """Admit a chunk for these actions/caption, denoise until the oldest is clean, emit it.

        Args:
            actions: (B, F) long, the action of every frame of the admitted chunk.
            text: the admitted chunk's caption tokens (B, L, Dt) and mask (B, L).
            prompted: the caption is new (it differs from the previous chunk's): the admitted
                chunk gets text guidance at ``prompt_guidance`` (warm-up fillers do not) and,
                with W = 1, ``prompt_steps`` Euler steps, as does a text start's first chunk.
        """
        runner = self.runner(state, prompted)
        if runner is not self:
            return runner.tick(state, actions, text, prompted=prompted)
        self._admit(state, actions, text, prompted)
        trace: list[tuple[tuple[int, float], ...]] = []
        forwards = 0
        while state.in_flight[0].step < self.steps:
            newest = state.in_flight[-1]
            if len(state.in_flight) < self.in_flight and newest.step >= self.spacing:
                self._admit(state, actions, text)  # warm-up filler: held keys, same caption
            trace.append(self._forward(state))
            forwards += 1
        done = state.in_flight.pop(0)
        (result,) = self.emit([done], forwards, [tuple(trace)])
        self._commit(state, result.kept, done.actions, done.chunk, advance=False)
        return result

    @torch.no_grad()
    def emit(self, done: list[InFlight], forwards: int, traces: list[Trace]) -> list[TickResult]:
        """The results of chunks done denoising (one per state, in order); with
        ``pixel_history`` also their uint8 frames and the codec's encoding of them, which the
        cache keeps, all the chunks through the codec in one pass each way (the codec's
        kernels give each world the bits it gets alone: measured at batch 1 to 64)."""
        latents = [d.latent for d in done]
        frames: list[torch.Tensor | None] = [None] * len(done)
        history: list[torch.Tensor | None] = [None] * len(done)
        if self.pixel_history:
            shown = self.decode(torch.cat(latents))
            with self._precision():
                kept = self.model.codec.encode(shown)
            sizes = [x.shape[0] for x in latents]  # a state may hold a batch (training)
            frames, history = list(shown.split(sizes)), list(kept.split(sizes))
        return [
            TickResult(d.latent, d.chunk, forwards, t, f, h)
            for d, t, f, h in zip(done, traces, frames, history, strict=True)
        ]

    def _admit(
        self,
        state: RolloutState,
        actions: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor],
        prompted: bool = False,
    ) -> None:
        cfg, c = self.cfg, self.cfg.codec
        b = actions.shape[0]
        shape = (b, cfg.latent_frames, c.latent_channels, *c.grid)
        latent, top = self._randn(state, shape), 1.0
        if self.prior_level and not prompted and self.in_flight == 1:
            last = state.last_frames(2)
            if last is not None:  # start from the prior's guess (world/core/prior.py)
                assert self.model.prior is not None
                with self._precision():
                    guess = self.model.prior(last, actions).float()
                latent, top = add_noise(guess, latent, self.prior_level), self.prior_level
        state.in_flight.append(
            InFlight(
                chunk=state.next_chunk,
                latent=latent,
                step=0,
                actions=actions,
                text=text,
                prompted=prompted,
                top=top,
            )
        )
        state.next_chunk += 1

    def _precision(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    @property
    def runs_at(self) -> str:
        """What ``precision`` resolved to on this device: ``"bf16"`` (autocast) or ``"fp32"``."""
        return "bf16" if self.bf16 else "fp32"

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, Tl, C, h, w) -> uint8 frames (B, F, H, W, 3), decoded at this
        sampler's precision (the play path: ticks and their frames alike), snapped to the palette
        where a pixel is clearly one of its colours."""
        with self._precision():
            frames = self.model.codec.decode(latents)
        return frames if self.palette is None else self.palette.snap(frames)

    def _forward(self, state: RolloutState) -> tuple[tuple[int, float], ...]:
        """One network pass over all chunks in flight; each moves one step down the grid."""
        batch = inflight.gather(state, self.grid, self.device)
        v = self._velocity(state, batch)
        x = euler_step(
            batch.x,
            v,
            batch.levels[..., None, None, None, None],
            batch.next_levels[..., None, None, None, None],
        )
        return inflight.advance(state, x, self.grid)

    def _velocity(
        self, state: RolloutState | None, batch: inflight.Batch, cache: RowCache | None = None
    ) -> torch.Tensor:
        """The velocity of the chunks in flight: the network against the cache (or, without
        one, with the history recomputed), under guidance. ``cache``: stacked worlds' caches
        (``world/core/batched.py``), read instead of ``state``'s."""
        b, n = batch.x.shape[:2]
        history_cache = cache if state is None else state.cache

        def run(text: tuple[torch.Tensor, torch.Tensor], history: bool) -> torch.Tensor:
            if not self.use_cache and history:
                assert state is not None, "worlds stepped together read the cache"
                return self._recompute(state, batch, text)
            with self._precision():
                return self.model.denoiser(
                    batch.x,
                    batch.levels,
                    batch.actions,
                    text,
                    batch.chunks,
                    context=batch.context,
                    cache=history_cache if history else None,
                    use_history=history,
                )

        def null_text() -> tuple[torch.Tensor, torch.Tensor]:
            tokens, mask = self.null_text(b)
            return tokens[:, None].expand(-1, n, -1, -1), mask[:, None].expand(-1, n, -1)

        return self.guidance.velocity(run, batch.text, null_text, batch.prompted, batch.levels)

    def _recompute(
        self, state: RolloutState, batch: inflight.Batch, text: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """No cache: run the held history chunks and the chunks in flight in one masked pass."""
        b = batch.x.shape[0]
        joined, is_history = inflight.with_history(
            state, batch, text, self.null_text(b), self.context_level
        )
        with self._precision():
            v = self.model.denoiser(
                joined.x,
                joined.levels,
                joined.actions,
                joined.text,
                joined.chunks,
                is_context=is_history,
                context=joined.context,
            )
        return v[:, is_history.shape[1] - batch.x.shape[1] :]
