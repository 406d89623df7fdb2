"""chunkworld SDK: run a world model like a game engine.

>>> from sdk import Session
>>> with Session.load("tiny") as s:
...     c = s.reset(prompt="night, two balls")
...     c = s.step("right")

See ``sdk.session`` for the contract, ``sdk.gym_env`` for the gymnasium adapter, ``sdk.checker``
for ``check_session`` and ``sdk.cli`` for the ``chunkworld`` command.
"""

from sdk.batch import SessionBatch
from sdk.checker import check_session
from sdk.errors import (
    ActionError,
    ArgumentError,
    CheckpointLoadError,
    ChunkworldError,
    ClosedError,
    ImageError,
    NotResetError,
    PromptError,
    SnapshotError,
    UnknownModelError,
)
from sdk.models import model_names
from sdk.session import Session
from sdk.snapshot import Snapshot
from sdk.spaces import Action, ActionSpace
from sdk.types import Chunk, Footprint, SessionInfo

__all__ = [
    "Action",
    "ActionError",
    "ActionSpace",
    "ArgumentError",
    "CheckpointLoadError",
    "Chunk",
    "ChunkworldError",
    "ClosedError",
    "Footprint",
    "ImageError",
    "NotResetError",
    "PromptError",
    "Session",
    "SessionBatch",
    "SessionInfo",
    "Snapshot",
    "SnapshotError",
    "UnknownModelError",
    "check_session",
    "model_names",
]
