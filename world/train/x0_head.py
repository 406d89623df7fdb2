"""A clean-latent head grown on a trained velocity denoiser, started from what its features hold.

A denoiser given ``x0_from`` predicts, at levels from there up to pure noise, the clean latent
with a head of its own (``Denoiser.out_x0``) and derives the velocity from it. Grown on a
checkpoint trained for velocities, that head has no weights to take. A zero head would predict a
blank latent at the play level, and a fine-tuning learning rate moves a linear layer from zero
only over thousands of steps. So the head starts as the weighted least-squares readout of the
clean latent from the features the checkpoint's velocity head reads, on training windows at
those levels, weighted as the loss weighs them. The model then starts near its checkpoint's
function rather than from a blank play level.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from world.core.cpus import bf16_enabled
from world.core.model import WorldModel
from world.core.schedule import salience_weight
from world.train.denoiser import DenoiseObjective, _batch, held_out_clips
from world.train.trainkit import Arrays, TrainConfig


def ridge(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, lam: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted ridge regression with an unpenalised bias: ``y ~ x @ a.T + b``.

    x (N, D) features, y (N, K) targets, w (N,) row weights. Returns a (K, D) and b (K,), in the
    layout of ``nn.Linear``. ``lam`` is scaled by the weights' total, so it means the same for
    any number of rows.
    """
    x64, y64, w64 = x.double(), y.double(), w.double()[:, None]
    total = w64.sum()
    mx, my = (w64 * x64).sum(0) / total, (w64 * y64).sum(0) / total
    xc, yc = x64 - mx, y64 - my
    gram = (w64 * xc).T @ xc + lam * total * torch.eye(x.shape[1], dtype=torch.float64)
    a = torch.linalg.solve(gram, (w64 * xc).T @ yc).T
    return a.float(), (my - a @ mx).float()


@torch.no_grad()
def readout_rows(
    obj: DenoiseObjective,
    latents: np.ndarray,
    data: Arrays,
    tc: TrainConfig,
    batches: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features, clean-latent targets, loss weights and the velocity head's clean estimates of the
    tokens of noisy chunks at levels ``>= x0_from``, over ``batches`` training windows of true
    history (``latents`` and ``data`` are the clips to draw from)."""
    cfg = obj.cfg
    seen: list[torch.Tensor] = []  # the noised window, the velocity head's input and output
    hooks = (
        obj.denoiser.register_forward_pre_hook(lambda _m, i: seen.append(i[0].float())),
        obj.denoiser.out.register_forward_hook(lambda _m, i, o: seen.extend((i[0], o))),
    )
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    window = cfg.history_chunks + 2
    feats, targets, weights, implied = [], [], [], []
    patch = obj.denoiser.patchify
    try:
        for _ in range(batches):
            z, a, caps = _batch(latents, data, cfg, rng, tc.batch, window, 0.0)
            levels, is_ctx = obj.levels(tc.batch, window, gen)
            seen.clear()
            obj(z, a, caps, levels, is_ctx, gen)  # the training loss's pass, its loss unused
            x_t, h, v = seen
            h = h.float().view(tc.batch, window, cfg.tokens_per_chunk, -1)
            v = obj.denoiser.unpatchify(v.float(), window)  # not the clean-latent head's
            keep = (~is_ctx) & (levels >= cfg.denoiser.x0_from)  # (B, N)
            t = levels[..., None, None, None, None]
            # the loss weighs a token's velocity error, (x0 error) / t, by its salience
            w = salience_weight(z, tc.salience) / t.pow(2)
            feats.append(h[keep])
            targets.append(_tokens(patch, z)[keep])
            weights.append(_tokens(patch, w.expand_as(z))[keep][..., 0])
            implied.append(_tokens(patch, x_t - t * v)[keep])
    finally:
        for hook in hooks:
            hook.remove()
    d = feats[0].shape[-1]
    return (
        torch.cat(feats).reshape(-1, d),
        torch.cat(targets).reshape(-1, targets[0].shape[-1]),
        torch.cat(weights).reshape(-1),
        torch.cat(implied).reshape(-1, targets[0].shape[-1]),
    )


def _tokens(patch: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """(B, N, Tl, C, h, w) -> (B, N, tokens per chunk, C p^2): patchified, one row per chunk."""
    t = patch(z)
    return t.view(z.shape[0], z.shape[1], -1, t.shape[-1])


def fit_x0_head(
    model: WorldModel,
    latents: np.ndarray,
    data: Arrays,
    tc: TrainConfig,
    batches: int = 60,
    held_out: int | None = None,
) -> dict[str, float]:
    """Set ``model.denoiser.out_x0`` to the weighted least-squares readout of the clean latent.

    Fit on windows of all clips but the last ``held_out`` (None: those the run holds out,
    ``held_out_clips``), scored on those. Returns the weighted
    mean squared error of the clean latent there: the fitted head's (``fit_mse``), the velocity
    head's ``x_t - t v`` (``velocity_mse``), a blank head's (``blank_mse``), and the rows fit.
    """
    obj = DenoiseObjective(model, tc)
    held_out = held_out_clips(len(latents)) if held_out is None else held_out
    if not 0 < held_out < len(latents):
        raise ValueError(
            f"held_out={held_out}: give 1 to {len(latents) - 1} of {len(latents)} clips"
        )
    fit_n = len(latents) - held_out
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_enabled(tc.precision)):
        x, y, w, _ = readout_rows(obj, latents[:fit_n], data, tc, batches, tc.seed)
        a, b = ridge(x, y, w)
        tail = Arrays(data.frames[fit_n:], data.actions[fit_n:], data.captions[fit_n:])
        xs, ys, ws, vs = readout_rows(
            obj, latents[fit_n:], tail, tc, max(1, batches // 4), tc.seed + 1
        )
    head = model.denoiser.out_x0
    head.weight.data.copy_(a)
    head.bias.data.copy_(b)

    def mse(pred: torch.Tensor) -> float:
        return float(((pred - ys).pow(2).mean(-1) * ws).sum() / ws.sum())

    return {
        "fit_mse": mse(xs @ a.T + b),
        "velocity_mse": mse(vs),
        "blank_mse": mse(torch.zeros_like(ys)),
        "rows": float(len(x)),
    }
