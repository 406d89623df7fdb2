"""Checkpoints: a directory with ``config.json`` (format version + model config) and
``model.safetensors`` (the weights). No pickle anywhere.

Loading checks the config against the weights and raises ``CheckpointError`` naming the
problem: missing file, unknown format version, bad config, missing or unexpected keys, shape or
dtype mismatch, truncated or corrupt weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from world.config import FORMAT_VERSION, ModelConfig
from world.model import WorldModel

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
DEFAULT_DIR = Path(__file__).resolve().parent / "models" / "default"  # the shipped model


class CheckpointError(ValueError):
    """A checkpoint could not be loaded; the message says what is wrong and with which file."""


def save_checkpoint(
    model: WorldModel, path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to directory ``path`` (created); files are replaced atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"format_version": str(FORMAT_VERSION)})
    os.replace(tmp, path / WEIGHTS_FILE)
    doc = {"format_version": FORMAT_VERSION, "model": model.cfg.to_dict(), **(extra or {})}
    tmp = path / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path / CONFIG_FILE)
    return path


def read_config(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """Read and validate ``config.json``: returns the model config and the whole document."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(
            f"{file}: missing; a checkpoint directory holds {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    try:
        doc = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or "format_version" not in doc or "model" not in doc:
        raise CheckpointError(f"{file}: needs the keys 'format_version' and 'model'")
    if doc["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: format_version {doc['format_version']!r} is not supported; this chunkworld "
            f"reads format_version {FORMAT_VERSION}"
        )
    try:
        cfg = ModelConfig.from_dict(doc["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{file}: bad model config: {e}") from None
    return cfg, doc


def _read_weights(path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    file = path / WEIGHTS_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: missing weights file")
    try:
        return file, load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{file}: truncated or corrupt safetensors file ({e})") from None


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[WorldModel, dict[str, Any]]:
    """Rebuild the model from ``path`` and load its weights, checking every key, shape and dtype."""
    path = Path(path)
    cfg, doc = read_config(path)
    file, tensors = _read_weights(path)
    model = WorldModel(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{file}: weights do not match config.json: missing keys {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    for name, want in expected.items():
        got = tensors[name]
        if got.shape != want.shape:
            raise CheckpointError(
                f"{file}: {name} has shape {tuple(got.shape)}, config.json implies {tuple(want.shape)}"
            )
        if got.dtype != want.dtype:
            raise CheckpointError(f"{file}: {name} has dtype {got.dtype}, expected {want.dtype}")
    model.load_state_dict(tensors)
    model.eval()
    return model.to(device), doc


def load_matching(model: WorldModel, path: str | Path) -> tuple[list[str], list[str], ModelConfig]:
    """Copy into ``model`` every weight of checkpoint ``path`` (``"default"``: the shipped model)
    whose name and shape match.

    This is how a run starts from a trained model of another game or geometry (fine-tuning):
    the weights that fit are taken, the others (say, an action table of another size, or the
    patch layers of a finer latent grid) keep ``model``'s values. Returns the names taken, the
    names of ``model`` left as they were, and the checkpoint's config. Raises
    ``CheckpointError`` when nothing fits, since that is always the wrong checkpoint or preset.
    """
    path = DEFAULT_DIR if str(path) == "default" else Path(path)
    cfg, _ = read_config(path)
    file, tensors = _read_weights(path)
    own = model.state_dict()
    taken = sorted(n for n, v in own.items() if n in tensors and tensors[n].shape == v.shape)
    if not taken:
        raise CheckpointError(
            f"{file}: no weight has a name and shape of this model; train with the preset the "
            f"checkpoint was made with (its config.json says name={cfg.name!r})"
        )
    with torch.no_grad():
        for n in taken:
            own[n].copy_(tensors[n].to(own[n].dtype))
    return taken, sorted(set(own) - set(taken)), cfg
