"""Snapshots: a save-game of a whole world (KV cache, in-flight chunks, RNG, tick, prompt).

A :class:`Snapshot` holds copies of every tensor of the sampler's ``RolloutState`` plus the
session's own counters, so ``restore`` followed by the same inputs gives bit-identical frames.
Captions of in-flight chunks are kept as strings and re-encoded on restore (the text encoder is
deterministic). On disk a snapshot is one safetensors file: the tensors, and a JSON document in
the safetensors metadata under ``"chunkworld"``. No pickle anywhere.

Tensor names::

    cache.k, cache.v, cache.index        the ring KV cache
    context.inputs, context.actions      noised inputs / actions of the cached chunks
    generator                            torch.Generator state (uint8)
    last_clean                           last latent frame of the newest clean chunk (if any)
    inflight.{i}.latent, inflight.{i}.actions   chunks being denoised, oldest first
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from sdk.errors import SnapshotError
from world.core.cache import KVCache
from world.core.rollout_state import InFlight, RolloutState

SNAPSHOT_FORMAT = "chunkworld-snapshot"
SNAPSHOT_VERSION = 1
_HEADER_LIMIT = 16 * 1024 * 1024  # a snapshot's JSON header is a few KiB; refuse absurd sizes


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A frozen copy of a world's state. Opaque to most users: pass it to ``Session.restore``,
    or write it with :meth:`save` / :meth:`to_bytes` and read it back with :meth:`load` /
    :meth:`from_bytes`.

    Attributes:
        model: the model's name; fingerprint: hash of its config and weights.
        steps, in_flight: the sampler settings the state belongs to.
        tick: the session's tick when taken; prompt: the caption in effect.
        inflight: per in-flight chunk (oldest first): absolute chunk index, steps taken, caption,
            whether it was prompted (its caption had just changed: it gets text guidance).
        next_chunk, last_clean_chunk: the sampler's counters.
        tensors: CPU tensors, named as in the module docstring.
    """

    model: str
    fingerprint: str
    steps: int
    in_flight: int
    tick: int
    prompt: str
    next_chunk: int
    last_clean_chunk: int
    inflight: tuple[tuple[int, int, str, bool], ...]
    tensors: Mapping[str, torch.Tensor] = field(repr=False)
    admitted: str | None = None  # caption of the newest admitted chunk (None: the prompt)

    # --- files and bytes ----------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """The JSON document stored beside the tensors."""
        return {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "steps": self.steps,
            "in_flight": self.in_flight,
            "tick": self.tick,
            "prompt": self.prompt,
            "next_chunk": self.next_chunk,
            "last_clean_chunk": self.last_clean_chunk,
            "inflight": [list(x) for x in self.inflight],
            "admitted": self.prompt if self.admitted is None else self.admitted,
        }

    def to_bytes(self) -> bytes:
        """The snapshot as safetensors bytes (tensors + JSON metadata)."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.tensors.items()}
        return st_save(tensors, metadata={"chunkworld": json.dumps(self.meta())})

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (conventionally ``*.snapshot.safetensors``); returns the path."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)
        return path

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        """Parse :meth:`to_bytes` output; raises ``SnapshotError`` for anything else."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise SnapshotError(f"snapshot data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        meta = _read_meta(data)
        try:
            tensors = st_load(data)
        except Exception as e:  # safetensors raises several types for damaged buffers
            raise SnapshotError(f"snapshot tensors are truncated or corrupt ({e})") from None
        return cls._from_parts(meta, tensors)

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise SnapshotError(
                f"{path}: no such snapshot file; write one with Snapshot.save(path)"
            )
        try:
            return cls.from_bytes(path.read_bytes())
        except SnapshotError as e:
            raise SnapshotError(f"{path}: {e}") from None

    @classmethod
    def _from_parts(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Snapshot:
        try:
            inflight = tuple(  # rows of 3 come from before prompt guidance: not prompted
                (int(r[0]), int(r[1]), str(r[2]), bool(r[3]) if len(r) > 3 else False)
                for r in meta["inflight"]
            )
            snap = cls(
                model=str(meta["model"]),
                fingerprint=str(meta["fingerprint"]),
                steps=int(meta["steps"]),
                in_flight=int(meta["in_flight"]),
                tick=int(meta["tick"]),
                prompt=str(meta["prompt"]),
                next_chunk=int(meta["next_chunk"]),
                last_clean_chunk=int(meta["last_clean_chunk"]),
                inflight=inflight,
                tensors=tensors,
                admitted=str(meta.get("admitted", meta["prompt"])),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"snapshot metadata is incomplete or malformed ({e!r})") from None
        need = {
            "cache.k",
            "cache.v",
            "cache.index",
            "context.inputs",
            "context.actions",
            "generator",
        }
        need |= {
            f"inflight.{i}.{part}" for i in range(len(inflight)) for part in ("latent", "actions")
        }
        missing = sorted(need - set(tensors))
        if missing:
            raise SnapshotError(f"snapshot is missing tensors {missing}; it is damaged")
        return snap


def _read_meta(data: bytes) -> dict[str, Any]:
    """The JSON document in a safetensors header's metadata (safetensors: u64 length + JSON)."""
    if len(data) < 8:
        raise SnapshotError(f"snapshot is {len(data)} bytes: truncated (not a snapshot file)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _HEADER_LIMIT or 8 + n > len(data):
        raise SnapshotError("snapshot header is truncated or corrupt (not a snapshot file?)")
    try:
        header = json.loads(data[8 : 8 + n])
        meta = json.loads(header["__metadata__"]["chunkworld"])
    except (ValueError, KeyError, TypeError) as e:
        raise SnapshotError(f"not a chunkworld snapshot (header unreadable: {e!r})") from None
    if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError("not a chunkworld snapshot (format tag missing)")
    if meta.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(
            f"snapshot version {meta.get('version')!r} is not supported; this SDK reads "
            f"version {SNAPSHOT_VERSION}"
        )
    return meta


# --- between a Snapshot and a RolloutState ------------------------------------------------------
def capture(
    state: RolloutState,
    *,
    model: str,
    fingerprint: str,
    steps: int,
    in_flight: int,
    tick: int,
    prompt: str,
    captions: Mapping[int, str],
    admitted: str | None = None,
) -> Snapshot:
    """Copy ``state`` (all tensors cloned to CPU); ``captions`` maps in-flight chunk -> caption."""

    def cp(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to("cpu", copy=True).contiguous()

    tensors = {
        "cache.k": cp(state.cache.k),
        "cache.v": cp(state.cache.v),
        "cache.index": cp(state.cache.index),
        "context.inputs": cp(state.context_inputs),
        "context.actions": cp(state.context_actions),
        "generator": cp(state.generator.get_state()),
    }
    if state.last_clean is not None:
        tensors["last_clean"] = cp(state.last_clean)
    rows = []
    for i, f in enumerate(state.in_flight):
        tensors[f"inflight.{i}.latent"] = cp(f.latent)
        tensors[f"inflight.{i}.actions"] = cp(f.actions)
        rows.append((f.chunk, f.step, captions[f.chunk], f.prompted))
    return Snapshot(
        model=model,
        fingerprint=fingerprint,
        steps=steps,
        in_flight=in_flight,
        tick=tick,
        prompt=prompt,
        next_chunk=state.next_chunk,
        last_clean_chunk=state.last_clean_chunk,
        inflight=tuple(rows),
        tensors=tensors,
        admitted=admitted,
    )


def rebuild(
    snap: Snapshot,
    fresh: RolloutState,
    encode: Callable[[str], tuple[torch.Tensor, torch.Tensor]],
) -> RolloutState:
    """Fill ``fresh`` (a new state of the right shapes) from ``snap``; checks every shape."""
    t = snap.tensors
    device = fresh.cache.k.device

    def get(name: str, like: torch.Tensor) -> torch.Tensor:
        got = t[name]
        if got.shape != like.shape or got.dtype != like.dtype:
            raise SnapshotError(
                f"snapshot tensor {name} is {tuple(got.shape)} {got.dtype}, this session needs "
                f"{tuple(like.shape)} {like.dtype}; the snapshot is damaged or from another model"
            )
        return got.to(device)

    fresh.cache.load_(
        KVCache(
            get("cache.k", fresh.cache.k),
            get("cache.v", fresh.cache.v),
            get("cache.index", fresh.cache.index),
        )
    )
    fresh.context_inputs.copy_(get("context.inputs", fresh.context_inputs))
    fresh.context_actions.copy_(get("context.actions", fresh.context_actions))
    gen = t["generator"]
    if gen.dtype != torch.uint8 or gen.dim() != 1:
        raise SnapshotError("snapshot generator state is damaged (expected a 1-D uint8 tensor)")
    try:
        fresh.generator.set_state(gen.clone())
    except RuntimeError as e:
        raise SnapshotError(f"snapshot generator state is damaged ({e})") from None
    like = fresh.context_inputs[0, :, -1]  # (B, C, h, w)
    fresh.last_clean = get("last_clean", like).clone() if "last_clean" in t else None
    fresh.next_chunk = snap.next_chunk
    fresh.last_clean_chunk = snap.last_clean_chunk
    latent_like = fresh.context_inputs[0]  # (B, Tl, C, h, w)
    actions_like = fresh.context_actions[0]  # (B, F)
    fresh.in_flight = [
        InFlight(
            chunk=chunk,
            latent=get(f"inflight.{i}.latent", latent_like).clone(),
            step=step,
            actions=get(f"inflight.{i}.actions", actions_like).clone(),
            text=encode(caption),
            prompted=prompted,
        )
        for i, (chunk, step, caption, prompted) in enumerate(snap.inflight)
    ]
    return fresh
