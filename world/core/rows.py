"""The denoiser's blocks for batched worlds at their own ticks (``chunk_index`` of shape (B, n)).

``Denoiser._blocks`` hands a per-row call here: each row gets the rotary positions, the
chunk-causal mask and the ``RowCache`` history it would get run alone (same values, element for
element), and the rows are stacked on the batch for one pass through the blocks. Kept apart from
``world/core/denoiser.py``, which keeps the single-timeline path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from world.core.attention import additive_mask, chunk_mask, token_positions
from world.core.cache import RowCache

if TYPE_CHECKING:
    from world.core.denoiser import Denoiser


def run_rows(
    net: Denoiser,
    h: torch.Tensor,
    cond: torch.Tensor,
    text: tuple[torch.Tensor, torch.Tensor],
    chunk_index: torch.Tensor,  # (B, n): each row's own chunk indices
    is_context: torch.Tensor,
    history: RowCache | None,  # index (B, slots): each row's own ring
    use_history: bool,
    write: tuple[RowCache, torch.Tensor] | None,
) -> torch.Tensor:
    """``net._blocks`` for rows at their own ticks: every row gets the positions, mask and
    history it would get alone (same values, element for element), stacked on the batch."""
    cfg = net.cfg
    b, n = chunk_index.shape
    tl, tpc = cfg.latent_frames, cfg.tokens_per_chunk
    grid = cfg.token_grid
    refs = chunk_index.min(dim=1).values * tl  # (B,) each row's own reference time

    def angles(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = [token_positions(index[r], tl, grid, int(refs[r])) for r in range(b)]
        cos, sin = net.rope.angles(torch.cat(pos))  # (B * N, rot/2)
        return cos.view(b, 1, -1, cos.shape[-1]), sin.view(b, 1, -1, sin.shape[-1])

    cos_q, sin_q = angles(chunk_index)
    cur_chunks = chunk_index.repeat_interleave(tpc, dim=1)  # (B, N)
    q_ctx = is_context.repeat_interleave(tpc, dim=1)
    k_chunks = cur_chunks
    if history is not None:
        cos_h, sin_h = angles(history.index.clamp_min(0))
        k_chunks = torch.cat([history.token_chunks(), cur_chunks], dim=1)
    allowed = [
        chunk_mask(cur_chunks[r], q_ctx[r : r + 1], k_chunks[r], cfg.history_chunks, use_history)
        for r in range(b)
    ]
    mask = additive_mask(torch.cat(allowed)[:, None])  # (B, 1, N, M)
    tokens, token_mask = text
    txt = tokens.reshape(b * n, *tokens.shape[2:])
    txt_mask = additive_mask(token_mask.reshape(b * n, 1, 1, -1))
    for i, block in enumerate(net.blocks):
        hist = None
        if history is not None:
            hk, hv = history.read(i)
            hist = (hk, hv, cos_h, sin_h)
        into = None if write is None else (write[0], i, write[1])
        h = block(h, cond, net.rope, cos_q, sin_q, hist, mask, txt, txt_mask, n, into)
    return h
