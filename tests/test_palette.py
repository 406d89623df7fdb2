"""Palettes: a model directory may keep the colours its game is drawn in; shown frames take the
nearest where a pixel is clearly one of them, and pixel history reads the frames as shown."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sdk import Session, SessionBatch
from sdk.errors import ArgumentError, UnknownModelError
from sdk.play.log import ActionLog, LogError, check_log_fits
from world.core.checkpoint import save_checkpoint
from world.core.model import WorldModel
from world.core.palette import Palette, load_palette, save_palette
from world.core.sampler import PipelinedSampler
from world.train.palette import find_palette, write_palette

BW = Palette(np.array([[0, 0, 0], [255, 255, 255]], np.uint8))
RGB = np.array([[250, 250, 250], [20, 20, 60], [200, 40, 40], [40, 170, 60]], np.uint8)


def test_snap_draws_pixels_clearly_one_colour_in_it_and_keeps_the_rest() -> None:
    px = torch.tensor([[40, 40, 40], [128, 128, 128], [250, 250, 250], [200, 90, 90]])
    # (40, 40, 40): 69 from black, 372 from white; (128, 128, 128): 222 and 220, kept as drawn;
    # (200, 90, 90): 237 and 240 away, kept
    sure = [[0, 0, 0], [128, 128, 128], [255, 255, 255], [200, 90, 90]]
    assert BW.snap(px.to(torch.uint8)).tolist() == sure
    frames = torch.randint(0, 256, (2, 3, 5, 7, 3), dtype=torch.uint8)
    out = BW.snap(frames)
    assert out.shape == frames.shape and out.dtype == torch.uint8
    changed = (out != frames).any(-1)
    assert set(np.unique(out[changed].numpy())) <= {0, 255}  # only ever to a palette colour
    assert torch.equal(BW.snap(out), out)  # palette colours, and pixels between, stay


@pytest.mark.parametrize(
    ("colours", "match"),
    [
        (np.zeros((1, 3), np.uint8), "2 to 64"),
        (np.zeros((65, 3), np.uint8), "2 to 64"),
        (np.zeros((3, 3), np.float32), "uint8"),
        (np.array([[1, 2, 3], [1, 2, 3]], np.uint8), "distinct"),
    ],
)
def test_a_bad_palette_is_refused(colours: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Palette(colours)


def test_save_then_load_and_a_damaged_file(tmp_path: Path) -> None:
    assert load_palette(tmp_path) is None
    save_palette(tmp_path, Palette(RGB))
    back = load_palette(tmp_path)
    assert back is not None and np.array_equal(back.colours, RGB)
    (tmp_path / "palette.json").write_text(json.dumps({"colours": [[0, 0, 300], [1, 1, 1]]}))
    with pytest.raises(ValueError, match=r"palette\.json"):
        load_palette(tmp_path)
    (tmp_path / "palette.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"palette\.json"):
        load_palette(tmp_path)


def test_find_palette_keeps_the_colours_a_game_draws_in() -> None:
    rng = np.random.default_rng(0)
    frames = RGB[rng.choice(4, size=(3, 8, 16, 16), p=[0.5, 0.3, 0.15, 0.05])]
    found = find_palette(list(frames))
    assert found is not None
    assert found.colours.tolist() == RGB.tolist()  # most used first
    noise = rng.integers(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8)
    assert find_palette(list(noise)) is None  # not drawn from a palette


def test_a_stray_colour_too_rare_to_count_is_left_out() -> None:
    frame = np.concatenate([np.full((600, 3), RGB[0]), np.full((424, 3), RGB[1])])
    frames = np.broadcast_to(frame.reshape(1, 32, 32, 3), (1200, 32, 32, 3)).astype(np.uint8)
    frames[0, 0, 0] = (1, 2, 3)  # 1 pixel in 1.2 million, under MIN_SHARE
    found = find_palette([frames])
    assert found is not None and found.colours.tolist() == RGB[:2].tolist()


@pytest.fixture(scope="module")
def palette_dir(tiny_model: WorldModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = save_checkpoint(tiny_model, tmp_path_factory.mktemp("pal") / "model")
    save_palette(path, Palette(RGB))
    return path


def _run(path: Path, **options: object) -> list[np.ndarray]:
    with Session.load(path, seed=4, **options) as s:
        return [s.reset(prompt="night").frames] + [s.step(a).frames for a in ("right", "up")]


def test_shown_frames_are_the_decoded_frames_snapped_where_sure(palette_dir: Path) -> None:
    raw = _run(palette_dir, palette=False)
    shown = _run(palette_dir)  # default: on, as the directory keeps one
    pal = Palette(RGB)
    for r, s in zip(raw, shown, strict=True):
        assert np.array_equal(s, pal.snap(torch.from_numpy(r)).numpy())
    assert any(not np.array_equal(r, s) for r, s in zip(raw, shown, strict=True))
    with Session.load(palette_dir) as s:
        assert s.info.palette is True
    with Session.load(palette_dir, palette=False) as s:
        assert s.info.palette is False


def test_pixel_history_reads_the_frames_as_shown(tiny_model: WorldModel) -> None:
    cfg = tiny_model.cfg
    model = WorldModel(cfg.replace(sampler=dataclasses.replace(cfg.sampler, context_level=0.0)))
    model.load_state_dict(tiny_model.state_dict())  # the cache's inputs are the clean ones
    pal = Palette(RGB)
    sampler = PipelinedSampler(model.eval(), steps=2, in_flight=1, pixel_history=True, palette=pal)
    state = sampler.new_state(seed=3)
    text = model.encode_text(["night"])
    for a in (4, 3, 1):
        r = sampler.tick(state, torch.tensor([[a, a]]), text)
        assert r.frames is not None and r.history is not None
        raw = model.codec.decode(r.latents)
        assert torch.equal(r.frames, pal.snap(raw))  # the frames shown ...
        assert torch.equal(r.history, model.codec.encode(r.frames))  # ... are what it reads
        assert torch.equal(r.frames, sampler.decode(r.latents))
        assert torch.equal(state.context_inputs[state.cache.slot_of(r.chunk)], r.history)


def test_snapshot_replays_and_batched_equals_alone(palette_dir: Path) -> None:
    with Session.load(palette_dir, seed=2, pixel_history=True) as s:
        s.reset(prompt="day")
        snap = s.snapshot()
        a = [s.step(k).frames for k in ("right", "fire", "down")]
        s.restore(snap)
        b = [s.step(k).frames for k in ("right", "fire", "down")]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with SessionBatch.load(palette_dir, size=2, seed=2, pixel_history=True) as worlds:
        worlds.reset(prompts=["day", "night"])
        together = [worlds.step(["right", "up"]) for _ in range(2)]
    for i, prompt in enumerate(("day", "night")):
        with Session.load(palette_dir, seed=2 + i, pixel_history=True) as s:
            s.reset(prompt=prompt)
            alone = [s.step(k).frames for k in (["right", "up"][i],) * 2]
        for t in range(2):
            assert np.array_equal(together[t][i].frames, alone[t])


def test_bad_palette_options_are_refused(tiny_model: WorldModel, palette_dir: Path) -> None:
    with pytest.raises(ArgumentError, match="palette must be"):
        Session.load(palette_dir, palette="yes")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="keeps no palette"):
        Session.load("tiny", palette=True)
    (palette_dir.parent / "broken").mkdir(exist_ok=True)
    broken = save_checkpoint(tiny_model, palette_dir.parent / "broken")
    (broken / "palette.json").write_text("[]")
    with pytest.raises(UnknownModelError, match=r"palette\.json"):
        Session.load(broken)


def test_play_logs_record_it_and_replay_needs_it(palette_dir: Path, tmp_path: Path) -> None:
    with Session.load(palette_dir) as s:
        log = ActionLog.for_session(s)
    assert log.palette is True
    back = ActionLog.load(log.save(tmp_path / "play.json"))
    assert back.palette is True
    with Session.load(palette_dir, palette=False) as s:
        with pytest.raises(LogError, match="palette=True"):
            check_log_fits(s, back)
    doc = json.loads((tmp_path / "play.json").read_text())
    del doc["palette"]  # a log from before palettes
    (tmp_path / "old.json").write_text(json.dumps(doc))
    assert ActionLog.load(tmp_path / "old.json").palette is False


def test_the_command_keeps_a_datasets_palette(
    tiny_model: WorldModel, tiny_data: Path, tmp_path: Path
) -> None:
    path = save_checkpoint(tiny_model, tmp_path / "m")  # 32x32, as the data
    found = write_palette(path, tiny_data)
    assert found is not None  # the arcade is drawn from 15 colours
    assert 2 <= len(found.colours) <= 15
    kept = load_palette(path)
    assert kept is not None and np.array_equal(kept.colours, found.colours)
    big = save_checkpoint(
        WorldModel(
            tiny_model.cfg.replace(codec=dataclasses.replace(tiny_model.cfg.codec, frame_size=64))
        ),
        tmp_path / "big",
    )
    with pytest.raises(ValueError, match="frames of"):
        write_palette(big, tiny_data)


def test_the_command_line(
    tiny_model: WorldModel, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from world.train.palette import main

    path = save_checkpoint(tiny_model, tmp_path / "m")
    main(["--model", str(path), "--data", str(tiny_data), "--clips", "4"])
    assert f"colours kept in {path / 'palette.json'}" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="chunkworld palette: error: .*frames of"):
        big = dataclasses.replace(tiny_model.cfg.codec, frame_size=64)
        other = save_checkpoint(WorldModel(tiny_model.cfg.replace(codec=big)), tmp_path / "big")
        main(["--model", str(other), "--data", str(tiny_data)])
    with pytest.raises(SystemExit):
        main(["--model", str(path), "--data", str(tiny_data), "--clips", "0"])
