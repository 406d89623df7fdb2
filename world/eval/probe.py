"""Can the player be moved in a codec's latents? A small convolutional probe says.

    chunkworld diagnose dynamics --model default --data data/long3 --latents runs/b16/latents.npy

Every tick the denoiser must move the player's sprite by its speed, in the codec's latent space:
a token grid in which a sprite two pixels further on has another code, often in another token.
This trains a small convolutional network, apart from any denoiser, to do that one frame: from the
latents of frames ``t - 2`` and ``t - 1`` and the actions of the frames of ``t`` (one-hot planes),
the latent of frame ``t`` (by default as a change from ``t - 1``), with a squared error. It trains
on the dataset's clips but the last ``held_out``, then decodes its predictions for frames of the
held-out clips with the model's decoder and finds the player as ``chunkworld eval`` does. ``form``
(``--form``) sets what the network outputs: ``residual``, the change from ``t - 1``; ``direct``,
frame ``t`` outright; ``velocity``, as the denoiser does from pure noise: it is also given a frame
of noise ``e`` and outputs the flow-matching velocity ``e - z``, its prediction being ``e`` minus
that (the same squared error on the latent); ``x0``, given the noise too, frame ``t`` outright.

It prints, as JSON, the share of those frames with the player 1 px or more off (``one_px_off``,
also for the frames in which the player moved and those in which it stood still) and within
2 px, beside the codec's own round trip of the same frames, the floor under every prediction.

Reading: ``chunkworld diagnose following --one-step`` scores the denoiser on the same task, its
``frame`` 0 being one frame after true history. A probe that places the player better says the
latents allow it and the denoiser is what falls short; one that cannot says the codec is the
limit. The probe sees two frames, so the balls' motion is known to it too; it knows nothing of
captions (events are rare, and the player's motion does not depend on them). Comparing the forms
says what sampling from noise costs the placement ("What the denoiser's form costs a probe" in
``docs/training-log.md``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as fn
from torch import nn
from tqdm import tqdm

from world.core.checkpoint import load_checkpoint
from world.core.cpus import bf16_enabled
from world.core.prior import ConvTrunk, action_planes
from world.eval.detect import player_errors
from world.train.data import Dataset
from world.train.prior import dataset_latents
from world.train.trainkit import lr_at

__all__ = ["FORMS", "ConvProbe", "probe_dynamics"]

FORMS = ("residual", "direct", "velocity", "x0")  # what the probe outputs (module docstring)


class ConvProbe(nn.Module):
    """Latents of two frames and the next frame's actions -> that frame's latent."""

    def __init__(
        self, channels: int, actions: int, width: int, blocks: int, form: str = "residual"
    ) -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"form {form!r}: one of {', '.join(FORMS)}")
        self.actions = actions
        self.form = form
        self.noisy = form in ("velocity", "x0")  # given a frame of noise, as a denoiser is
        inputs = (3 if self.noisy else 2) * channels + actions
        # its output starts at zero: "nothing moves" (residual), zero, or the noise back
        self.trunk = ConvTrunk(inputs, width, blocks, channels)

    def forward(
        self,
        z2: torch.Tensor,
        z1: torch.Tensor,
        actions: torch.Tensor,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z2, z1: (B, C, h, w) latents of frames t-2, t-1; actions: (B, k) ids of frame t's
        frames (k: the codec's temporal factor); noise: (B, C, h, w), for the forms given noise
        -> (B, C, h, w) the predicted latent of frame t."""
        planes = action_planes(actions, self.actions // actions.shape[1], z1)
        given = [z2, z1, planes]
        if self.noisy:
            assert noise is not None, f"the {self.form} form is given a frame of noise"
            given.append(noise)
        out = self.trunk(torch.cat(given, 1))
        if self.form == "velocity":
            assert noise is not None
            return noise - out  # e - (e - z)
        return z1 + out if self.form == "residual" else out


def probe_dynamics(
    model: str,
    data: str,
    latents: str | None = None,
    steps: int = 6000,
    width: int = 128,
    blocks: int = 4,
    batch: int = 128,
    held_out: int = 50,
    frames: int = 2000,
    seed: int = 0,
    precision: str = "auto",
    progress: bool = True,
    form: str = "residual",
) -> dict[str, Any]:
    """Train the probe on ``data`` (latents from ``latents``, a run's ``latents.npy`` for this
    model's encoder, or encoded here) and score ``frames`` latent frames of the held-out clips.

    Raises:
        CheckpointError: ``model`` is not a loadable checkpoint.
        ValueError: the data carry no player state, are too few, or do not fit the model or
            ``latents``.
    """
    wm, _ = load_checkpoint(model)
    ds = Dataset(data)
    fields = ds.meta.state_fields or ()
    if not {"player_x", "player_y"} <= set(fields):
        raise ValueError(f"{data}: no player_x/player_y in the clips' state; the probe scores them")
    clips = ds.load_all()
    if clips.state is None:
        raise ValueError(f"{data}: some clips carry no state; the probe scores the player's")
    k = wm.cfg.codec.temporal
    if clips.frames.shape[1] < 3 * k:
        raise ValueError(
            f"{data}: clips of {clips.frames.shape[1]} frames; the probe needs 3 latent frames "
            f"({3 * k})"
        )
    n_clips = len(clips.frames)
    if n_clips <= held_out:
        raise ValueError(f"{data}: {n_clips} clips, need more than held_out={held_out}")
    z = dataset_latents(wm, clips, data, latents, progress)
    t_lat = z.shape[1]
    acts = torch.from_numpy(clips.actions[:, : t_lat * k].reshape(n_clips, t_lat, k))
    n_act = len(wm.cfg.actions)
    torch.manual_seed(seed)
    probe = ConvProbe(z.shape[2], n_act * k, width, blocks, form)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    train_n = n_clips - held_out
    t0 = time.perf_counter()
    bar = tqdm(range(steps), desc="probe", disable=not progress)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, 1e-3, min(100, steps // 10))
        c, t = rng.integers(0, train_n, batch), rng.integers(2, t_lat, batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_enabled(precision)):
            noise = torch.randn(z[c, t].shape, generator=gen) if probe.noisy else None
            pred = probe(z[c, t - 2], z[c, t - 1], acts[c, t], noise)
        loss = fn.mse_loss(pred.float(), z[c, t])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    train_s = time.perf_counter() - t0

    rng = np.random.default_rng(seed + 1)
    c, t = rng.integers(train_n, n_clips, frames), rng.integers(2, t_lat, frames)
    xy = [fields.index("player_x"), fields.index("player_y")]
    true = clips.state[c, t * k + k - 1][:, xy]  # the last frame a latent frame stands for
    before = clips.state[c, t * k + k - 2][:, xy]
    with torch.no_grad():
        noise = torch.randn(z[c, t].shape, generator=gen) if probe.noisy else None
        pred = probe(z[c, t - 2], z[c, t - 1], acts[c, t], noise)
        drawn = wm.codec.decode(pred[:, None])[:, -1].numpy()
        round_trip = wm.codec.decode(z[c, t][:, None])[:, -1].numpy()
    error, _ = player_errors(drawn, true)
    floor, _ = player_errors(round_trip, true)
    moving = np.any(true != before, axis=1)

    def share(x: np.ndarray, at_least: float) -> float | None:
        return round(float(np.mean(x >= at_least)), 4) if len(x) else None

    return {
        "model": model,
        "data": data,
        "probe": {
            "width": width,
            "blocks": blocks,
            "steps": steps,
            "batch": batch,
            "form": form,
            "seed": seed,
        },
        "parameters": sum(p.numel() for p in probe.parameters()),
        "train_min": round(train_s / 60, 2),
        "frames": frames,
        "moving_frames": int(moving.sum()),
        "one_px_off": share(error, 1.0),
        "one_px_off_moving": share(error[moving], 1.0),
        "one_px_off_still": share(error[~moving], 1.0),
        "within_2px": round(float(np.mean(error <= 2.0)), 4),
        "codec_round_trip_one_px_off": share(floor, 1.0),
    }
