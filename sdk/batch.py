"""``SessionBatch``: many worlds on one model, stepped together in one forward pass.

>>> from sdk import SessionBatch
>>> with SessionBatch.load("tiny", size=3, seed=0) as worlds:
...     first = worlds.reset(prompts=["night", "", "two balls"])
...     chunks = worlds.step(["right", None, "left"])
...     [c.tick for c in chunks], chunks[0].frames.shape
([1, 1, 1], (2, 32, 32, 3))

Each member is a full ``Session`` (``worlds[i]``) with its own seed, start, actions, prompt, tick,
KV cache and snapshots; the batch only ticks them together. A member's frames are the frames it
would make stepped alone: most chunks bit-identical, the rest within one level in at most 0.1% of
their values (CPU kernels at batch B do not always give batch 1's bits; tests/test_batch.py). Members
may sit at different ticks: ``worlds.reset(which=[2])`` restarts member 2 while the others go on,
``worlds.step({0: "right", 3: None})`` steps only members 0 and 3, and ``add`` / ``remove``
change the batch between steps. Members that tick the same schedule share every network pass (on
the shipped default: a plain tick; a prompted tick or a text start takes more Euler steps, so
such members form a group of their own that tick).

``worlds[i].step(...)`` still works and steps that member alone. One thread at a time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch

from sdk.errors import ArgumentError, ClosedError
from sdk.models import LoadedModel, fingerprint, load_model
from sdk.session import Session
from sdk.spaces import Action
from sdk.starts import check_seed
from sdk.ticks import Shown, shown_frames
from sdk.types import Chunk
from world.core.batched import Row, tick_rows
from world.core.model import WorldModel
from world.core.rollout_state import TickResult


class SessionBatch:
    """``size`` sessions on one model; member ``i``'s default seed is ``seed + i``."""

    def __init__(self, loaded: LoadedModel, *, size: int, seed: int = 0, **options: Any) -> None:
        """Prefer :meth:`load`. ``options``: as ``Session`` (steps, in_flight, threads, ...)."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ArgumentError(f"size must be an int >= 0 (members), got {size!r}")
        self._seed = check_seed(seed)
        self._loaded, self._options = loaded, options
        self._members: list[Session] = []
        self._closed = False
        for _ in range(size):
            self.add()

    @classmethod
    def load(
        cls,
        name_or_path: str | Path = "default",
        *,
        size: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
        **options: Any,
    ) -> SessionBatch:
        """Load a model once and open ``size`` sessions on it; ``options`` as ``Session.load``
        (steps, in_flight, threads, precision, prior_level, pixel_history, palette)."""
        return cls(load_model(name_or_path, device=device), size=size, seed=seed, **options)

    @classmethod
    def from_model(
        cls, model: WorldModel, *, size: int, name: str = "custom", seed: int = 0, **options: Any
    ) -> SessionBatch:
        """Open ``size`` sessions on a model already in memory; puts it in eval mode."""
        loaded = LoadedModel(model.eval(), name, fingerprint(model), trained=True)
        return cls(loaded, size=size, seed=seed, **options)

    # --- members ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._members)

    def __getitem__(self, i: int) -> Session:
        return self._members[self._index(i)]

    @property
    def sessions(self) -> tuple[Session, ...]:
        """The members, in order (each a full ``Session``)."""
        return tuple(self._members)

    def add(self, *, seed: int | None = None) -> Session:
        """A new member at the end (not reset yet); its seed defaults to ``seed + its index``."""
        self._require_open()
        use = self._seed + len(self._members) if seed is None else check_seed(seed)
        member = Session(self._loaded, seed=use, **self._options)
        if self._members:  # one caption cache for the batch: one model, one encoder
            member._text = self._members[0]._text
        self._members.append(member)
        return member

    def remove(self, i: int) -> None:
        """Close member ``i`` and drop it; later members move down one index."""
        self._require_open()
        self._members.pop(self._index(i)).close()

    # --- the loop ---------------------------------------------------------------------------
    def reset(
        self,
        which: Sequence[int] | None = None,
        *,
        prompts: Sequence[str | None] | None = None,
        seeds: Sequence[int | None] | None = None,
        images: Sequence[np.ndarray | None] | None = None,
    ) -> list[Chunk]:
        """Start new worlds for members ``which`` (default: all) and return their tick-0 chunks,
        in the order of ``which``. ``prompts``, ``seeds`` and ``images`` give one entry per
        member reset (None: null caption, the member's seed, a text start). Text starts are
        generated together; the other members are left as they are.

        Raises:
            ArgumentError: a bad index or a list of the wrong length; and as ``Session.reset``.
        """
        started = time.perf_counter()
        idx = self._which(which)
        prompts_ = self._per(prompts, idx, "prompts")
        seeds_ = self._per(seeds, idx, "seeds")
        images_ = self._per(images, idx, "images")
        begun = [
            self._members[i]._begin_reset(p, im, None, sd)
            for i, p, sd, im in zip(idx, prompts_, seeds_, images_, strict=True)
        ]
        rows = {k: row for k, (_, row, _) in enumerate(begun) if row is not None}
        shown: dict[int, Shown] = {k: z for k, (_, _, z) in enumerate(begun) if z is not None}
        shown |= self._tick({k: (self._members[idx[k]], row) for k, row in rows.items()})
        frames = self._decode([shown[k] for k in range(len(idx))])
        return [
            self._members[i]._end_reset(st, f, started)
            for i, (st, _, _), f in zip(idx, begun, frames, strict=True)
        ]

    def step(
        self,
        actions: Sequence[Action] | Mapping[int, Action],
        *,
        prompts: Mapping[int, str | None] | None = None,
    ) -> list[Chunk]:
        """Advance members one chunk each, in one pass, and return their chunks.

        Args:
            actions: one action per member (a sequence as long as the batch; None = noop), or a
                mapping member index -> action to step only those members (the others wait).
            prompts: member index -> its new caption from this chunk on (as ``Session.step``).
        Returns:
            The chunks, in member order (for a mapping: in the mapping's order).

        Raises:
            ArgumentError: wrong number of actions or a bad index; and as ``Session.step``
                (NotResetError names no member: reset every member before stepping it).
        """
        started = time.perf_counter()
        self._require_open()
        if isinstance(actions, Mapping):
            plan = [(self._index(i), a) for i, a in actions.items()]
        else:
            if isinstance(actions, str) or len(actions) != len(self._members):
                raise ArgumentError(
                    f"step() takes one action per member ({len(self._members)}), got "
                    f"{actions!r}; or a dict {{index: action}} to step only some members"
                )
            plan = list(enumerate(actions))
        prompts = dict(prompts or {})
        for i in prompts:
            if self._index(i) not in {j for j, _ in plan}:
                raise ArgumentError(f"prompts names member {i}, which this step does not step")
        rows = [
            self._members[i]._begin_step(a, prompts.get(i) if i in prompts else None)
            for i, a in plan
        ]
        shown = self._tick({k: (self._members[plan[k][0]], r) for k, r in enumerate(rows)})
        frames = self._decode([shown[k] for k in range(len(plan))])
        return [
            self._members[i]._end_step(f, r, started)
            for (i, _), r, f in zip(plan, rows, frames, strict=True)
        ]

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close every member. Safe to call more than once."""
        for m in self._members:
            m.close()
        self._members = []
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> SessionBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        ticks = [m.tick for m in self._members]
        return f"SessionBatch(model={self._loaded.name!r}, size={len(self)}, ticks={ticks})"

    # --- internals --------------------------------------------------------------------------
    def _tick(self, rows: dict[int, tuple[Session, Row]]) -> dict[int, TickResult]:
        """Tick the rows together; each member records its captions; their results."""
        if not rows:
            return {}
        keys = list(rows)
        sampler = rows[keys[0]][0]._sampler
        results = tick_rows(sampler, [rows[k][1] for k in keys])
        return {k: rows[k][0]._settle(rows[k][1], r) for k, r in zip(keys, results, strict=True)}

    def _decode(self, chunks: list[Shown]) -> list[np.ndarray]:
        """Every member's frames, (F, H, W, 3) uint8 each, decoded in one codec pass."""
        if not chunks:
            return []
        return shown_frames(self._members[0]._sampler, chunks)

    def _require_open(self) -> None:
        if self._closed:
            raise ClosedError("this batch is closed; open a new one with SessionBatch.load(...)")

    def _index(self, i: Any) -> int:
        self._require_open()
        n = len(self._members)
        if not isinstance(i, int) or isinstance(i, bool) or not -n <= i < n:
            raise ArgumentError(f"member index must be an int in [{-n}, {n}), got {i!r}")
        return i % n

    def _which(self, which: Sequence[int] | None) -> list[int]:
        if which is None:
            self._require_open()
            return list(range(len(self._members)))
        idx = [self._index(i) for i in which]
        if len(set(idx)) != len(idx):
            raise ArgumentError(f"which lists a member twice: {list(which)!r}")
        return idx

    @staticmethod
    def _per(values: Sequence[Any] | None, idx: list[int], name: str) -> list[Any]:
        if values is None:
            return [None] * len(idx)
        if isinstance(values, str) or len(values) != len(idx):
            raise ArgumentError(
                f"{name} must have one entry per member reset ({len(idx)}), got {values!r}"
            )
        return list(values)


def step_together(
    calls: Sequence[tuple[Session, Action, str | None]],
) -> list[Chunk | Exception]:
    """Step independent sessions (each at most once) in as few passes as their models allow:
    sessions on one loaded model with the same sampler settings share each pass. The bridge
    server calls this (as its session factory's ``step_many``) for the clients whose steps are
    ready in the same tick window.

    Args:
        calls: (session, action, prompt) per step; prompt None keeps the caption.
    Returns:
        Per call, its chunk, or the exception its ``step`` would have raised (a bad action, a
        closed or never-reset session): one caller's mistake does not fail the others.
    """
    started = time.perf_counter()
    out: list[Chunk | Exception] = [ArgumentError("not stepped")] * len(calls)
    groups: dict[tuple[Any, ...], list[tuple[int, Session, Row]]] = {}
    seen: set[int] = set()
    for k, (session, action, prompt) in enumerate(calls):
        try:
            if id(session) in seen:
                raise ArgumentError("step_together() takes each session at most once per call")
            seen.add(id(session))
            row = session._begin_step(action, prompt)
        except Exception as exc:  # noqa: BLE001 (handed back to that caller)
            out[k] = exc
            continue
        sm = session._sampler
        key = (
            id(sm.model),
            sm.steps,
            sm.in_flight,
            sm.precision,
            sm.prior_level,
            sm.pixel_history,
            id(sm.palette),
        )
        groups.setdefault(key, []).append((k, session, row))
    for members in groups.values():
        sampler = members[0][1]._sampler
        results = tick_rows(sampler, [row for _, _, row in members])
        shown = [s._settle(row, r) for (_, s, row), r in zip(members, results, strict=True)]
        frames = shown_frames(sampler, shown)
        for (k, session, row), f in zip(members, frames, strict=True):
            out[k] = session._end_step(f, row, started)
    return out
