"""Shared pieces of training: the run config, data loading, distributed helpers, resumable state.

See ``world/train/stages.py`` for the command and the phases.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import math
import os
import re
import textwrap
import time
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from world.core.config import ModelConfig
from world.core.cpus import PRECISIONS, warn_if_busy


@dataclass
class TrainConfig:
    data: str = "data/train"  # dataset directory (world/train/data.py format)
    out: str = "runs/default"  # run directory: checkpoints, metrics, latents
    preset: str = "small"  # model preset (world/core/config.py)
    # fields of the codec to override, as "field=value,..." (e.g. "temporal=1"):
    # of the preset's codec, or with init_from of that checkpoint's (at the preset's frame size);
    # a run keeps the setting it started with
    codec: str = ""
    # denoiser blocks (0: the preset's); with init_from, the blocks past the checkpoint's start
    # with their gates shut, so the deeper model starts as the checkpoint's function
    depth: int = 0
    # channels of each block's local 3x3 convolution over the token grid (DenoiserConfig.local_conv;
    # 0: the preset's); with init_from, its output layer starts at zero, so the model starts as the
    # checkpoint's function
    local_conv: int = 0
    codec_steps: int = 1200  # codec training steps (phase 1; 0 with init_from keeps its codec)
    codec_batch: int = 32  # latent frames per codec step
    codec_lr: float = 2e-3  # the codec's peak learning rate
    # as schedule_from, for the codec: a trained run given more codec_steps continues its codec in
    # a leg of its own from here (then re-encodes the data; the denoiser goes on with new latents)
    codec_schedule_from: int = 0
    steps: int = 4000  # denoiser steps
    batch: int = 16  # clips per denoiser step (per process)
    lr: float = 1e-3  # the denoiser's peak learning rate (AdamW)
    warmup: int = 100  # denoiser steps of linear warm-up
    # step at which warm-up and cosine decay begin: a resumed run given its current step gets a
    # fresh leg (warm-up to lr, decay to 5% of it at steps) instead of the old schedule's tail
    schedule_from: int = 0
    weight_decay: float = 0.01  # AdamW's weight decay
    ema: float = 0.998  # decay of the EMA weights, the ones saved and exported
    clip_grad: float = 1.0  # gradient norm clipped to this
    caption_dropout: float = 0.1  # share of captions dropped (for text guidance)
    # extra loss weight on the sprite tokens of a latent frame: those that stand out of it and
    # those that moved (world/core/schedule.py salience_weight)
    salience: float = 4.0
    train_shift: float = 3.0  # SD3 shift of training levels toward noise
    context_max: float = 0.1  # max noise level on context chunks (against drift)
    # share of windows whose first noisy chunk is pure noise (level 1), the one level a one-step
    # sampler denoises (world/core/schedule.py training_levels)
    pure_noise: float = 0.0
    rollout: float = (
        0.0  # share of items whose context the model generates (world/train/rollout.py)
    )
    rollout_steps: int = 0  # sampler steps of those generations (0 = the preset's play setting)
    # > 0: those contexts come from streams that roll out up to this many chunks deep, one chunk
    # per step, along clips of at least history_chunks + 3 chunks (world/train/rollout.py RolloutStreams)
    rollout_depth: int = 0
    # > 0: a stream whose player (built-in game's detector) strays more than this many px from
    # the truth goes back to the true chunks (RolloutStreams on_track)
    rollout_drift: float = 0.0
    # the streams' targets go on from where the generated chunk drew the player, the clip
    # replayed with the player moved there (data of the built-in game only; RolloutStreams
    # retarget, world/train/datagen.py Replayer)
    rollout_resim: bool = False
    # the model's sampler caches each generated chunk through its frames (SamplerConfig
    # .pixel_history): the self-rollouts above feed that history, and the model plays with it
    pixel_history: bool = False
    eval_every: int = 250  # logs the prediction from noise every this many steps (0: never)
    # saves state and model every this many steps and at the last (0: the last only)
    save_every: int = 100
    seed: int = 0  # of data order, noise and initial weights
    precision: str = "auto"  # "auto" (bf16 only where the CPU has native bf16), "fp32", "bf16"
    export: str = ""  # when set, export the final EMA model to this checkpoint directory
    # "hash" (self-contained) or "sentence-transformers:<name or path>" (frozen, installed locally)
    text_encoder: str = "hash"
    # a checkpoint directory ("default": the shipped model) whose weights start the run wherever
    # their names and shapes fit the preset: fine-tuning, for another game or a finer latent grid.
    # The run takes that checkpoint's codec setting (frames per latent frame, widths, ...), so a
    # fine-tuned model has its source's geometry, and keeps its latent_scale if the codec came
    # whole. A run's own saved state loads over it.
    init_from: str = ""


# --- data -------------------------------------------------------------------------------------


@dataclass
class Arrays:
    frames: np.ndarray  # (N, T, H, W, 3) uint8
    actions: np.ndarray  # (N, T) int64
    captions: list[list[str]]  # (N, T // chunk_frames)


def load_arrays(path: str | Path, cfg: ModelConfig | None = None) -> Arrays:
    """Load a dataset written by ``world.train.data`` into memory (clips of equal length).

    With ``cfg``, the dataset's frame size, chunk length and actions must match the model's.
    """
    from world.train.data import Dataset

    ds = Dataset(path)
    if cfg is not None:
        m = ds.meta
        want = cfg.frame_shape[:2]
        if tuple(m.frame_size) != want or m.chunk_frames != cfg.chunk_frames:
            raise ValueError(
                f"{path}: frames {tuple(m.frame_size)} with {m.chunk_frames} per chunk, but preset "
                f"{cfg.name!r} needs {want} with {cfg.chunk_frames} per chunk: record data of "
                "that size and chunk (docs/DATA.md), or for the built-in game `chunkworld data "
                f"generate --size {want[0]} --chunk {cfg.chunk_frames}`"
            )
        if len(m.actions) != len(cfg.actions):
            raise ValueError(
                f"{path}: {len(m.actions)} actions {list(m.actions)}, the model has "
                f"{len(cfg.actions)} {list(cfg.actions)}"
            )
    if not len(ds):
        raise ValueError(
            f"{path}: the dataset has no clips; generate one with `chunkworld data generate`"
        )
    f = ds.meta.chunk_frames
    batch = ds.load_all(frames=min(len(c) for c in ds) // f * f)
    return Arrays(
        frames=batch.frames, actions=batch.actions.astype(np.int64), captions=batch.captions
    )


# --- distributed helpers -------------------------------------------------------------------------


def init_dist() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def distributed(unit: nn.Module) -> nn.Module:
    """``unit`` (a module whose forward returns the loss) as the training loop calls it: under
    torchrun, wrapped in ``DistributedDataParallel``, which broadcasts rank 0's weights once and
    averages gradients over processes during ``backward``; in one process, ``unit`` itself, so a
    single-process run is exactly what it was without DDP.

    ``find_unused_parameters``: a step may leave parameters out of the graph (the text branch of a
    batch whose captions were all dropped); DDP then reduces zeros for them instead of waiting.
    Only parameters that require gradients are synchronised, so frozen parts need no care.
    """
    if not dist.is_initialized():
        return unit
    return DistributedDataParallel(unit, find_unused_parameters=True)


def leg_lr(tc: TrainConfig, step: int) -> float:
    """Learning rate of ``step`` in the leg that starts at ``tc.schedule_from`` (see ``lr_at``)."""
    return lr_at(max(0, step - tc.schedule_from), tc.steps - tc.schedule_from, tc.lr, tc.warmup)


def codec_leg_lr(tc: TrainConfig, step: int) -> float:
    """``leg_lr`` for the codec: its leg starts at ``tc.codec_schedule_from`` (50 warm-up steps)."""
    start = tc.codec_schedule_from
    return lr_at(max(0, step - start), tc.codec_steps - start, tc.codec_lr, 50)


def due(step: int, every: int) -> bool:
    """Whether a periodic task runs after ``step`` steps (counted from 1); ``every`` 0: never."""
    return every > 0 and step % every == 0


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up to ``base`` over ``warmup`` steps, then a cosine down to 5% of it at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


# --- checkpoints of a run (resumable) -------------------------------------------------------------


def save_state(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
        str(tmp),
        metadata={"meta": json.dumps(meta)},
    )
    os.replace(tmp, path)


def opt_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def load_opt(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def train_only(
    model: nn.Module, part: nn.Module, lr: float
) -> tuple[list[nn.Parameter], torch.optim.Optimizer]:
    """Freeze ``model`` but ``part``; returns ``part``'s parameters and an AdamW over them (no
    weight decay), for a run that trains that part alone (:func:`save_part`)."""
    model.requires_grad_(False)
    part.requires_grad_(True)
    params = list(part.parameters())
    return params, torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def save_part(
    path: Path, part: nn.Module, prefix: str, opt: torch.optim.Optimizer, step: int
) -> None:
    """Save a run that trains one ``part`` of a model: its weights under ``prefix.``, the
    optimizer's state and the step, for :func:`resume_part`."""
    tensors = {f"{prefix}.{name}": v for name, v in part.state_dict().items()}
    save_state(path, {**tensors, **opt_tensors(opt)}, {"step": step})


def resume_part(
    path: Path, part: nn.Module, prefix: str, opt: torch.optim.Optimizer, refused: str
) -> int:
    """Load what :func:`save_part` wrote at ``path`` into ``part`` and ``opt``; returns its step,
    0 when there is no such file.

    Raises:
        ValueError: the saved weights do not fit ``part`` (their names or shapes differ): a
            run of other settings; ``refused`` is the message, which says what to give.
    """
    if not path.exists():
        return 0
    kept = load_file(str(path))
    saved = {n[len(prefix) + 1 :]: v for n, v in kept.items() if n.startswith(prefix + ".")}
    own = {n: tuple(v.shape) for n, v in part.state_dict().items()}
    if {n: tuple(v.shape) for n, v in saved.items()} != own:
        raise ValueError(f"{path}: {refused}")
    part.load_state_dict(saved)
    load_opt(opt, kept)
    return int(json.loads(open_meta(path))["step"])


class MetricsLog:
    def __init__(self, out: Path, rank: int) -> None:
        self.file = out / "metrics.jsonl"
        self.rank = rank

    def __call__(self, **row: Any) -> None:
        if self.rank == 0:
            with self.file.open("a") as f:
                f.write(json.dumps({"time": time.time(), **row}) + "\n")


def open_meta(path: Path) -> str:
    with safe_open(str(path), "pt") as f:
        return f.metadata()["meta"]


Config = TypeVar("Config")
R = TypeVar("R")


def field_notes(cls: type) -> dict[str, str]:
    """What the source of dataclass ``cls`` says of each field: the ``#`` lines right above it
    and the comment after it on its line, joined. Empty where the source is not at hand."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments = {}  # line number -> (a line of its own?, text)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            alone = not tok.line[: tok.start[1]].strip()
            comments[tok.start[0]] = (alone, tok.string.lstrip("#").strip())
    names, notes, above = {f.name for f in fields(cls)}, {}, []
    for number, line in enumerate(source.splitlines(), 1):
        alone, text = comments.get(number, (False, ""))
        if alone:
            above.append(text)
            continue
        field = re.match(r"\s+(\w+)\s*:", line)
        if field and field[1] in names:
            notes[field[1]] = " ".join([*above, text] if text else above)
        above = []  # a blank line or any other code ends a comment block
    return notes


# fields whose flag takes one of a few values, for every command; a config class adds its own
# as a class attribute ``choices`` (a ClassVar mapping field name -> values)
CHOICES = {"precision": PRECISIONS}
OPTIONAL = {"int | None": int, "float | None": float, "str | None": str}  # None: not given


def config_parser(cls: type, prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A command line with one ``--flag`` per field of the dataclass ``cls`` (``train_steps`` ->
    ``--train-steps``), its help what the source's comments say of the field, and its default."""
    p = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    notes = field_notes(cls)
    known = {**CHOICES, **getattr(cls, "choices", {})}
    for f in fields(cls):
        note = notes.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        shown = "''" if f.default == "" else "the model's" if f.default is None else f.default
        flag, help = "--" + f.name.replace("_", "-"), f"{note} (default: {shown})".lstrip()
        if isinstance(f.default, bool):  # --flag / --no-flag
            p.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=f.default, help=help
            )
        else:  # a field "X | None = None" takes an X, absent: None
            kind = OPTIONAL[str(f.type)] if f.default is None else type(f.default)
            p.add_argument(flag, type=kind, default=f.default, choices=known.get(f.name), help=help)
    return p


def exit_on_bad_input(prog: str, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)``; a ``ValueError`` (a bad checkpoint, data or setting) or a
    ``FileNotFoundError`` (no dataset there), which the commands raise with the fix in their
    message, ends the process with that message instead of a traceback."""
    try:
        return fn(*args)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"{prog}: error: {e}") from None


def run_command(
    cls: type[Config],
    prog: str,
    doc: str | None,
    fn: Callable[[Config], Any],
    argv: list[str] | None,
) -> None:
    """A training command's ``main``: ``cls`` from the flags (:func:`parse_config`), a warning
    if other jobs keep the cores busy, then ``fn`` of it, a bad input ending in its message."""
    config = parse_config(cls, prog, doc, argv)
    warn_if_busy(torch.get_num_threads())
    exit_on_bad_input(prog, fn, config)


def parse_config(cls: type[Config], prog: str, doc: str | None, argv: list[str] | None) -> Config:
    """``config_parser``'s flags and ``--threads``, which sets torch's thread count; returns
    ``cls`` of the flags."""
    p = config_parser(cls, prog, doc)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = vars(p.parse_args(argv))
    threads = args.pop("threads")
    if threads:
        torch.set_num_threads(threads)
    return cls(**args)
