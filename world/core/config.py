"""Configuration of a chunkworld model: one frozen dataclass per component, and named presets.

A preset fixes every number; the code is the same for all of them. ``tiny`` is for tests (a tick
in a few milliseconds), ``small`` is the default play size (64x64, trained and shipped here),
``base`` and ``large`` only make sense on a GPU.

Geometry, with the ``small`` preset as the worked example::

    frame 64x64x3, chunk_frames F = 4 frames per chunk
    codec: spatial 8 -> latent grid 8x8, temporal 1 -> 4 latent frames per chunk, 16 channels
    tokens per chunk = latent_frames (4) * grid (8 * 8) = 256
    history_chunks K = 2 -> a chunk attends to at most 2 clean chunks (512 tokens) + itself
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from world.core.config_check import check_value

# The one noise convention of the code base (see world/core/schedule.py): level t = 0 is clean data,
# t = 1 is pure noise, x_t = (1 - t) * x0 + t * noise.

FORMAT_VERSION = 1  # version of the checkpoint layout (world/core/checkpoint.py)


@dataclass(frozen=True)
class CodecConfig:
    """Learned autoencoder frames <-> latents. Each latent frame stands for ``temporal`` frames."""

    frame_size: int = 64  # H of a frame, pixels (and W, unless frame_width says otherwise)
    frame_width: int = 0  # W of a frame, pixels; 0: frame_size (a square frame)
    spatial: int = 8  # spatial compression factor (patch times a power of two)
    patch: int = 4  # pixel-unshuffle factor before the first convolution
    # Frames per latent frame, stacked on channels (1, 2 or 4). Two per latent frame draw a moving
    # sprite near the pair's midpoint, about 1 px off in each frame (docs/training-log.md), so the
    # play size keeps one; larger presets trade that precision for tokens.
    temporal: int = 1
    latent_channels: int = 16  # channels of a latent frame
    widths: tuple[int, ...] = (128, 128)  # conv width per level from frame/patch resolution down
    # Residual blocks the decoder adds at its finest level (frame/patch resolution): sharper sprite
    # edges for a little more time per frame. Each starts as the identity (its last convolution
    # zero), so a decoder can grow from a trained one (chunkworld tune-decoder --decoder-blocks).
    decoder_blocks: int = 0
    latent_scale: float = 1.0  # multiplies encoder output so latents have about unit std

    @property
    def width(self) -> int:
        """W of a frame, pixels."""
        return self.frame_width or self.frame_size

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the latent grid: the frame's sides over ``spatial``."""
        return self.frame_size // self.spatial, self.width // self.spatial


@dataclass(frozen=True)
class TextConfig:
    """The text encoder: self-contained (hashed words -> a small transformer) or a frozen one."""

    vocab: int = 4096  # hash buckets for words
    dim: int = 128  # width of text tokens handed to cross-attention
    depth: int = 2  # transformer layers
    heads: int = 4
    max_tokens: int = 32  # words kept from a caption (a leading summary token is added)
    # "hash" (self-contained, trained with the model) or "sentence-transformers:<name or path>":
    # a frozen pretrained encoder installed locally, of output width ``frozen_dim``
    encoder: str = "hash"
    frozen_dim: int = 0
    # the words the hashed encoder was trained on (training records them). A word outside them
    # is spelled: its vector is built from the character n-grams it shares with these words
    # (world/core/text.py). Empty: every word takes its own hash bucket, trained or not.
    known_words: tuple[str, ...] = ()


@dataclass(frozen=True)
class DenoiserConfig:
    """The chunk-causal diffusion transformer over latent tokens (docs/how-it-works.md)."""

    dim: int = 192  # model width D
    depth: int = 6  # transformer blocks
    heads: int = 3  # query heads
    kv_heads: int = 1  # key/value heads (grouped-query attention when < heads)
    mlp_ratio: float = 3.0  # hidden width of the MLP = mlp_ratio * dim
    patch: int = 1  # latent patch side: tokens per latent frame = (grid / patch) ** 2
    context_frame: bool = True  # direct path: the previous chunk's last latent frame on the input
    step_size_cond: bool = True  # condition on the step size (for shortcut / few-step sampling)
    rope_theta: float = 100.0  # base of the rotary frequencies (positions are small integers)
    # channels of a local branch in every block: a 3x3 convolution over each latent frame's token
    # grid, so a token reads its neighbours directly rather than by attention (0: none). Its
    # output layer starts at zero: a checkpoint without it keeps its function
    local_conv: int = 0

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


@dataclass(frozen=True)
class PriorConfig:
    """The dynamics prior (``world/core/prior.py``): a small convolutional network's guess of the next
    chunk, which the sampler noises to ``sampler.prior_level`` and denoises from."""

    width: int = 0  # channels of its convolutions (0: no prior; a multiple of 8 otherwise)
    blocks: int = 4  # residual blocks of two 3x3 convolutions


@dataclass(frozen=True)
class SamplerConfig:
    """Defaults for the pipelined sampler; a Session may override them per call."""

    steps: int = 4  # Euler steps per chunk S
    in_flight: int = 1  # chunks denoised together W (S must be a multiple of W)
    shift: float = 1.0  # timestep shift of the sampling grid (1 = uniform)
    context_level: float = 0.05  # level at which a clean chunk is re-encoded for the cache
    guidance_history: float = 1.0  # MAGI-1 guidance scales; 1 / 1 means one pass, no guidance
    guidance_text: float = 1.0
    # text-guidance scale for a chunk whose caption just changed (a prompt: an event asked for);
    # other chunks keep one pass, so only prompted ticks pay the extra pass. 3 lifts the step-7,400
    # default's prompt success from 62.5% to 85% (5: 82.5%); see the README's model card
    prompt_guidance: float = 3.0
    # Euler steps for a chunk that starts something: a prompted chunk (caption just changed) or
    # a text start (no history); 0 = steps. Used with W = 1. One step predicts the average of what
    # the history does not pin down: from a caption alone an empty room, and no rain texture
    prompt_steps: int = 0
    # Euler steps for a text start's first chunk alone (no history: the whole scene, the player
    # included, comes from noise); 0 = prompt_steps. On the shipped default 8 draw the player in
    # 75% of 16 caption starts, 4 in 31% (docs/experiments.md). Used with W = 1
    start_steps: int = 0
    # level an unprompted chunk starts from, the dynamics prior's guess noised to it, with the
    # sampling grid scaled to end there (0: pure noise at level 1, no prior). Needs a model with a
    # prior (``prior.width`` > 0) and is used with W = 1; prompted chunks and text starts start
    # from pure noise. 0 or in (0, 1)
    prior_level: float = 0.0
    # history through pixels: each generated chunk enters the cache as the codec's encoding of
    # its decoded 8-bit frames (the frames a user is shown) instead of the sampler's latents, so
    # the history holds nothing no frame shows: sub-pixel drift and faded texture are snapped
    # back to what the codec reads from a frame. One encoder pass a tick (the decode is the
    # frames'). On the shipped default: alternating keys followed 63% -> 89% (left/right), balls
    # counted right 28% -> 42% of ticks 1-16 (world/models/default/MODEL_CARD.md)
    pixel_history: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: components, chunk geometry and the action set."""

    name: str = "small"
    chunk_frames: int = 4  # frames per chunk F (a multiple of codec.temporal)
    history_chunks: int = 2  # reach K: clean chunks a chunk may attend to
    fps: float = 15.0  # frames per second the world is meant to be shown at
    actions: tuple[str, ...] = ("noop", "up", "down", "left", "right", "fire")
    codec: CodecConfig = field(default_factory=CodecConfig)
    text: TextConfig = field(default_factory=TextConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    max_prompt_chars: int = 200

    def __post_init__(self) -> None:
        c = self.codec
        if self.chunk_frames % c.temporal:
            raise ValueError(
                f"chunk_frames={self.chunk_frames} must be a multiple of codec.temporal={c.temporal}"
            )
        step = c.spatial * self.denoiser.patch
        if c.frame_size % step or c.width % step:
            raise ValueError(
                f"frame {c.frame_size}x{c.width}: each side must be divisible by spatial="
                f"{c.spatial} * patch={self.denoiser.patch}"
            )
        if self.denoiser.dim % self.denoiser.heads or self.denoiser.heads % self.denoiser.kv_heads:
            raise ValueError("dim must divide by heads, and heads by kv_heads")
        if self.sampler.steps % self.sampler.in_flight:
            raise ValueError(
                f"sampler.steps={self.sampler.steps} must be a multiple of "
                f"sampler.in_flight={self.sampler.in_flight}"
            )
        if self.history_chunks < 1:
            raise ValueError("history_chunks must be >= 1")
        if self.prior.width < 0 or self.prior.width % 8 or self.prior.blocks < 1:
            raise ValueError(
                f"prior.width={self.prior.width}, prior.blocks={self.prior.blocks}: give a width "
                "that is a multiple of 8 (0 for no prior) and at least one block"
            )
        level = self.sampler.prior_level
        if level and not (0.0 < level < 1.0 and self.prior.width):
            raise ValueError(
                f"sampler.prior_level={level:g}: give a level in (0, 1) for a model with a "
                f"dynamics prior (this one's prior.width is {self.prior.width}), or 0 for none"
            )
        t = self.text
        if t.encoder != "hash" and not (
            t.encoder.startswith("sentence-transformers:") and t.frozen_dim > 0
        ):
            raise ValueError(
                f"text.encoder must be 'hash' or 'sentence-transformers:<name or path>' with "
                f"text.frozen_dim > 0, got encoder={t.encoder!r}, frozen_dim={t.frozen_dim}"
            )

    # --- derived geometry -------------------------------------------------------------------
    @property
    def latent_frames(self) -> int:
        """Latent frames per chunk (chunk_frames / temporal)."""
        return self.chunk_frames // self.codec.temporal

    @property
    def token_grid(self) -> tuple[int, int]:
        """(rows, columns) of a latent frame's tokens."""
        rows, cols = self.codec.grid
        return rows // self.denoiser.patch, cols // self.denoiser.patch

    @property
    def tokens_per_frame(self) -> int:
        rows, cols = self.token_grid
        return rows * cols

    @property
    def tokens_per_chunk(self) -> int:
        return self.latent_frames * self.tokens_per_frame

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.codec.frame_size, self.codec.width, 3)

    # --- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ModelConfig:
        """Rebuild from ``to_dict`` output; unknown keys are an error that names them."""
        sub = {
            "codec": CodecConfig,
            "text": TextConfig,
            "denoiser": DenoiserConfig,
            "sampler": SamplerConfig,
            "prior": PriorConfig,
        }
        if not isinstance(d, dict):
            raise ValueError(f"the model config must be a JSON object, got {type(d).__name__}")
        kwargs: dict[str, Any] = {}
        types = {f.name: f.type for f in dataclasses.fields(ModelConfig)}
        unknown = set(d) - set(types)
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        for key, value in d.items():
            if key in sub:
                cls = sub[key]
                if not isinstance(value, dict):
                    raise ValueError(f"{key}={value!r}: must be a JSON object of {key} settings")
                fields = {f.name: f.type for f in dataclasses.fields(cls)}
                value = _drop_removed(key, value)
                bad = set(value) - set(fields)
                if bad:
                    raise ValueError(f"unknown {key} config keys: {sorted(bad)}")
                for k, v in value.items():
                    check_value(f"{key}.{k}", fields[k], v)
                value = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
                kwargs[key] = cls(**value)
            else:
                check_value(key, types[key], value)
                kwargs[key] = tuple(value) if key == "actions" else value
        return ModelConfig(**kwargs)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


# Fields of experiments since removed (docs/experiments.md), with the value at which they changed
# nothing. A config that carries one at that value loads as if it did not; any other value is a
# model this code cannot run, refused with the commit that can.
REMOVED_FIELDS: dict[tuple[str, str], tuple[Any, str]] = {
    ("denoiser", "action_counts"): (False, "2868726"),
    ("denoiser", "x0_from"): (0.0, "2868726"),
}


def _drop_removed(section: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` (one section of a config dict) without its removed fields at their neutral
    values; raises ValueError for a removed field at any other value."""
    kept = dict(value)
    for (part, key), (neutral, commit) in REMOVED_FIELDS.items():
        if part != section or key not in kept:
            continue
        if kept.pop(key) != neutral:
            raise ValueError(
                f"{part}.{key}={value[key]!r}: this model uses an experiment removed in chunkworld "
                f"0.2.0 (docs/experiments.md); only {key}={neutral!r} loads here. Run it with the "
                f"code of commit {commit} (git checkout {commit}), or retrain without it"
            )
    return kept


PRESETS: dict[str, ModelConfig] = {
    # For tests: 32x32 frames, 2 frames per chunk, 16 tokens per chunk, a tick in milliseconds.
    "tiny": ModelConfig(
        name="tiny",
        chunk_frames=2,
        history_chunks=2,
        codec=CodecConfig(frame_size=32, spatial=8, temporal=2, latent_channels=4, widths=(16, 16)),
        text=TextConfig(vocab=256, dim=32, depth=1, heads=2, max_tokens=16),
        denoiser=DenoiserConfig(dim=64, depth=2, heads=4, kv_heads=2, mlp_ratio=2.0),
        sampler=SamplerConfig(steps=2, in_flight=1, prompt_guidance=1.0),
    ),
    # The default play size, trained and shipped in this repository (CPU real time). One Euler
    # step per chunk: on the self-rollout-trained default it beat 2, 3 and 4 steps on every
    # measure (README, model card) and is the fastest.
    "small": ModelConfig(sampler=SamplerConfig(steps=1, prompt_steps=4, start_steps=8)),
    # GPU sizes: same code, larger numbers.
    "base": ModelConfig(
        name="base",
        chunk_frames=8,
        history_chunks=4,
        codec=CodecConfig(
            frame_size=128, spatial=8, temporal=4, latent_channels=16, widths=(192, 256)
        ),
        text=TextConfig(vocab=16384, dim=384, depth=4, heads=6),
        denoiser=DenoiserConfig(dim=768, depth=16, heads=12, kv_heads=4, patch=1),
        sampler=SamplerConfig(steps=8, in_flight=4),
    ),
    "large": ModelConfig(
        name="large",
        chunk_frames=16,
        history_chunks=4,
        codec=CodecConfig(
            frame_size=256, spatial=8, temporal=4, latent_channels=16, widths=(256, 256)
        ),
        text=TextConfig(vocab=32768, dim=512, depth=6, heads=8),
        denoiser=DenoiserConfig(dim=1536, depth=24, heads=24, kv_heads=8, patch=2),
        sampler=SamplerConfig(steps=16, in_flight=4),
    ),
}


def preset(name: str) -> ModelConfig:
    """Return the named preset; the error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
