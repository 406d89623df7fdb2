"""Reading start frames and writing rollouts: images, videos and action scripts for the CLI.

Action scripts (``chunkworld generate --actions``) are one entry per tick, comma separated::

    right*8,up*4,fire        8 ticks holding right, 4 holding up, 1 firing
    noop,up|up|fire|fire     a per-frame tick: exactly chunk_frames keys joined by '|'
    3*2                      ids work too: 2 ticks of action 3

or a JSON file holding a list whose entries are a key (name or id) or a list of per-frame keys.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ArgumentError

Tick = str | int | list[str | int]


def _key(text: str) -> str | int:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def parse_actions(script: str) -> list[Tick]:
    """Parse an action script (see the module docstring) or, if it names a ``.json`` file, read it.

    Names are not checked here; the session checks them against its action space.
    """
    path = Path(script)
    if script.endswith(".json"):
        if not path.is_file():
            raise ArgumentError(f"actions file {script} not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ArgumentError(f"actions file {script} is not valid JSON ({e})") from None
        if not isinstance(data, list) or not all(
            isinstance(a, (str, int))
            or (isinstance(a, list) and all(isinstance(k, (str, int)) for k in a))
            for a in data
        ):
            raise ArgumentError(
                f"actions file {script} must hold a JSON list of keys or lists of per-frame keys, "
                f'e.g. ["right", "right", ["up", "fire"]]'
            )
        return data
    out: list[Tick] = []
    for item in filter(None, (p.strip() for p in script.split(","))):
        body, _, count = item.partition("*")
        try:
            n = int(count) if count else 1
        except ValueError:
            raise ArgumentError(
                f"bad repeat count in {item!r}; write KEY*N, e.g. right*8"
            ) from None
        if n < 0:
            raise ArgumentError(f"repeat count must be >= 0 in {item!r}")
        tick: Tick = [_key(k) for k in body.split("|")] if "|" in body else _key(body)
        out += [tick] * n
    return out


def parse_prompt_at(items: list[str]) -> dict[int, str]:
    """``["12:night", "30:day"]`` -> ``{12: "night", 30: "day"}`` (tick -> caption)."""
    out: dict[int, str] = {}
    for item in items:
        tick, sep, caption = item.partition(":")
        if not sep or not tick.strip().isdigit():
            raise ArgumentError(f"--prompt-at takes TICK:CAPTION, e.g. 12:night; got {item!r}")
        out[int(tick)] = caption
    return out


def _rgb(frames: np.ndarray) -> np.ndarray:
    if frames.dtype != np.uint8:
        raise ArgumentError(f"frames must be 8-bit, got {frames.dtype}")
    if frames.shape[-1] == 4:
        frames = frames[..., :3]
    elif frames.shape[-1] != 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)  # grayscale
    return np.ascontiguousarray(frames)


def read_image(path: str | Path) -> np.ndarray:
    """An image file (png, jpg, ...) or ``.npy`` -> uint8 (H, W, 3). Not resized."""
    path = Path(path)
    if not path.is_file():
        raise ArgumentError(f"image {path} not found")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    import imageio.v3 as iio

    frame = iio.imread(path)
    if frame.ndim == 4:  # an animated file: its first frame
        frame = frame[0]
    return _rgb(frame)


def read_video(path: str | Path) -> np.ndarray:
    """A gif, a video (needs imageio-ffmpeg) or ``.npy`` -> uint8 (T, H, W, 3). Not resized."""
    path = Path(path)
    if not path.is_file():
        raise ArgumentError(f"video {path} not found")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    import imageio.v3 as iio

    try:
        frames = iio.imread(path, index=None)
    except Exception as e:  # imageio raises many types for unsupported formats
        raise ArgumentError(
            f"cannot read video {path} ({e}); a .gif or .npy always works"
        ) from None
    if frames.ndim == 3 and frames.shape[-1] not in (3, 4):  # (T, H, W) grayscale
        frames = frames[..., None]
    if frames.ndim == 3:
        frames = frames[None]
    return _rgb(frames)


def write_video(path: str | Path, frames: np.ndarray, *, fps: float, scale: int = 1) -> Path:
    """Write uint8 (T, H, W, 3) to ``.gif`` (always) or ``.mp4`` (needs imageio-ffmpeg)."""
    path = Path(path)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    import imageio.v3 as iio

    suffix = path.suffix.lower()
    if suffix == ".gif":
        iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    elif suffix in (".mp4", ".webm", ".mkv"):
        if importlib.util.find_spec("imageio_ffmpeg") is None:
            raise ArgumentError(
                f"writing {suffix} needs imageio-ffmpeg (pip install imageio-ffmpeg); "
                f"or write a .gif instead"
            )
        iio.imwrite(
            path, frames, extension=suffix, fps=fps, codec="libx264" if suffix == ".mp4" else None
        )
    elif suffix == ".npy":
        np.save(path, frames, allow_pickle=False)
    else:
        raise ArgumentError(f"unknown output type {suffix!r}; use .gif, .mp4 or .npy")
    return path


def describe_ticks(actions: list[Any]) -> str:
    """A short summary of a script for logs: ``right*8, up*4``."""
    out: list[str] = []
    for a in actions:
        name = "|".join(map(str, a)) if isinstance(a, list) else str(a)
        if out and out[-1].split("*")[0] == name:
            head, _, n = out[-1].partition("*")
            out[-1] = f"{head}*{int(n or 1) + 1}"
        else:
            out.append(name)
    return ", ".join(out)
