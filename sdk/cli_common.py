"""What the ``chunkworld`` commands that write videos or load a model share (``sdk/cli.py``,
``sdk/cli_play.py``): the check of an output path before any work, and the Session of the model
arguments. Callers reach them through this module, so a test can replace ``open_session``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sdk.errors import ArgumentError

# world.core.cpus.PRECISIONS, written out: the parsers import no torch (tests/test_cli.py checks
# the two agree)
PRECISIONS = ("auto", "fp32", "bf16")

VIDEO_SUFFIXES = (".gif", ".mp4", ".webm", ".mkv", ".npy")


def check_output_path(path: str, what: str) -> None:
    """Refuse an output path that cannot be written, before any work: an unknown extension, a
    folder that does not exist or is not writable, or a video type whose writer is missing."""
    import importlib.util
    import os

    out = Path(path)
    if out.is_dir():
        raise ArgumentError(
            f"{what} {path} is a folder; give a file name such as {out / 'run.gif'}"
        )
    suffix = out.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ArgumentError(
            f"{what} {path}: unknown output type {suffix or '(none)'!r}; end the name in "
            + ", ".join(VIDEO_SUFFIXES)
        )
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ArgumentError(f"{what} {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise ArgumentError(f"{what} {path}: folder {folder} is not writable; pick another")
    if suffix in (".mp4", ".webm", ".mkv") and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ArgumentError(
            f"{what} {path}: writing {suffix} needs imageio-ffmpeg, which the play extra "
            f"installs (pip install 'chunkworld[play]', or bash scripts/setup.sh); or write a .gif"
        )


def open_session(args: argparse.Namespace, seed: int = 0) -> Any:
    """The Session of a sampler command's model arguments (``--model``, ``--steps``, ...)."""
    import torch

    from sdk.session import Session
    from world.core.cpus import warn_if_busy

    session = Session.load(
        args.model,
        device=args.device,
        seed=seed,
        steps=args.steps,
        in_flight=args.in_flight,
        threads=args.threads,
        precision=args.precision,
        prior_level=args.prior_level,
        pixel_history=args.pixel_history,
        palette=args.palette,
    )
    warn_if_busy(torch.get_num_threads())
    return session
