"""Training-data diagnostics for the built-in game: does the loss weight the sprites?

    chunkworld diagnose salience --data data/train --latents runs/small4/latents.npy

The denoiser's loss gives extra weight to the latent tokens :func:`world.schedule.salience_weight`
picks. This checks the pick against the truth: the sprite tokens of each latent frame, found by
:mod:`world.detect` on the true frames (a token holds a sprite when at least ``min_pixels`` of its
pixels, in any of the frames it stands for, are the player, a bolt or a ball). It prints, per
weather, the share of player and ball tokens the rule weights and the share of all tokens it
weights, as JSON. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from world.captions import WEATHERS
from world.data import Dataset
from world.detect import FIRST_PALETTE, LABELS, classify
from world.game import GameConfig
from world.schedule import salience_weight

__all__ = ["salience_coverage", "sprite_tokens"]

_PLAYER = LABELS.index("player")
_BOLT = LABELS.index("projectile")


def sprite_tokens(
    frames: np.ndarray, grid: int, temporal: int, wall: int, min_pixels: int = 4
) -> dict[str, np.ndarray]:
    """Which latent tokens hold the player and which hold balls or bolts.

    Args:
        frames: uint8 (T, H, W, 3) true frames of the built-in game; T a multiple of ``temporal``.
        grid: side of the latent grid (tokens per row); H must be a multiple of it.
        temporal: frames per latent frame.
        wall: border width in pixels (walls share the balls' palette; they are left out).
        min_pixels: pixels of a sprite a token must hold in one of its frames.

    Returns:
        ``{"player": bool (T / temporal, grid, grid), "balls": bool (same)}``.
    """
    t, h, w = frames.shape[:3]
    if t % temporal or h % grid or w % grid:
        raise ValueError(
            f"frames {frames.shape[:3]} must split into latent frames of {temporal} and a "
            f"{grid}x{grid} token grid"
        )
    inner = np.zeros((h, w), dtype=bool)
    inner[wall : h - wall, wall : w - wall] = True
    out = {"player": np.zeros((t // temporal, grid, grid), bool)}
    out["balls"] = np.zeros_like(out["player"])
    ph, pw = h // grid, w // grid
    for i in range(t):
        lab = classify(frames[i])
        masks = {
            "player": lab == _PLAYER,
            "balls": ((lab >= FIRST_PALETTE) | (lab == _BOLT)) & inner,
        }
        for name, m in masks.items():
            count = m.reshape(grid, ph, grid, pw).sum(axis=(1, 3))
            out[name][i // temporal] |= count >= min_pixels
    return out


def salience_coverage(
    data: str | Path, latents: str | Path, clips: int = 50, share: float = 0.1
) -> dict[str, Any]:
    """Share of sprite tokens (and of all tokens) that :func:`salience_weight` weights, per
    weather, over ``clips`` clips spread evenly over the dataset."""
    ds = Dataset(data)
    lat = np.load(latents, mmap_mode="r")  # (N, Tl, C, h, w)
    if len(lat) != len(ds):
        raise ValueError(f"{latents} holds {len(lat)} clips but {data} has {len(ds)}")
    fields = ds.meta.state_fields or ()
    if "weather" not in fields:
        raise ValueError(f"{data} has no 'weather' state column: not the built-in game's data")
    col = fields.index("weather")
    grid, tl = lat.shape[-1], lat.shape[1]
    wall = GameConfig.for_size(ds.meta.frame_size[0]).wall
    counts: dict[str, dict[str, list[int]]] = {}
    for ci in np.linspace(0, len(ds) - 1, min(clips, len(ds))).round().astype(int):
        clip = ds[int(ci)]
        temporal = len(clip.frames) // tl
        z = torch.from_numpy(np.array(lat[ci]))[None, None]  # (1, 1, Tl, C, h, w)
        picked = (salience_weight(z, boost=1.0, share=share) > 1)[0, 0, :, 0].numpy()
        truth = sprite_tokens(clip.frames, grid, temporal, wall)
        if clip.state is None:
            raise ValueError(f"clip {clip.id} has no state")
        for j in range(tl):
            weather = WEATHERS[int(clip.state[j * temporal, col])]
            c = counts.setdefault(weather, {"player": [0, 0], "balls": [0, 0], "all": [0, 0]})
            for name, m in truth.items():
                c[name][0] += int(m[j].sum())
                c[name][1] += int((m[j] & picked[j]).sum())
            c["all"][0] += picked[j].size
            c["all"][1] += int(picked[j].sum())
    return {
        "share": share,
        "clips": int(min(clips, len(ds))),
        "weather": {
            w: {
                k: {"tokens": n, "weighted": round(hit / n, 4) if n else None}
                for k, (n, hit) in c.items()
            }
            for w, c in sorted(counts.items())
        },
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="chunkworld diagnose", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("salience", help="share of sprite tokens the loss weights, per weather")
    s.add_argument("--data", required=True, help="dataset directory (chunkworld data)")
    s.add_argument("--latents", required=True, help="latents.npy a training run wrote for it")
    s.add_argument("--clips", type=int, default=50)
    s.add_argument("--share", type=float, default=0.1)
    a = p.parse_args(argv)
    print(json.dumps(salience_coverage(a.data, a.latents, a.clips, a.share), indent=1))


if __name__ == "__main__":
    main()
