"""What a world starts from, checked and shaped: prompts, seeds, start images and start videos.

Start frames must be uint8 arrays of exactly the model's frame size; other sizes are rejected
with an ``ImageError`` that names the expected size, never resized (a silent resize would hide a
mismatch between a user's game and the model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sdk.errors import ArgumentError, ImageError, PromptError


def check_prompt(prompt: Any, limit: int) -> str:
    """A caption of at most ``limit`` characters; None -> "" (the null caption)."""
    if prompt is None:
        return ""
    if not isinstance(prompt, str):
        raise PromptError(
            f"prompt must be a str (or None for the null caption), got {type(prompt).__name__}"
        )
    if len(prompt) > limit:
        raise PromptError(
            f"prompt has {len(prompt)} characters; this model takes at most {limit}, shorten it"
        )
    return prompt


def check_seed(seed: Any) -> int:
    """An int in 0 .. 2**63 - 1 (numpy integers accepted, bools refused)."""
    if (
        isinstance(seed, (bool, np.bool_))
        or not isinstance(seed, (int, np.integer))
        or not 0 <= int(seed) < 2**63
    ):
        raise ArgumentError(f"seed must be an int in 0 .. 2**63 - 1, got {seed!r}")
    return int(seed)


def check_frames(array: Any, name: str, ndim: int, size: tuple[int, int]) -> np.ndarray:
    """``array`` as uint8 (H, W, 3) when ``ndim`` is 3, (T >= 1, H, W, 3) when 4; ``size`` is
    (H, W)."""
    h, w = size
    want = "(H, W, 3)" if ndim == 3 else "(T, H, W, 3)"
    if not isinstance(array, np.ndarray):
        raise ImageError(f"{name} must be a numpy uint8 array {want}, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise ImageError(
            f"{name} must be uint8 (0..255), got {array.dtype}; convert floats in [0, 1] with "
            f"(x * 255).round().astype(np.uint8)"
        )
    if array.ndim != ndim or array.shape[-3:] != (h, w, 3) or (ndim == 4 and not len(array)):
        raise ImageError(
            f"{name} has shape {array.shape}; this model needs {want} with H = {h}, "
            f"W = {w}{', T >= 1' if ndim == 4 else ''} (frames are not resized: resize to "
            f"{h}x{w} RGB first)"
        )
    return array


def start_clip(
    image: Any, video: Any, size: tuple[int, int], chunk_frames: int
) -> np.ndarray | None:
    """The frames a world starts from, (T, H, W, 3) uint8, or None to start from the caption.

    An image is repeated over one chunk; a video is taken as it is.
    """
    if image is not None and video is not None:
        raise ArgumentError("give image= or video=, not both")
    if image is not None:
        return np.repeat(check_frames(image, "image", 3, size)[None], chunk_frames, axis=0)
    if video is not None:
        return check_frames(video, "video", 4, size)
    return None


def history_chunks(clip: np.ndarray, chunk_frames: int, keep: int) -> np.ndarray:
    """(T, H, W, 3) -> its last ``keep`` chunks (n, F, H, W, 3), n <= keep, contiguous.

    The clip is left-padded by repeating its first frame to a multiple of ``chunk_frames``.
    Example: T = 5, F = 4, keep = 2 -> frames [0, 0, 0, 0, 1, 2, 3, 4] -> 2 chunks.
    Older chunks are dropped: they lie beyond the model's reach and could not be attended to.
    """
    pad = (-len(clip)) % chunk_frames
    if pad:
        clip = np.concatenate([np.repeat(clip[:1], pad, axis=0), clip])
    return np.ascontiguousarray(clip.reshape(-1, chunk_frames, *clip.shape[1:])[-keep:])


def check_options(
    *,
    threads: Any,
    steps: Any,
    in_flight: Any,
    prior_level: Any,
    pixel_history: Any = None,
    palette: Any = None,
) -> None:
    """Check a session's sampler options (``ArgumentError`` naming the bad one); ``threads``,
    if given, is applied: ``torch.set_num_threads`` (process-wide)."""
    if threads is not None:
        if not isinstance(threads, int) or threads < 1:
            raise ArgumentError(f"threads must be a positive int, got {threads!r}")
        torch.set_num_threads(threads)
    for key, value in (("steps", steps), ("in_flight", in_flight)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ArgumentError(f"{key} must be a positive int or None, got {value!r}")
    if prior_level is not None and (
        not isinstance(prior_level, (int, float)) or isinstance(prior_level, bool)
    ):
        raise ArgumentError(f"prior_level must be a float or None, got {prior_level!r}")
    if pixel_history is not None and not isinstance(pixel_history, bool):
        raise ArgumentError(
            f"pixel_history must be True, False or None (the model's), got {pixel_history!r}"
        )
    if palette is not None and not isinstance(palette, bool):
        raise ArgumentError(
            f"palette must be True, False or None (the model's, if it keeps one), got {palette!r}"
        )
