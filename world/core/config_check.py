"""Checks of a model config document (``config.json``'s ``"model"``) before any of it is used.

Every field has one JSON type and a range; a value of another type (a string ``"192"``, a float
``64.0`` where an int goes, ``true`` for a number, ``null``) or out of its range is refused with a
``ValueError`` that names the field as ``section.key`` and says what it takes. A field left out
takes its default (configs written before a field existed still load). Ranges are wide: they
refuse what no model can be (negative sizes, NaN, a sampler with a billion steps), not unusual
models.
"""

from __future__ import annotations

import math
import re
from typing import Any

# (low, high) per field, inclusive; a float field whose low is given as an exclusive bound is
# listed in OPEN_LOW. Fields not listed take the defaults of their type (below).
RANGES: dict[str, tuple[float, float]] = {
    "chunk_frames": (1, 256),
    "history_chunks": (1, 64),
    "fps": (0.0, 1000.0),
    "max_prompt_chars": (1, 100_000),
    "codec.frame_size": (8, 2048),
    "codec.frame_width": (0, 2048),  # 0: square
    "codec.spatial": (1, 256),
    "codec.patch": (1, 256),
    "codec.temporal": (1, 64),
    "codec.latent_channels": (1, 4096),
    "codec.widths": (1, 8192),
    "codec.decoder_blocks": (0, 64),
    "codec.latent_scale": (0.0, 1e6),
    "text.vocab": (1, 1 << 22),
    "text.dim": (1, 16384),
    "text.depth": (0, 128),
    "text.heads": (1, 256),
    "text.max_tokens": (1, 4096),
    "text.frozen_dim": (0, 16384),
    "denoiser.dim": (1, 16384),
    "denoiser.depth": (1, 256),
    "denoiser.heads": (1, 256),
    "denoiser.kv_heads": (1, 256),
    "denoiser.mlp_ratio": (0.0, 64.0),
    "denoiser.patch": (1, 256),
    "denoiser.rope_theta": (0.0, 1e9),
    "denoiser.local_conv": (0, 8192),
    "prior.width": (0, 8192),
    "prior.blocks": (1, 256),
    "sampler.steps": (1, 1000),
    "sampler.in_flight": (1, 64),
    "sampler.shift": (0.0, 1000.0),
    "sampler.context_level": (0.0, 1.0),
    "sampler.guidance_history": (0.0, 100.0),
    "sampler.guidance_text": (0.0, 100.0),
    "sampler.prompt_guidance": (0.0, 100.0),
    "sampler.prompt_steps": (0, 1000),
    "sampler.start_steps": (0, 1000),
    "sampler.prior_level": (0.0, 1.0),
}
OPEN_LOW = {"fps", "codec.latent_scale", "denoiser.mlp_ratio", "denoiser.rope_theta"}
OPEN_LOW |= {"sampler.shift"}
OPEN_HIGH = {"sampler.prior_level"}
MAX_TEXT = 1000  # characters of a string field (name, action names, text.encoder)
MAX_ITEMS = 256  # entries of a list field (actions, codec.widths)
# entries of text.known_words, which may be empty: world.core.text.MAX_KNOWN, the size of the
# system its spelling solves
MAX_WORDS = 4096
_WORD = re.compile(r"[a-z0-9]+")  # a word as world.core.text.words splits a caption


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_float(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _describe(name: str, kind: str) -> str:
    lo, hi = RANGES.get(name, (None, None))
    if lo is None:
        return kind
    left = "(" if name in OPEN_LOW else "["
    right = ")" if name in OPEN_HIGH else "]"
    return f"{kind} in {left}{lo:g}, {hi:g}{right}"


def _in_range(name: str, v: float) -> bool:
    if name not in RANGES:
        return True
    lo, hi = RANGES[name]
    low_ok = v > lo if name in OPEN_LOW else v >= lo
    high_ok = v < hi if name in OPEN_HIGH else v <= hi
    return low_ok and high_ok


def check_value(name: str, kind: Any, v: Any) -> None:
    """Raise ValueError unless ``v`` is a valid JSON value of type ``kind`` (the dataclass
    annotation, as a string or a type) for field ``name``."""
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if kind == "int":
        ok, want = _is_int(v) and _in_range(name, v), _describe(name, "an integer")
    elif kind == "float":
        ok = _is_float(v) and _in_range(name, v)
        want = _describe(name, "a finite number")
    elif kind == "bool":
        ok, want = type(v) is bool, "true or false"
    elif kind == "str":
        ok = isinstance(v, str) and 0 < len(v) <= MAX_TEXT
        want = f"a non-empty string of at most {MAX_TEXT} characters"
    elif kind == "tuple[int, ...]":
        ok = (
            isinstance(v, (list, tuple))
            and 0 < len(v) <= MAX_ITEMS
            and all(_is_int(x) and _in_range(name, x) for x in v)
        )
        want = f"a list of 1-{MAX_ITEMS} " + _describe(name, "integers")
    elif name == "text.known_words":
        ok = (
            isinstance(v, (list, tuple))
            and len(v) <= MAX_WORDS
            and all(isinstance(x, str) and _WORD.fullmatch(x) is not None for x in v)
            and len(set(v)) == len(v)
        )
        want = (
            f"a list of at most {MAX_WORDS} distinct words, each lower-case letters and digits "
            '(as world.core.text.words splits a caption: "night", "2")'
        )
    elif kind == "tuple[str, ...]":
        ok = (
            isinstance(v, (list, tuple))
            and 0 < len(v) <= MAX_ITEMS
            and all(isinstance(x, str) and 0 < len(x) <= MAX_TEXT for x in v)
            and len(set(v)) == len(v)
        )
        want = f"a list of 1-{MAX_ITEMS} distinct non-empty strings"
    else:  # a field type this checker does not know: a bug here, not in the file
        raise TypeError(f"config field {name} has type {kind}, unknown to config_check")
    if ok and name == "actions" and v[0] != "noop":
        ok, want = False, 'a list of action names whose first is "noop" (action 0 is no key held)'
    if not ok:
        raise ValueError(f"{name}={v!r}: must be {want}; fix or remove the field")
