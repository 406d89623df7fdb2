"""A palette: the few colours a game's frames are drawn in, and decoded frames snapped to them.

A pixel-art game draws every frame from a handful of colours (the arcade: 15, from the night sky
to the bolt's magenta). A model's decoded frames come out near them, and between two of them
where it is unsure: the edge of a ball half blended into the floor. A pixel clearly nearer one
palette colour than any other (its distance to the nearest below ``SURE`` times its distance to
the second nearest) is shown in that colour; a pixel between two colours is left as decoded, so
what the model does not know stays visible as such. With pixel history
(``PipelinedSampler(pixel_history=True)``) the cache reads the frames as shown. On the shipped
default this lifts PSNR one tick ahead by 0.44 dB, and no line of the scorecard falls
(``world/models/default/MODEL_CARD.md``); snapping every pixel instead costs PSNR and the bolt
(``docs/experiments.md``).

On disk, beside ``model.safetensors``: ``palette.json``, ``{"colours": [[r, g, b], ...]}``
(``chunkworld palette --model DIR --data DATA`` writes it from a dataset; the recipe does so for
every game whose frames are drawn from at most 64 colours).

Example: colours ``[[0, 0, 0], [255, 255, 255]]``; a pixel (40, 40, 40) is 69 from black and 372
from white (69 < 0.5 * 372): black; a pixel (128, 128, 128) is 222 and 220 away: kept as it is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PALETTE_FILE = "palette.json"
SURE = 0.5  # a shown pixel takes its nearest colour when nearer it than SURE x the next nearest
MAX_COLOURS = 64  # more than this and a game is not drawn from a palette


@dataclass(frozen=True)
class Palette:
    """``colours``: uint8 (P, 3), 2 <= P <= :data:`MAX_COLOURS`, each colour once."""

    colours: np.ndarray

    def __post_init__(self) -> None:
        c = self.colours
        if c.dtype != np.uint8 or c.ndim != 2 or c.shape[1] != 3:
            raise ValueError(f"palette colours must be uint8 (P, 3), got {c.dtype} {c.shape}")
        if not 2 <= len(c) <= MAX_COLOURS:
            raise ValueError(f"a palette has 2 to {MAX_COLOURS} colours, got {len(c)}")
        if len(np.unique(c, axis=0)) != len(c):
            raise ValueError("palette colours must be distinct")

    def snap(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (..., 3) -> uint8 (..., 3): each pixel nearer its nearest colour than ``SURE``
        times its second-nearest drawn in that colour, the rest kept as they are."""
        if frames.dtype != torch.uint8 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (..., 3), got {frames.dtype} {frames.shape}")
        p = torch.from_numpy(self.colours).to(frames.device, torch.float32)  # (P, 3)
        out = torch.empty(frames.shape, dtype=torch.uint8, device=frames.device)
        flat, dst = frames.reshape(-1, 3), out.view(-1, 3)
        for i in range(0, len(flat), 1 << 16):  # (N, P) distances, a bounded block at a time
            x = flat[i : i + (1 << 16)].float()  # (N, 3)
            d = torch.cdist(x, p)  # (N, P)
            two = d.topk(2, dim=1, largest=False)
            keep = two.values[:, 0] >= SURE * two.values[:, 1]  # between two colours
            dst[i : i + len(x)] = torch.where(keep[:, None], x, p[two.indices[:, 0]]).byte()
        return out


def save_palette(path: str | Path, palette: Palette) -> None:
    """Write ``palette.json`` into model directory ``path`` (replaced atomically)."""
    tmp = Path(path) / (PALETTE_FILE + ".tmp")
    tmp.write_text(json.dumps({"colours": palette.colours.tolist()}) + "\n")
    os.replace(tmp, Path(path) / PALETTE_FILE)


def load_palette(path: str | Path) -> Palette | None:
    """The palette kept in model directory ``path``, or None where it keeps none.

    Raises:
        ValueError: the file is there but is not a palette; the message names the file.
    """
    file = Path(path) / PALETTE_FILE
    if not file.is_file():
        return None
    try:
        colours = np.asarray(json.loads(file.read_text())["colours"])
        if colours.ndim != 2 or colours.min(initial=0) < 0 or colours.max(initial=0) > 255:
            raise ValueError(f"colours must be [r, g, b] triples in 0..255, got {colours.shape}")
        return Palette(colours.astype(np.uint8))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read the palette {file}: {e}") from None
