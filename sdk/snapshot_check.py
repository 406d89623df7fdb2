"""Checks of a snapshot's JSON document and its seal, before any of it reaches a session.

A snapshot (version 3 on) carries ``seal``: the SHA-256 of its document (without the seal) and
of every tensor's name, dtype, shape and bytes. A file changed after it was written (a flipped
byte in a tensor, an edited tick) no longer matches its seal and is refused, so a snapshot either
restores to exactly the state it was taken from or is refused at load. Version 1 and 2 files have
no seal; for them, and for every version, each field is checked for its type and range and the
counters for consistency with one another and with the tensors (``check_meta``), so a damaged
older file is refused rather than restored into a world that breaks on its next step.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import torch

from sdk.errors import SnapshotError

MAX_STEPS = 1000  # the largest sampler steps a model config may have (world/core/config_check)
MAX_IN_FLIGHT = 64
MAX_COUNTER = 1 << 62


def seal_of(meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str:
    """The SHA-256 (hex) of ``meta`` without its ``seal`` and of every tensor."""
    h = hashlib.sha256()
    doc = {k: v for k, v in meta.items() if k != "seal"}
    h.update(json.dumps(doc, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"\n{name} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def seal(meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``meta`` with its ``seal`` for ``tensors``."""
    return {**meta, "seal": seal_of(meta, tensors)}


def check_seal(meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    """Raise SnapshotError unless a version-3 document's seal matches (older ones have none)."""
    if meta["version"] < 3:
        return
    want = meta.get("seal")
    try:
        got = seal_of(meta, tensors)
    except (TypeError, ValueError) as e:
        raise SnapshotError(f"snapshot document cannot be checked ({e})") from None
    if want != got:
        raise SnapshotError(
            "snapshot does not match its seal: the file was changed or damaged after it was "
            "written; take the snapshot again"
        )


def _field(meta: Mapping[str, Any], name: str, ok: Any, want: str, label: str = "") -> Any:
    path, name = name.split("."), label or name
    value: Any = meta
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            raise SnapshotError(f"snapshot field {name} is missing; the file is damaged")
        value = value[key]
    if not ok(value):
        raise SnapshotError(f"snapshot field {name}={value!r:.80}: must be {want}; it is damaged")
    return value


def _int(lo: int, hi: int = MAX_COUNTER) -> Any:
    return lambda v: type(v) is int and lo <= v <= hi


def _str(v: Any) -> bool:
    return isinstance(v, str)


def check_meta(meta: Mapping[str, Any]) -> None:
    """Raise SnapshotError naming the first field of a version-2/3 document that is missing, of
    the wrong type, out of range, or inconsistent with the others."""
    _field(meta, "model", lambda v: _str(v) and v, "a non-empty string")
    _field(
        meta,
        "fingerprint",
        lambda v: _str(v) and len(v) == 16 and all(c in "0123456789abcdef" for c in v),
        "16 hex digits",
    )
    steps = _field(meta, "steps", _int(1, MAX_STEPS), f"an integer in [1, {MAX_STEPS}]")
    in_flight = _field(
        meta, "in_flight", _int(1, MAX_IN_FLIGHT), f"an integer in [1, {MAX_IN_FLIGHT}]"
    )
    if steps % in_flight:
        raise SnapshotError(f"snapshot steps={steps} is not a multiple of in_flight={in_flight}")
    tick = _field(meta, "tick", _int(0), "an integer >= 0")
    _field(meta, "prompt", _str, "a string")
    if "admitted" in meta:
        _field(meta, "admitted", _str, "a string")
    captions = _field(meta, "captions", lambda v: isinstance(v, Mapping), "an object")
    for key, text in captions.items():
        if not (isinstance(key, str) and key.isdigit() and _str(text)):
            raise SnapshotError(f"snapshot field captions[{key!r}]: must map a chunk to a string")
    _field(meta, "state", lambda v: isinstance(v, Mapping), "an object")
    nxt = _field(meta, "state.next_chunk", _int(1), "an integer >= 1")
    clean = _field(meta, "state.last_clean_chunk", _int(0), "an integer >= 0")
    rows = _field(meta, "state.in_flight", lambda v: isinstance(v, list), "a list")
    if tick > clean:
        raise SnapshotError(f"snapshot tick={tick} is past state.last_clean_chunk={clean}")
    if len(rows) >= in_flight or nxt != clean + 1 + len(rows):
        raise SnapshotError(
            f"snapshot state.in_flight holds {len(rows)} chunks, next_chunk={nxt} and "
            f"last_clean_chunk={clean}: inconsistent with in_flight={in_flight}; it is damaged"
        )
    for i, row in enumerate(rows):
        where = f"state.in_flight[{i}]"
        if not isinstance(row, Mapping):
            raise SnapshotError(f"snapshot field {where} must be an object; it is damaged")
        sub = {"r": row}
        chunk = _field(sub, "r.chunk", _int(0), "an integer", f"{where}.chunk")
        if chunk != clean + 1 + i:
            raise SnapshotError(f"snapshot field {where}.chunk={chunk}: must be {clean + 1 + i}")
        if str(chunk) not in captions:
            raise SnapshotError(f"snapshot has no caption for in-flight chunks [{chunk}]")
        want = f"an integer in [0, {steps - 1}]"
        _field(sub, "r.step", _int(0, steps - 1), want, f"{where}.step")
        if "prompted" in row:
            _field(
                sub, "r.prompted", lambda v: type(v) is bool, "true or false", f"{where}.prompted"
            )
        if "top" in row:
            _field(
                sub,
                "r.top",
                lambda v: type(v) in (int, float) and math.isfinite(v) and 0 < v <= 1,
                "a number in (0, 1]",
                f"{where}.top",
            )


def check_tensors(meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    """The cache's chunk indices must lie in [-1, last_clean_chunk]."""
    index = tensors.get("cache.index")
    if index is None or index.dtype not in (torch.int32, torch.int64) or index.numel() == 0:
        return  # missing or mistyped: refused by the shape checks of RolloutState
    clean = meta["state"]["last_clean_chunk"]
    if int(index.min()) < -1 or int(index.max()) > clean:
        raise SnapshotError(
            f"snapshot tensor cache.index holds chunks outside [-1, {clean}]; it is damaged"
        )
