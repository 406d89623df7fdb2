"""Finding and loading a model by name: presets, the shipped default, checkpoint directories.

- a preset name from ``world.core.config.PRESETS`` (``"tiny"``, ``"small"``, ...): random weights,
  seeded and deterministic (the same name always gives the same weights). Only ``"tiny"`` is
  meant for this: other presets warn that their weights are untrained.
- ``"default"``: the arcade world's checkpoint shipped in ``world/models/default/``; the other
  shipped worlds by their names (``"platformer"``: ``world/models/platformer/``), listed by
  ``model_names()``. A shipped name wins over a directory of that name here: write
  ``"./platformer"`` for that.
- anything else: a checkpoint directory (``config.json`` + ``model.safetensors``).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdk.errors import ArgumentError, CheckpointLoadError, UnknownModelError
from sdk.types import SessionInfo
from world.core.checkpoint import (
    DEFAULT_DIR,
    CheckpointError,
    checkpoint_dir,
    load_checkpoint,
    shipped_models,
)
from world.core.config import PRESETS
from world.core.model import WorldModel
from world.core.openings import Openings, load_openings
from world.core.palette import Palette, load_palette
from world.core.sampler import PipelinedSampler

WEIGHT_SEED = 0  # seed of random-weight presets


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for a session, with the facts a session reports about it."""

    model: WorldModel
    name: str
    fingerprint: str
    trained: bool
    card: dict[str, Any] = field(default_factory=dict)
    # true starts of its game that a text start goes on from (world/core/openings.py)
    openings: Openings | None = None
    # the colours its game draws in, which shown frames are snapped to (world/core/palette.py)
    palette: Palette | None = None


def model_names() -> list[str]:
    """Names ``load_model`` accepts besides checkpoint paths."""
    return ["default", *(n for n in shipped_models() if n != "default"), *sorted(PRESETS)]


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ArgumentError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"device {device!r} asked for, but CUDA is not available; use 'cpu'")
    return dev


def random_model(name: str) -> WorldModel:
    """The preset with deterministic random weights.

    Zero-initialised gates and output layers get small random values, so that frames depend on
    every input (actions, captions, history) as they would in a trained model.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHT_SEED)
        model = WorldModel(PRESETS[name]).eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith(("mod.weight", "out.weight", "out_mod.weight")):
                    p.normal_(0, 0.05)
    return model


# Config fields added after models were fingerprinted, with the value that stands for how those
# models were: at that value a field is left out of the hash, so their fingerprints do not change.
ADDED_LATER = {
    ("codec", "decoder_blocks"): 0,
    ("codec", "frame_width"): 0,
    ("denoiser", "local_conv"): 0,
    ("sampler", "prior_level"): 0.0,
    ("sampler", "pixel_history"): False,
    ("sampler", "start_steps"): 0,
    ("prior", "width"): 0,
    ("prior", "blocks"): 4,
    ("text", "known_words"): (),
}
# Config fields removed since (docs/experiments.md) that the hash always held: hashed at the one
# value a loadable model can have had, so fingerprints do not change with their removal.
REMOVED_HASHED = {("denoiser", "action_counts"): False}


def fingerprint(model: WorldModel) -> str:
    """Hash of the config and of the first 4096 values of every weight (16 hex digits)."""
    config = model.cfg.to_dict()
    for (part, key), value in REMOVED_HASHED.items():
        config[part][key] = value
    for (part, key), before in ADDED_LATER.items():  # as before the field existed, so the
        if config[part][key] == before:  # snapshots of those models still restore
            del config[part][key]
    if not config["prior"]:  # a section added later, as a whole
        del config["prior"]
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().flatten()[:4096].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def load_model(
    name_or_path: str | Path = "default", *, device: str | torch.device = "cpu"
) -> LoadedModel:
    """Resolve ``name_or_path`` (see the module docstring) and load the model onto ``device``.

    Raises:
        UnknownModelError: no such preset, missing default checkpoint, or no such directory.
        CheckpointLoadError: the directory exists but its checkpoint is broken (the message
            names the file and the problem).
        ArgumentError: a bad device.
    """
    dev = _device(device)
    name = str(name_or_path)
    if name in PRESETS and not Path(name).is_dir():
        if name != "tiny":
            warnings.warn(
                f"model {name!r} is a preset with random (untrained) weights; its frames are noise. "
                f"Load 'default' or a trained checkpoint directory for a real world.",
                UserWarning,
                stacklevel=3,
            )
        model = random_model(name).to(dev)
        return LoadedModel(model, name, fingerprint(model), trained=False)
    if name == "default":
        path = DEFAULT_DIR
        if not (path / "config.json").is_file():
            raise UnknownModelError(
                f"the default model is not installed (expected a checkpoint in {path}); train or "
                f"copy one there, or use Session.load('tiny') for a random-weight test world"
            )
    elif name in shipped_models():
        path = checkpoint_dir(name)
    else:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise UnknownModelError(
                f"unknown model {name!r}: not a preset and not a checkpoint directory; use one of "
                f"{model_names()} or a directory holding config.json and model.safetensors"
            )
    try:
        model, doc = load_checkpoint(path, device=dev)
        openings = load_openings(path, (model.cfg.codec.frame_size, model.cfg.codec.width))
        palette = load_palette(path)
    except (CheckpointError, ValueError) as e:
        raise CheckpointLoadError(f"cannot load checkpoint: {e}") from None
    card = {k: v for k, v in doc.items() if k not in ("format_version", "model")}
    return LoadedModel(
        model.eval(),
        name,
        fingerprint(model),
        trained=True,
        card=card,
        openings=openings,
        palette=palette,
    )


def session_info(loaded: LoadedModel, sampler: PipelinedSampler) -> SessionInfo:
    """A session's facts: the model's and its sampler's."""
    cfg = loaded.model.cfg
    return SessionInfo(
        model=loaded.name,
        fingerprint=loaded.fingerprint,
        frame_height=cfg.codec.frame_size,
        frame_width=cfg.codec.width,
        chunk_frames=cfg.chunk_frames,
        fps=float(cfg.fps),
        actions=tuple(cfg.actions),
        history_chunks=cfg.history_chunks,
        steps=sampler.steps,
        in_flight=sampler.in_flight,
        prior_level=sampler.prior_level,
        pixel_history=sampler.pixel_history,
        palette=sampler.palette is not None,
        precision=sampler.runs_at,
        max_prompt_chars=cfg.max_prompt_chars,
        parameters=loaded.model.parameter_count(),
        trained=loaded.trained,
        card=dict(loaded.card),
        known_words=cfg.text.known_words,
    )
