"""Starting a run from a trained model (``--init-from``): the weights that fit are taken, a
codec of another ``temporal`` factor is refolded, and added blocks or a local branch start so that
the run computes exactly the checkpoint's function before it trains."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file
from test_train import _config

from world.core.checkpoint import CheckpointError, load_checkpoint, load_matching, save_checkpoint
from world.core.config import preset
from world.core.model import WorldModel
from world.core.text import vocabulary
from world.train.codec import codec_step
from world.train.data import Dataset
from world.train.datagen import generate_dataset
from world.train.stages import run
from world.train.trainkit import load_arrays


def test_a_run_started_from_a_model_is_that_model_before_it_trains(tiny_data, tmp_path):
    run(_config(tiny_data, tmp_path / "a"))
    source, _ = load_checkpoint(tmp_path / "a" / "model")
    # fine-tuning on other data (another game, say): same format, other frames
    other = tmp_path / "other"
    generate_dataset(
        other, n_clips=12, clip_frames=16, chunk_frames=2, size=32, seed=7, progress=False
    )
    init = str(tmp_path / "a" / "model")
    run(_config(other, tmp_path / "b", init_from=init, codec_steps=0, steps=0))
    started, _ = load_checkpoint(tmp_path / "b" / "model")
    want = source.state_dict()
    assert all(torch.equal(v, want[n]) for n, v in started.state_dict().items())
    # it knows the words of both data sets: its source's and the new data's
    new_words = vocabulary(c for clip in Dataset(other) for c in clip.captions)
    assert started.cfg.text.known_words == vocabulary(new_words, also=source.cfg.text.known_words)
    # the codec came whole, so the latent scale its denoiser was trained at stays, although the
    # other data's latents (scaled by it) no longer have unit standard deviation
    scale = source.cfg.codec.latent_scale
    assert started.cfg.codec.latent_scale == scale
    frames = load_arrays(other, source.cfg).frames[:16, : source.cfg.chunk_frames * 4]
    with torch.no_grad():
        std = float(source.codec.encode(torch.from_numpy(frames)).std())
    assert abs(std - 1.0) > 1e-3
    # and a fine-tuning run goes on from there like any other
    run(_config(other, tmp_path / "b", init_from=init, steps=2))
    tuned, doc = load_checkpoint(tmp_path / "b" / "model")
    assert doc["step"] == 2
    tuned_w = tuned.state_dict()
    assert any(not torch.equal(tuned_w[n], want[n]) for n in want if n.startswith("denoiser."))


def test_init_from_takes_the_weights_that_fit_and_leaves_the_rest(tmp_path):
    torch.manual_seed(0)
    source = WorldModel(preset("tiny"))
    save_checkpoint(source, tmp_path / "src")
    more = preset("tiny").replace(actions=(*preset("tiny").actions, "jump"))
    torch.manual_seed(1)
    model = WorldModel(more)
    before = {n: v.clone() for n, v in model.state_dict().items()}
    taken, kept, cfg = load_matching(model, tmp_path / "src")
    assert kept == ["denoiser.action_emb.weight"] and cfg.name == "tiny"
    assert len(taken) == len(before) - 1
    now, want = model.state_dict(), source.state_dict()
    assert all(torch.equal(now[n], want[n]) for n in taken)
    assert torch.equal(now["denoiser.action_emb.weight"], before["denoiser.action_emb.weight"])


@pytest.mark.parametrize(("old", "new"), [(2, 1), (1, 2)])
def test_init_from_another_temporal_factor_keeps_still_scenes_and_held_actions(tmp_path, old, new):
    tiny = preset("tiny")
    torch.manual_seed(0)
    source = WorldModel(tiny.replace(codec=replace(tiny.codec, temporal=old))).eval()
    save_checkpoint(source, tmp_path / "src")
    model = WorldModel(tiny.replace(codec=replace(tiny.codec, temporal=new))).eval()
    taken, kept, _ = load_matching(model, tmp_path / "src")
    assert kept == [] and len(taken) == len(source.state_dict())
    still = torch.randint(0, 256, (1, 1, 32, 32, 3), dtype=torch.uint8).repeat(1, 2, 1, 1, 1)
    with torch.no_grad():
        z_old, z_new = source.codec.encode(still), model.codec.encode(still)
        # the same latent per latent frame: a still scene means what it meant before
        torch.testing.assert_close(z_new[:, :1], z_old[:, :1], atol=1e-5, rtol=1e-4)
        # the new decoder draws each frame as the old decoder's mean frame of that latent
        drawn_old = source.codec.decode_unit(z_old[:, :1]).mean(1, keepdim=True)
        drawn_new = model.codec.decode_unit(z_old[:, :1])
        torch.testing.assert_close(drawn_new, drawn_old.expand_as(drawn_new), atol=1e-5, rtol=1e-4)

        # and a held action gives the denoiser the condition it gave before
        def held(m: WorldModel, k: int) -> torch.Tensor:
            emb = m.denoiser.action_emb(torch.full((k,), 3)).flatten()
            return m.denoiser.action_proj(emb)

        torch.testing.assert_close(held(model, new), held(source, old), atol=1e-5, rtol=1e-4)


def test_a_run_from_a_model_takes_its_codec_setting_unless_codec_names_another(tiny_data, tmp_path):
    tiny = preset("tiny")
    torch.manual_seed(0)
    source = WorldModel(tiny.replace(codec=replace(tiny.codec, temporal=1, latent_scale=0.5)))
    save_checkpoint(source, tmp_path / "src")
    init = str(tmp_path / "src")
    # no --codec: the fine-tuned model has the source's one frame per latent frame, all weights
    run(_config(tiny_data, tmp_path / "a", init_from=init, codec_steps=0, steps=0))
    started, _ = load_checkpoint(tmp_path / "a" / "model")
    assert started.cfg.codec == source.cfg.codec  # latent scale too: the codec came whole
    want = source.state_dict()
    assert all(torch.equal(v, want[n]) for n, v in started.state_dict().items())
    # --codec goes on top of the source's setting: back to the preset's two, refolded
    run(
        _config(
            tiny_data, tmp_path / "b", init_from=init, codec="temporal=2", codec_steps=0, steps=0
        )
    )
    folded, _ = load_checkpoint(tmp_path / "b" / "model")
    assert folded.cfg.codec == replace(source.cfg.codec, temporal=2)
    w = folded.state_dict()["codec.encoder.stem.weight"]
    assert w.shape[1] == 2 * want["codec.encoder.stem.weight"].shape[1]
    # resumed without --init-from, the run would get the preset's codec: refused, with the fix
    with pytest.raises(ValueError, match="started with --codec ''.*temporal=1.*--init-from"):
        run(_config(tiny_data, tmp_path / "a", steps=2))
    run(_config(tiny_data, tmp_path / "a", init_from=init, steps=2))  # as it started: resumes
    assert load_checkpoint(tmp_path / "a" / "model")[1]["step"] == 2


def test_a_run_from_a_model_with_no_codec_steps_resumes(tiny_data, tmp_path):
    run(_config(tiny_data, tmp_path / "src"))
    init = str(tmp_path / "src" / "model")
    source, _ = load_checkpoint(init)
    out = tmp_path / "a"
    run(_config(tiny_data, out, init_from=init, codec_steps=0, steps=2))
    assert codec_step(out) == 0  # the run keeps the codec it took, at no steps of its own
    run(_config(tiny_data, out, init_from=init, codec_steps=0, steps=4))  # a second leg
    resumed, doc = load_checkpoint(out / "model")
    assert doc["step"] == 4
    want = source.state_dict()
    assert all(torch.equal(v, want[n]) for n, v in resumed.state_dict().items() if "codec." in n)
    # a run directory of an earlier version, without that codec state, resumes from its source
    (out / "codec_state.safetensors").unlink()
    run(_config(tiny_data, out, init_from=init, codec_steps=0, steps=6))
    assert load_checkpoint(out / "model")[1]["step"] == 6
    with pytest.raises(ValueError, match="holds no codec state.*--init-from.*--codec-steps"):
        run(_config(tiny_data, out, codec_steps=0, steps=8))


def _source(tmp_path):
    """A tiny model with trained-looking weights (gates open, nothing zero), saved to start
    from: the model and its checkpoint path."""
    torch.manual_seed(0)
    source = WorldModel(preset("tiny"))  # two blocks; four query heads, two key/value heads
    for p in source.denoiser.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    save_checkpoint(source, tmp_path / "src")
    return source, str(tmp_path / "src")


def _assert_same_function(grown, source, exact=True):
    """``grown`` computes what ``source`` does, with and without history (exactly, or to
    float rounding where the growth adds terms)."""
    from test_core import _forward, _inputs

    inputs = _inputs(source, 3)
    for n_context in (0, 1):
        a = _forward(grown, *inputs, n_context=n_context)
        b = _forward(source, *inputs, n_context=n_context)
        assert torch.equal(a, b) if exact else torch.allclose(a, b, atol=1e-5)


def _grown(tiny_data, tmp_path, init, **shape):
    """The model a run from ``init`` with another ``shape`` starts as (no steps taken)."""
    run(_config(tiny_data, tmp_path / "a", init_from=init, codec_steps=0, steps=0, **shape))
    return load_checkpoint(tmp_path / "a" / "model")[0]


def _resumed(tiny_data, tmp_path, init, refused, **shape):
    """That run resumed: refused (``refused``) without its shape, trained two steps with it."""
    with pytest.raises(ValueError, match=refused):
        run(_config(tiny_data, tmp_path / "a", init_from=init, steps=2))
    run(_config(tiny_data, tmp_path / "a", init_from=init, steps=2, **shape))
    trained, doc = load_checkpoint(tmp_path / "a" / "model")
    assert doc["step"] == 2
    return trained


def test_a_deeper_run_from_a_model_starts_as_that_model(tiny_data, tmp_path):
    source, init = _source(tmp_path)
    deeper = _grown(tiny_data, tmp_path, init, depth=3)
    assert len(deeper.denoiser.blocks) == 3
    _assert_same_function(deeper, source)  # the third block, gates shut, passes input through
    with pytest.raises(ValueError, match="--depth -1: give the denoiser's blocks"):
        run(_config(tiny_data, tmp_path / "c", depth=-1))
    trained = _resumed(
        tiny_data, tmp_path, init, "started with 3 denoiser blocks.*--depth 3", depth=3
    )
    dim = trained.cfg.denoiser.dim
    gates = trained.denoiser.blocks[2].mod.bias.detach()[2 * dim : 3 * dim]
    assert gates.abs().max() > 0  # training opens them


def test_init_from_a_checkpoint_that_fits_nothing_is_refused(tmp_path):
    save_checkpoint(WorldModel(preset("tiny")), tmp_path / "src")
    save_file({"unrelated.weight": torch.zeros(3)}, str(tmp_path / "src" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="name='tiny'"):
        load_matching(WorldModel(preset("tiny")), tmp_path / "src")


def test_a_run_with_a_local_branch_from_a_model_starts_as_that_model(tiny_data, tmp_path):
    source, init = _source(tmp_path)
    local = _grown(tiny_data, tmp_path, init, local_conv=8)
    assert local.cfg.denoiser.local_conv == 8 and not source.cfg.denoiser.local_conv
    branch = local.denoiser.blocks[0].local
    assert torch.equal(branch.out.weight, torch.zeros_like(branch.out.weight))  # adds nothing yet
    assert branch.conv.weight.abs().max() > 0  # but can learn
    _assert_same_function(local, source)
    with pytest.raises(ValueError, match="--local-conv -1: give the local branch's channels"):
        run(_config(tiny_data, tmp_path / "c", local_conv=-1))
    refused = "started with a local branch of 8 channels.*--local-conv 8"
    trained = _resumed(tiny_data, tmp_path, init, refused, local_conv=8)
    assert trained.denoiser.blocks[0].local.out.weight.abs().max() > 0  # training grows it


def test_a_run_from_a_model_with_a_prior_takes_the_rest_and_says_the_prior_is_not_carried(
    tiny_data, tiny_primed_model, tmp_path, capsys
):
    save_checkpoint(tiny_primed_model, tmp_path / "primed")
    primed = str(tmp_path / "primed")
    run(_config(tiny_data, tmp_path / "a", init_from=primed, codec_steps=0, steps=0))
    assert "dynamics prior is not carried; train one for the new model with chunkworld " in (
        capsys.readouterr().out
    )
    started, _ = load_checkpoint(tmp_path / "a" / "model")
    assert started.prior is None and started.cfg.sampler.prior_level == 0.0
    want = tiny_primed_model.state_dict()
    assert all(torch.equal(v, want[n]) for n, v in started.state_dict().items())
