"""Self-rollout: train on the history the sampler really gives the model.

At play, every history chunk is the model's own output: a little smeared, the player a little
fainter than in the data. A model trained only on ground-truth history has never seen that, so
small defects compound tick after tick until the player fades away (measured on the step-7,400
default: the player detectable in 9.8% of frames over 1,000 ticks, 0% in the last 100).

Here a share of each training batch gets its context chunks replaced by chunks the model itself
generated with the play sampler (``PipelinedSampler``: the model's steps, in-flight count and
context level, or the steps asked for) from the ground-truth chunks before them. The targets stay
the ground truth, so the model learns to read its own imperfect history and to hand back a sharp
player.

Worked example, ``history_chunks`` H = 2, training window N = H + 2 = 4, loaded window H + N = 6
chunks ``c0 .. c5``:

- a rolled-out item: ``c0, c1`` seed the sampler, which generates ``g2, g3`` for the actions and
  captions of ``c2, c3``; the training window is ``[g2, g3, c4, c5]`` where levels mark ``c2, c3``
  as context (an item with one context chunk gets ``[g2, c3, c4, c5]``);
- any other item: the training window is ``c[o : o + 4]`` for a random offset ``o`` in 0..H, so
  windows still start anywhere in a clip, including its opening chunk.
"""

from __future__ import annotations

import numpy as np
import torch

from world.model import WorldModel
from world.sampler import PipelinedSampler


@torch.no_grad()
def generate_after(
    model: WorldModel,
    history: torch.Tensor,
    history_actions: torch.Tensor,
    actions: torch.Tensor,
    captions: list[list[str | None]],
    seed: int,
    steps: int | None = None,
) -> torch.Tensor:
    """The chunks the play sampler generates after a clean history.

    Args:
        history: (B, H, Tl, C, h, w) clean latents; history_actions (B, H, F).
        actions: (B, R, F) actions of the chunks to generate; captions[i][j] the caption of item
            i's j-th generated chunk (None = no caption).
        seed: seeds the sampler's noise.
        steps: Euler steps per chunk (None: the model's play setting).
    Returns:
        (B, R, Tl, C, h, w) generated latents.
    """
    sampler = PipelinedSampler(model, steps=steps, in_flight=1 if steps else None)
    b = history.shape[0]
    state = sampler.new_state(batch=b, seed=seed)
    for j in range(history.shape[1]):
        sampler.add_history(state, history[:, j], history_actions[:, j])
    out = []
    for j in range(actions.shape[1]):
        text = model.encode_text([captions[i][j] for i in range(b)])
        out.append(sampler.tick(state, actions[:, j], text).latents)
    return torch.stack(out, dim=1)


def rollout_windows(
    model: WorldModel,
    z: torch.Tensor,
    actions: torch.Tensor,
    captions: list[str | None],
    is_context: torch.Tensor,
    prob: float,
    rng: np.random.Generator,
    steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str | None], int]:
    """Cut training windows out of loaded windows, generating the context of some of them.

    Args:
        z: (B, H + N, Tl, C, h, w) clean latents of the loaded windows; actions (B, H + N, F);
            captions the B * (H + N) chunk captions, item by item.
        is_context: (B, N) the context mask of the training windows (``training_levels``).
        prob: share of items with at least one context chunk whose context is generated.
        steps: sampler steps of the generation (None: the model's play setting).
    Returns:
        z (B, N, ...), actions (B, N, F) and captions (B * N) of the training windows, and the
        number of items whose context was generated.
    """
    b, loaded = z.shape[:2]
    n = is_context.shape[1]
    h = loaded - n
    assert h >= 1, "load history_chunks more chunks than the training window"
    roll = (rng.random(b) < prob) & is_context[:, 0].numpy()
    offset = np.where(roll, h, rng.integers(0, h + 1, b))  # (B,)
    idx = torch.from_numpy(offset[:, None] + np.arange(n))  # (B, N) chunk of each window slot
    rows = torch.arange(b)[:, None]
    zw, aw = z[rows, idx].clone(), actions[rows, idx]
    capw = [captions[i * loaded + int(j)] for i in range(b) for j in idx[i]]
    sel = np.flatnonzero(roll)
    if len(sel):
        s = torch.from_numpy(sel)
        gen = generate_after(
            model,
            z[s, :h],
            actions[s, :h],
            actions[s, h : 2 * h],
            [[captions[i * loaded + h + j] for j in range(h)] for i in sel],
            int(rng.integers(2**31)),
            steps,
        )  # (k, h, ...) after ground-truth chunks 0..h-1, in place of chunks h..2h-1
        keep = is_context[s, :h][..., None, None, None, None]  # generated only where context
        zw[s, :h] = torch.where(keep, gen.to(zw.dtype), zw[s, :h])
    return zw, aw, capw, len(sel)
