"""``check_session`` passes on the real Session and the bridge's fake, and catches broken ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from sdk import Session
from sdk.checker import CheckFailed, check_session

ALL_CHECKS = (
    "describe",
    "step_before_reset",
    "reset",
    "actions",
    "bad_actions",
    "prompts",
    "bad_seed",
    "determinism",
    "snapshot",
    "starts",
    "close",
)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_checker_passes_on_tiny_session() -> None:
    report = check_session(Session.load("tiny"), seed=3)
    assert report.passed == ALL_CHECKS
    assert report.facts["model"] == "tiny"


def test_checker_passes_on_pipelined_session() -> None:
    assert check_session(Session.load("tiny", steps=2, in_flight=2)).passed == ALL_CHECKS


def test_checker_passes_on_bridge_fake() -> None:
    fake = pytest.importorskip("bridges.fake", reason="bridges/fake.py not written yet")
    session = fake.FakeSession(height=16, width=24, chunk_frames=3)
    report = check_session(session)
    assert report.passed == ALL_CHECKS and session.close_calls == 2


class Broken:
    """Wraps a real session and breaks one part of the contract."""

    def __init__(self, flaw: str) -> None:
        self.inner = Session.load("tiny")
        self.flaw = flaw
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def describe(self) -> dict[str, Any]:
        facts = self.inner.describe()
        if self.flaw == "facts":
            facts["actions"] = ["up", "noop"]
        return facts

    def step(self, action: Any = None, *, prompt: str | None = None) -> Any:
        c = self.inner.step(action, prompt=prompt)
        self.calls += 1
        if self.flaw == "tick":
            return dataclasses.replace(c, tick=c.tick + 1)
        if self.flaw == "noise":
            return dataclasses.replace(c, frames=(c.frames + np.uint8(self.calls % 3)))
        return c

    def restore(self, snapshot: Any) -> None:
        if self.flaw == "restore" and not hasattr(snapshot, "fingerprint"):
            return  # silently accepts garbage
        self.inner.restore(snapshot)


@pytest.mark.parametrize(
    "flaw, message",
    [
        ("facts", r"\[describe\] .*'noop' first"),
        ("tick", r"\[step\('noop'\)\] expected tick 1, got 2"),
        ("noise", r"\[determinism\] same seed and inputs gave different frames at tick 1"),
        ("restore", r"\[restore\(object\(\)\)\] expected an error with code 'BAD_SNAPSHOT'"),
    ],
)
def test_checker_catches_broken_sessions(flaw: str, message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        check_session(Broken(flaw))
