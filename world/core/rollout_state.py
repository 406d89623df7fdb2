"""What a running world carries from tick to tick, apart from the network: the KV cache, the
noised inputs and actions of the cached chunks, the chunks being denoised, the RNG and the chunk
counter (``RolloutState``), and what a tick hands back (``TickResult``).

The sampler (``world/core/sampler.py``) reads and advances a state passed in explicitly; a snapshot
(``sdk/snapshot.py``) copies exactly this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from world.core.cache import KVCache


@dataclass
class InFlight:
    """A chunk being denoised."""

    chunk: int  # absolute chunk index
    latent: torch.Tensor  # (B, Tl, C, h, w) at level top * grid[step]
    step: int  # Euler steps taken so far, 0 .. S
    actions: torch.Tensor  # (B, F) long
    text: tuple[torch.Tensor, torch.Tensor]  # tokens (B, L, Dt), mask (B, L)
    prompted: bool = False  # its caption just changed: text guidance at ``prompt_guidance``
    # the level it started from, the grid scaled to it: 1 (pure noise) or, started from the
    # dynamics prior's guess, the sampler's ``prior_level``. Such a chunk is admitted and emitted
    # within one tick (W = 1), so no snapshot holds one
    top: float = 1.0


@dataclass
class RolloutState:
    """Everything that changes while a world runs. Snapshots copy exactly this."""

    cache: KVCache
    context_inputs: torch.Tensor  # (K, B, Tl, C, h, w) noised inputs of the cached chunks
    context_actions: torch.Tensor  # (K, B, F) their actions
    generator: torch.Generator
    in_flight: list[InFlight] = field(default_factory=list)
    next_chunk: int = 0  # index the next admitted chunk gets
    last_clean: torch.Tensor | None = (
        None  # (B, C, h, w) last latent frame of the newest clean chunk
    )
    last_clean_chunk: int = -1

    def nbytes(self) -> int:
        """Bytes of every tensor this state holds (the cache included; in-flight captions are
        the caller's encodings, shared, and not counted)."""
        tensors = [
            self.cache.k,
            self.cache.v,
            self.cache.index,
            self.context_inputs,
            self.context_actions,
            self.generator.get_state(),
        ]
        tensors += [f.latent for f in self.in_flight] + [f.actions for f in self.in_flight]
        if self.last_clean is not None:
            tensors.append(self.last_clean)
        return sum(t.numel() * t.element_size() for t in tensors)

    def clone(self) -> RolloutState:
        """An independent copy: ticking the copy leaves this state as it was."""
        gen = torch.Generator(device=self.generator.device)
        gen.set_state(self.generator.get_state())
        return RolloutState(
            cache=self.cache.clone(),
            context_inputs=self.context_inputs.clone(),
            context_actions=self.context_actions.clone(),
            generator=gen,
            in_flight=[
                InFlight(f.chunk, f.latent.clone(), f.step, f.actions.clone(), f.text, f.prompted)
                for f in self.in_flight
            ],
            next_chunk=self.next_chunk,
            last_clean=None if self.last_clean is None else self.last_clean.clone(),
            last_clean_chunk=self.last_clean_chunk,
        )


@dataclass(frozen=True)
class TickResult:
    latents: torch.Tensor  # (B, Tl, C, h, w) the emitted clean chunk
    chunk: int  # its absolute index
    forwards: int  # denoiser passes this tick (cache pass not counted)
    trace: tuple[tuple[tuple[int, float], ...], ...]  # per forward: (chunk, level) oldest first
