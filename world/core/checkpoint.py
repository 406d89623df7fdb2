"""Checkpoints: a directory with ``config.json`` (format version + model config) and
``model.safetensors`` (the weights: float32, some bfloat16 in a model saved with ``half``). No
pickle anywhere.

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
from torch import nn

from world.core.config import FORMAT_VERSION, ModelConfig
from world.core.model import WorldModel

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"  # the shipped models, one per world
DEFAULT_DIR = MODELS_DIR / "default"  # the shipped arcade model


class CheckpointError(ValueError):
    """A checkpoint could not be loaded; the message says what is wrong and with which file."""


# Dtypes a float32 weight may be stored in: read back, it is widened to float32.
HALF = (torch.bfloat16, torch.float16)


def save_checkpoint(
    model: WorldModel,
    path: str | Path,
    extra: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write ``model`` to directory ``path`` (created); files are replaced atomically.

    ``half``: store the weights and biases of the linear and convolution layers that play runs
    under bf16 autocast as bfloat16 (the shipped default: 26.8 MB, 46.7 in float32). Autocast
    rounds them to bfloat16 anyway, so on a CPU with native bf16 the frames are the
    full-precision weights' bit for bit; the rest (norms, embeddings, the encoders of frames and
    captions) stays float32. Played in float32 those layers see their weights rounded.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        for name in _autocast_rounded(model):
            tensors[name] = tensors[name].to(torch.bfloat16)
    tmp = path / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"format_version": str(FORMAT_VERSION)})
    os.replace(tmp, path / WEIGHTS_FILE)
    doc = {"format_version": FORMAT_VERSION, "model": model.cfg.to_dict(), **(extra or {})}
    tmp = path / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path / CONFIG_FILE)
    return path


# The parts play runs under bf16 autocast (``PipelinedSampler``: the denoiser's passes, the
# prior's guess, the decoding of a chunk); a start's encoding and a caption's run in float32.
_PLAYED_IN_BF16 = ("denoiser.", "prior.", "codec.decoder.")


def _autocast_rounded(model: nn.Module) -> list[str]:
    """Names of the float32 parameters bf16 autocast casts to bfloat16 where play uses them:
    the weights and biases of the linear and convolution layers of ``_PLAYED_IN_BF16``."""
    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [
        f"{prefix}.{name}"
        for prefix, module in model.named_modules()
        if isinstance(module, layers) and prefix.startswith(_PLAYED_IN_BF16)
        for name, p in module.named_parameters(recurse=False)
        if p.dtype == torch.float32
    ]


def shipped_models() -> list[str]:
    """Names of the shipped models (``"default"``, the arcade; ``"platformer"``; ...): the
    directories of ``world/models`` that hold a checkpoint."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(d.name for d in MODELS_DIR.iterdir() if (d / CONFIG_FILE).is_file())


def checkpoint_dir(path: str | Path) -> Path:
    """A shipped model's name as a string (``"default"``, see `shipped_models`) -> its
    directory; any other path as it is (a ``Path("default")`` is a directory of that name)."""
    if isinstance(path, str) and "/" not in path and "\\" not in path:
        if path == "default" or (MODELS_DIR / path / CONFIG_FILE).is_file():
            return MODELS_DIR / path
    return Path(path)


def read_config(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """Read and validate ``config.json``: returns the model config and the whole document."""
    file = checkpoint_dir(path) / CONFIG_FILE
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
    """Rebuild the model from ``path`` (``"default"``: the shipped model) and load its weights,
    checking every key, shape and dtype (a float32 weight may be stored at half precision,
    ``HALF``: it is widened)."""
    path = checkpoint_dir(path)
    cfg, doc = read_config(path)
    file, tensors = _read_weights(path)
    try:  # shapes first, on the meta device: a config of absurd sizes allocates nothing
        with torch.device("meta"):
            expected = WorldModel(cfg).state_dict()
    except (ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(
            f"{path / CONFIG_FILE}: the model config cannot be built ({e})"
        ) from None
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
        if got.dtype != want.dtype and not (want.dtype == torch.float32 and got.dtype in HALF):
            raise CheckpointError(f"{file}: {name} has dtype {got.dtype}, expected {want.dtype}")
    model = WorldModel(cfg)
    model.load_state_dict(tensors)
    model.eval()
    return model.to(device), doc


# Weights with one slot per frame of a latent frame, and the axis the slots lie along.
_PER_FRAME = (
    ("codec.encoder.stem.weight", 1),
    ("codec.decoder.out.weight", 0),
    ("codec.decoder.out.bias", 0),
    ("denoiser.action_proj.weight", 1),
)


def refold_temporal(
    tensors: dict[str, torch.Tensor], temporal: int, target: int
) -> dict[str, torch.Tensor]:
    """Weights of a codec with ``temporal`` frames per latent frame, refolded for ``target``.

    Three layers hold one slot per frame: the encoder's stem (inputs), the decoder's last layer
    (outputs) and the denoiser's action projection (inputs). They are refolded so that a still
    scene and a held action mean what they meant before: the new encoder gives a still scene the
    old latent, the new decoder draws the old latent as the old still scene, and a held action
    gives the old condition. What moves inside a latent frame has to be learned again, but the
    latent space, its scale and everything the denoiser knew about it carry over.
    """
    out = dict(tensors)
    for name, axis in _PER_FRAME:
        if name not in tensors:
            continue
        w = tensors[name]
        slots = w.unflatten(axis, (temporal, w.shape[axis] // temporal))
        if name.startswith("codec.decoder"):  # outputs: every new frame draws the mean frame
            one = slots.mean(axis, keepdim=True)
        else:  # inputs: the sum over frames, shared evenly by the new slots
            one = slots.sum(axis, keepdim=True) / target
        out[name] = one.repeat_interleave(target, axis).flatten(axis, axis + 1).contiguous()
    return out


def load_matching(model: WorldModel, path: str | Path) -> tuple[list[str], list[str], ModelConfig]:
    """Copy into ``model`` every weight of checkpoint ``path`` (``"default"``: the shipped model)
    whose name and shape match.

    This is how a run starts from a trained model of another game or geometry (fine-tuning):
    the weights that fit are taken, the others (say, an action table of another size, or the
    patch layers of a finer latent grid) keep ``model``'s values. A checkpoint with another
    codec ``temporal`` factor is refolded first (``refold_temporal``), so all of it fits.
    Returns the names taken, the names of ``model`` left as they were, and the checkpoint's
    config. Raises ``CheckpointError`` when nothing fits, since that is always the wrong
    checkpoint or preset.
    """
    path = checkpoint_dir(path)
    cfg, _ = read_config(path)
    file, tensors = _read_weights(path)
    if cfg.codec.temporal != model.cfg.codec.temporal:
        tensors = refold_temporal(tensors, cfg.codec.temporal, model.cfg.codec.temporal)
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
