"""The engine clients (bridges/clients/godot, bridges/clients/unity) against a fake-backed bridge.

Each client runs once per module: Godot 3 in headless Godot (`godot3-server`, Debian's package of
Godot 3.2.3) on `test_client.gd`; the C# client compiled with Mono's `mcs` with
`Tests/TestClient.cs` and run on `mono` (the Unity-only files, `#if UNITY_5_3_OR_NEWER`, compile
to nothing here). Each decodes and re-encodes the cwb/2 vectors and a spread of msgpack values,
then drives a fake session over its own ZMTP: hello, reset, steps, published chunks, errors,
snapshot/restore, heartbeats. The same assertions hold for both; a client whose toolchain is not
on PATH is skipped with the package to install.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgpack
import pytest

from bridges.fake import FakeSession
from bridges.testing import local_server

ROOT = Path(__file__).resolve().parents[1]
GODOT_DIR = ROOT / "bridges" / "clients" / "godot"
UNITY_DIR = ROOT / "bridges" / "clients" / "unity"
VECTORS = json.loads((ROOT / "tests" / "vectors" / "cwb2.json").read_text())
TIMEOUT_S = 60


def _find_godot3() -> str | None:
    """The first Godot 3 binary on PATH (a `godot` that is Godot 4 cannot run GDScript 3)."""
    for name in ("godot3-server", "godot3", "godot"):
        path = shutil.which(name)
        if path is None:
            continue
        try:
            version = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if version.strip().startswith("3."):
            return path
    return None


GODOT = _find_godot3()
MCS, MONO = shutil.which("mcs"), shutil.which("mono")

# Every msgpack width the encoder picks, and the types the protocol uses.
VALUES: list[Any] = [
    0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63),
    "", "x" * 31, "x" * 32, "x" * 255, "x" * 256, "y" * 65536, "héllo ✓",
    b"", b"\x00\xff", bytes(range(256)) * 2,
    True, False, None, 0.5, -2.75, 1048576.125, 3.0,
    list(range(16)), {f"k{i}": i for i in range(16)}, {"nested": [[], {}, [1, [2, {"a": None}]]]},
]  # fmt: skip
EXTRA_VALUES: dict[str, list[Any]] = {
    "godot": [],
    "unity": ["😀 outside the BMP", b"z" * 65536, 1e300],
}
BAD_HEX = {
    "d40100": "extension",  # fixext 1
    "c70100": "extension",  # ext 8
    "c1": "never used",
    "9201": "truncated",
    "0102": "trailing",
    "810102": "keys must be strings",
    "91" * 40 + "c0": "nesting",
    "a2fffe": "UTF-8",
    "cfffffffffffffffff": "uint64",
}


def _jsonable(value: Any) -> Any:
    """VALUES as a client reports them (bin as {"bin": hex})."""
    if isinstance(value, bytes):
        return {"bin": value.hex()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _run_godot(tmp: Path, control: str) -> dict[str, Any]:
    inp = tmp / "input.json"
    inp.write_text(
        json.dumps(
            {
                "vectors": VECTORS,
                "values_hex": msgpack.packb(VALUES, use_bin_type=True).hex(),
                "bad_hex": list(BAD_HEX),
            }
        )
    )
    assert GODOT is not None
    return _client_result(
        [GODOT, "--no-window", "--path", str(GODOT_DIR), "-s", "test_client.gd"],
        {"CWB_INPUT": str(inp), "CWB_CONTROL": control, "LANG": "en_US.UTF-8"},
    )


def _client_result(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a client's check program; its result is the last ``CWB_RESULT {json}`` line."""
    proc = subprocess.run(
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("CWB_RESULT ")]
    assert proc.returncode == 0 and lines, f"{command[0]} failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1].removeprefix("CWB_RESULT "))  # type: ignore[no-any-return]


def _compile(tmp: Path) -> Path:
    """Build the client and the test program into one console exe (the core, no Unity)."""
    exe = tmp / "test_client.exe"
    sources = sorted(str(p) for p in (UNITY_DIR / "Chunkworld").glob("*.cs"))
    assert MCS is not None
    proc = subprocess.run(
        [MCS, "-warnaserror+", f"-out:{exe}", *sources, str(UNITY_DIR / "Tests" / "TestClient.cs")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"mcs failed:\n{proc.stdout}\n{proc.stderr}"
    return exe


def _run_unity(tmp: Path, control: str) -> dict[str, Any]:
    inp = tmp / "input.txt"
    lines = [" ".join(["vector", v["name"], *v["frames"]]) for v in VECTORS]
    lines.append("values " + msgpack.packb(VALUES + EXTRA_VALUES["unity"], use_bin_type=True).hex())
    lines += [f"bad {h}" for h in BAD_HEX]
    inp.write_text("\n".join(lines) + "\n")
    assert MONO is not None
    return _client_result(
        [MONO, str(_compile(tmp))], {"CWB_INPUT": str(inp), "CWB_CONTROL": control}
    )


RUNNERS = {
    "godot": (
        _run_godot,
        GODOT is None,
        "no Godot 3 binary on PATH (godot3-server, godot3 or godot, version 3.x); "
        "install one with `apt-get install godot3-server`",
    ),
    "unity": (
        _run_unity,
        MCS is None or MONO is None,
        "no C# compiler and runtime on PATH (mcs and mono); "
        "install them with `apt-get install mono-mcs mono-runtime`",
    ),
}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(name, marks=pytest.mark.skipif(missing, reason=why))
        for name, (_, missing, why) in RUNNERS.items()
    ],
)
def result(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One run of a client against a fresh fake-backed server; the client's name and the
    server's frames endpoint are added."""
    name = request.param
    with local_server() as server:
        out = RUNNERS[name][0](tmp_path_factory.mktemp(name), server.control_endpoint)
        out["frames_endpoint"] = server.frames_endpoint
    out["client"] = name
    return out


def _expected() -> tuple[FakeSession, list[Any]]:
    """What each client's session does, run locally: hello options, reset(7), 3 steps."""
    local = FakeSession(height=24, width=32, chunk_frames=2)
    chunks = [local.reset(seed=7)]
    chunks += [local.step(action) for action in ["left", 3, ["jump", 0]]]
    return local, chunks


def _sha(frames: Any) -> str:
    return hashlib.sha256(frames.tobytes()).hexdigest()


# ---------------------------------------------------------------- msgpack and cwb/2


def test_decodes_and_reencodes_the_cwb2_vectors(result: dict[str, Any]) -> None:
    vectors = result["codec"]["vectors"]
    assert [v["name"] for v in vectors] == [v["name"] for v in VECTORS]
    for mine, vector in zip(vectors, VECTORS, strict=True):
        assert mine["error"] == "" and mine["wire"]["error"] == "", mine["name"]
        assert mine["header"] == vector["header"], mine["name"]
        assert mine["reencoded"] == vector["frames"][1], mine["name"]  # byte for byte
        header, wire = vector["header"], mine["wire"]
        for key in ("type", "id", "re", "session", "seq", "time", "body"):
            assert wire[key] == header[key], (mine["name"], key)
    reply = vectors[[v["name"] for v in VECTORS].index("step_reply")]["wire"]
    assert reply["arrays"] == {
        "frames": {"dtype": "uint8", "shape": [1, 2, 2, 3], "hex": "1065ba156abf1368bd186dc2"}
    }


def test_builds_requests_byte_for_byte(result: dict[str, Any]) -> None:
    by_name = {v["name"]: v["frames"] for v in VECTORS}
    assert result["codec"]["built"] == {name: by_name[name] for name in ("ping", "hello", "step")}


def test_msgpack_round_trips_every_width(result: dict[str, Any]) -> None:
    codec = result["codec"]
    assert codec["values_error"] == ""
    values = VALUES + EXTRA_VALUES[result["client"]]
    assert codec["values"] == _jsonable(values)
    assert codec["values_reencoded"] == msgpack.packb(values, use_bin_type=True).hex()


def test_msgpack_refuses_what_the_server_refuses(result: dict[str, Any]) -> None:
    errors = result["codec"]["bad"]
    assert len(errors) == len(BAD_HEX)
    for error, (data, why) in zip(errors, BAD_HEX.items(), strict=True):
        assert why in error, (data, error)


# ---------------------------------------------------------------- a session on the fake


def test_client_says_hello(result: dict[str, Any]) -> None:
    got = result["session"]
    local, _ = _expected()
    assert (got["open"], got["ping"], got["hello_ok"]) == (True, True, True)
    assert got["bad_hello"] == "BAD_REQUEST"  # unknown factory option
    assert got["facts"] == local.describe()
    assert sorted(got["limit_keys"]) == sorted(
        ["max_message_bytes", "max_header_bytes", "max_buffers", "max_depth",
         "max_prompt_chars", "max_frames", "max_sessions", "max_sessions_per_client",
         "idle_ttl_s", "orphan_ttl_s", "max_snapshots", "max_requests_per_s", "options"]
    )  # fmt: skip
    assert got["frames_endpoint"] == result["frames_endpoint"]
    assert len(got["session"]) > 0


def test_client_reset_and_steps_give_the_fakes_bytes(result: dict[str, Any]) -> None:
    got = result["session"]
    _, chunks = _expected()
    assert got["step_before_reset"] == "NOT_RESET"
    replies = got["replies"]
    assert [r["ok"] for r in replies] == [True] * 4
    assert [(r["tick"], r["action_tick"]) for r in replies] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert [r["shape"] for r in replies] == [[2, 24, 32, 3]] * 4
    assert [r["sha256"] for r in replies] == [_sha(c.frames) for c in chunks]
    assert {r["session"] for r in replies} == {got["session"]}


def test_client_receives_published_chunks(result: dict[str, Any]) -> None:
    got = result["session"]
    _, chunks = _expected()
    assert got["observe"] is True
    published = got["published"]
    assert [p["seq"] for p in published] == [0, 1, 2, 3]
    assert [p["tick"] for p in published] == [0, 1, 2, 3]
    assert [p["cause"] for p in published] == ["reset", "step", "step", "step"]
    assert [p["sha256"] for p in published] == [_sha(c.frames) for c in chunks]
    # published under the observer token, never the session token
    assert {p["session"] for p in published} == {got["observer"]} != {got["session"]}
    if result["client"] == "unity":
        assert got["published_events"] == 4  # ChunkPublished raised once per chunk


def test_client_gets_error_replies(result: dict[str, Any]) -> None:
    got = result["session"]
    assert got["bad_actions"] == ["BAD_ACTION"] * 3  # id 99, name "fly", 1 of 2 per-frame
    assert got["close"] is True
    assert got["step_after_close"] == "UNKNOWN_SESSION"


def test_client_turns_frames_into_images(result: dict[str, Any]) -> None:
    image = result["session"]["image"]
    frames = _expected()[1][0].frames  # reset chunk, uint8 (2, 24, 32, 3)
    assert image["frame0_x1_y0"] == frames[0, 0, 1].tolist()  # row y=0, column x=1
    assert image["last_x31_y23"] == frames[-1, 23, 31].tolist()
    if result["client"] == "godot":
        assert (image["width"], image["height"], image["format_rgb8"]) == (32, 24, True)
        assert image["texture_size"] == [32, 24]
    else:
        assert (image["frames"], image["width"], image["height"]) == (2, 32, 24)
        assert image["rgb_bytes"] == 24 * 32 * 3
        # Texture2D rows go bottom-up: the image's top row is the texture's last.
        assert image["unity_frame0_x1_row23"] == frames[0, 0, 1].tolist()
        assert image["unity_last_x31_row0"] == frames[-1, 23, 31].tolist()


def test_client_restores_and_survives_heartbeats(result: dict[str, Any]) -> None:
    got = result["session"]
    assert (got["restore_ok"], got["same_after_restore"]) == (True, True)
    # 4.5 s of poll() / Poll() alone: without PONG answers the server would drop both connections.
    assert got["heartbeats_answered"] >= 4
    assert got["ping_after_idle"] is True
    assert (got["tick_after_idle"], got["published_after_idle"]) == (5, 5)
