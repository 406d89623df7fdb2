"""``chunkworld play`` driven headless (SDL's dummy video driver) by scripted key and text
events on a real ``tiny`` session: the screen shows the session's frames, held keys become the
chunks' actions, a typed prompt reaches the session and changes the world, saves and loads work,
and with no display the command refuses with a message."""

from __future__ import annotations

import dataclasses
import time
import types
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from sdk import Session
from sdk.cli import main
from sdk.play import Engine, PlayOptions, PlayWindow, Start, replay
from sdk.play.log import ActionLog
from sdk.play.window import chord
from world.train.data import Dataset

pygame = pytest.importorskip("pygame")


@pytest.fixture(autouse=True)
def _dummy_video(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


def _key(kind: int, key: int) -> None:
    pygame.event.post(pygame.event.Event(kind, key=key))


class Script:
    """Events posted from the window's loop: hold right once tick 2 is made, then type a prompt
    once tick 4 is; every loop, the screen is compared with the frame the window last drew."""

    def __init__(self) -> None:
        self.stage = 0
        self.typed_at = -1
        self.right_at = -1
        self.seen: list[tuple[int, np.ndarray]] = []  # (tick, frame) the screen showed
        self.mismatches = 0

    def __call__(self, w: PlayWindow) -> None:
        tick = w.engine.stats().tick
        if self.stage == 0 and tick >= 2:
            _key(pygame.KEYDOWN, pygame.K_RIGHT)
            self.right_at, self.stage = tick, 1
        elif self.stage == 1 and tick >= 4:
            _key(pygame.KEYDOWN, pygame.K_RETURN)  # opens the prompt box
            pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text="night, "))
            pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text="snow"))
            _key(pygame.KEYDOWN, pygame.K_d)  # typed into the box, not a move
            pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text="x"))
            _key(pygame.KEYDOWN, pygame.K_BACKSPACE)
            _key(pygame.KEYDOWN, pygame.K_RETURN)  # applies it from the next tick
            self.typed_at, self.stage = tick, 2
        shown = w.last_shown
        if shown is not None:
            h, wd = w.info.frame_height * w.scale, w.info.frame_width * w.scale
            screen = pygame.surfarray.array3d(w.screen)[:wd, :h].transpose(1, 0, 2)
            want = shown.frame.repeat(w.scale, 0).repeat(w.scale, 1)
            self.mismatches += not np.array_equal(screen, want)
            self.seen.append((shown.tick, shown.frame))


def test_scripted_play_drives_the_session(tmp_path: Path) -> None:
    script = Script()
    with Session.load("tiny") as s:
        options = PlayOptions(
            start=Start(prompt="day", seed=5),
            scale=3,
            max_ticks=10,
            record=str(tmp_path / "run.npy"),
            paced=False,
        )
        window = PlayWindow(s, options, on_frame=script)
        assert window.run() == 10
        assert s.prompt == "night, snow"  # the typed prompt reached the session
        log = window.engine.log
        chunks = {c.tick: c for c in replay(s, log)}  # the same run again

    assert script.seen and script.mismatches == 0  # the window drew exactly the frames it holds
    for tick, frame in script.seen:  # ... and those are the session's frames
        assert any(np.array_equal(frame, f) for f in chunks[tick].frames)
    recorded = np.load(tmp_path / "run.npy")  # the recording is the replay, bit for bit
    assert np.array_equal(recorded, np.concatenate([chunks[t].frames for t in range(11)]))
    assert ActionLog.load(tmp_path / "run.npy.log.json").events == log.events

    steps = [e for e in log.events if e["op"] == "step"]  # steps[i] returned tick i + 1
    right = s.action_space.id_of("right")
    held = [i + 1 for i, e in enumerate(steps) if e["actions"] == [right] * 2]
    assert held and held == list(range(held[0], held[-1] + 1))  # held from press to release
    assert script.right_at < held[0] <= script.right_at + 2  # a boundary sampled it
    (prompt_tick,) = [i + 1 for i, e in enumerate(steps) if e["prompt"] is not None]
    # the prompt box takes the keyboard: keys held are let go, and 'd' typed is not a move
    assert held[-1] <= prompt_tick and all(e["actions"] == [0, 0] for e in steps[prompt_tick:])
    assert steps[prompt_tick - 1]["prompt"] == "night, snow"
    assert script.typed_at < prompt_tick <= script.typed_at + 2  # the bar: within 2 ticks

    # the prompt changed the world from its own tick: the same run without it differs there
    quiet = ActionLog.load(tmp_path / "run.npy.log.json")
    for e in quiet.events:
        if e["op"] == "step":
            e["prompt"] = None
    with Session.load("tiny") as s:
        other = list(replay(s, quiet))
    differs = [c.tick for c in other if not np.array_equal(c.frames, chunks[c.tick].frames)]
    assert differs and differs[0] == prompt_tick


def _drain_until(engine: Engine, played: int) -> None:
    """Take frames off the engine's queue until it has played ``played`` steps."""
    deadline = time.monotonic() + 120  # a hang guard, not a timing check
    while engine.stats().ticks_played < played or engine.stats().queued:
        assert time.monotonic() < deadline and engine.error is None
        engine.next_frame()
        time.sleep(0.001)


def test_pause_single_step_save_load_reset(tmp_path: Path) -> None:
    with Session.load("tiny") as s:
        engine = Engine(s, Start(prompt="day", seed=2))
        engine.toggle_pause()  # paused from the start: only single steps advance
        engine.begin()
        engine.hold(s.action_space.id_of("right"))
        save = tmp_path / "w.snapshot.safetensors"
        engine.command("save", save)
        engine.single_step()
        _drain_until(engine, 1)
        engine.command("load", save)
        engine.single_step()
        _drain_until(engine, 2)
        engine.command("reset")
        engine.single_step()
        _drain_until(engine, 3)
        engine.stop()
        assert engine.stats().paused and engine.stats().ticks_played == 3
        log = engine.log
        assert [e["op"] for e in log.events] == [
            "reset", "save", "step", "load", "step", "reset", "step",
        ]  # fmt: skip
        got = list(replay(s, log))
    ticks = [c.tick for c in got]
    assert ticks == [0, 1, 1, 0, 1]
    assert np.array_equal(got[1].frames, got[2].frames)  # loaded, then the same tick again
    assert np.array_equal(got[1].frames, got[4].frames)  # reset to the same start and seed


@pytest.mark.parametrize("start", ["caption", "image", "video"])
@pytest.mark.parametrize("prompt", ["", "night, two balls"])
def test_every_start_with_and_without_prompt(start: str, prompt: str) -> None:
    with Session.load("tiny") as s:
        size, frames = s.info.frame_height, s.info.chunk_frames
        rng = np.random.default_rng(0)
        video = rng.integers(0, 256, (3 * frames - 1, size, size, 3), dtype=np.uint8)
        kwargs = {"image": video[0]} if start == "image" else {}
        kwargs = {"video": video} if start == "video" else kwargs
        window = PlayWindow(
            s, PlayOptions(start=Start(prompt=prompt, seed=1, **kwargs), max_ticks=2, paced=False)
        )
        assert window.run() == 2
        assert s.prompt == prompt  # --prompt is kept with an image or video start
        first = window.engine.log.events[0]
        assert first == {"op": "reset", "seed": 1, "prompt": prompt, "start": start}
        want = s.reset(prompt=prompt, seed=1, **kwargs)
        again = list(replay(s, window.engine.log))
    assert [c.tick for c in again] == [0, 1, 2] and np.array_equal(want.frames, again[0].frames)


def test_no_display_is_refused_with_what_to_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["play", "--model", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "no display" in err and "chunkworld generate" in err and "--headless" in err


def test_headless_flag_plays_and_records(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run.gif"
    args = ["play", "--model", "tiny", "--headless", "--max-ticks", "3", "--record", str(out)]
    assert main([*args, "--prompt", "snow", "--seed", "4"]) == 0
    log = ActionLog.load(tmp_path / "run.gif.log.json")
    assert log.events[0] == {"op": "reset", "seed": 4, "prompt": "snow", "start": "caption"}
    assert log.ticks == 3 and out.stat().st_size > 0


def test_scale_screenshot_and_recording_keys(tmp_path: Path) -> None:
    """+ grows the window, F12 writes the frame on screen, V starts and stops a recording."""
    done: list[str] = []

    def script(w: PlayWindow) -> None:
        tick = w.engine.stats().tick
        if not done and tick >= 1 and w.last_shown is not None:
            _key(pygame.KEYDOWN, pygame.K_PLUS)
            _key(pygame.KEYDOWN, pygame.K_v)
            done.append("grown, recording")
        elif done == ["grown, recording"] and tick >= 4:
            _key(pygame.KEYDOWN, pygame.K_F12)
            _key(pygame.KEYDOWN, pygame.K_v)
            done.append("shot, stopped")

    with Session.load("tiny") as s:
        opts = PlayOptions(scale=2, max_ticks=6, shots=str(tmp_path), paced=False)
        window = PlayWindow(s, opts, on_frame=script)
        window.run()
        chunks = {c.tick: c for c in replay(s, window.engine.log)}
    assert done == ["grown, recording", "shot, stopped"] and window.scale == 3
    (shot,) = tmp_path.glob("chunkworld-tick*.png")
    tick = int(shot.stem.removeprefix("chunkworld-tick"))
    image = iio.imread(shot)
    assert image.shape == (32 * 3, 32 * 3, 3)
    assert any(np.array_equal(image[::3, ::3], f) for f in chunks[tick].frames)
    (video,) = tmp_path.glob("chunkworld-*.gif")
    log = ActionLog.load(video.with_name(video.name + ".log.json"))
    assert log.events == window.engine.log.events[: len(log.events)]  # the run up to the stop
    assert len(iio.imread(video, index=None)) % 2 == 0  # whole chunks
    data = Dataset(video.with_name(video.name + ".data"))  # V also writes a dataset
    assert data.meta.actions == s.info.actions and data.meta.chunk_frames == 2
    (clip,) = list(data)
    shaped = {c.action_tick: c.actions for c in chunks.values()}
    pairs = [(c.frames, shaped[t]) for t, c in sorted(chunks.items()) if t in shaped]
    first = next(i for i, (f, _) in enumerate(pairs) if np.array_equal(f, clip.frames[:2]))
    got = pairs[first : first + len(clip) // 2]
    assert np.array_equal(np.concatenate([f for f, _ in got]), clip.frames)
    assert np.concatenate([a for _, a in got]).tolist() == clip.actions.tolist()


def test_hud_says_what_is_going_on(monkeypatch: pytest.MonkeyPatch) -> None:
    with Session.load("tiny") as s:
        window = PlayWindow(s, PlayOptions(start=Start(prompt="day")))
        base = window.engine.stats()
        slow = dataclasses.replace(base, tick=7, tick_ms=266.7, generated_fps=7.5, action="left")
        monkeypatch.setattr(window.engine, "stats", lambda: slow)
        text = [line for line, _ in window.hud_lines()]
        assert text[0].startswith("tick 7   generated 7.5 fps   drawn 0.0 fps   tick 267 ms")
        assert text[1] == "model slower than real time (0.50x)"
        assert text[2] == "action left   prompt ''"
        assert "Enter prompt" in text[-2] and "F5/F9 save/load" in text[-1]
        paused = dataclasses.replace(slow, paused=True)
        monkeypatch.setattr(window.engine, "stats", lambda: paused)
        assert [line for line, _ in window.hud_lines()][1] == "PAUSED: N one tick, P resume"
        window.typing = "snow"
        assert [line for line, _ in window.hud_lines()][3].startswith("prompt> snow_")
        # Enter applies it and says which words the world cannot read (none for the tiny model,
        # whose words are all buckets; two for one that knows a list)
        window._key_down(types.SimpleNamespace(key=pygame.K_RETURN))
        assert window.notice == "prompt from the next tick: 'snow'"
        window.info = dataclasses.replace(window.info, known_words=("snow", "night"))
        window.typing = "snowy dusk at night"
        window._key_down(types.SimpleNamespace(key=pygame.K_RETURN))
        assert window.notice.endswith("(unknown to this world: dusk, at)")


@pytest.mark.parametrize(
    "actions, want",
    [
        (("noop", "up", "down", "left", "right", "fire"), {"K_SPACE": 5, "K_UP": 1, "K_w": 1}),
        (("noop", "left", "right", "jump", "left_jump"), {"K_SPACE": 3, "K_UP": 3, "K_w": 3}),
        (("noop", "up", "jump"), {"K_SPACE": 2, "K_UP": 1, "K_w": 1}),
    ],
)
def test_named_keys_reach_the_games_own_actions(actions, want):
    """Space fires in the arcade and jumps in the platformer; a game with both up and jump keeps
    the arrows for up. Digits reach every action by id."""
    import types

    import pygame

    fake = types.SimpleNamespace(pg=pygame, info=types.SimpleNamespace(actions=actions))
    keymap = PlayWindow._keymap(fake)  # type: ignore[arg-type]
    assert {k: keymap[getattr(pygame, k)] for k in want} == want
    assert [keymap[getattr(pygame, f"K_{i}")] for i in range(len(actions))] == list(
        range(len(actions))
    )


def test_held_keys_play_the_action_named_for_them_together() -> None:
    platformer = ["noop", "left", "right", "jump", "left_jump", "right_jump"]
    assert chord(platformer, [1, 3]) == 4  # left held, then jump: left_jump
    assert chord(platformer, [3, 2]) == 5  # either order
    assert chord(platformer, [1, 2]) == 2  # no action names both: the newest key
    assert chord(platformer, [2, 1, 3]) == 4  # right, left, jump held: the later arrow's
    assert chord(platformer, [1, 2, 3]) == 5
    arcade = ["noop", "up", "down", "left", "right", "fire"]
    assert chord(arcade, [3, 5]) == 5 and chord(arcade, [5, 3]) == 3
