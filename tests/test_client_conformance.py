"""The conformance suite (tests/vectors/conformance.json) replayed by the Godot and C# clients,
in their own languages (bridges/clients/godot/conformance.gd, bridges/clients/unity/Tests/
Conformance.cs), against a real server with the fake session, as the Python replayer
(tests/test_bridge_conformance.py) does. A client whose toolchain is not on PATH is skipped
with the package to install (scripts/install_clients.sh installs both)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_engine_clients import GODOT, GODOT_DIR, MCS, MONO, UNITY_DIR

from bridges.testing import local_server

SUITE_FILE = Path(__file__).resolve().parent / "vectors" / "conformance.json"
SUITE = json.loads(SUITE_FILE.read_text())
TIMEOUT_S = 120


def _godot(tmp: Path) -> list[str]:
    assert GODOT is not None
    return [GODOT, "--no-window", "--path", str(GODOT_DIR), "-s", "conformance.gd"]


def _unity(tmp: Path) -> list[str]:
    exe = tmp / "conformance.exe"
    if not exe.exists():
        sources = sorted(str(p) for p in (UNITY_DIR / "Chunkworld").glob("*.cs"))
        assert MCS is not None and MONO is not None
        built = subprocess.run(
            [
                MCS,
                "-warnaserror+",
                f"-out:{exe}",
                *sources,
                str(UNITY_DIR / "Tests" / "Conformance.cs"),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert built.returncode == 0, f"mcs failed:\n{built.stdout}\n{built.stderr}"
    return [MONO, str(exe)]  # type: ignore[list-item]


CLIENTS = {
    "godot": (_godot, GODOT is None, "no Godot 3 on PATH; `apt-get install godot3-server`"),
    "unity": (
        _unity,
        MCS is None or MONO is None,
        "no mcs/mono on PATH; `apt-get install mono-mcs mono-runtime`",
    ),
}


@pytest.fixture(
    params=[
        pytest.param(name, marks=pytest.mark.skipif(missing, reason=why))
        for name, (_, missing, why) in CLIENTS.items()
    ]
)
def replay(request: pytest.FixtureRequest, tmp_path: Path):
    """Run the named client's runner on a suite; returns (exit code, its result, its output)."""
    command = CLIENTS[request.param][0](tmp_path)

    def run(suite: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        path = tmp_path / "suite.json"
        path.write_text(json.dumps(suite))
        with local_server() as server:
            env = {**os.environ, "CWB_SUITE": str(path), "CWB_CONTROL": server.control_endpoint}
            proc = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
            )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("CWB_RESULT ")]
        assert lines, f"{command[0]} printed no result:\n{proc.stdout}\n{proc.stderr}"
        return proc.returncode, json.loads(lines[-1].removeprefix("CWB_RESULT ")), proc.stdout

    return run


def test_the_client_passes_every_conformance_case(replay) -> None:
    code, result, output = replay(SUITE)
    got = [(e["name"], e["steps"], e["failures"]) for e in result["exchanges"]]
    assert got == [(e["name"], len(e["steps"]), []) for e in SUITE["exchanges"]], output
    assert code == 0
    assert f"{len(SUITE['exchanges'])} passed, 0 failed" in output.splitlines()


def test_the_runner_reports_a_reply_that_differs_from_the_suite(replay) -> None:
    wrong = copy.deepcopy(SUITE)
    lifecycle = wrong["exchanges"][0]["steps"]
    lifecycle[3]["body"]["code"] = "BAD_ACTION"  # the server answers NOT_RESET here
    lifecycle[6]["same_as"] = 4  # a resent step is not the reset's reply
    refusals = wrong["exchanges"][1]["steps"]
    refusals[0]["expect"]["re"] = 2  # the reply names request 1
    code, result, output = replay(wrong)
    failures = [e["failures"] for e in result["exchanges"]]
    assert code == 1 and "0 passed, 2 failed" in output.splitlines()
    assert [f.split(":")[0] for f in failures[0]] == ["step 3", "step 6"], failures
    assert "NOT_RESET" in failures[0][0] and "BAD_ACTION" in failures[0][0]
    assert [f.split(":")[0] for f in failures[1]] == ["step 0"], failures
