"""The pipelined sampler: ``W`` chunks in flight, ``S`` Euler steps each, one chunk out per tick.

Each forward pass advances every in-flight chunk by one step on the sampling grid
``g[0] = 1 (noise) > g[1] > ... > g[S] = 0 (clean)``. A new chunk enters at pure noise every
``m = S / W`` forward passes, so in-flight chunks sit ``m`` steps apart; when the oldest reaches
clean it is emitted, run once more through the network at ``context_level`` with the null caption
(the cache pass), and its keys/values go into the ring cache.

Worked example, S = 4, W = 4 (m = 1), grid g = [1, .75, .5, .25, 0], steady state, one tick:
admit chunk c at step 0 -> in flight (oldest first) at steps [3, 2, 1, 0], levels
[.25, .5, .75, 1]; one forward -> steps [4, 3, 2, 1]; chunk c - 3 is clean and emitted.
With W = 1 a tick admits one chunk and runs S forwards on it alone.

Warm-up: the first tick must also emit a chunk, so it runs S forwards and admits a filler chunk
every ``m`` forwards (with the tick's action and caption: held keys) until W are in flight.
Hence an action given at tick n first shapes the chunk emitted at tick ``n + W - 1``.

With a dynamics prior (``prior_level`` = ``L`` > 0, ``world/core/prior.py``) and W = 1, an unprompted
chunk whose previous chunk is held enters not at pure noise but as the prior's guess noised to
``L``, and walks the grid scaled by ``L`` (``InFlight.top``); prompted chunks and text starts
enter at pure noise.

All state that changes (cache, in-flight chunks, RNG) lives in ``RolloutState``
(``world/core/rollout_state.py``), passed in explicitly; the sampler itself holds only the network
and fixed settings.

Precision: ``"fp32"`` by default (training's self-rollout, tests); the play path (``sdk.Session``,
``chunkworld eval``) passes ``"auto"``, bf16 autocast for the network and the decoder where the
device's bf16 matmuls are native. Each precision is deterministic on its own; the two give frames
that differ slightly (the shipped decoder's bf16 frames about 59 dB from its fp32 ones).
"""

from __future__ import annotations

import copy

import torch

from world.core.cache import KVCache
from world.core.cpus import bf16_enabled
from world.core.model import WorldModel
from world.core.rollout_state import InFlight, RolloutState, TickResult
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
        self.s_hist = sc.guidance_history if guidance_history is None else guidance_history
        self.s_text = sc.guidance_text if guidance_text is None else guidance_text
        self.s_prompt = sc.prompt_guidance if prompt_guidance is None else prompt_guidance
        self.guidance_min_level = guidance_min_level
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
        # prompted chunks and text starts (no history yet) with more steps, when asked and W = 1
        start = sc.prompt_steps if prompt_steps is None else prompt_steps
        self._start: PipelinedSampler | None = None  # this sampler with more steps
        if self.in_flight == 1 and start > self.steps:
            self._start = copy.copy(self)
            self._start.steps = self._start.spacing = start
            self._start.grid = sampling_grid(start, self.shift)

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
                k, batch, cfg.latent_frames, c.latent_channels, c.grid, c.grid, device=self.device
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
        if self._start is not None and not state.in_flight and (prompted or state.next_chunk == 0):
            return self._start.tick(state, actions, text, prompted=prompted)
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
        self._commit(state, done.latent, done.actions, done.chunk, advance=False)
        return TickResult(
            latents=done.latent, chunk=done.chunk, forwards=forwards, trace=tuple(trace)
        )

    def _admit(
        self,
        state: RolloutState,
        actions: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor],
        prompted: bool = False,
    ) -> None:
        cfg, c = self.cfg, self.cfg.codec
        b = actions.shape[0]
        shape = (b, cfg.latent_frames, c.latent_channels, c.grid, c.grid)
        latent, top = self._randn(state, shape), 1.0
        if self.prior_level and not prompted and self.in_flight == 1:
            last = self._last_frames(state)
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

    def _last_frames(self, state: RolloutState) -> torch.Tensor | None:
        """(B, 2, C, h, w): the last two latent frames before the chunk to admit, as the cache
        holds them; None unless the chunks they lie in are clean and held."""
        frames: list[torch.Tensor] = []
        chunk = state.next_chunk - 1
        while len(frames) < 2 and chunk >= 0:
            slots = (state.cache.index == chunk).nonzero()
            if not len(slots):
                return None
            frames = list(state.context_inputs[int(slots[0])].unbind(1)) + frames
            chunk -= 1
        return torch.stack(frames[-2:], 1) if len(frames) >= 2 else None

    def _precision(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    @property
    def runs_at(self) -> str:
        """What ``precision`` resolved to on this device: ``"bf16"`` (autocast) or ``"fp32"``."""
        return "bf16" if self.bf16 else "fp32"

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, Tl, C, h, w) -> uint8 frames (B, F, H, W, 3), decoded at this
        sampler's precision (the play path: ticks and their frames alike)."""
        with self._precision():
            return self.model.codec.decode(latents)

    def _forward(self, state: RolloutState) -> tuple[tuple[int, float], ...]:
        """One denoiser pass over all in-flight chunks; each moves one step down the grid."""
        fl = state.in_flight
        b = fl[0].latent.shape[0]
        x = torch.stack([f.latent for f in fl], dim=1)  # (B, n, Tl, C, h, w)
        levels = torch.stack([(f.top * self.grid[f.step]).expand(b) for f in fl], 1)
        nxt = torch.stack([(f.top * self.grid[f.step + 1]).expand(b) for f in fl], 1)
        levels, nxt = levels.to(self.device), nxt.to(self.device)
        actions = torch.stack([f.actions for f in fl], dim=1)  # (B, n, F)
        length = max(f.text[0].shape[1] for f in fl)
        text = torch.stack([_pad(f.text[0], length) for f in fl], dim=1)  # (B, n, L, Dt)
        tmask = torch.stack([_pad(f.text[1], length) for f in fl], dim=1)  # (B, n, L)
        chunks = torch.tensor([f.chunk for f in fl], device=self.device)
        # direct path: the previous chunk's last latent frame, as it is held right now
        ctx, valid = [], []
        for i, f in enumerate(fl):
            if i > 0:
                ctx.append(fl[i - 1].latent[:, -1])
                valid.append(True)
            elif state.last_clean is not None and state.last_clean_chunk == f.chunk - 1:
                ctx.append(state.last_clean)
                valid.append(True)
            else:
                ctx.append(torch.zeros_like(f.latent[:, -1]))
                valid.append(False)
        ctx_t = torch.stack(ctx, dim=1)
        valid_t = torch.tensor(valid, device=self.device)[None].expand(b, -1)

        s_text = [
            self.s_prompt if f.prompted else self.s_text for f in fl
        ]  # (n,) text-guidance scale of each in-flight chunk
        v = self._velocity(state, x, levels, actions, (text, tmask), chunks, ctx_t, valid_t, s_text)
        x = euler_step(x, v, levels[..., None, None, None, None], nxt[..., None, None, None, None])
        for i, f in enumerate(fl):
            f.latent = x[:, i]
            f.step += 1
        return tuple((f.chunk, float(f.top * self.grid[f.step - 1])) for f in fl)

    def _velocity(
        self,
        state: RolloutState,
        x: torch.Tensor,
        levels: torch.Tensor,
        actions: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor],
        chunks: torch.Tensor,
        ctx: torch.Tensor,
        valid: torch.Tensor,
        s_text: list[float],
    ) -> torch.Tensor:
        """The velocity for the in-flight chunks: one pass, or MAGI-1's guidance.

        ``s_text`` holds each chunk's text scale. With a history scale of 1 the no-history
        pass cancels out of the sum, so text guidance alone takes two passes, not three.
        """
        b, n = x.shape[:2]

        def run(txt: tuple[torch.Tensor, torch.Tensor], history: bool) -> torch.Tensor:
            if self.use_cache or not history:
                with self._precision():
                    return self.model.denoiser(
                        x,
                        levels,
                        actions,
                        txt,
                        chunks,
                        context=(ctx, valid),
                        cache=state.cache if history else None,
                        use_history=history,
                    )
            return self._velocity_recompute(state, x, levels, actions, txt, chunks, ctx, valid)

        v_ht = run(text, True)
        if self.s_hist == 1.0 and all(s == 1.0 for s in s_text):  # the common tick: one pass
            return v_ht
        null = self.null_text(b)
        null_t = (null[0][:, None].expand(-1, n, -1, -1), null[1][:, None].expand(-1, n, -1))
        v_h = run(null_t, True)
        s_t = torch.tensor(s_text, dtype=v_ht.dtype, device=v_ht.device).view(1, n, 1, 1, 1, 1)
        if self.s_hist == 1.0:
            guided = v_h + s_t * (v_ht - v_h)
        else:
            v_u = run(null_t, False)
            guided = v_u + self.s_hist * (v_h - v_u) + s_t * (v_ht - v_h)
        on = (levels >= self.guidance_min_level)[..., None, None, None, None]
        return torch.where(on, guided, v_ht)

    def _velocity_recompute(
        self,
        state: RolloutState,
        x: torch.Tensor,
        levels: torch.Tensor,
        actions: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor],
        chunks: torch.Tensor,
        ctx: torch.Tensor,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """No cache: run the stored history chunks and the in-flight chunks in one masked pass."""
        b, n = x.shape[:2]
        held = [int(s) for s in torch.argsort(state.cache.index) if state.cache.index[s] >= 0]
        m = len(held)
        hx = state.context_inputs[held].transpose(0, 1)  # (B, m, Tl, C, h, w)
        ha = state.context_actions[held].transpose(0, 1)
        tokens, mask = self.null_text(b)
        length = max(tokens.shape[1], text[0].shape[2])
        ht = _pad(tokens, length)[:, None].expand(-1, m, -1, -1)
        hm = _pad(mask, length)[:, None].expand(-1, m, -1)
        all_x = torch.cat([hx, x], dim=1)
        all_levels = torch.cat(
            [torch.full((b, m), self.context_level, device=self.device), levels], 1
        )
        is_ctx = torch.cat(
            [
                torch.ones(b, m, dtype=torch.bool, device=self.device),
                torch.zeros(b, n, dtype=torch.bool, device=self.device),
            ],
            1,
        )
        all_chunks = torch.cat([state.cache.index[held], chunks])
        all_ctx = torch.cat([torch.zeros_like(ctx[:, :1]).expand(-1, m, -1, -1, -1), ctx], 1)
        all_valid = torch.cat([torch.zeros(b, m, dtype=torch.bool, device=self.device), valid], 1)
        with self._precision():
            v = self.model.denoiser(
                all_x,
                all_levels,
                torch.cat([ha, actions], 1),
                (
                    torch.cat([ht, _pad_seq(text[0], length)], 1),
                    torch.cat([hm, _pad_seq(text[1], length)], 1),
                ),
                all_chunks,
                is_context=is_ctx,
                context=(all_ctx, all_valid),
            )
        return v[:, m:]


def _pad(t: torch.Tensor, length: int, dim: int = 1) -> torch.Tensor:
    """Zero-pad ``t`` along ``dim`` (a caption's token axis) to ``length``."""
    extra = length - t.shape[dim]
    if extra == 0:
        return t
    shape = list(t.shape)
    shape[dim] = extra
    return torch.cat([t, torch.zeros(shape, dtype=t.dtype, device=t.device)], dim=dim)


def _pad_seq(t: torch.Tensor, length: int) -> torch.Tensor:
    """Pad per-chunk caption tensors (B, n, L, ...) along L."""
    return _pad(t, length, dim=2)
