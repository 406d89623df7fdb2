"""The KV cache: a preallocated ring holding the keys and values of the last ``K`` clean chunks.

When a chunk becomes clean it is run once more through the denoiser at (almost) clean level with
the null caption, attending only to itself, and each layer's keys (before rotary positions) and
values are written here. History therefore never depends on text (a prompt change does not
invalidate it), and because cached chunks attend only to themselves, a chunk's output depends on
exactly the last ``K`` chunks and nothing older.

Slots are a ring: chunk ``c`` lives in slot ``c % K``. Worked example with ``K = 3``: chunks 0, 1, 2
fill slots 0, 1, 2; chunk 3 overwrites slot 0, so ``index == [3, 1, 2]``. Positions are explicit
(``index``), never implied by slot order; the denoiser builds its mask and rotary positions from
them. Memory is allocated once and never grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KVCache:
    """Keys/values of the last ``slots`` clean chunks for every layer.

    Attributes:
        k, v: (layers, B, kv_heads, slots, tokens_per_chunk, head_dim); keys stored before RoPE.
        index: (slots,) absolute chunk index held in each slot, -1 where empty.
    """

    k: torch.Tensor
    v: torch.Tensor
    index: torch.Tensor

    @classmethod
    def allocate(
        cls,
        *,
        layers: int,
        batch: int,
        kv_heads: int,
        slots: int,
        tokens_per_chunk: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> KVCache:
        shape = (layers, batch, kv_heads, slots, tokens_per_chunk, head_dim)
        return cls(
            k=torch.zeros(shape, dtype=dtype, device=device),
            v=torch.zeros(shape, dtype=dtype, device=device),
            index=torch.full((slots,), -1, dtype=torch.long, device=device),
        )

    @property
    def slots(self) -> int:
        return self.k.shape[3]

    @property
    def tokens_per_chunk(self) -> int:
        return self.k.shape[4]

    def slot_of(self, chunk_index: int) -> int:
        return chunk_index % self.slots

    def write(self, layer: int, chunk_index: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store one chunk's keys/values for one layer. k, v: (B, kv_heads, T, head_dim)."""
        s = self.slot_of(chunk_index)
        self.k[layer, :, :, s].copy_(k)
        self.v[layer, :, :, s].copy_(v)

    def commit(self, chunk_index: int) -> None:
        """Mark the chunk's slot as holding ``chunk_index`` once every layer has been written."""
        self.index[self.slot_of(chunk_index)] = chunk_index

    def read(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views of one layer's history: k, v (B, kv_heads, slots * T, head_dim), slot-major."""
        k, v = self.k[layer], self.v[layer]
        return k.flatten(2, 3), v.flatten(2, 3)

    def token_chunks(self) -> torch.Tensor:
        """(slots * T,) chunk index of every history token (-1 for empty slots)."""
        return self.index.repeat_interleave(self.tokens_per_chunk)

    def clear(self) -> None:
        self.k.zero_()
        self.v.zero_()
        self.index.fill_(-1)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.k, self.v, self.index))

    def clone(self) -> KVCache:
        return KVCache(self.k.clone(), self.v.clone(), self.index.clone())

    def load_(self, other: KVCache) -> None:
        """Copy another cache's contents into this one's preallocated storage."""
        if other.k.shape != self.k.shape:
            raise ValueError(f"cache shape {tuple(other.k.shape)} != {tuple(self.k.shape)}")
        self.k.copy_(other.k)
        self.v.copy_(other.v)
        self.index.copy_(other.index)


@dataclass
class RowCache:
    """The caches of ``B`` worlds stacked for one batched pass, each row with its own ring.

    ``KVCache`` has one ``index`` for the whole batch (its rows are one world's guidance copies,
    always at the same chunk); worlds stepped together sit at different chunks, so here the index
    is per row. Worked example, K = 2: a world at chunk 7 holds ``[6, 5]`` (slot 0 = chunk 6), one
    just reset holds ``[0, -1]``: ``index == [[6, 5], [0, -1]]``. Built by :meth:`stack` from
    each world's own cache (a copy), written back by :meth:`unstack` after the cache pass.

    Attributes:
        k, v: (layers, B, kv_heads, slots, tokens_per_chunk, head_dim).
        index: (B, slots) chunk held in each slot of each row, -1 where empty.
    """

    k: torch.Tensor
    v: torch.Tensor
    index: torch.Tensor

    @classmethod
    def stack(cls, caches: list[KVCache]) -> RowCache:
        assert all(c.k.shape[1] == 1 for c in caches), "one world (batch 1) per cache"
        return cls(
            torch.cat([c.k for c in caches], 1),
            torch.cat([c.v for c in caches], 1),
            torch.stack([c.index for c in caches]),
        )

    @property
    def slots(self) -> int:
        return self.k.shape[3]

    def write(self, layer: int, chunks: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store each row's chunk ``chunks[r]`` for one layer. k, v: (B, kv_heads, T, head_dim)."""
        for r, c in enumerate(chunks.tolist()):
            s = c % self.slots
            self.k[layer, r, :, s].copy_(k[r])
            self.v[layer, r, :, s].copy_(v[r])

    def commit(self, chunks: torch.Tensor) -> None:
        for r, c in enumerate(chunks.tolist()):
            self.index[r, c % self.slots] = c

    def read(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views of one layer's history: k, v (B, kv_heads, slots * T, head_dim), slot-major."""
        return self.k[layer].flatten(2, 3), self.v[layer].flatten(2, 3)

    def token_chunks(self) -> torch.Tensor:
        """(B, slots * T) chunk index of every history token (-1 for empty slots)."""
        return self.index.repeat_interleave(self.k.shape[4], dim=1)

    def unstack(self, caches: list[KVCache], chunks: torch.Tensor) -> None:
        """Copy each row's newly written slot (chunk ``chunks[r]``) back into its own cache."""
        for r, (cache, c) in enumerate(zip(caches, chunks.tolist(), strict=True)):
            s = c % self.slots
            cache.k[:, 0, :, s].copy_(self.k[:, r, :, s])
            cache.v[:, 0, :, s].copy_(self.v[:, r, :, s])
            cache.index[s] = c
