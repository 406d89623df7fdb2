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

from collections.abc import Callable

import numpy as np
import torch

from world.core.model import WorldModel
from world.core.palette import Palette
from world.core.sampler import PipelinedSampler
from world.eval.detect import find_player
from world.train.datagen import Replayer


@torch.no_grad()
def generate_after(
    model: WorldModel,
    history: torch.Tensor,
    history_actions: torch.Tensor,
    actions: torch.Tensor,
    captions: list[list[str | None]],
    seed: int,
    steps: int | None = None,
    precision: str = "fp32",
    prior_level: float | None = None,
    as_history: bool = False,
    palette: Palette | None = None,
) -> torch.Tensor:
    """The chunks the play sampler generates after a clean history.

    Args:
        history: (B, H, Tl, C, h, w) clean latents; history_actions (B, H, F).
        actions: (B, R, F) actions of the chunks to generate; captions[i][j] the caption of item
            i's j-th generated chunk (None = no caption).
        seed: seeds the sampler's noise.
        steps: Euler steps per chunk (None: the model's play setting).
        precision, prior_level: the sampler's (``world.core.sampler.PipelinedSampler``; None: the
            model's).
        as_history: return each chunk as the cache keeps it (``TickResult.history``: with the
            model's pixel history, the encoding of its frames) rather than as generated; the
            context self-rollout training feeds must be the context play feeds.
        palette: the colours play snaps frames to (``world/core/palette.py``); with pixel
            history the chunks kept are the encodings of the frames as shown, as at play.
    Returns:
        (B, R, Tl, C, h, w) generated latents.
    """
    sampler = PipelinedSampler(
        model,
        steps=steps,
        in_flight=1 if steps else None,
        precision=precision,
        prior_level=prior_level,
        palette=palette,
    )
    b = history.shape[0]
    state = sampler.new_state(batch=b, seed=seed)
    for j in range(history.shape[1]):
        sampler.add_history(state, history[:, j], history_actions[:, j])
    out = []
    for j in range(actions.shape[1]):
        text = model.encode_text([captions[i][j] for i in range(b)])
        r = sampler.tick(state, actions[:, j], text)
        out.append(r.kept if as_history else r.latents)
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
    palette: Palette | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str | None], int]:
    """Cut training windows out of loaded windows, generating the context of some of them.

    Args:
        z: (B, H + N, Tl, C, h, w) clean latents of the loaded windows; actions (B, H + N, F);
            captions the B * (H + N) chunk captions, item by item.
        is_context: (B, N) the context mask of the training windows (``training_levels``).
        prob: share of items with at least one context chunk whose context is generated.
        steps: sampler steps of the generation (None: the model's play setting).
        palette: the colours play snaps frames to (:func:`generate_after`).
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
            as_history=True,
            palette=palette,
        )  # (k, h, ...) after ground-truth chunks 0..h-1, in place of chunks h..2h-1
        keep = is_context[s, :h][..., None, None, None, None]  # generated only where context
        zw[s, :h] = torch.where(keep, gen.to(zw.dtype), zw[s, :h])
    return zw, aw, capw, len(sel)


# (clip of each stream, chunk just generated, its latents (S, Tl, C, h, w)) -> (S,) bool
OnTrack = Callable[[np.ndarray, np.ndarray, torch.Tensor], np.ndarray]
# (clips, chunks just generated, their latents (S, Tl, C, h, w), how many chunks after them) ->
# per stream the latents (count, Tl, C, h, w) of those chunks in a world that goes on from the
# generated chunk, or None for the clip's own
Retarget = Callable[[np.ndarray, np.ndarray, torch.Tensor, int], list[torch.Tensor | None]]


class RolloutStreams:
    """Deep self-rollout: streams that each walk a long clip one chunk per training step.

    ``rollout_windows`` generates a context at most ``history_chunks`` chunks away from ground
    truth, but at play the history is hundreds of generations deep: smears that one generation
    leaves (the balls, mostly) build up until they swallow the player. A stream keeps the chunks
    the model generated and feeds them back, so its history is the model's own output all the
    way back to the start of its clip; each training step it generates one more chunk (one
    sampler tick, cheaper than a fresh rollout's ``history_chunks`` ticks) and hands back the
    window after it, with ground-truth targets. After ``depth`` chunks, or at the clip's end, it
    starts over on another clip from ground truth; the first runs stop at random depths, so the
    streams' depths stay spread over ``1 .. depth``.

    Worked example, H = 2, N = 4, a stream at chunk t = 5 holding generated ``g4, g5``: it
    generates ``g6`` for the actions and caption of ``c6`` and hands back ``[g5, g6, c7, c8]``
    (context where the mask says so, ground truth elsewhere); next step it holds ``g5, g6``. A
    fresh stream holds ground-truth ``c0, c1`` at t = 1. The clips must have at least N + 1
    chunks; the deeper the rollouts asked for, the longer they should be.

    Ground-truth targets only make sense while the generated history still agrees with the truth
    on what the actions decide: a player drawn 3 px away from its true place next to a target
    that has it at the true place teaches the model to blur it (measured: a 2,100-step leg at
    depth 32 without a check left the player detectable in 59% of the first 100 ticks, against
    99.5% before it). ``on_track(clips, chunks, latents) -> bool array`` says, after each
    generation, which streams still agree; the others are re-anchored: their history becomes
    the true chunks at the same place in the clip, depth 0, and the stream goes on from there.

    Within that tolerance the targets can still disagree with the history by a pixel or two,
    and the model learns that disagreement as a blur or a jump it cannot foresee.
    ``retarget(clips, chunks, latents, count)`` removes it where the data can be replayed: it
    gives the target chunks of a world that goes on from the generated chunk
    (:func:`player_resim`: the built-in game replayed with the player where the generated chunk
    drew it). Re-anchored streams, and windows with fewer than ``history`` context chunks,
    keep the clip's targets.

    The generated history is kept across steps, so it comes from weights a few steps old; a
    resumed run starts its streams afresh.
    """

    def __init__(
        self,
        latents: np.ndarray,
        actions: np.ndarray,
        captions: list[list[str]],
        *,
        history: int,
        window: int,
        latent_frames: int,
        count: int,
        depth: int,
        rng: np.random.Generator,
        on_track: OnTrack | None = None,
        retarget: Retarget | None = None,
        palette: Palette | None = None,
    ) -> None:
        chunks = latents.shape[1] // latent_frames
        if chunks < window + 1:
            raise ValueError(
                f"deep self-rollout needs clips of at least {window + 1} chunks, these have "
                f"{chunks}: generate longer clips (chunkworld data generate --frames N)"
            )
        if depth < 1:
            raise ValueError(f"rollout depth must be at least 1, got {depth}")
        self.latents, self.actions, self.captions = latents, actions, captions
        self.h, self.n, self.tl, self.chunks = history, window, latent_frames, chunks
        self.f = actions.shape[1] // chunks
        self.depth, self.rng, self.on_track, self.retarget = depth, rng, on_track, retarget
        self.palette = palette  # the colours play snaps frames to (generate_after)
        self.anchored = 0  # re-anchorings so far
        self.retargeted = 0  # windows whose targets went on from the generated chunk
        self.clip = rng.integers(0, len(latents), count)
        self.t = np.full(count, history - 1)  # last history chunk
        self.made = np.zeros(count, dtype=np.int64)  # chunks generated since ground truth
        self.limit = rng.integers(1, depth + 1, count)  # first runs end early: spread depths
        self.hist = torch.stack([self._truth(c, history - 1) for c in self.clip])  # (S, H, ...)

    def _chunk(self, clip: int | np.integer, j: int | np.integer) -> torch.Tensor:
        return torch.from_numpy(self.latents[clip, j * self.tl : (j + 1) * self.tl])

    def _truth(self, clip: int | np.integer, t: int | np.integer) -> torch.Tensor:
        """The true history ending at chunk ``t``: (H, Tl, C, h, w)."""
        return torch.stack([self._chunk(clip, j) for j in range(t - self.h + 1, t + 1)])

    def _start(self, i: int) -> None:
        c = int(self.rng.integers(0, len(self.latents)))
        self.clip[i], self.t[i], self.made[i] = c, self.h - 1, 0
        self.hist[i] = self._truth(c, self.h - 1)

    def depths(self) -> np.ndarray:
        """Chunks generated since ground truth, per stream (after the last ``windows``)."""
        return self.made.copy()

    def fill(
        self,
        model: WorldModel,
        z: torch.Tensor,
        actions: torch.Tensor,
        captions: list[str | None],
        is_context: torch.Tensor,
        steps: int | None = None,
        dropout: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor, list[str | None], int]:
        """A training batch with the streams' windows in place of the items that have context.

        Args:
            z (B, N, ...), actions (B, N, F), captions (B * N), is_context (B, N): the batch.
        Returns:
            z, actions, captions (new objects) and how many items now hold a stream's window.
        """
        n = z.shape[1]
        items = np.flatnonzero(is_context[:, 0].numpy())[: len(self.clip)]
        mask = torch.zeros(len(self.clip), n, dtype=torch.bool)
        mask[: len(items)] = is_context[items]
        zs, acts, caps = self.windows(model, mask, steps, dropout)
        z, actions, captions = z.clone(), actions.clone(), list(captions)
        for k, i in enumerate(items.tolist()):
            z[i], actions[i] = zs[k], acts[k]
            captions[i * n : (i + 1) * n] = caps[k * n : (k + 1) * n]
        return z, actions, captions, len(items)

    def windows(
        self,
        model: WorldModel,
        is_context: torch.Tensor,
        steps: int | None = None,
        dropout: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor, list[str | None]]:
        """Advance every stream one chunk and return its training window.

        Args:
            is_context: (count, N) context mask of the windows (generated only where set).
            steps: sampler steps of the generation (None: the model's play setting).
            dropout: share of window captions replaced by None.
        Returns:
            z (count, N, Tl, C, h, w), actions (count, N, F) and captions (count * N).
        """
        for i in range(len(self.clip)):  # deep enough, or no room for one more window: start over
            deep = self.made[i] >= self.limit[i]
            if deep:
                self.limit[i] = self.depth  # only the first runs end early
            if deep or self.t[i] + 1 + self.n - self.h >= self.chunks:
                self._start(i)
        clip, nxt = self.clip, self.t + 1
        acts = torch.from_numpy(self.actions)
        hist_actions = torch.stack(
            [
                acts[c, (t - self.h + 1) * self.f : (t + 1) * self.f].view(self.h, self.f)
                for c, t in zip(clip, self.t, strict=True)
            ]
        )
        next_actions = torch.stack(
            [acts[c, n * self.f : (n + 1) * self.f] for c, n in zip(clip, nxt, strict=True)]
        )
        caps: list[list[str | None]] = [
            [self.captions[c][n]] for c, n in zip(clip, nxt, strict=True)
        ]
        gen = generate_after(
            model,
            self.hist,
            hist_actions,
            next_actions[:, None],
            caps,
            int(self.rng.integers(2**31)),
            steps,
            as_history=True,
            palette=self.palette,
        )[:, 0]
        self.hist = torch.cat([self.hist[:, 1:], gen[:, None].to(self.hist.dtype)], dim=1)
        self.t, self.made = nxt, self.made + 1
        if self.on_track is not None:
            off = np.flatnonzero(~np.asarray(self.on_track(clip.copy(), nxt.copy(), gen)))
            for k in off.tolist():  # back to the truth, at the same place
                self.hist[k] = self._truth(clip[k], nxt[k])
                self.made[k] = 0
            self.anchored += int(len(off))
        first = self.t - self.h + 1  # window's first chunk
        z = torch.stack(
            [
                torch.stack([self._chunk(c, s + j) for j in range(self.n)])
                for c, s in zip(clip, first, strict=True)
            ]
        )
        keep = is_context[:, : self.h][..., None, None, None, None]
        z[:, : self.h] = torch.where(keep, self.hist, z[:, : self.h])
        # streams whose whole history slot is generated: with fewer context chunks, a true chunk
        # sits between the generated history and the targets, and replayed targets would not
        # go on from it
        full = is_context[:, : self.h].all(dim=1).numpy()
        live = np.flatnonzero((self.made > 0) & full)
        if self.retarget is not None and len(live):
            targets = self.retarget(clip[live], nxt[live], gen[live], self.n - self.h)
            for k, target in zip(live.tolist(), targets, strict=True):
                if target is not None:
                    z[k, self.h :] = target.to(z.dtype)
                    self.retargeted += 1
        a = torch.stack(
            [
                acts[c, s * self.f : (s + self.n) * self.f].view(self.n, self.f)
                for c, s in zip(clip, first, strict=True)
            ]
        )
        capw: list[str | None] = [
            None if self.rng.random() < dropout else self.captions[c][s + j]
            for c, s in zip(clip, first, strict=True)
            for j in range(self.n)
        ]
        return z, a, capw


def player_on_track(model: WorldModel, frames: np.ndarray, tolerance: float) -> OnTrack:
    """An ``on_track`` check for the built-in game: in every frame of the generated chunk the
    player (``world.eval.detect.find_player``) is within ``tolerance`` px of where it is in the true
    frame. Frames whose true player the detector cannot find (covered by a ball) are not judged.

    Args:
        frames: (N, T, H, W, 3) uint8, the true clips the streams walk.
    """
    f = model.cfg.chunk_frames

    def check(clips: np.ndarray, chunks: np.ndarray, latents: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            gen = model.codec.decode(latents.float()).numpy()  # (S, F, H, W, 3)
        ok = np.ones(len(clips), dtype=bool)
        for i, (c, t) in enumerate(zip(clips, chunks, strict=True)):
            for k in range(f):
                true = find_player(frames[c, t * f + k])
                if true is None:
                    continue
                got = find_player(gen[i, k])
                if got is None or np.hypot(got[0] - true[0], got[1] - true[1]) > tolerance:
                    ok[i] = False
                    break
        return ok

    return check


def player_resim(model: WorldModel, replayer: Replayer) -> Retarget:
    """A ``retarget`` for data the built-in game wrote: each target chunk is the clip replayed
    (``world.train.datagen.Replayer``) with the player placed where the generated chunk's last frame
    draws it (``world.eval.detect.find_player``), encoded by the model's codec. A generated chunk with
    no player found keeps the clip's targets."""

    def retarget(
        clips: np.ndarray, chunks: np.ndarray, latents: torch.Tensor, count: int
    ) -> list[torch.Tensor | None]:
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            last = model.codec.decode(latents[:, -1:].float()).numpy()[:, -1]  # (S, H, W, 3)
            out: list[torch.Tensor | None] = []
            for c, t, frame in zip(clips, chunks, last, strict=True):
                where = find_player(frame)
                if where is None:
                    out.append(None)
                    continue
                frames = replayer.frames_after(int(c), int(t), where, count)
                z = model.codec.encode(torch.from_numpy(frames)[None])[0]  # (count * Tl, ...)
                out.append(z.view(count, -1, *z.shape[1:]))
        return out

    return retarget
