"""Exact replay: any logged run (steps, prompts, saves, loads, resets, every kind of start)
replays to bit-identical frames; a 200-tick play log does through ``chunkworld replay --check``;
a replay can stop at a tick and be played on; logs from another model or damaged ones are
refused with the reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdk import Session
from sdk.cli import main
from sdk.play import ActionLog, LogError, LoggedSession, PlayOptions, PlayWindow, replay


@pytest.fixture(scope="module")
def tiny() -> Iterator[Session]:
    with Session.load("tiny") as s:
        yield s


OPS = st.one_of(
    st.tuples(st.just("step"), st.integers(0, 5), st.sampled_from([None, "", "night", "snow"])),
    st.tuples(st.just("prompt"), st.sampled_from(["day", ""]), st.none()),
    st.tuples(st.just("save"), st.integers(0, 1), st.none()),
    st.tuples(st.just("load"), st.integers(0, 1), st.none()),
    st.tuples(st.just("reset"), st.integers(0, 3), st.none()),
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.sampled_from(["caption", "image", "video"]),
    seed=st.integers(0, 2**20),
    ops=st.lists(OPS, min_size=1, max_size=10),
)
def test_any_logged_run_replays_bit_for_bit(
    tiny: Session, tmp_path_factory: pytest.TempPathFactory, start: str, seed: int, ops: list
) -> None:
    folder = tmp_path_factory.mktemp("run")
    size, f = tiny.info.frame_height, tiny.info.chunk_frames
    video = np.random.default_rng(seed).integers(0, 256, (f + 1, size, size, 3), dtype=np.uint8)
    kwargs = (
        {"image": video[0]} if start == "image" else {"video": video} if start == "video" else {}
    )
    run = LoggedSession(tiny)
    made = [run.reset(prompt="day", seed=seed, **kwargs)]
    saved: set[int] = set()
    for op, a, b in ops:
        if op == "step":
            made.append(run.step(a, prompt=b))
        elif op == "prompt":
            run.set_prompt(a)
        elif op == "save":
            run.save(folder / f"slot{a}.safetensors")
            saved.add(a)
        elif op == "load" and a in saved:
            run.load(folder / f"slot{a}.safetensors")
        elif op == "reset":
            made.append(run.reset(prompt=None, seed=a))
    run.log.save(folder / "run.log.json")
    again = list(replay(tiny, ActionLog.load(folder / "run.log.json")))  # through the file
    assert [c.tick for c in again] == [c.tick for c in made]
    assert [c.prompt for c in again] == [c.prompt for c in made]
    assert all(np.array_equal(x.frames, y.frames) for x, y in zip(again, made, strict=True))


def test_a_200_tick_play_log_replays_identically(tmp_path: Path, monkeypatch, capsys) -> None:
    """The bar: a 200-tick play, recorded, replayed by ``chunkworld replay``: every frame equal."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    out = tmp_path / "run.npy"
    argv = ["play", "--model", "tiny", "--headless", "--unpaced", "--max-ticks", "200"]
    assert main([*argv, "--prompt", "night", "--seed", "7", "--record", str(out)]) == 0
    log = str(out) + ".log.json"
    assert ActionLog.load(log).ticks == 200
    capsys.readouterr()
    assert main(["replay", log, "--check", str(out)]) == 0
    assert "identical: 402 frames, bit for bit" in capsys.readouterr().err

    frames = np.load(out)
    frames[300, 5, 5, 0] ^= 1  # one bit of one frame
    np.save(out, frames)
    assert main(["replay", log, "--check", str(out)]) == 1
    assert "replay differs from frame 300 on (1 frames)" in capsys.readouterr().err


def test_replay_until_a_tick_then_play_on(tiny: Session, monkeypatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    run = LoggedSession(tiny)
    original = [run.reset(prompt="day", seed=3)]
    original += [run.step(a) for a in [4, 4, 1, 5, 3, 3, 2, 0]]
    head = list(replay(tiny, run.log, until=5))
    assert [c.tick for c in head] == list(range(6)) and tiny.tick == 5
    log = run.log
    log.events = log.events[:6]  # the reset and steps 1-5: the branch point
    window = PlayWindow(tiny, PlayOptions(start=None, log=log, max_ticks=3, paced=False))
    assert window.run() == 3 and tiny.tick == 8
    branched = list(replay(tiny, window.engine.log))
    assert [c.tick for c in branched] == list(range(9))
    assert all(
        np.array_equal(x.frames, y.frames) for x, y in zip(branched[:6], original[:6], strict=True)
    )
    assert all(e["actions"] == [0, 0] for e in window.engine.log.events[6:])  # no key held


def test_a_snapshot_loaded_from_before_the_run(tiny: Session, tmp_path: Path) -> None:
    tiny.reset(prompt="night", seed=1)
    tiny.step("up")
    path = tmp_path / "before.safetensors"
    tiny.snapshot().save(path)
    run = LoggedSession(tiny)
    run.load(path)
    made = [run.step("left"), run.step("fire")]
    again = list(replay(tiny, run.log))
    assert [c.tick for c in again] == [2, 3]
    assert all(np.array_equal(x.frames, y.frames) for x, y in zip(again, made, strict=True))
    tiny.reset(seed=9)
    tiny.snapshot().save(path)  # the file changed since the run loaded it
    with pytest.raises(LogError, match="has changed since the logged run loaded it"):
        list(replay(tiny, run.log))
    path.unlink()
    with pytest.raises(LogError, match="saved before the logged run, and the file is gone"):
        list(replay(tiny, run.log))


def _saved_log(tiny: Session, tmp_path: Path, image: bool = False) -> Path:
    run = LoggedSession(tiny)
    size = tiny.info.frame_height
    run.reset(image=np.zeros((size, size, 3), np.uint8) if image else None, seed=0)
    run.step("right")
    return run.log.save(tmp_path / "run.log.json")


def test_a_log_of_another_model_or_settings_is_refused(tiny: Session, tmp_path: Path) -> None:
    path = _saved_log(tiny, tmp_path)
    doc = json.loads(path.read_text())
    with Session.load("tiny", steps=4) as other:
        with pytest.raises(LogError, match="steps=2, in_flight=1.*this session has steps=4"):
            list(replay(other, ActionLog.load(path)))
    doc["fingerprint"] = "0123456789abcdef"
    path.write_text(json.dumps(doc))
    with pytest.raises(LogError, match="fingerprint 0123456789abcdef.*load the log's model"):
        list(replay(tiny, ActionLog.load(path)))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_text("{not json"), "the JSON is corrupt"),
        (lambda p: p.write_text('{"format": "x"}'), "not a chunkworld action log"),
        (lambda p: p.write_text(p.read_text().replace('"version": 1', '"version": 9')), "version 9"),
        (lambda p: p.write_text(p.read_text().replace('"op": "step"', '"op": "jump"')), "unknown event 'jump'"),
        (lambda p: p.write_text(p.read_text().replace('"seed": 0', '"seed": "x"')), "damaged"),
        (lambda p: np.save(p.with_name("run.log.start0.npy"), np.ones((32, 32, 3), np.uint8)), "do not match"),
    ],
)  # fmt: skip
def test_a_damaged_log_is_refused(tiny: Session, tmp_path: Path, damage, message: str) -> None:
    path = _saved_log(tiny, tmp_path, image=True)
    damage(path)
    with pytest.raises(LogError, match=message):
        ActionLog.load(path)


def test_replay_command_refuses_with_the_reason(tmp_path: Path, capsys) -> None:
    assert main(["replay", str(tmp_path / "none.log.json")]) == 2
    assert "no such action log" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "x.log.json"), "--out", str(tmp_path / "a.txt")]) == 2
    assert "unknown output type '.txt'" in capsys.readouterr().err
