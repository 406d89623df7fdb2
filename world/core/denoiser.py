"""The chunk-causal diffusion transformer (docs/how-it-works.md), in the order data flows.

Input: the latents of ``n`` chunks, each at its own noise level, plus per-frame actions, a caption
per chunk, and (optionally) the keys/values of clean history chunks from a ``KVCache``.
Output: the flow-matching velocity of every chunk.

The block follows MAGI-1 at small scale: pre-norm, per-head QK-norm, 3D rotary positions over
(time, row, column) with time the latent-frame index, a post-norm on each branch before the
residual add ("sandwich"), gates from the condition squashed by ``tanh``, grouped-query attention,
and text by cross-attention to the chunk's own caption. The condition (noise level, the chunk's
actions, the step size, a context flag) modulates every block with shift and scale (adaptive
norm), which is what makes actions followed rather than merely gated.

The attention rule and the rotary positions live in ``world/core/attention.py``; the blocks for
batched worlds at their own ticks (per-row positions and masks) in ``world/core/rows.py``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as fn
from torch import nn

from world.core.attention import RoPE3D, additive_mask, chunk_mask, sinusoid, token_positions
from world.core.cache import KVCache, RowCache
from world.core.config import ModelConfig
from world.core.rows import run_rows


def _as(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    return None if mask is None else mask.to(like.dtype)


class RMSNorm(nn.RMSNorm):
    """``nn.RMSNorm`` that normalises a bf16 input (under autocast) in float32 and hands back its
    dtype: the values of torch's own mixed-dtype path, bit for bit (a test checks it), without
    the warning that path prints on every process's first bf16 tick."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fn.rms_norm(x.float(), self.normalized_shape, self.weight, self.eps).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# The block
# ---------------------------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, text_dim: int) -> None:
        super().__init__()
        d = cfg.denoiser
        self.heads, self.kv_heads, self.hd = d.heads, d.kv_heads, d.head_dim
        dim = d.dim
        self.norm1 = RMSNorm(dim, elementwise_affine=False)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * d.kv_heads * d.head_dim, bias=False)
        self.q_norm = RMSNorm(d.head_dim)
        self.k_norm = RMSNorm(d.head_dim)
        self.proj = nn.Linear(dim, dim)
        self.post1 = RMSNorm(dim)
        self.norm_x = RMSNorm(dim, elementwise_affine=False)
        self.xq = nn.Linear(dim, dim, bias=False)
        self.xkv = nn.Linear(text_dim, 2 * dim, bias=False)
        self.xproj = nn.Linear(dim, dim)
        self.post_x = RMSNorm(dim)
        self.norm2 = RMSNorm(dim, elementwise_affine=False)
        hidden = int(d.mlp_ratio * dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)
        )
        self.post2 = RMSNorm(dim)
        self.local = LocalConv(dim, d.local_conv, cfg.token_grid) if d.local_conv else None
        # condition -> shift, scale, gate for attention, cross-attention, MLP
        self.mod = nn.Linear(dim, 9 * dim)
        nn.init.zeros_(self.mod.weight)
        nn.init.zeros_(self.mod.bias)
        with torch.no_grad():  # gates start small but open: tanh(0.1) ~ 0.1
            self.mod.bias[2 * dim : 3 * dim].fill_(0.1)
            self.mod.bias[5 * dim : 6 * dim].fill_(0.1)
            self.mod.bias[8 * dim : 9 * dim].fill_(0.1)

    def shut_gates(self) -> None:
        """Close the block: with the modulation's weight at zero (as initialised) and its gate
        biases at zero, every residual branch is gated by tanh(0) = 0 and the block passes its
        input through. Training opens the gates (their gradients are not zero)."""
        dim = self.proj.out_features
        with torch.no_grad():
            self.mod.weight.zero_()
            for g in (2, 5, 8):
                self.mod.bias[g * dim : (g + 1) * dim].zero_()

    def forward(
        self,
        x: torch.Tensor,  # (B, N, D) tokens, N = n chunks * T
        cond: torch.Tensor,  # (B, n * Tl, 1, D) condition per latent frame (broadcast to tokens)
        rope: RoPE3D,
        cos_q: torch.Tensor,  # (N, rot/2)
        sin_q: torch.Tensor,
        hist: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None,
        mask: torch.Tensor | None,  # (B, 1, N, M) additive over [history, current] tokens
        text: torch.Tensor,  # (B * n, L, Dt)
        text_mask: torch.Tensor | None,  # (B * n, 1, 1, L) additive
        n: int,
        write: tuple[KVCache | RowCache, int, Any] | None,  # (cache, layer, chunk(s)): cache pass
    ) -> torch.Tensor:
        b, big_n, dim = x.shape
        frames = cond.shape[1]
        sh1, sc1, g1, shx, scx, gx, sh2, sc2, g2 = self.mod(cond).chunk(9, dim=-1)

        def modulate(y: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return (y.view(b, frames, -1, dim) * (1 + scale) + shift).view(b, big_n, dim)

        def gated(y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
            return (y.view(b, frames, -1, dim) * torch.tanh(gate)).view(b, big_n, dim)

        # --- self-attention over [history, current] tokens
        h = modulate(self.norm1(x), sh1, sc1)
        q = self.q_norm(self.q(h).view(b, big_n, self.heads, self.hd)).transpose(1, 2)
        k, v = self.kv(h).view(b, big_n, 2, self.kv_heads, self.hd).unbind(2)
        k = self.k_norm(k).transpose(1, 2)  # (B, kv, N, hd), before RoPE
        v = v.transpose(1, 2)
        if write is not None:
            cache, layer, chunk = write
            cache.write(layer, chunk, k, v)
        q = rope.rotate(q, cos_q, sin_q)
        k = rope.rotate(k, cos_q, sin_q)
        if hist is not None:
            hk, hv, cos_h, sin_h = hist
            hk = rope.rotate(hk.to(k.dtype), cos_h, sin_h)
            k = torch.cat([hk, k], dim=2)
            v = torch.cat([hv.to(v.dtype), v], dim=2)
        a = fn.scaled_dot_product_attention(
            q, k, v, attn_mask=_as(mask, q), enable_gqa=self.kv_heads != self.heads
        )
        a = self.proj(a.transpose(1, 2).reshape(b, big_n, dim))
        x = x + gated(self.post1(a), g1)

        # --- cross-attention: each chunk's tokens to its own caption
        h = modulate(self.norm_x(x), shx, scx)
        t = big_n // n
        xq = self.xq(h).view(b * n, t, self.heads, self.hd).transpose(1, 2)
        xk, xv = self.xkv(text).view(text.shape[0], text.shape[1], 2, self.heads, self.hd).unbind(2)
        a = fn.scaled_dot_product_attention(
            xq, xk.transpose(1, 2), xv.transpose(1, 2), attn_mask=_as(text_mask, xq)
        )
        a = self.xproj(a.transpose(1, 2).reshape(b, big_n, dim))
        x = x + gated(self.post_x(a), gx)

        # --- MLP
        h = modulate(self.norm2(x), sh2, sc2)
        x = x + gated(self.post2(self.mlp(h)), g2)
        return x if self.local is None else x + self.local(x)


class LocalConv(nn.Module):
    """A token's 3x3 neighbourhood in its own latent frame, read directly: norm, a linear map to
    ``width`` channels, a 3x3 convolution over the frame's token grid, GELU, a linear map back.

    Moving a sprite a pixel or two moves its code between neighbouring tokens; attention can do it,
    but blends what it reads, while a convolution reads each neighbour with its own weights. The
    output layer starts at zero, so the branch adds nothing until trained and a block grown with it
    computes what it did. Frames stay separate (no mixing over time), so a chunk's tokens give the
    same keys and values whether it is run alone, in the cache pass or with others.
    """

    def __init__(self, dim: int, width: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.grid = grid  # (rows, columns) of a latent frame's tokens
        self.norm = RMSNorm(dim)
        self.inp = nn.Linear(dim, width)
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Linear(width, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) tokens, N a whole number of latent frames -> (B, N, D)."""
        b, big_n, _ = x.shape
        gh, gw = self.grid
        h = self.inp(self.norm(x)).view(b * big_n // (gh * gw), gh, gw, -1).permute(0, 3, 1, 2)
        h = fn.gelu(self.conv(h), approximate="tanh").permute(0, 2, 3, 1)
        return self.out(h.reshape(b, big_n, -1))


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


class Denoiser(nn.Module):
    """Velocity prediction for chunks of latents, with optional clean history from a KV cache."""

    def __init__(self, cfg: ModelConfig, text_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.denoiser
        c = cfg.codec.latent_channels
        p = d.patch
        self.patch_dim = c * p * p
        in_dim = self.patch_dim * (2 if d.context_frame else 1) + (1 if d.context_frame else 0)
        self.inp = nn.Linear(in_dim, d.dim)
        self.pos_bias = nn.Parameter(torch.zeros(cfg.tokens_per_frame, d.dim))  # spatial bias
        self.level_mlp = nn.Sequential(nn.Linear(256, d.dim), nn.SiLU(), nn.Linear(d.dim, d.dim))
        self.step_mlp = nn.Sequential(nn.Linear(256, d.dim), nn.SiLU(), nn.Linear(d.dim, d.dim))
        self.action_emb = nn.Embedding(len(cfg.actions), 64)
        self.action_proj = nn.Linear(64 * cfg.codec.temporal, d.dim)
        self.context_emb = nn.Embedding(2, d.dim)
        self.rope = RoPE3D(d.head_dim, d.rope_theta)
        self.blocks = nn.ModuleList(Block(cfg, text_dim) for _ in range(d.depth))
        self.out_norm = RMSNorm(d.dim, elementwise_affine=False)
        self.out_mod = nn.Linear(d.dim, 2 * d.dim)
        nn.init.zeros_(self.out_mod.weight)
        nn.init.zeros_(self.out_mod.bias)
        self.out = nn.Linear(d.dim, self.patch_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    # --- tokens <-> latents -----------------------------------------------------------------
    def patchify(self, z: torch.Tensor) -> torch.Tensor:
        """(B, n, Tl, C, h, w) -> (B, n * Tl * (h/p) * (w/p), C * p * p)."""
        b, n, tl, c, h, w = z.shape
        p = self.cfg.denoiser.patch
        z = z.reshape(b, n, tl, c, h // p, p, w // p, p)
        return z.permute(0, 1, 2, 4, 6, 3, 5, 7).reshape(b, n * tl * (h // p) * (w // p), c * p * p)

    def unpatchify(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Inverse of ``patchify``."""
        cfg = self.cfg
        b = x.shape[0]
        p, (gh, gw), c = cfg.denoiser.patch, cfg.token_grid, cfg.codec.latent_channels
        x = x.reshape(b, n, cfg.latent_frames, gh, gw, c, p, p)
        return x.permute(0, 1, 2, 5, 3, 6, 4, 7).reshape(b, n, cfg.latent_frames, c, gh * p, gw * p)

    # --- the two jobs -----------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        levels: torch.Tensor,
        actions: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor],
        chunk_index: torch.Tensor,
        *,
        is_context: torch.Tensor | None = None,
        context: tuple[torch.Tensor, torch.Tensor] | None = None,
        step_size: torch.Tensor | None = None,
        cache: KVCache | RowCache | None = None,
        use_history: bool = True,
    ) -> torch.Tensor:
        """Denoise: the velocity of ``n`` chunks, against the clean history in ``cache``.

        Args:
            x: (B, n, Tl, C, h, w) latents at their levels.
            levels: (B, n) noise level of each chunk (0 clean, 1 noise).
            actions: (B, n, F) action id of every frame.
            text: caption tokens (B, n, L, Dt) and mask (B, n, L) of each chunk.
            chunk_index: (n,) absolute chunk indices (time positions and the mask), or (B, n)
                each row's own (worlds at their own ticks, with a ``RowCache``).
            is_context: (B, n) True for clean history chunks run in this call (training's windows
                and the no-cache path; they attend only to themselves). None: all noisy.
            context: the previous chunk's last latent frame (B, n, C, h, w) and whether there is
                one (B, n) (the direct path; ignored when ``context_frame`` is off). None: none.
            step_size: (B, n) step size for few-step sampling (0 = infinitesimal); None -> 0.
            cache: clean history to attend to, as :meth:`encode_history` wrote it (read only).
            use_history: False ignores the cache, the context and earlier chunks (guidance's
                "no history" pass).
        Returns:
            (B, n, Tl, C, h, w) velocity, float32.
        """
        b, n = x.shape[:2]
        if is_context is None:
            is_context = torch.zeros(b, n, dtype=torch.bool, device=x.device)
        context = context if use_history else None
        h, cond = self._embed(x, levels, actions, is_context, context, step_size)
        history = cache if use_history else None
        h = self._blocks(h, cond, text, chunk_index, is_context, history, use_history, None)
        return self._velocity(h, cond, n)

    @torch.no_grad()
    def encode_history(
        self,
        cache: KVCache | RowCache,
        chunk: int | torch.Tensor,
        x: torch.Tensor,
        level: float,
        actions: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor],
    ) -> None:
        """Encode one clean chunk into ``cache`` as chunk ``chunk``: every layer's keys (before
        rotary positions) and values of its tokens, the chunk attending only to itself.

        Args:
            x: (B, Tl, C, h, w) the chunk's latents, noised to ``level`` (the sampler's
                ``context_level``).
            actions: (B, F) its frames' actions.
            text: caption tokens (B, L, Dt) and mask (B, L) (the sampler passes the null caption,
                so that history never depends on a prompt).
        """
        b = x.shape[0]
        is_context = torch.ones(b, 1, dtype=torch.bool, device=x.device)
        levels = torch.full((b, 1), level, device=x.device)
        h, cond = self._embed(x[:, None], levels, actions[:, None], is_context, None, None)
        if isinstance(chunk, int):
            index = torch.tensor([chunk], device=x.device)
        else:  # a RowCache: each row's own chunk (B,)
            index = chunk.to(x.device)[:, None]
        captions = (text[0][:, None], text[1][:, None])
        self._blocks(h, cond, captions, index, is_context, None, True, (cache, chunk))  # type: ignore[arg-type]
        cache.commit(chunk)  # type: ignore[arg-type]

    # --- the parts, in the order data flows -------------------------------------------------
    def _embed(
        self,
        x: torch.Tensor,
        levels: torch.Tensor,
        actions: torch.Tensor,
        is_context: torch.Tensor,
        context: tuple[torch.Tensor, torch.Tensor] | None,
        step_size: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, N, D) and the condition of each latent frame (B, n Tl, 1, D): noise level,
        actions, step size and the context flag, through SiLU."""
        cfg = self.cfg
        b, n, tl = x.shape[:3]
        t_chunk = cfg.tokens_per_chunk

        # tokens: own latent patch [+ previous chunk's last latent frame + its validity flag]
        tok = self.patchify(x)  # (B, N, C p^2)
        if cfg.denoiser.context_frame:
            if context is None:
                ctx = torch.zeros_like(x[:, :, 0])
                ctx_valid = torch.zeros(b, n, dtype=torch.bool, device=x.device)
            else:
                ctx, ctx_valid = context
            ctx_valid = ctx_valid & ~is_context  # history chunks are encoded on their own
            ctx = ctx * ctx_valid[:, :, None, None, None]
            ctx_tok = self.patchify(ctx[:, :, None].expand(-1, -1, tl, -1, -1, -1))
            flag = ctx_valid[:, :, None].expand(-1, -1, t_chunk).reshape(b, n * t_chunk, 1)
            tok = torch.cat([tok, ctx_tok, flag.to(tok.dtype)], dim=-1)
        h = self.inp(tok) + self.pos_bias.repeat(n * tl, 1)  # (B, N, D)

        # condition per (chunk, latent frame), then broadcast to its tokens
        k = cfg.codec.temporal
        cond = self.level_mlp(sinusoid(levels, 256))[:, :, None]  # (B, n, 1, D)
        act = self.action_emb(actions.view(b, n, tl, k)).flatten(3)  # (B, n, Tl, 64 k)
        cond = cond + self.action_proj(act)  # (B, n, Tl, D)
        if cfg.denoiser.step_size_cond:
            s = torch.zeros_like(levels) if step_size is None else step_size
            cond = cond + self.step_mlp(sinusoid(s, 256))[:, :, None]
        cond = cond + self.context_emb(is_context.long())[:, :, None]
        return h, fn.silu(cond).reshape(b, n * tl, 1, -1)  # (B, n Tl, 1, D)

    def _blocks(
        self,
        h: torch.Tensor,
        cond: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor],
        chunk_index: torch.Tensor,
        is_context: torch.Tensor,
        history: KVCache | RowCache | None,
        use_history: bool,
        write: tuple[KVCache | RowCache, int | torch.Tensor] | None,
    ) -> torch.Tensor:
        """Run the blocks over the tokens; read ``history``'s keys/values, or ``write`` this
        call's (one chunk) into a cache."""
        cfg = self.cfg
        b = h.shape[0]
        n = chunk_index.shape[-1]
        tl = cfg.latent_frames
        grid = cfg.token_grid
        # positions and mask: history tokens (from the cache) first, then this call's tokens
        if chunk_index.dim() == 2:  # per-row chunk indices (batched worlds at their own ticks)
            assert history is None or isinstance(history, RowCache)
            rows_write = None
            if write is not None:
                assert isinstance(write[0], RowCache) and isinstance(write[1], torch.Tensor)
                rows_write = (write[0], write[1])
            return run_rows(
                self, h, cond, text, chunk_index, is_context, history, use_history, rows_write
            )
        ref = int(chunk_index.min()) * tl
        cos_q, sin_q = self.rope.angles(token_positions(chunk_index, tl, grid, ref))
        cur_chunks = chunk_index.repeat_interleave(cfg.tokens_per_chunk)
        q_ctx = is_context.repeat_interleave(cfg.tokens_per_chunk, dim=1)  # (B, N)
        k_chunks = cur_chunks
        if history is not None:
            cos_h, sin_h = self.rope.angles(
                token_positions(history.index.clamp_min(0), tl, grid, ref)
            )
            k_chunks = torch.cat([history.token_chunks(), cur_chunks])
        mask = additive_mask(
            chunk_mask(cur_chunks, q_ctx, k_chunks, cfg.history_chunks, use_history)[:, None]
        )
        tokens, token_mask = text
        txt = tokens.reshape(b * n, *tokens.shape[2:])
        txt_mask = additive_mask(token_mask.reshape(b * n, 1, 1, -1))
        if write is not None:
            assert n == 1, "the cache pass encodes one chunk at a time"
        for i, block in enumerate(self.blocks):
            hist = None
            if history is not None:
                hk, hv = history.read(i)
                hist = (hk, hv, cos_h, sin_h)
            into = None if write is None else (write[0], i, write[1])
            h = block(h, cond, self.rope, cos_q, sin_q, hist, mask, txt, txt_mask, n, into)
        return h

    def _velocity(self, h: torch.Tensor, cond: torch.Tensor, n: int) -> torch.Tensor:
        """Output: adaptive norm, then the velocity of every patch, (B, n, Tl, C, h, w)."""
        cfg = self.cfg
        b = h.shape[0]
        shift, scale = self.out_mod(cond).chunk(2, dim=-1)  # (B, n Tl, 1, D)
        h = (
            self.out_norm(h).view(b, n * cfg.latent_frames, cfg.tokens_per_frame, -1) * (1 + scale)
            + shift
        ).view(b, n * cfg.tokens_per_chunk, -1)
        return self.unpatchify(self.out(h), n).float()
