"""Self-rollout training windows (world/train/rollout.py): what is generated, what stays ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from world.train.rollout import RolloutStreams, generate_after, player_on_track, rollout_windows


def _loaded(model, b: int, extra: int):
    cfg = model.cfg
    c = cfg.codec
    n = cfg.history_chunks + 2
    total = n + extra
    z = torch.randn(b, total, cfg.latent_frames, c.latent_channels, *c.grid)
    # every chunk's actions and caption name its own (item, chunk), so slices can be traced
    a = torch.arange(b * total).view(b, total, 1).expand(-1, -1, cfg.chunk_frames) % 6
    caps: list[str | None] = [f"item {i} chunk {j}" for i in range(b) for j in range(total)]
    return z, a.contiguous(), caps, n


def _ctx_mask(b: int, n: int, p: list[int]) -> torch.Tensor:
    return torch.arange(n)[None].expand(b, n) < torch.tensor(p)[:, None]


def test_without_rollout_windows_are_slices_at_every_offset(tiny_model):
    h = tiny_model.cfg.history_chunks
    b = 64
    z, a, caps, n = _loaded(tiny_model, b, h)
    is_ctx = _ctx_mask(b, n, [1] * b)
    zw, aw, capw, rolled = rollout_windows(
        tiny_model, z, a, caps, is_ctx, 0.0, np.random.default_rng(0)
    )
    assert rolled == 0 and zw.shape[1] == n and len(capw) == b * n
    offsets = set()
    for i in range(b):
        o = int(capw[i * n].split()[-1])
        offsets.add(o)
        assert torch.equal(zw[i], z[i, o : o + n])
        assert torch.equal(aw[i], a[i, o : o + n])
        assert capw[i * n : (i + 1) * n] == [f"item {i} chunk {o + j}" for j in range(n)]
    assert offsets == set(range(h + 1))  # windows still start at a clip's opening chunk


def test_rollout_generates_context_only_and_keeps_targets(tiny_model):
    h = tiny_model.cfg.history_chunks
    p = [0, 1, h, h]  # context chunks per item; the first has none, so it is never rolled out
    b = len(p)
    z, a, caps, n = _loaded(tiny_model, b, h)
    zw, aw, capw, rolled = rollout_windows(
        tiny_model, z, a, caps, _ctx_mask(b, n, p), 1.0, np.random.default_rng(1)
    )
    assert rolled == b - 1
    for i in range(1, b):
        assert torch.equal(aw[i], a[i, h : h + n])  # rolled-out windows sit right after history
        for j in range(n):
            same = torch.equal(zw[i, j], z[i, h + j])
            assert same == (j >= p[i]), (i, j)  # generated exactly where the context is
        assert torch.isfinite(zw[i]).all()


def test_generate_after_is_the_play_sampler_and_is_seeded(tiny_model):
    cfg = tiny_model.cfg
    c = cfg.codec
    h = cfg.history_chunks
    g = torch.Generator().manual_seed(3)
    hist = torch.randn(2, h, cfg.latent_frames, c.latent_channels, *c.grid, generator=g)
    acts = torch.randint(0, 6, (2, h, cfg.chunk_frames), generator=g)
    caps = [["night falls", None], [None, "it starts to rain"]]
    one = generate_after(tiny_model, hist, acts, acts, caps, seed=5)
    two = generate_after(tiny_model, hist, acts, acts, caps, seed=5)
    other = generate_after(tiny_model, hist, acts, acts, caps, seed=6)
    assert one.shape == (2, h, cfg.latent_frames, c.latent_channels, *c.grid)
    assert torch.equal(one, two) and not torch.equal(one, other)


def test_generate_after_takes_the_play_steps_or_those_asked_for(tiny_model):
    cfg = tiny_model.cfg
    c = cfg.codec
    g = torch.Generator().manual_seed(4)
    hist = torch.randn(1, 1, cfg.latent_frames, c.latent_channels, *c.grid, generator=g)
    acts = torch.zeros(1, 1, cfg.chunk_frames, dtype=torch.long)
    default = generate_after(tiny_model, hist, acts, acts, [[None]], seed=2)
    same = generate_after(tiny_model, hist, acts, acts, [[None]], seed=2, steps=cfg.sampler.steps)
    one = generate_after(tiny_model, hist, acts, acts, [[None]], seed=2, steps=1)
    assert torch.equal(default, same) and not torch.equal(default, one)


def _streams(model, clips: int, chunks: int, count: int, depth: int, seed: int = 0):
    cfg = model.cfg
    c = cfg.codec
    tl, f = cfg.latent_frames, cfg.chunk_frames
    # chunk j of clip i holds the constant i * 100 + j, so every true chunk can be traced
    marks = np.arange(clips)[:, None] * 100 + np.arange(chunks)[None]
    lat = np.repeat(marks, tl, axis=1)[..., None, None, None].astype(np.float32)
    lat = np.broadcast_to(lat, (clips, chunks * tl, c.latent_channels, *c.grid)).copy()
    acts = (np.arange(clips * chunks * f).reshape(clips, chunks * f) % 6).astype(np.int64)
    caps = [[f"clip {i} chunk {j}" for j in range(chunks)] for i in range(clips)]
    n = cfg.history_chunks + 2
    s = RolloutStreams(
        lat,
        acts,
        caps,
        history=cfg.history_chunks,
        window=n,
        latent_frames=tl,
        count=count,
        depth=depth,
        rng=np.random.default_rng(seed),
    )
    return s, lat, acts, n


def _mark(z: torch.Tensor) -> float | None:
    """The true chunk's mark, or None where the chunk was generated."""
    v = float(z.flatten()[0])
    return v if torch.all(z == v) and v == int(v) else None


def test_streams_feed_their_own_chunks_back_and_keep_true_targets(tiny_model):
    h = tiny_model.cfg.history_chunks
    s, lat, acts, n = _streams(tiny_model, clips=3, chunks=40, count=2, depth=30)
    s.limit[:] = 30  # no early first run here
    ctx = _ctx_mask(2, n, [h, h])
    prev = None
    for step in range(1, 6):
        z, a, caps = s.windows(tiny_model, ctx)
        assert list(s.depths()) == [step, step]
        for i in range(2):
            first = int(s.t[i]) - h + 1
            clip = int(s.clip[i])
            for j in range(n):
                mark = _mark(z[i, j])
                if j < h and first + j >= h:  # context after the true start: generated
                    assert mark is None, (step, i, j)
                else:
                    assert mark == clip * 100 + first + j, (step, i, j)
            f = acts.shape[1] // 40
            assert torch.equal(a[i].flatten(), torch.from_numpy(acts[clip, first * f :][: n * f]))
            assert caps[i * n : (i + 1) * n] == [f"clip {clip} chunk {first + j}" for j in range(n)]
        if prev is not None:  # the newest generated chunk comes back as history next step
            assert torch.equal(z[:, 0], prev[:, 1])
        prev = z


@pytest.mark.parametrize("extra, depth", [(30, 2), (4, 10)])  # depth ends runs; the clip does
def test_streams_start_over_at_their_depth_and_at_the_clip_end(tiny_model, extra, depth):
    h = tiny_model.cfg.history_chunks
    chunks = h + extra
    s, _, _, n = _streams(tiny_model, clips=4, chunks=chunks, count=3, depth=depth, seed=5)
    assert all(1 <= x <= depth for x in s.limit)  # first runs end at spread depths
    ctx = _ctx_mask(3, n, [1, h, 0])
    seen = []
    for _ in range(8):
        z, _, _ = s.windows(tiny_model, ctx)
        seen.append(s.depths())
        assert _mark(z[2, 0]) is not None  # no context: nothing generated is used
        assert _mark(z[0, 1]) is not None  # one context chunk: the second is a true target
        assert all(int(s.t[i]) + 1 + n - h <= chunks for i in range(3))  # window fits the clip
    seen = np.array(seen)
    assert seen.min() == 1 and seen.max() <= min(depth, extra - 2)  # never deeper than asked
    assert (np.diff(seen, axis=0) < 0).any()  # streams started over


def _two_long_streams(tiny_model):
    """Two streams on 40-chunk clips that run 30 deep, and a full context mask."""
    s, _, _, n = _streams(tiny_model, clips=3, chunks=40, count=2, depth=30)
    s.limit[:] = 30
    return s, n, _ctx_mask(2, n, [tiny_model.cfg.history_chunks] * 2)


def test_streams_off_track_go_back_to_the_truth_in_place(tiny_model):
    h = tiny_model.cfg.history_chunks
    calls = []

    def on_track(clips, chunks, latents):  # stream 0 always strays, stream 1 never
        calls.append((clips.copy(), chunks.copy(), latents.shape[0]))
        return np.array([False, True])

    s, n, ctx = _two_long_streams(tiny_model)
    s.on_track = on_track
    for step in range(1, 4):
        t0 = s.t.copy()
        z, _, _ = s.windows(tiny_model, ctx)
        assert list(calls[-1][1]) == list(t0 + 1) and calls[-1][2] == 2  # the chunk just made
        assert list(s.depths()) == [0, step] and s.anchored == step
        first = int(s.t[0]) - h + 1
        assert list(s.t) == list(t0 + 1)  # re-anchored in place: the stream still moves on
        assert [_mark(z[0, j]) for j in range(n)] == [
            int(s.clip[0]) * 100 + first + j for j in range(n)
        ]  # its window is all ground truth
        assert _mark(z[1, h - 1]) is None  # the other keeps its generated history


def test_player_on_track_judges_the_player_against_the_true_frame(tiny_model):
    from world.eval.episodes import true_episode

    cfg = tiny_model.cfg
    f, size = cfg.chunk_frames, cfg.codec.frame_size
    ep = true_episode(7, 3, f, size)
    frames = np.stack([ep.frames, np.zeros_like(ep.frames)])  # clip 1: no player anywhere
    z = torch.zeros(2, cfg.latent_frames, cfg.codec.latent_channels, *cfg.codec.grid)
    blank = player_on_track(tiny_model, frames, tolerance=2.0)
    # the untrained codec draws no player: off track where the truth has one, unjudged elsewhere
    assert list(blank(np.array([0, 1]), np.array([1, 1]), z)) == [False, True]


@pytest.mark.parametrize("shift, ok", [(0, True), (1, True), (3, False)])
def test_player_on_track_tolerates_drift_up_to_its_tolerance(tiny_model, monkeypatch, shift, ok):
    from world.eval.episodes import true_episode

    cfg = tiny_model.cfg
    f, size = cfg.chunk_frames, cfg.codec.frame_size
    ep = true_episode(7, 3, f, size)
    drawn = np.roll(ep.frames[f : 2 * f], shift, axis=2)  # chunk 1, the player moved right
    monkeypatch.setattr(tiny_model.codec, "decode", lambda z: torch.from_numpy(drawn[None]))
    check = player_on_track(tiny_model, ep.frames[None], tolerance=2.0)
    z = torch.zeros(1, cfg.latent_frames, cfg.codec.latent_channels, *cfg.codec.grid)
    assert list(check(np.array([0]), np.array([1]), z)) == [ok]


def test_fill_puts_stream_windows_only_where_the_batch_has_context(tiny_model):
    h = tiny_model.cfg.history_chunks
    s, _, _, n = _streams(tiny_model, clips=3, chunks=40, count=2, depth=30)
    z, a, caps, _ = _loaded(tiny_model, 4, 0)
    ctx = _ctx_mask(4, n, [0, h, 1, h])  # items 1 and 2 take the two streams; 3 keeps its own
    before = z.clone()
    zf, af, cf, used = s.fill(tiny_model, z, a, caps, ctx)
    assert used == 2
    for i in (0, 3):
        assert torch.equal(zf[i], z[i]) and torch.equal(af[i], a[i])
        assert cf[i * n : (i + 1) * n] == caps[i * n : (i + 1) * n]
    for k, i in enumerate((1, 2)):
        first = int(s.t[k]) - h + 1
        assert cf[i * n : (i + 1) * n] == [
            f"clip {int(s.clip[k])} chunk {first + j}" for j in range(n)
        ]
        assert _mark(zf[i, n - 1]) == int(s.clip[k]) * 100 + first + n - 1  # a true target
    assert torch.equal(z, before)  # the batch handed in is left as it was


def test_streams_need_long_enough_clips(tiny_model):
    n = tiny_model.cfg.history_chunks + 2
    with pytest.raises(ValueError, match="chunkworld data generate --frames"):
        _streams(tiny_model, clips=2, chunks=n, count=1, depth=4)
    with pytest.raises(ValueError, match="at least 1"):
        _streams(tiny_model, clips=2, chunks=n + 1, count=1, depth=0)


def test_retarget_replaces_the_targets_of_generated_histories_only(tiny_model):
    h = tiny_model.cfg.history_chunks
    calls = []

    def retarget(clips, chunks, latents, count):  # stream 0: its own world; stream 1: none
        calls.append((clips.copy(), chunks.copy(), latents.shape[0], count))
        target = torch.full((count, *latents.shape[1:]), -7.0)
        return [target, None][: len(clips)]

    s, n, ctx = _two_long_streams(tiny_model)
    s.retarget = retarget
    for step in range(1, 4):
        t0 = s.t.copy()
        z, _, _ = s.windows(tiny_model, ctx)
        clips, chunks, made, count = calls[-1]
        assert list(chunks) == list(t0 + 1) and made == 2 and count == n - h
        assert torch.all(z[0, h:] == -7.0)  # targets of the world that goes on from g
        first = int(s.t[1]) - h + 1
        assert [_mark(z[1, j]) for j in range(h, n)] == [
            int(s.clip[1]) * 100 + first + j for j in range(h, n)
        ]  # None: the clip's own targets
        assert s.retargeted == step
    one = _ctx_mask(2, n, [1, h])  # stream 0 has one context chunk: a true target follows it
    z, _, _ = s.windows(tiny_model, one)
    assert list(calls[-1][0]) == [int(s.clip[1])] and _mark(z[0, h]) is not None
    s.on_track = lambda clips, chunks, latents: np.array([False, True])  # stream 0 re-anchored
    z, _, _ = s.windows(tiny_model, ctx)
    assert list(calls[-1][0]) == [int(s.clip[1])]  # a true history keeps the clip's targets
    first = int(s.t[0]) - h + 1
    assert [_mark(z[0, j]) for j in range(n)] == [
        int(s.clip[0]) * 100 + first + j for j in range(n)
    ]
