"""The Session: facts, ticks, actions, prompts, starts, determinism, errors, bounded memory."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import sdk.models
from sdk import (
    ActionError,
    ArgumentError,
    CheckpointLoadError,
    ChunkworldError,
    ClosedError,
    ImageError,
    NotResetError,
    PromptError,
    Session,
    UnknownModelError,
)
from sdk.errors import ERROR_CODES
from world.core.checkpoint import save_checkpoint
from world.core.config import PriorConfig, preset
from world.core.model import WorldModel

TINY_FACTS = {
    "model": "tiny",
    "frame_height": 32,
    "frame_width": 32,
    "chunk_frames": 2,
    "fps": 15.0,
    "actions": ["noop", "up", "down", "left", "right", "fire"],
    "max_prompt_chars": 200,
    "history_chunks": 2,
    "in_flight": 1,
    "steps": 2,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """The tiny model is fastest on one thread (and the machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def s() -> Iterator[Session]:
    with Session.load("tiny", seed=0) as session:
        yield session


def roll(session: Session, actions: list, **reset: object) -> list[np.ndarray]:
    out = [session.reset(**reset).frames]
    out += [session.step(a).frames for a in actions]
    return out


# --- facts ---------------------------------------------------------------------------------------
def test_describe_tiny(s: Session) -> None:
    assert s.describe() == TINY_FACTS
    info = s.info
    assert (info.trained, info.action_latency_ticks, info.card) == (False, 0, {})
    assert info.parameters == WorldModel(preset("tiny")).parameter_count()
    assert sorted(info.parameters) == ["codec", "denoiser", "text"]
    assert s.action_space.names == tuple(TINY_FACTS["actions"])
    assert s.action_space.gym_space().n == 6


def test_error_codes_are_the_contract() -> None:
    assert ERROR_CODES == {
        "NOT_RESET",
        "CLOSED",
        "BAD_ACTION",
        "BAD_PROMPT",
        "BAD_IMAGE",
        "BAD_SNAPSHOT",
        "BAD_ARGUMENT",
        "UNKNOWN_MODEL",
    }


# --- the loop ------------------------------------------------------------------------------------
def test_reset_and_step_ticks_shapes(s: Session) -> None:
    c0 = s.reset(prompt="night, two balls")
    assert (c0.tick, c0.action_tick, c0.prompt, c0.actions.tolist()) == (
        0,
        0,
        "night, two balls",
        [0, 0],
    )
    c1 = s.step("right")
    c2 = s.step(["up", 5])
    for c, tick in ((c0, 0), (c1, 1), (c2, 2)):
        assert c.frames.shape == (2, 32, 32, 3) and c.frames.dtype == np.uint8
        assert c.frames.flags.c_contiguous and c.tick == tick and isinstance(c.ms, float)
        assert c.last_frame.shape == (32, 32, 3)
    assert c1.actions.tolist() == [4, 4] and c2.actions.tolist() == [1, 5]
    assert s.tick == 2 and c2.prompt == "night, two balls"


def test_action_tick_with_pipeline() -> None:
    with Session.load("tiny", steps=2, in_flight=2) as s:
        assert s.describe()["in_flight"] == 2
        assert s.reset().action_tick == 1
        c = s.step("left")
        assert (c.tick, c.action_tick) == (1, 2)


def test_same_seed_same_frames_other_seed_differs() -> None:
    script = ["right", "right", ["up", "fire"], None, 3]
    with Session.load("tiny", seed=7) as a, Session.load("tiny", seed=7) as b:
        fa, fb = roll(a, script, prompt="day"), roll(b, script, prompt="day")
        fc = roll(a, script, prompt="day", seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))
    assert not np.array_equal(fa[0], fc[0])


def test_action_forms_are_equivalent_and_actions_matter(s: Session) -> None:
    forms = ["right", "RIGHT", 4, np.int64(4), ["right", "right"], [4, "right"], np.array([4, 4])]
    outs = [roll(s, [form])[1] for form in forms]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    assert not np.array_equal(outs[0], roll(s, ["left"])[1])
    assert np.array_equal(roll(s, [None])[1], roll(s, ["noop"])[1])


def test_prompt_per_tick(s: Session) -> None:
    base = roll(s, [None, None])
    s.reset()
    s.step()
    changed = s.step(prompt="night").frames
    assert not np.array_equal(changed, base[2])
    s.reset()
    s.step()
    s.set_prompt("night")
    assert np.array_equal(s.step().frames, changed)
    assert s.prompt == "night"
    # empty and absent prompts are the same null caption
    assert np.array_equal(s.reset(prompt="").frames, s.reset().frames)


def test_prompt_change_keeps_history(s: Session) -> None:
    s.reset()
    for _ in range(3):
        s.step()
    before = s.footprint().cached_chunks
    s.step(prompt="a totally different world")
    assert before == (2, 3) and s.footprint().cached_chunks == (3, 4)


def test_stream_matches_steps(s: Session) -> None:
    s.reset(seed=3)
    streamed = [
        (c.tick, c.prompt, c.frames) for c in s.stream(["up", "up", "left"], prompts={2: "night"})
    ]
    s.reset(seed=3)
    manual = [s.step("up"), s.step("up", prompt="night"), s.step("left")]
    assert [t for t, _, _ in streamed] == [1, 2, 3]
    assert [p for _, p, _ in streamed] == ["", "night", "night"]
    assert all(np.array_equal(f, c.frames) for (_, _, f), c in zip(streamed, manual, strict=True))


# --- starts --------------------------------------------------------------------------------------
def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _recon(s: Session, frames: np.ndarray) -> np.ndarray:
    """The codec's reconstruction, decoded at the session's precision."""
    codec = s._loaded.model.codec
    latents = codec.encode(torch.from_numpy(frames)[None])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.info.precision == "bf16"):
        return codec.decode(latents)[0].numpy()


def test_image_start_is_codec_reconstruction(s: Session) -> None:
    image = _frames(1)[0]
    c = s.reset(image=image)
    assert c.tick == 0 and np.array_equal(c.frames, _recon(s, np.stack([image, image])))
    assert s.footprint().cached_chunks == (0,)
    assert s.step().tick == 1


def test_video_start_pads_and_keeps_last_history(s: Session) -> None:
    video = _frames(5)  # F = 2: padded to 6 frames = 3 chunks; K = 2 are kept
    c = s.reset(video=video)
    assert np.array_equal(c.frames, _recon(s, video[3:5]))
    assert s.footprint().cached_chunks == (0, 1)
    after = s.step("right").frames
    c2 = s.reset(video=video[1:])  # the same last two chunks (frames 1..4)
    assert np.array_equal(c2.frames, c.frames) and np.array_equal(s.step("right").frames, after)
    one = s.reset(video=video[:1])  # a single frame: padded to one chunk
    assert np.array_equal(one.frames, _recon(s, np.stack([video[0]] * 2)))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"image": np.zeros((64, 64, 3), np.uint8)}, "H = 32, W = 32"),
        ({"image": np.zeros((32, 32, 3), np.float32)}, "must be uint8"),
        ({"image": np.zeros((32, 32), np.uint8)}, "(H, W, 3)"),
        ({"image": [[0]]}, "numpy uint8 array"),
        ({"video": np.zeros((0, 32, 32, 3), np.uint8)}, "T >= 1"),
        ({"video": np.zeros((3, 32, 31, 3), np.uint8)}, "not resized"),
    ],
)
def test_bad_start_frames_rejected(s: Session, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ImageError) as e:
        s.reset(**kwargs)
    assert e.value.code == "BAD_IMAGE" and fragment in str(e.value)


# --- errors --------------------------------------------------------------------------------------
def test_step_before_reset(s: Session) -> None:
    for call in (s.step, s.snapshot, s.footprint):
        with pytest.raises(NotResetError, match=r"call reset\(\)") as e:
            call()
        assert e.value.code == "NOT_RESET"


@pytest.mark.parametrize(
    "action, fragment",
    [
        ("jump", "unknown action 'jump'; valid: 0=noop, 1=up"),
        (6, "action id 6 is out of range 0..5"),
        (-1, "out of range"),
        (True, "key name or id"),
        (1.5, "got float"),
        (["up"], "got 1 per-frame actions; give one action for the whole chunk or exactly 2"),
        (np.zeros((2, 2), int), "must be 1-D"),
        ({"up": 1}, "got dict"),
    ],
)
def test_bad_actions(s: Session, action: object, fragment: str) -> None:
    s.reset()
    with pytest.raises(ActionError) as e:
        s.step(action)  # type: ignore[arg-type]
    assert e.value.code == "BAD_ACTION" and fragment in str(e.value)
    assert s.step().tick == 1  # a rejected step does not advance the world


def test_bad_prompts(s: Session) -> None:
    s.reset()
    with pytest.raises(PromptError, match="201 characters; this model takes at most 200"):
        s.step(prompt="x" * 201)
    with pytest.raises(PromptError, match="must be a str"):
        s.set_prompt(5)  # type: ignore[arg-type]
    with pytest.raises(PromptError):
        s.reset(prompt="y" * 201)
    assert s.step(prompt="z" * 200).prompt == "z" * 200


@pytest.mark.parametrize("seed", [-1, 2**63, 1.0, True, "0"])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(ArgumentError, match="seed must be an int"):
        Session.load("tiny", seed=seed)  # type: ignore[arg-type]
    with Session.load("tiny") as s, pytest.raises(ArgumentError, match="seed must be an int"):
        s.reset(seed=seed)  # type: ignore[arg-type]


def test_bad_sampler_settings_and_device() -> None:
    with pytest.raises(ArgumentError, match="multiple of in_flight"):
        Session.load("tiny", steps=3, in_flight=2)
    with pytest.raises(ArgumentError, match="in_flight must be a positive int"):
        Session.load("tiny", in_flight=0)
    with pytest.raises(ArgumentError, match="not a torch device"):
        Session.load("tiny", device="banana")
    with Session.load("tiny") as s, pytest.raises(ArgumentError, match="not both"):
        s.reset(image=_frames(1)[0], video=_frames(2))


def test_close_twice_and_use_after_close() -> None:
    s = Session.load("tiny")
    s.reset()
    s.close()
    s.close()
    assert s.closed
    for call in (s.step, s.reset, s.snapshot, lambda: s.set_prompt("x")):
        with pytest.raises(ClosedError, match=r"Session.load") as e:
            call()
        assert e.value.code == "CLOSED"
    with Session.load("tiny") as t:
        t.reset()
    assert t.closed


def test_unknown_model_and_missing_default(tmp_path, monkeypatch) -> None:
    with pytest.raises(
        UnknownModelError,
        match=r"'no-such'.*\['default', 'platformer', 'base', 'large', 'small', 'tiny'\]",
    ) as e:
        Session.load("no-such")
    assert e.value.code == "UNKNOWN_MODEL"
    monkeypatch.setattr(sdk.models, "DEFAULT_DIR", tmp_path / "gone")
    with pytest.raises(UnknownModelError, match=r"default model is not installed.*gone.*'tiny'"):
        Session.load("default")


def test_a_field_added_to_the_config_keeps_old_fingerprints() -> None:
    # the tiny model of seed 0 as the commit before the codec's decoder_blocks fingerprinted it
    # (859259b), so snapshots saved then still restore; another value of the field is another model
    torch.manual_seed(0)
    model = WorldModel(preset("tiny"))
    assert sdk.models.fingerprint(model) == "3d9051afa0560610"
    codec = dataclasses.replace(model.cfg.codec, decoder_blocks=1)
    grown = WorldModel(model.cfg.replace(codec=codec))
    grown.load_state_dict(model.state_dict(), strict=False)
    assert sdk.models.fingerprint(grown) != "3d9051afa0560610"
    # and for frames of another width (frame_width, 0 = square, added after)
    wide = WorldModel(model.cfg.replace(codec=dataclasses.replace(model.cfg.codec, frame_width=48)))
    same = {n: v for n, v in model.state_dict().items() if n != "denoiser.pos_bias"}
    wide.load_state_dict(same, strict=False)
    assert sdk.models.fingerprint(wide) != "3d9051afa0560610"
    # the same for the denoiser's local branch (local_conv, 0 before it existed)
    denoiser = dataclasses.replace(model.cfg.denoiser, local_conv=8)
    local = WorldModel(model.cfg.replace(denoiser=denoiser))
    local.load_state_dict(model.state_dict(), strict=False)
    assert sdk.models.fingerprint(local) != "3d9051afa0560610"
    # and for the dynamics prior (a config section of its own, and the sampler's prior_level)
    primed = WorldModel(
        model.cfg.replace(
            prior=PriorConfig(width=8),
            sampler=dataclasses.replace(model.cfg.sampler, prior_level=0.5),
        )
    )
    primed.load_state_dict(model.state_dict(), strict=False)
    assert sdk.models.fingerprint(primed) != "3d9051afa0560610"


def test_checkpoint_directory(tmp_path) -> None:
    with Session.load("tiny") as s:
        save_checkpoint(s._loaded.model, tmp_path / "ckpt", extra={"card": {"trained_steps": 0}})
        ref = roll(s, ["right", "up"])
        fp = s.info.fingerprint
    with Session.load(str(tmp_path / "ckpt")) as c:
        assert (
            c.info.fingerprint == fp
            and c.info.trained
            and c.info.card == {"card": {"trained_steps": 0}}
        )
        assert all(np.array_equal(x, y) for x, y in zip(ref, roll(c, ["right", "up"]), strict=True))
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointLoadError, match="truncated or corrupt") as e:
        Session.load(tmp_path / "ckpt")
    assert e.value.code == "UNKNOWN_MODEL" and isinstance(e.value, ChunkworldError)


def test_untrained_preset_warns() -> None:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        Session.load("tiny").close()
        assert not w
    with pytest.warns(UserWarning, match="random \\(untrained\\) weights"):
        Session.load("small").close()


# --- constant cost -------------------------------------------------------------------------------
def _flat_for(ticks: int) -> None:
    with Session.load("tiny") as s:
        s.reset()
        s.step()
        s.step()
        first = s.footprint()
        for i in range(ticks):
            s.step(i % 6, prompt=f"prompt {i % 100}")  # 100 distinct captions cycle through
        last = s.footprint()
    assert (last.cache_bytes, last.state_bytes, last.in_flight) == (
        first.cache_bytes,
        first.state_bytes,
        first.in_flight,
    )
    assert last.cached_chunks == (ticks + 1, ticks + 2)  # the ring holds the newest K = 2
    assert last.text_entries == 64


def test_memory_flat_300_ticks() -> None:
    _flat_for(300)


@pytest.mark.slow
def test_memory_flat_10000_ticks() -> None:
    _flat_for(10_000)
