"""The action space of a world: named discrete keys, one action per frame.

An action is given per chunk (one key held for all ``F`` frames of the chunk, the normal case)
or per frame (a sequence of exactly ``F`` keys). A key is its name (``"right"``, any case) or its
id (the index in :attr:`ActionSpace.names`; ``0`` is always ``"noop"``). ``None`` means noop.

>>> space = ActionSpace(("noop", "up", "down", "left", "right", "fire"), chunk_frames=2)
>>> space.parse("right").tolist()
[4, 4]
>>> space.parse(["up", 5]).tolist()
[1, 5]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sdk.errors import ActionError

if TYPE_CHECKING:
    import gymnasium

# What ``Session.step`` accepts: a name, an id, one per frame, or None (noop).
Action = str | int | np.integer | Sequence[str | int | np.integer] | np.ndarray | None


@dataclass(frozen=True)
class ActionSpace:
    """Discrete keys with names; ``names[0]`` is ``"noop"``.

    Attributes:
        names: key names; the index of a name is its action id.
        chunk_frames: frames per chunk F; a per-frame action sequence has exactly F entries.
    """

    names: tuple[str, ...]
    chunk_frames: int

    def __post_init__(self) -> None:
        assert self.names and self.names[0] == "noop", "action 0 must be 'noop'"
        assert self.chunk_frames >= 1

    @property
    def n(self) -> int:
        """Number of keys."""
        return len(self.names)

    def _valid(self) -> str:
        return ", ".join(f"{i}={name}" for i, name in enumerate(self.names))

    def id_of(self, key: Any) -> int:
        """The id of one key given by name (case-insensitive) or id; raises ``ActionError``."""
        if isinstance(key, (bool, np.bool_)):
            raise ActionError(
                f"action must be a key name or id, got {key!r}; valid: {self._valid()}"
            )
        if isinstance(key, (int, np.integer)):
            if 0 <= int(key) < self.n:
                return int(key)
            raise ActionError(
                f"action id {int(key)} is out of range 0..{self.n - 1}; valid: {self._valid()}"
            )
        if isinstance(key, str):
            name = key.strip().lower()
            if name in self.names:
                return self.names.index(name)
            raise ActionError(f"unknown action {key!r}; valid: {self._valid()}")
        raise ActionError(
            f"action must be a key name (str) or id (int), got {type(key).__name__}; "
            f"valid: {self._valid()}"
        )

    def parse(self, action: Action) -> np.ndarray:
        """One action per frame: int64 (F,). Accepts a key, F keys, or None (noop).

        Raises:
            ActionError: unknown name, id out of range, wrong type, or a sequence whose length
                is not F (the message lists the valid keys and F).
        """
        f = self.chunk_frames
        if action is None:
            return np.zeros(f, dtype=np.int64)
        if isinstance(action, (str, int, np.integer, bool, np.bool_)):
            return np.full(f, self.id_of(action), dtype=np.int64)
        if isinstance(action, np.ndarray):
            if action.ndim == 0:
                return np.full(f, self.id_of(action.item()), dtype=np.int64)
            if action.ndim != 1:
                raise ActionError(
                    f"per-frame actions must be 1-D with {f} entries, got shape {action.shape}"
                )
            action = action.tolist()
        if isinstance(action, Sequence):
            if len(action) != f:
                raise ActionError(
                    f"got {len(action)} per-frame actions; give one action for the whole chunk "
                    f"or exactly {f} (one per frame)"
                )
            return np.array([self.id_of(a) for a in action], dtype=np.int64)
        raise ActionError(
            f"action must be a key name, an id, a sequence of {f} of them, or None; "
            f"got {type(action).__name__}"
        )

    def gym_space(self) -> gymnasium.spaces.Discrete:
        """``gymnasium.spaces.Discrete(n)``: one key held for the whole chunk."""
        try:
            import gymnasium
        except ImportError as e:  # pragma: no cover - optional extra
            raise ImportError("gym_space needs gymnasium: pip install 'chunkworld[gym]'") from e
        return gymnasium.spaces.Discrete(self.n)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description: names with ids, frames per chunk."""
        return {"keys": list(self.names), "chunk_frames": self.chunk_frames, "per_frame": True}
