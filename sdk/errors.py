"""Typed errors of the SDK. Every message says what was wrong and how to fix the call.

All derive from :class:`ChunkworldError` and carry a class attribute ``code``, the string the
bridge sends to clients (``NOT_RESET``, ``CLOSED``, ``BAD_ACTION``, ``BAD_PROMPT``, ``BAD_IMAGE``,
``BAD_SNAPSHOT``, ``BAD_ARGUMENT``, ``UNKNOWN_MODEL``). Input errors also derive from
``ValueError`` and state errors from ``RuntimeError``, so generic handlers keep working.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ChunkworldError",
    "NotResetError",
    "ClosedError",
    "ActionError",
    "PromptError",
    "ImageError",
    "SnapshotError",
    "ArgumentError",
    "UnknownModelError",
    "CheckpointLoadError",
    "ERROR_CODES",
]


class ChunkworldError(Exception):
    """Base of every SDK error; ``code`` names the kind of mistake for programs and the bridge."""

    code: ClassVar[str] = "BAD_ARGUMENT"


class NotResetError(ChunkworldError, RuntimeError):
    """``step``/``snapshot`` called before ``reset``."""

    code = "NOT_RESET"


class ClosedError(ChunkworldError, RuntimeError):
    """The session was closed."""

    code = "CLOSED"


class ActionError(ChunkworldError, ValueError):
    """An action that is unknown, out of range, of the wrong type or the wrong length."""

    code = "BAD_ACTION"


class PromptError(ChunkworldError, ValueError):
    """A prompt that is not a string or is longer than the model accepts."""

    code = "BAD_PROMPT"


class ImageError(ChunkworldError, ValueError):
    """A start image or video of the wrong dtype or size (never resized: rejected)."""

    code = "BAD_IMAGE"


class SnapshotError(ChunkworldError, ValueError):
    """A snapshot that is corrupt, truncated, or made by a different model or sampler."""

    code = "BAD_SNAPSHOT"


class ArgumentError(ChunkworldError, ValueError):
    """Any other malformed argument (seed, device, sampler settings, conflicting options)."""

    code = "BAD_ARGUMENT"


class UnknownModelError(ChunkworldError, LookupError):
    """A model name that is neither a preset, ``"default"``, nor an existing checkpoint directory."""

    code = "UNKNOWN_MODEL"


class CheckpointLoadError(UnknownModelError):
    """A checkpoint directory exists but cannot be loaded (the message names file and problem)."""


ERROR_CODES: frozenset[str] = frozenset(
    cls.code
    for cls in (
        NotResetError,
        ClosedError,
        ActionError,
        PromptError,
        ImageError,
        SnapshotError,
        ArgumentError,
        UnknownModelError,
    )
)
