"""What a running world carries from tick to tick, apart from the network: the KV cache, the
noised inputs and actions of the cached chunks, the chunks being denoised, the RNG and the chunk
counter (``RolloutState``), and what a tick hands back (``TickResult``).

The sampler (``world/core/sampler.py``) reads and advances a state passed in explicitly. A state
serialises itself (``state_dict`` / ``load_state_dict``: this file is the one place that knows its
fields), and a snapshot (``sdk/snapshot.py``) stores exactly that. Tensor names::

    cache.k, cache.v, cache.index        the ring KV cache
    context.inputs, context.actions      noised inputs / actions of the cached chunks
    generator                            torch.Generator state (uint8)
    last_clean                           last latent frame of the newest clean chunk (if any)
    inflight.{i}.latent, inflight.{i}.actions   chunks being denoised, oldest first
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

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
    # dynamics prior's guess, the sampler's ``prior_level`` (only with W = 1, so a chunk is
    # admitted and emitted within one tick)
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

    def last_frames(self, count: int) -> torch.Tensor | None:
        """(B, count, C, h, w): the last ``count`` latent frames before the next chunk to admit,
        as the cache holds them (the dynamics prior's input); None unless the chunks they lie in
        are clean and held.

        Worked example, 1 latent frame per chunk, count 2, next chunk 7: the frames of chunks 5
        and 6, if both are in the cache; with 4 per chunk, the last two frames of chunk 6.
        """
        frames: list[torch.Tensor] = []
        chunk = self.next_chunk - 1
        while len(frames) < count and chunk >= 0:
            slots = (self.cache.index == chunk).nonzero()
            if not len(slots):
                return None
            frames = list(self.context_inputs[int(slots[0])].unbind(1)) + frames
            chunk -= 1
        return torch.stack(frames[-count:], 1) if len(frames) >= count else None

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
                replace(f, latent=f.latent.clone(), actions=f.actions.clone())
                for f in self.in_flight
            ],
            next_chunk=self.next_chunk,
            last_clean=None if self.last_clean is None else self.last_clean.clone(),
            last_clean_chunk=self.last_clean_chunk,
        )

    # --- serialisation ------------------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """CPU copies of every tensor (named as in the module docstring) and a JSON-ready dict of
        the counters and of each in-flight chunk's ``chunk``, ``step``, ``prompted`` and ``top``.
        An in-flight chunk's caption encoding is not in it: its text is the caller's to keep
        (a snapshot keeps the caption), and ``load_state_dict`` asks for it again."""

        def cp(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to("cpu", copy=True).contiguous()

        tensors = {
            "cache.k": cp(self.cache.k),
            "cache.v": cp(self.cache.v),
            "cache.index": cp(self.cache.index),
            "context.inputs": cp(self.context_inputs),
            "context.actions": cp(self.context_actions),
            "generator": cp(self.generator.get_state()),
        }
        if self.last_clean is not None:
            tensors["last_clean"] = cp(self.last_clean)
        rows = []
        for i, f in enumerate(self.in_flight):
            tensors[f"inflight.{i}.latent"] = cp(f.latent)
            tensors[f"inflight.{i}.actions"] = cp(f.actions)
            rows.append({"chunk": f.chunk, "step": f.step, "prompted": f.prompted, "top": f.top})
        counters = {
            "next_chunk": self.next_chunk,
            "last_clean_chunk": self.last_clean_chunk,
            "in_flight": rows,
        }
        return tensors, counters

    @staticmethod
    def tensor_names(counters: Mapping[str, Any]) -> set[str]:
        """The names a :meth:`state_dict` with these counters always holds (``last_clean`` is
        there only when a chunk has been cleaned)."""
        names = {"cache.k", "cache.v", "cache.index", "context.inputs", "context.actions"}
        names.add("generator")
        for i in range(len(counters["in_flight"])):
            names |= {f"inflight.{i}.latent", f"inflight.{i}.actions"}
        return names

    def load_state_dict(
        self,
        tensors: Mapping[str, torch.Tensor],
        counters: Mapping[str, Any],
        text: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        """Fill this state (a fresh one from the sampler's ``new_state``: its shapes and device)
        from :meth:`state_dict`'s output. ``text(chunk)`` gives an in-flight chunk's caption
        encoding. Raises ValueError naming what is missing or does not fit; this state is left
        as it was unless every check passes."""
        device = self.cache.k.device

        def get(name: str, like: torch.Tensor) -> torch.Tensor:
            if name not in tensors:
                raise ValueError(f"state tensor {name} is missing")
            got = tensors[name]
            if got.shape != like.shape or got.dtype != like.dtype:
                raise ValueError(
                    f"state tensor {name} is {tuple(got.shape)} {got.dtype}, this state needs "
                    f"{tuple(like.shape)} {like.dtype}: it is damaged or from another model"
                )
            return got.to(device, copy=True)

        gen = get("generator", self.generator.get_state())
        cache = KVCache(
            get("cache.k", self.cache.k),
            get("cache.v", self.cache.v),
            get("cache.index", self.cache.index),
        )
        inputs = get("context.inputs", self.context_inputs)
        actions = get("context.actions", self.context_actions)
        like_frame, like_chunk = self.context_inputs[0, :, -1], self.context_inputs[0]
        last_clean = get("last_clean", like_frame) if "last_clean" in tensors else None
        in_flight = [
            InFlight(
                chunk=int(row["chunk"]),
                latent=get(f"inflight.{i}.latent", like_chunk),
                step=int(row["step"]),
                actions=get(f"inflight.{i}.actions", self.context_actions[0]),
                text=text(int(row["chunk"])),
                prompted=bool(row.get("prompted", False)),
                top=float(row.get("top", 1.0)),
            )
            for i, row in enumerate(counters["in_flight"])
        ]
        next_chunk, last_clean_chunk = (
            int(counters["next_chunk"]),
            int(counters["last_clean_chunk"]),
        )
        try:
            self.generator.set_state(gen.cpu())
        except RuntimeError as e:
            raise ValueError(f"state tensor generator is damaged ({e})") from None
        self.cache.load_(cache)
        self.context_inputs.copy_(inputs)
        self.context_actions.copy_(actions)
        self.last_clean = last_clean
        self.in_flight = in_flight
        self.next_chunk = next_chunk
        self.last_clean_chunk = last_clean_chunk


# per forward of a tick: (chunk, level) of each chunk in flight, oldest first
Trace = tuple[tuple[tuple[int, float], ...], ...]


@dataclass(frozen=True)
class TickResult:
    latents: torch.Tensor  # (B, Tl, C, h, w) the emitted clean chunk
    chunk: int  # its absolute index
    forwards: int  # denoiser passes this tick (cache pass not counted)
    trace: Trace
    # with pixel history: the chunk's frames, uint8 (B, F, H, W, 3), decoded on the way into the
    # cache (decode them again and you get these), and the latents the cache keeps (before the
    # context noise); None without
    frames: torch.Tensor | None = None
    history: torch.Tensor | None = None

    @property
    def kept(self) -> torch.Tensor:
        """What the cache keeps of the chunk: ``history`` with pixel history, else ``latents``."""
        return self.latents if self.history is None else self.history
