"""Snapshots: a save-game of a whole world (KV cache, in-flight chunks, RNG, tick, prompt).

A :class:`Snapshot` holds what the sampler's ``RolloutState`` serialises itself to
(``RolloutState.state_dict``: CPU copies of its tensors and a dict of its counters), plus the
session's own: the tick, the prompt, the settings the state belongs to and the caption of every
in-flight chunk, kept as text and encoded again on restore (the text encoder is deterministic).
So ``restore`` followed by the same inputs gives bit-identical frames. On disk a snapshot is one
safetensors file: the state's tensors, named as ``world/core/rollout_state.py`` says, and a JSON
document in the safetensors metadata under ``"chunkworld"``. No pickle anywhere. Version 2 stores
the state's counters as the state gives them; version 3 adds a seal over the document and the
tensors, so a file changed after it was written is refused (``sdk/snapshot_check.py``). Version 1
files (which listed the counters field by field) and version 2 files still load; every version's
fields are checked for type, range and consistency before a session sees them.
"""

from __future__ import annotations

import dataclasses
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
from sdk.snapshot_check import check_meta, check_seal, check_tensors, seal
from world.core.rollout_state import RolloutState

SNAPSHOT_FORMAT = "chunkworld-snapshot"
SNAPSHOT_VERSION = 3
READS_VERSIONS = (1, 2, 3)
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
        state: the rollout state's counters (``RolloutState.state_dict``).
        captions: the caption of each in-flight chunk, by absolute chunk index.
        tensors: the rollout state's CPU tensors.
        admitted: caption of the newest admitted chunk (None: the prompt).
    """

    model: str
    fingerprint: str
    steps: int
    in_flight: int
    tick: int
    prompt: str
    state: Mapping[str, Any]
    captions: Mapping[int, str]
    tensors: Mapping[str, torch.Tensor] = field(repr=False)
    admitted: str | None = None
    source: str | None = field(default=None, repr=False)  # the file it was loaded from

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
            "admitted": self.prompt if self.admitted is None else self.admitted,
            "state": dict(self.state),
            "captions": {str(c): p for c, p in self.captions.items()},
        }

    def to_bytes(self) -> bytes:
        """The snapshot as safetensors bytes (tensors + JSON metadata)."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.tensors.items()}
        doc = seal(self.meta(), tensors)
        return st_save(tensors, metadata={"chunkworld": json.dumps(doc, allow_nan=False)})

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
            snap = cls.from_bytes(path.read_bytes())
        except SnapshotError as e:
            raise SnapshotError(f"{path}: {e}") from None
        return dataclasses.replace(snap, source=str(path))

    @classmethod
    def _from_parts(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Snapshot:
        check_seal(meta, tensors)
        try:
            if meta["version"] == 1:
                meta = _from_version_1(meta)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise SnapshotError(f"snapshot metadata is incomplete or malformed ({e!r})") from None
        check_meta(meta)
        check_tensors(meta, tensors)
        try:
            snap = cls(
                model=str(meta["model"]),
                fingerprint=str(meta["fingerprint"]),
                steps=int(meta["steps"]),
                in_flight=int(meta["in_flight"]),
                tick=int(meta["tick"]),
                prompt=str(meta["prompt"]),
                state=dict(meta["state"]),
                captions={int(c): str(p) for c, p in meta["captions"].items()},
                tensors=tensors,
                admitted=str(meta.get("admitted", meta["prompt"])),
            )
            need = RolloutState.tensor_names(snap.state)
            uncaptioned = [r["chunk"] for r in snap.state["in_flight"]]
            uncaptioned = [c for c in uncaptioned if c not in snap.captions]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SnapshotError(f"snapshot metadata is incomplete or malformed ({e!r})") from None
        missing = sorted(need - set(tensors))
        if missing:
            raise SnapshotError(f"snapshot is missing tensors {missing}; it is damaged")
        if uncaptioned:
            raise SnapshotError(f"snapshot has no caption for in-flight chunks {uncaptioned}")
        return snap


def _from_version_1(meta: dict[str, Any]) -> dict[str, Any]:
    """A version-1 document (the state's counters listed field by field, in-flight chunks as
    rows ``[chunk, step, caption]`` or ``[chunk, step, caption, prompted]``) in version 2's form."""
    rows = meta["inflight"]
    state = {
        "next_chunk": meta["next_chunk"],
        "last_clean_chunk": meta["last_clean_chunk"],
        "in_flight": [
            # no version-1 snapshot held a chunk started from the prior (top < 1)
            {
                "chunk": r[0],
                "step": r[1],
                "prompted": bool(r[3]) if len(r) > 3 else False,
                "top": 1.0,
            }
            for r in rows
        ],
    }
    return {**meta, "state": state, "captions": {str(r[0]): r[2] for r in rows}}


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
    if meta.get("version") not in READS_VERSIONS:
        raise SnapshotError(
            f"snapshot version {meta.get('version')!r} is not supported; this SDK reads "
            f"versions {', '.join(map(str, READS_VERSIONS))}"
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
    tensors, counters = state.state_dict()
    return Snapshot(
        model=model,
        fingerprint=fingerprint,
        steps=steps,
        in_flight=in_flight,
        tick=tick,
        prompt=prompt,
        state=counters,
        captions={f.chunk: captions[f.chunk] for f in state.in_flight},
        tensors=tensors,
        admitted=admitted,
    )


def rebuild(
    snap: Snapshot,
    fresh: RolloutState,
    encode: Callable[[str], tuple[torch.Tensor, torch.Tensor]],
) -> RolloutState:
    """Fill ``fresh`` (a new state of the right shapes) from ``snap``; checks every shape."""
    try:
        fresh.load_state_dict(snap.tensors, snap.state, lambda c: encode(snap.captions[c]))
    except ValueError as e:
        raise SnapshotError(f"snapshot {e}") from None
    return fresh


def check_fits(snapshot: Any, loaded: Any, steps: int, in_flight: int) -> None:
    """Raise ``SnapshotError`` unless ``snapshot`` is a Snapshot of ``loaded``'s model (a
    ``LoadedModel``) taken with these sampler settings; the message says what to do."""
    if not isinstance(snapshot, Snapshot):
        raise SnapshotError(
            f"restore() takes a Snapshot from snapshot() or Snapshot.load(path), "
            f"got {type(snapshot).__name__}"
        )
    if snapshot.fingerprint != loaded.fingerprint:
        raise SnapshotError(
            f"snapshot was made by model {snapshot.model!r} (fingerprint "
            f"{snapshot.fingerprint}), this session runs model {loaded.name!r} (fingerprint "
            f"{loaded.fingerprint}); load the snapshot's model to restore it"
        )
    if (snapshot.steps, snapshot.in_flight) != (steps, in_flight):
        raise SnapshotError(
            f"snapshot was taken with steps={snapshot.steps}, in_flight="
            f"{snapshot.in_flight}; this session uses steps={steps}, in_flight="
            f"{in_flight}; open the session with the snapshot's settings"
        )
