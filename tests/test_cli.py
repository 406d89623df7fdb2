"""The ``chunkworld`` command: manuals, generate, info, serve's factory, play, delegation."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from sdk import ArgumentError, Session
from sdk.cli import DELEGATES, build_parser, main
from sdk.cli_serve import session_factory
from sdk.media import parse_actions, parse_prompt_at
from world.core.checkpoint import DEFAULT_DIR


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "command, words",
    [
        (
            "generate",
            ["Examples:", "--actions", "--prompt-at", "right*8,up*4,fire", "rejected, not resized"],
        ),
        ("info", ["Examples:", "--json", "--model"]),
        ("play", ["Examples:", "P pause", "N single tick", "arrows/WASD"]),
        ("serve", ["Examples:", "--keys", "--insecure", "loopback"]),
        ("keys", ["Examples:", "--client-name"]),
    ],
)
def test_help_is_a_manual(command: str, words: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and all(w in out for w in words), out


@pytest.mark.parametrize("command", sorted(DELEGATES))
def test_every_delegated_command_has_a_manual(command: str, capsys) -> None:
    """``chunkworld train --help`` and the rest reach their module's ``main`` and print its
    options (a module that lost its entry point fails here, not in a user's shell)."""
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "usage: chunkworld" in out and "--help" in out, out


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def cited_docs(text: str) -> set[str]:
    """Repository files a help text names (``docs/x.md``, ``world/core/prior.py``, ...), and any
    "DESIGN" it cites (no such file ships)."""
    return set(re.findall(r"\b(?:docs|world|sdk|bridges|samples)/[\w./-]+\.\w+", text)) | set(
        re.findall(r"\bDESIGN\b[^\n]*", text)
    )


def test_cited_docs_finds_paths_and_design_sections():
    text = "see docs/a.md, world/core/x.py and (DESIGN section 6): run data/out.npy"
    assert cited_docs(text) == {
        "docs/a.md",
        "world/core/x.py",
        "DESIGN section 6): run data/out.npy",
    }


def test_every_help_text_points_at_docs_that_exist(capsys) -> None:
    commands = [[], *([c] for c in ("generate", "info", "play", "serve", "keys", *DELEGATES))]
    commands += [["data", "generate"], ["data", "info"]]
    cited = {doc: cmd for cmd in commands for doc in cited_docs(_help(cmd, capsys))}
    assert cited, "no help text names a document: the test reads nothing"
    root = Path(__file__).resolve().parents[1]
    missing = {doc: " ".join(cmd) for doc, cmd in cited.items() if not (root / doc).is_file()}
    assert missing == {}


def test_top_level_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("generate", "info", "play", "serve", "keys", *DELEGATES):
        assert f"    {name}" in out


def test_parse_actions_and_prompts(tmp_path) -> None:
    assert parse_actions("right*3,up,fire*0, 2 ,noop|fire") == ["right"] * 3 + [
        "up",
        2,
        ["noop", "fire"],
    ]
    file = tmp_path / "a.json"
    file.write_text(json.dumps(["up", ["left", 4]]))
    assert parse_actions(str(file)) == ["up", ["left", 4]]
    file.write_text(json.dumps({"up": 1}))
    with pytest.raises(ArgumentError, match="JSON list"):
        parse_actions(str(file))
    with pytest.raises(ArgumentError, match="write KEY\\*N"):
        parse_actions("right*x")
    assert parse_prompt_at(["3:night, rain", "0:"]) == {3: "night, rain", 0: ""}
    with pytest.raises(ArgumentError, match="TICK:CAPTION"):
        parse_prompt_at(["night"])


def test_generate_matches_the_session(tmp_path) -> None:
    out = tmp_path / "run.npy"
    rc = main(
        [
            "generate",
            "--model",
            "tiny",
            "--prompt",
            "day",
            "--actions",
            "right*2,up|fire",
            "--prompt-at",
            "2:night",
            "--ticks",
            "4",
            "--seed",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    with Session.load("tiny", seed=3) as s:
        want = [s.reset(prompt="day").frames]
        want += [
            s.step(a, prompt=p).frames
            for a, p in (("right", None), ("right", "night"), (["up", "fire"], None), (None, None))
        ]
    assert np.array_equal(np.load(out), np.concatenate(want))


def test_generate_gif_snapshot_and_restore(tmp_path) -> None:
    snap = tmp_path / "w.safetensors"
    main(
        [
            "generate",
            "--model",
            "tiny",
            "--ticks",
            "2",
            "--out",
            str(tmp_path / "a.npy"),
            "--save-snapshot",
            str(snap),
            "--quiet",
        ]
    )
    main(
        [
            "generate",
            "--model",
            "tiny",
            "--restore",
            str(snap),
            "--actions",
            "left*2",
            "--out",
            str(tmp_path / "b.npy"),
            "--quiet",
        ]
    )
    main(
        [
            "generate",
            "--model",
            "tiny",
            "--actions",
            "noop*2,left*2",
            "--out",
            str(tmp_path / "c.npy"),
            "--quiet",
        ]
    )
    whole = np.load(tmp_path / "c.npy")
    assert np.array_equal(
        np.concatenate([np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")]), whole
    )
    import imageio.v3 as iio

    gif = tmp_path / "a.gif"
    assert (
        main(
            [
                "generate",
                "--model",
                "tiny",
                "--ticks",
                "3",
                "--scale",
                "2",
                "--out",
                str(gif),
                "--quiet",
            ]
        )
        == 0
    )
    assert iio.imread(gif, index=None).shape == (8, 64, 64, 3)


def test_generate_from_image_and_video_files(tmp_path) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "v.npy", frames)
    np.save(tmp_path / "i.npy", frames[0])
    for flag, name in (("--video", "v.npy"), ("--image", "i.npy")):
        out = tmp_path / f"out-{name}"
        assert (
            main(
                [
                    "generate",
                    "--model",
                    "tiny",
                    flag,
                    str(tmp_path / name),
                    "--ticks",
                    "1",
                    "--out",
                    str(out),
                    "--quiet",
                ]
            )
            == 0
        )
        assert np.load(out).shape == (4, 32, 32, 3)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--actions", "jump"], "error (BAD_ACTION): unknown action 'jump'"),
        (
            ["--image", "IMG"],
            "error (BAD_IMAGE): image has shape (8, 8, 3); this model needs (H, W, 3) with H = 32",
        ),
        (["--model", "nope"], "error (UNKNOWN_MODEL): unknown model 'nope'"),
        (["--out", "x.avi"], "unknown output type '.avi'"),
    ],
)
def test_generate_errors(argv: list[str], message: str, tmp_path, capsys) -> None:
    np.save(tmp_path / "img.npy", np.zeros((8, 8, 3), np.uint8))
    argv = [str(tmp_path / "img.npy") if a == "IMG" else a for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "o.gif")]
    else:
        argv[argv.index("--out") + 1] = str(tmp_path / argv[argv.index("--out") + 1])
    rc = main(["generate", "--model", "tiny", "--ticks", "1", "--quiet", *argv])
    assert rc == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("imageio_ffmpeg") is not None, reason="ffmpeg installed"
)
def test_mp4_without_ffmpeg_suggests_gif(tmp_path, capsys) -> None:
    rc = main(
        ["generate", "--model", "tiny", "--ticks", "1", "--quiet", "--out", str(tmp_path / "a.mp4")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "needs imageio-ffmpeg" in err and "or write a .gif instead" in err


def test_info(capsys) -> None:
    assert main(["info", "--model", "tiny", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    with Session.load("tiny") as s:
        assert {k: doc[k] for k in s.describe()} == s.describe()
        assert (doc["trained"], doc["fingerprint"]) == (False, s.info.fingerprint)
        assert doc["precision"] == s.info.precision in ("bf16", "fp32")
    assert main(["info", "--model", "tiny"]) == 0
    text = capsys.readouterr().out
    assert "0=noop, 1=up, 2=down, 3=left, 4=right, 5=fire" in text and "2 per chunk" in text
    assert f"precision {doc['precision']}" in text
    assert text.splitlines()[-1] == "full record    chunkworld info --model tiny --json"


def test_info_of_the_default_is_a_short_summary_and_json_the_full_record(capsys) -> None:
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert len(lines) <= 16 and max(map(len, lines)) <= 100  # was one 13 KB card dump
    card = json.loads((DEFAULT_DIR / "config.json").read_text())["card"]
    score = card["evaluation"]["lines"]
    assert (
        f"PSNR {score['psnr_tick1']['value']:.2f} / {score['psnr_mean16']['value']:.2f} dB" in text
    )
    assert f"idle {100 * score['idle']['value']:.1f}%" in text
    assert f"({card['evaluation_command']})" in text and "prior level 0.15" in text
    assert f"model card     {DEFAULT_DIR / 'MODEL_CARD.md'}" in text
    assert "frames out     cached as shown (pixel history); pixels clearly a game colour" in text
    assert main(["info", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["card"]["card"] == card and doc["prior_level"] == 0.15
    assert (doc["palette"], doc["pixel_history"]) == (True, True)


def test_serve_factory_makes_sessions() -> None:
    args = build_parser().parse_args(["serve", "--model", "tiny"])
    factory = session_factory(args)
    a, b = factory({"seed": 4}), factory({"seed": 4, "in_flight": 2, "steps": 2})
    assert a.describe()["in_flight"] == 1 and b.describe()["in_flight"] == 2
    assert a._loaded.model is b._loaded.model  # the model is loaded once
    with Session.load("tiny", seed=4) as ref:
        assert np.array_equal(a.reset().frames, ref.reset().frames)
    with pytest.raises(ValueError, match="unknown session options \\['colour'\\]"):
        factory({"colour": 1})
    with pytest.raises(ValueError, match="must be an int"):
        factory({"seed": "1"})


def test_serve_decodes_openings_before_any_client(tmp_path) -> None:
    """The server decodes a model's openings at start: unreadable pixels stop it there, not in
    a client's text start while the other clients wait."""
    from sdk.models import random_model
    from world.core.checkpoint import save_checkpoint
    from world.core.openings import SHEET_FILE, Openings, save_openings

    model = save_checkpoint(random_model("tiny"), tmp_path / "m")
    frames = np.zeros((2, 4, 32, 32, 3), np.uint8)
    save_openings(model, Openings(frames, ("night", "day")))
    args = build_parser().parse_args(["serve", "--model", str(model)])
    assert session_factory(args)({}).reset(prompt="night").frames.shape == (2, 32, 32, 3)
    (model / SHEET_FILE).write_bytes((model / SHEET_FILE).read_bytes()[:64])
    with pytest.raises(ValueError, match="cannot read the openings"):
        session_factory(args)


def test_serve_sessions_play_at_the_commands_precision() -> None:
    for precision in ("fp32", "bf16"):
        args = build_parser().parse_args(["serve", "--model", "tiny", "--precision", precision])
        assert session_factory(args)({}).info.precision == precision
    assert build_parser().parse_args(["serve", "--precision", "fp32"]).precision == "fp32"
    from sdk import cli_common
    from world.core.cpus import PRECISIONS

    assert cli_common.PRECISIONS == PRECISIONS  # the parsers' list, written out: no torch import
    for name in PRECISIONS:
        assert build_parser().parse_args(["play", "--precision", name]).precision == name


def test_the_sampler_commands_take_a_prior_level() -> None:
    for command in (["generate", "--out", "a.gif"], ["play"], ["serve"]):
        assert build_parser().parse_args(command).prior_level is None  # the model's
        assert build_parser().parse_args([*command, "--prior-level", "0"]).prior_level == 0.0
    args = build_parser().parse_args(["serve", "--model", "tiny", "--prior-level", "0.3"])
    with pytest.raises(ArgumentError, match="prior_level=0.3: .*chunkworld train-prior adds one"):
        session_factory(args)({})


def test_the_sampler_commands_take_pixel_history() -> None:
    for command in (["generate", "--out", "a.gif"], ["play"], ["serve"]):
        assert build_parser().parse_args(command).pixel_history is None  # the model's
        assert build_parser().parse_args([*command, "--pixel-history"]).pixel_history is True
        assert build_parser().parse_args([*command, "--no-pixel-history"]).pixel_history is False
    args = build_parser().parse_args(["serve", "--model", "tiny", "--pixel-history"])
    assert session_factory(args)({}).info.pixel_history is True


def test_the_sampler_commands_take_palette() -> None:
    for command in (["generate", "--out", "a.gif"], ["play"], ["serve"]):
        assert build_parser().parse_args(command).palette is None  # on where the model keeps one
        assert build_parser().parse_args([*command, "--no-palette"]).palette is False
    assert session_factory(build_parser().parse_args(["serve"]))({}).info.palette is True
    args = build_parser().parse_args(["serve", "--no-palette"])
    assert session_factory(args)({}).info.palette is False
    args = build_parser().parse_args(["serve", "--model", "tiny", "--palette"])
    with pytest.raises(ArgumentError, match="keeps no palette"):
        session_factory(args)({})


def test_serve_end_to_end_over_the_bridge() -> None:
    server_mod = pytest.importorskip("bridges.server")
    client_mod = pytest.importorskip("bridges.client")
    args = build_parser().parse_args(["serve", "--model", "tiny"])
    with server_mod.Server(
        session_factory(args), control="tcp://127.0.0.1:*", frames="tcp://127.0.0.1:*"
    ) as server:
        remote = client_mod.connect(server.control_endpoint, seed=2)
        try:
            got = [remote.reset(prompt="night").frames, remote.step("right").frames]
        finally:
            remote.close()
    with Session.load("tiny", seed=2) as s:
        want = [s.reset(prompt="night").frames, s.step("right").frames]
    assert all(np.array_equal(x, y) for x, y in zip(got, want, strict=True))


def test_play_with_dummy_display(monkeypatch) -> None:
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from sdk.play import PlayOptions, play

    with Session.load("tiny") as s:
        assert play(s, PlayOptions(max_ticks=3, scale=2)) == 3
        assert s.tick == 3


def test_delegation(monkeypatch, capsys) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("fake_train")
    fake.main = lambda argv: seen.append(argv)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_train", fake)
    monkeypatch.setitem(DELEGATES, "train", ("fake_train", "x"))
    assert main(["train", "--steps", "5", "--help"]) == 0 and seen == [["--steps", "5", "--help"]]
    monkeypatch.setitem(DELEGATES, "eval", ("no_such_module_xyz", "x"))
    assert (
        main(["eval"]) == 2
        and "no_such_module_xyz is not part of this installation" in capsys.readouterr().err
    )
    assert build_parser().parse_args(["info"]).command == "info"
