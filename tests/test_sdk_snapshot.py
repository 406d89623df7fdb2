"""Snapshots: exact restore, files and bytes (safetensors + JSON, no pickle), refusals."""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from sdk import Session, Snapshot, SnapshotError
from sdk.models import random_model
from sdk.snapshot import seal

SCRIPT = ["right", "right", ["up", "fire"], "left", None]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(s: Session, prompts: dict[int, str] | None = None) -> list[np.ndarray]:
    return [c.frames for c in s.stream(SCRIPT, prompts=prompts)]


@pytest.mark.parametrize("in_flight", [1, 2])
def test_restore_is_bit_exact(in_flight: int) -> None:
    with Session.load("tiny", steps=2, in_flight=in_flight, seed=5) as s:
        s.reset(prompt="day")
        for a in ["up"] * 4 + [None]:
            s.step(a)
        s.set_prompt("night")  # a chunk admitted under "night" stays in flight when W = 2
        s.step("left")
        snap = s.snapshot()
        assert (snap.tick, snap.prompt, len(snap.state["in_flight"])) == (6, "night", in_flight - 1)
        assert list(snap.captions.values()) == ["night"] * (in_flight - 1)
        first = _run(s, prompts={9: "fog"})
        s.step("down")  # wander off, then come back
        s.restore(snap)
        assert s.tick == 6 and s.prompt == "night"
        again = _run(s, prompts={9: "fog"})
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_bytes_and_file_round_trip_into_a_new_session(tmp_path) -> None:
    with Session.load("tiny", seed=1) as s:
        s.reset(prompt="two balls")
        s.step("right")
        snap = s.snapshot()
        expected = _run(s)
    data = snap.to_bytes()
    assert data[8:9] == b"{" and b"pickle" not in data  # a safetensors header, JSON inside
    path = snap.save(tmp_path / "world.snapshot.safetensors")
    for loaded in (Snapshot.from_bytes(data), Snapshot.load(path)):
        assert loaded.meta() == snap.meta()
        with Session.load("tiny", seed=99) as other:  # restore works before reset, any seed
            other.restore(loaded)
            assert all(np.array_equal(a, b) for a, b in zip(expected, _run(other), strict=True))


def test_restore_into_another_model_names_both() -> None:
    model = random_model("tiny")
    with torch.no_grad():
        model.denoiser.out.weight.add_(0.01)
    with Session.load("tiny") as s, Session.from_model(model, name="my-model") as other:
        s.reset()
        snap = s.snapshot()
        with pytest.raises(
            SnapshotError, match=r"model 'tiny' .*this session runs model 'my-model'"
        ) as e:
            other.restore(snap)
        assert e.value.code == "BAD_SNAPSHOT"


def test_restore_with_other_sampler_settings() -> None:
    with Session.load("tiny", in_flight=1) as s, Session.load("tiny", in_flight=2) as t:
        s.reset()
        with pytest.raises(SnapshotError, match="in_flight=1.*in_flight=2"):
            t.restore(s.snapshot())


def _valid_bytes() -> bytes:
    with Session.load("tiny") as s:
        s.reset()
        return s.snapshot().to_bytes()


def _one_more_in_flight(meta: dict) -> None:
    meta["state"]["in_flight"].append({"chunk": 9, "step": 0})
    meta["captions"]["9"] = ""


def _with_meta(data: bytes, edit) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["chunkworld"])
    edit(meta)
    tensors = Snapshot.from_bytes(data).tensors
    meta = seal(meta, tensors)  # sealed again, as a careless writer would: the fields are checked
    return st_save(dict(tensors), metadata={"chunkworld": json.dumps(meta)})


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d[:5], "truncated"),
        (lambda d: b"\x00" * 64, "not a chunkworld snapshot"),
        (lambda d: d[:8] + b"#" + d[9:], "header unreadable"),
        (lambda d: st_save({"x": torch.zeros(1)}), "not a chunkworld snapshot"),
        (lambda d: _with_meta(d, lambda m: m.update(version=99)), "version 99 is not supported"),
        (lambda d: _with_meta(d, lambda m: m.pop("tick")), "field tick is missing"),
        (lambda d: _with_meta(d, _one_more_in_flight), "in_flight holds 1 chunks.*inconsistent"),
        (lambda d: "not bytes", "must be bytes"),
    ],
)
def test_corrupt_snapshots_rejected(make, fragment: str) -> None:
    with pytest.raises(SnapshotError, match=fragment) as e:
        Snapshot.from_bytes(make(_valid_bytes()))
    assert e.value.code == "BAD_SNAPSHOT"


def test_damaged_tensor_shape_rejected_on_restore() -> None:
    snap = Snapshot.from_bytes(_valid_bytes())
    bad = Snapshot(**{**snap.__dict__, "tensors": {**snap.tensors, "cache.k": torch.zeros(3)}})
    with Session.load("tiny") as s, pytest.raises(SnapshotError, match="cache.k is \\(3,\\)"):
        s.restore(bad)


def test_restore_rejects_non_snapshots(tmp_path) -> None:
    with Session.load("tiny") as s:
        with pytest.raises(SnapshotError, match="takes a Snapshot"):
            s.restore(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(SnapshotError, match="no such snapshot file"):
        Snapshot.load(tmp_path / "missing.safetensors")
    (tmp_path / "bad").write_bytes(b"\x01" * 3)
    with pytest.raises(SnapshotError, match="bad: snapshot is 3 bytes"):
        Snapshot.load(tmp_path / "bad")


def _guided_session(scale: float, in_flight: int = 1) -> Session:
    model = random_model("tiny")
    cfg = model.cfg
    model.cfg = cfg.replace(sampler=dataclasses.replace(cfg.sampler, prompt_guidance=scale))
    return Session.from_model(model, steps=2, in_flight=in_flight, seed=3)


def test_prompt_guidance_only_on_the_tick_the_caption_changes() -> None:
    def frames(scale: float) -> list[np.ndarray]:
        with _guided_session(scale) as s:
            s.reset(prompt="day")  # a text start: prompted too
            out = [s.step("up").frames, s.step("up").frames]  # same caption: plain
            out.append(s.step("up", prompt="night falls").frames)  # the prompt
            out.append(s.step("up").frames)
            return out

    plain, guided = frames(1.0), frames(3.0)
    assert not np.array_equal(plain[2], guided[2])  # the prompted tick is guided
    # ticks 1, 2 follow a guided text start, so history differs; compare a fresh pair instead
    with _guided_session(3.0) as a, _guided_session(1.0) as b:
        for s in (a, b):
            s.reset(image=np.zeros((32, 32, 3), np.uint8), prompt="day")  # no prompt at start
        assert all(np.array_equal(a.step("up").frames, b.step("up").frames) for _ in range(3))


@pytest.mark.parametrize("in_flight", [1, 2])
def test_restore_between_a_prompt_and_its_step_keeps_the_guidance(in_flight: int) -> None:
    with _guided_session(3.0, in_flight) as s:
        s.reset(prompt="day")
        s.step("right")
        s.set_prompt("night falls")  # not admitted yet: the next step is the prompted one
        snap = Snapshot.from_bytes(s.snapshot().to_bytes())
        first = _run(s)
        s.restore(snap)
        again = _run(s)
        with _guided_session(3.0, in_flight) as other:  # a new session gets the same frames
            other.restore(snap)
            third = _run(other)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(first, third, strict=True))


def _as_version_1(meta: dict) -> None:
    """A version-2 document rewritten as version 1 wrote it: the state's counters at the top,
    in-flight chunks as rows [chunk, step, caption, prompted]."""
    state, captions = meta.pop("state"), meta.pop("captions")
    meta.update(version=1, next_chunk=state["next_chunk"])
    meta["last_clean_chunk"] = state["last_clean_chunk"]
    meta["inflight"] = [
        [r["chunk"], r["step"], captions[str(r["chunk"])], r["prompted"]]
        for r in state["in_flight"]
    ]


def test_a_version_1_snapshot_restores_as_it_did() -> None:
    with Session.load("tiny", steps=2, in_flight=2, seed=3) as s:
        s.reset(prompt="day")
        s.step("left", prompt="night")
        data = s.snapshot().to_bytes()
        expected = _run(s)
    old = Snapshot.from_bytes(_with_meta(data, _as_version_1))
    assert old.meta() == Snapshot.from_bytes(data).meta()
    assert old.captions == {2: "night"} and old.state["in_flight"][0]["prompted"] is True
    with Session.load("tiny", steps=2, in_flight=2) as other:
        other.restore(old)
        assert all(np.array_equal(a, b) for a, b in zip(expected, _run(other), strict=True))


def test_an_in_flight_chunk_without_its_caption_is_rejected() -> None:
    with Session.load("tiny", steps=2, in_flight=2) as s:
        s.reset(prompt="day")
        data = s.snapshot().to_bytes()
    assert Snapshot.from_bytes(data).captions == {1: "day"}
    with pytest.raises(SnapshotError, match=r"no caption for in-flight chunks \[1\]"):
        Snapshot.from_bytes(_with_meta(data, lambda m: m.update(captions={})))
