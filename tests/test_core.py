"""The world-model core: cache equivalence, causality, reach, bounded memory, the pipelined
sampler, guidance and sampler state."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from world.core.codec import codec_setting
from world.core.config import preset
from world.core.model import WorldModel
from world.core.sampler import PipelinedSampler


def _inputs(model: WorldModel, n: int, seed: int = 0, batch: int = 1):
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    c = cfg.codec
    x = torch.randn(batch, n, cfg.latent_frames, c.latent_channels, *c.grid, generator=g)
    actions = torch.randint(0, len(cfg.actions), (batch, n, cfg.chunk_frames), generator=g)
    tokens, mask = model.encode_text(["day, two balls"] * batch)
    text = tokens[:, None].expand(-1, n, -1, -1)
    tmask = mask[:, None].expand(-1, n, -1)
    return x, actions, text, tmask


def _forward(model, x, actions, text, tmask, n_context, levels=None, ctx_prev=True):
    """One masked forward over n chunks: the first n_context are clean history."""
    b, n = x.shape[:2]
    is_ctx = torch.arange(n)[None].expand(b, n) < n_context
    if levels is None:
        levels = torch.where(is_ctx, 0.05, 0.7)
    ctx = torch.zeros_like(x[:, :, -1])
    ctx[:, 1:] = x[:, :-1, -1]
    valid = torch.zeros(b, n, dtype=torch.bool)
    valid[:, 1:] = ctx_prev
    with torch.no_grad():
        return model.denoiser(
            x,
            levels,
            actions,
            (text, tmask),
            torch.arange(n),
            is_context=is_ctx,
            context=(ctx, valid),
        )


# 1. cache equivalence ------------------------------------------------------------------------
@settings(max_examples=8, deadline=None)
@given(history=st.integers(1, 6), seed=st.integers(0, 1000))
def test_cache_equals_single_masked_forward(tiny_model, history, seed):
    _assert_cache_equals_masked(tiny_model, history, seed)


@settings(max_examples=4, deadline=None)
@given(history=st.integers(1, 4), seed=st.integers(0, 1000), wide=st.booleans())
def test_cache_equals_single_masked_forward_with_a_local_branch(
    tiny_local_model, tiny_wide_local_model, history, seed, wide
):
    model = tiny_wide_local_model if wide else tiny_local_model  # frames 32x32, or 32x48
    _assert_cache_equals_masked(model, history, seed)


@settings(max_examples=4, deadline=None)
@given(history=st.integers(1, 4), seed=st.integers(0, 1000))
def test_cache_equals_single_masked_forward_with_tokens_of_two_by_two_cells(
    tiny_fine_model, history, seed
):
    assert tiny_fine_model.cfg.codec.grid == (8, 8) and tiny_fine_model.cfg.token_grid == (4, 4)
    _assert_cache_equals_masked(tiny_fine_model, history, seed)


def _assert_cache_equals_masked(model, history, seed):
    x, actions, text, tmask = _inputs(model, history + 1, seed)
    full = _forward(model, x, actions, text, tmask, n_context=history)

    sampler = PipelinedSampler(model, context_level=0.05)
    state = sampler.new_state(seed=seed)
    null_tokens, null_mask = model.encode_text([None])
    for c in range(history):  # feed clean history chunk by chunk through the cache pass
        model.denoiser.encode_history(
            state.cache, c, x[:, c], 0.05, actions[:, c], (null_tokens, null_mask)
        )
    with torch.no_grad():
        cached = model.denoiser(
            x[:, -1:],
            torch.full((1, 1), 0.7),
            actions[:, -1:],
            (text[:, -1:], tmask[:, -1:]),
            torch.tensor([history]),
            context=(x[:, -2:-1, -1], torch.ones(1, 1, dtype=torch.bool)),
            cache=state.cache,
        )
    # history chunks in the full pass saw their own caption; cached ones the null caption. The
    # cache stores history by the null caption, so compare against a full pass that does too.
    text_hist = text.clone()
    tmask_hist = tmask.clone()
    text_hist[:, :history] = 0
    pad = null_tokens.shape[1]
    text_hist[:, :history, :pad] = null_tokens[:, None]
    tmask_hist[:, :history] = False
    tmask_hist[:, :history, :pad] = null_mask[:, None]
    full = _forward(model, x, actions, text_hist, tmask_hist, n_context=history)
    torch.testing.assert_close(cached[:, 0], full[:, -1], rtol=1e-4, atol=1e-5)


def test_sampler_cache_equals_recompute(tiny_model):
    """The sampler with the ring cache gives the same chunks as recomputing the window."""
    outs = []
    for use_cache in (True, False):
        sampler = PipelinedSampler(tiny_model, use_cache=use_cache, in_flight=2, steps=2)
        state = sampler.new_state(seed=3)
        text = tiny_model.encode_text(["night"])
        a = torch.tensor([[1, 3]])
        outs.append(torch.stack([sampler.tick(state, a, text).latents for _ in range(6)]))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-4)


# 2. causality ---------------------------------------------------------------------------------
@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(2, 6),
    later=st.integers(1, 5),
    n_context=st.integers(0, 5),
    seed=st.integers(0, 99),
)
def test_later_chunk_never_changes_earlier_output(tiny_model, n, later, n_context, seed):
    later = min(later, n - 1)
    x, actions, text, tmask = _inputs(tiny_model, n, seed)
    base = _forward(tiny_model, x, actions, text, tmask, min(n_context, n - 1))
    x2 = x.clone()
    x2[:, later] += torch.randn_like(x2[:, later])
    actions2 = actions.clone()
    actions2[:, later] = (actions2[:, later] + 1) % len(tiny_model.cfg.actions)
    pert = _forward(tiny_model, x2, actions2, text, tmask, min(n_context, n - 1))
    torch.testing.assert_close(pert[:, :later], base[:, :later], rtol=0, atol=0)
    assert not torch.allclose(pert[:, later], base[:, later])


# 3. reach ---------------------------------------------------------------------------------------
@settings(max_examples=8, deadline=None)
@given(extra=st.integers(1, 4), seed=st.integers(0, 99))
def test_history_older_than_reach_has_no_effect(tiny_model, extra, seed):
    k = tiny_model.cfg.history_chunks
    n = k + extra + 1  # the last chunk is noisy; everything before it is clean history
    x, actions, text, tmask = _inputs(tiny_model, n, seed)
    base = _forward(tiny_model, x, actions, text, tmask, n - 1)
    x2 = x.clone()
    x2[:, : n - 1 - k] = torch.randn_like(x2[:, : n - 1 - k])  # chunks older than K
    pert = _forward(tiny_model, x2, actions, text, tmask, n - 1)
    torch.testing.assert_close(pert[:, -1], base[:, -1], rtol=0, atol=0)
    x3 = x.clone()
    x3[:, n - 1 - k] += 1.0  # the oldest chunk within reach does matter
    assert not torch.allclose(
        _forward(tiny_model, x3, actions, text, tmask, n - 1)[:, -1], base[:, -1]
    )


# 4. bounded memory ------------------------------------------------------------------------------
@settings(max_examples=4, deadline=None)
@given(w=st.sampled_from([1, 2]))
def test_cache_bytes_flat(tiny_model, w):
    sampler = PipelinedSampler(tiny_model, in_flight=w, steps=2)
    state = sampler.new_state(seed=0)
    k = tiny_model.cfg.history_chunks
    text = tiny_model.encode_text([None])
    a = torch.zeros(1, tiny_model.cfg.chunk_frames, dtype=torch.long)
    sizes = {}
    for i in range(3 * k):
        sampler.tick(state, a, text)
        sizes[i + 1] = (state.cache.nbytes(), state.context_inputs.nbytes, len(state.in_flight))
    assert sizes[k] == sizes[3 * k]
    assert sorted(int(c) for c in state.cache.index) == list(range(3 * k - k, 3 * k))


# 5. pipelined levels ------------------------------------------------------------------------------
def test_pipeline_levels_w1(tiny_model):
    sampler = PipelinedSampler(tiny_model, steps=4, in_flight=1, shift=1.0)
    state = sampler.new_state()
    text = tiny_model.encode_text([None])
    a = torch.zeros(1, 2, dtype=torch.long)
    r0 = sampler.tick(state, a, text)
    r1 = sampler.tick(state, a, text)
    assert r0.trace == (((0, 1.0),), ((0, 0.75),), ((0, 0.5),), ((0, 0.25),))
    assert r1.trace == (((1, 1.0),), ((1, 0.75),), ((1, 0.5),), ((1, 0.25),))
    assert (r0.chunk, r1.chunk, r0.forwards, r1.forwards) == (0, 1, 4, 4)


def test_pipeline_levels_w4(tiny_model):
    sampler = PipelinedSampler(tiny_model, steps=4, in_flight=4, shift=1.0)
    state = sampler.new_state()
    text = tiny_model.encode_text([None])
    a = torch.zeros(1, 2, dtype=torch.long)
    r0 = sampler.tick(state, a, text)  # warm-up: fills the pipeline while chunk 0 denoises
    assert r0.trace == (
        ((0, 1.0),),
        ((0, 0.75), (1, 1.0)),
        ((0, 0.5), (1, 0.75), (2, 1.0)),
        ((0, 0.25), (1, 0.5), (2, 0.75), (3, 1.0)),
    )
    r1 = sampler.tick(state, a, text)  # steady state: one forward, four chunks in flight
    assert r1.trace == (((1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0)),)
    assert (r0.chunk, r1.chunk) == (0, 1)


@settings(max_examples=10, deadline=None)
@given(w=st.sampled_from([1, 2, 4]), ticks=st.integers(1, 8))
def test_every_tick_emits_one_chunk_in_order(tiny_model, w, ticks):
    sampler = PipelinedSampler(tiny_model, steps=4, in_flight=w)
    state = sampler.new_state()
    text = tiny_model.encode_text([None])
    a = torch.zeros(1, 2, dtype=torch.long)
    emitted = [sampler.tick(state, a, text).chunk for _ in range(ticks)]
    assert emitted == list(range(ticks))
    assert len(state.in_flight) == w - 1


# guidance ---------------------------------------------------------------------------------------
def test_guidance_scales_of_one_are_the_one_pass_model(tiny_model):
    text = tiny_model.encode_text(["night"])
    a = torch.tensor([[2, 2]])
    outs = []
    for scales in ((1.0, 1.0), (1.0, 1.0 + 1e-9), (1.0, 3.0)):
        sampler = PipelinedSampler(
            tiny_model, guidance_history=scales[0], guidance_text=scales[1], guidance_min_level=0.0
        )
        state = sampler.new_state(seed=1)
        outs.append(torch.stack([sampler.tick(state, a, text).latents for _ in range(3)]))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-4)  # 3 passes, same sum
    assert not torch.allclose(outs[0], outs[2], atol=1e-3)  # text guidance changes the chunk


def test_guidance_with_zero_scales_ignores_history_and_text(tiny_model):
    """u + 0 (c_h - u) + 0 (c_ht - c_h) = u: the chunk must not depend on history or caption."""
    a = torch.tensor([[1, 1]])
    outs = []
    for caption, history_seed in (("night", 1), ("day", 2)):
        sampler = PipelinedSampler(
            tiny_model, guidance_history=0.0, guidance_text=0.0, guidance_min_level=0.0
        )
        state = sampler.new_state(seed=0)
        g = torch.Generator().manual_seed(history_seed)
        c = tiny_model.cfg.codec
        hist = torch.randn(1, tiny_model.cfg.latent_frames, c.latent_channels, *c.grid, generator=g)
        sampler.add_history(state, hist)
        state.generator.manual_seed(5)  # same noise for the new chunk in both runs
        outs.append(sampler.tick(state, a, tiny_model.encode_text([caption])).latents)
    torch.testing.assert_close(outs[0], outs[1])


@settings(max_examples=6, deadline=None)
@given(w=st.sampled_from([1, 2, 4]), before=st.integers(0, 5))
def test_state_clone_replays_identically_and_leaves_the_original(tiny_model, w, before):
    """A cloned rollout state ticks to the same chunks as the original, which it never touches."""
    sampler = PipelinedSampler(tiny_model, steps=4, in_flight=w)
    state = sampler.new_state(seed=5)
    text = tiny_model.encode_text(["rain"])
    a = torch.tensor([[2, 4]])
    for _ in range(before):
        sampler.tick(state, a, text)
    admitted = state.next_chunk
    copy = state.clone()
    from_copy = [sampler.tick(copy, a, text).latents for _ in range(3)]
    assert state.next_chunk == admitted < copy.next_chunk  # the original did not move
    from_original = [sampler.tick(state, a, text).latents for _ in range(3)]
    for x, y in zip(from_copy, from_original, strict=True):
        assert torch.equal(x, y)


@settings(max_examples=6, deadline=None)
@given(w=st.sampled_from([1, 2, 4]), before=st.integers(0, 5), top=st.sampled_from([1.0, 0.25]))
def test_a_state_rebuilt_from_its_state_dict_replays_identically(tiny_model, w, before, top):
    """``state_dict`` then ``load_state_dict`` into a fresh state (another seed) gives a state that
    ticks to the same chunks; every in-flight field comes back, ``top`` included."""
    sampler = PipelinedSampler(tiny_model, steps=4, in_flight=w)
    state = sampler.new_state(seed=5)
    text = tiny_model.encode_text(["rain"])
    a = torch.tensor([[2, 4]])
    for _ in range(before):
        sampler.tick(state, a, text)
    for f in state.in_flight:
        f.top = top
    tensors, counters = state.state_dict()
    assert set(tensors) - {"last_clean"} == state.tensor_names(counters)
    asked = []
    fresh = sampler.new_state(seed=99)
    fresh.load_state_dict(tensors, counters, lambda c: asked.append(c) or text)
    assert asked == [f.chunk for f in state.in_flight]
    assert [(f.chunk, f.step, f.prompted, f.top) for f in fresh.in_flight] == [
        (f.chunk, f.step, f.prompted, f.top) for f in state.in_flight
    ]
    for _ in range(3):
        assert torch.equal(
            sampler.tick(fresh, a, text).latents, sampler.tick(state, a, text).latents
        )


def test_a_state_dict_that_does_not_fit_is_refused_and_the_state_kept(tiny_model):
    sampler = PipelinedSampler(tiny_model, steps=2, in_flight=2)
    state = sampler.new_state(seed=0)
    tensors, counters = state.state_dict()
    fresh = sampler.new_state(seed=1)
    before = fresh.generator.get_state()
    with pytest.raises(
        ValueError, match=r"context.inputs is \(1,\) torch.float32, this state needs"
    ):
        fresh.load_state_dict({**tensors, "context.inputs": torch.zeros(1)}, counters, None)
    with pytest.raises(ValueError, match="state tensor cache.v is missing"):
        fresh.load_state_dict({k: v for k, v in tensors.items() if k != "cache.v"}, counters, None)
    assert torch.equal(fresh.generator.get_state(), before)


def test_state_bytes_grow_by_what_a_tick_leaves_and_stay_flat_after(tiny_model):
    """A fresh state holds its preallocated cache and context; the first tick adds only the
    newest clean latent frame, and ticks after it add nothing (W = 2: one chunk in flight)."""
    sampler = PipelinedSampler(tiny_model, steps=2, in_flight=2)
    state = sampler.new_state(seed=0)
    fresh = state.nbytes()
    gen_bytes = state.generator.get_state().numel()
    fixed = [state.cache.k, state.cache.v, state.cache.index]
    fixed += [state.context_inputs, state.context_actions]
    assert fresh == sum(t.numel() * t.element_size() for t in fixed) + gen_bytes
    text = tiny_model.encode_text(["rain"])
    sampler.tick(state, torch.tensor([[2, 4]]), text)
    (f,) = state.in_flight
    added = [f.latent, f.actions, state.last_clean]
    assert state.nbytes() == fresh + sum(t.numel() * t.element_size() for t in added)
    after_one = state.nbytes()
    for _ in range(3):
        sampler.tick(state, torch.tensor([[1, 1]]), text)
    assert state.nbytes() == after_one == state.clone().nbytes()


def test_prompt_guidance_acts_only_on_prompted_chunks(tiny_model):
    """A prompted chunk gets text guidance (different latents); an unprompted one is the plain
    one-pass chunk even with prompt guidance switched on."""
    text = tiny_model.encode_text(["night"])
    a = torch.tensor([[2, 2]])

    def chunk(scale: float, prompted: bool) -> torch.Tensor:
        sampler = PipelinedSampler(tiny_model, prompt_guidance=scale, guidance_min_level=0.0)
        state = sampler.new_state(seed=1)
        return sampler.tick(state, a, text, prompted=prompted).latents

    plain = chunk(1.0, False)
    assert torch.equal(chunk(3.0, False), plain)  # not prompted: prompt guidance is off
    torch.testing.assert_close(chunk(1.0, True), plain, rtol=1e-4, atol=1e-4)  # scale 1: no-op
    guided = chunk(3.0, True)
    assert not torch.allclose(guided, plain, atol=1e-3)
    # the same as always-on text guidance at that scale, which takes the same two passes
    always = PipelinedSampler(tiny_model, guidance_text=3.0, guidance_min_level=0.0)
    st = always.new_state(seed=1)
    torch.testing.assert_close(guided, always.tick(st, a, text).latents)


def test_text_starts_and_prompts_take_prompt_steps_then_the_play_steps(tiny_model):
    """With ``prompt_steps``, the first chunk of a world with no history, and a prompted chunk,
    are made with that many steps (the first is the chunk a sampler of that many steps makes);
    every other tick with ``steps``."""
    text = tiny_model.encode_text(["night"])
    a = torch.tensor([[2, 2]])
    fast = PipelinedSampler(tiny_model, steps=1, prompt_steps=3)
    slow = PipelinedSampler(tiny_model, steps=3)
    assert (fast.prompt_steps, slow.prompt_steps) == (3, 3)
    assert PipelinedSampler(tiny_model, steps=4, prompt_steps=2).prompt_steps == 4  # never fewer
    s1, s3 = fast.new_state(seed=4), slow.new_state(seed=4)
    first = fast.tick(s1, a, text)
    assert first.forwards == 3
    torch.testing.assert_close(first.latents, slow.tick(s3, a, text).latents)
    assert fast.tick(s1, a, text).forwards == 1  # history exists now: the play steps
    hist = PipelinedSampler(tiny_model, steps=1, prompt_steps=3)  # an image/video start
    s = hist.new_state(seed=4)
    hist.add_history(s, first.latents)
    assert hist.tick(s, a, text).forwards == 1
    assert hist.tick(s, a, text, prompted=True).forwards == 3  # a prompt: the prompt steps
    assert hist.tick(s, a, text).forwards == 1


def test_a_text_start_takes_start_steps_and_prompts_keep_prompt_steps(tiny_model):
    """``sampler.start_steps`` sets the steps of a world's first chunk with no history alone;
    a prompted chunk later keeps ``prompt_steps``, other ticks ``steps``."""
    import dataclasses

    text = tiny_model.encode_text(["night"])
    a = torch.tensor([[2, 2]])
    cfg = tiny_model.cfg
    tiny_model.cfg = cfg.replace(
        sampler=dataclasses.replace(cfg.sampler, steps=1, prompt_steps=3, start_steps=5)
    )
    try:
        sampler = PipelinedSampler(tiny_model)
        s = sampler.new_state(seed=4)
        first = sampler.tick(s, a, text, prompted=True)
        assert first.forwards == 5
        torch.testing.assert_close(
            first.latents,
            PipelinedSampler(tiny_model, steps=5)
            .tick(PipelinedSampler(tiny_model, steps=5).new_state(seed=4), a, text, prompted=True)
            .latents,
        )
        assert sampler.tick(s, a, text, prompted=True).forwards == 3
        assert sampler.tick(s, a, text).forwards == 1
    finally:
        tiny_model.cfg = cfg


def test_codec_setting_parses_and_explains():
    cfg = codec_setting("latent_channels=4,patch=2,widths=8/8/8")
    assert (cfg.latent_channels, cfg.patch, cfg.widths) == (4, 2, (8, 8, 8))
    assert codec_setting("") == codec_setting("", preset("small").codec)
    with pytest.raises(ValueError, match="KEY=VALUE with KEY one of"):
        codec_setting("channels=4")
    with pytest.raises(ValueError, match="values are integers"):
        codec_setting("patch=two")
    with pytest.raises(ValueError, match="power of two"):
        codec_setting("patch=3")


def test_guidance_combines_the_passes_as_magi_1_does_with_fixed_values():
    """v = v_u + s_hist (v_h - v_u) + s_text (v_ht - v_h), per chunk, at levels >= min_level;
    with both scales 1 a single pass."""
    from world.core.guidance import Guidance

    shape = (1, 2, 1, 1, 1, 1)  # two chunks in flight
    text, null = ("caption",), ("null",)
    values = {("caption", True): 3.0, ("null", True): 1.0, ("null", False): 0.0}
    calls = []

    def run(t, history):
        calls.append((t[0], history))
        return torch.full(shape, values[(t[0], history)])

    levels = torch.tensor([[0.2, 0.9]])  # the first chunk below min_level 0.3: unguided
    g = Guidance(history=2.0, text=1.0, prompt=3.0, min_level=0.3)
    v = g.velocity(run, text, lambda: null, prompted=[True, True], levels=levels)
    assert v.flatten().tolist() == [3.0, 0 + 2 * (1 - 0) + 3 * (3 - 1)]
    assert calls == [("caption", True), ("null", True), ("null", False)]
    calls.clear()
    v = Guidance(history=1.0, text=1.0, prompt=3.0).velocity(
        run, text, lambda: null, prompted=[False, True], levels=torch.tensor([[0.9, 0.9]])
    )
    assert v.flatten().tolist() == [3.0, 1 + 3 * (3 - 1)] and len(calls) == 2  # no v_u pass
    calls.clear()
    Guidance().velocity(run, text, lambda: null, prompted=[False, False], levels=levels)
    assert calls == [("caption", True)]  # the common tick: one pass
