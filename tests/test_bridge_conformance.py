"""The machine-readable conformance suite `tests/vectors/conformance.json`, run by the Python
side against a real server with the fake session: what a client in any language can replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

from bridges.testing import RawPeer, local_server
from bridges.wire import TAG, decode

SUITE = json.loads((Path(__file__).parent / "vectors" / "conformance.json").read_text())


def _fill(value: Any, session: str | None) -> Any:
    if value == "$session":
        return session
    if isinstance(value, dict):
        return {k: _fill(v, session) for k, v in value.items()}
    return value


@pytest.mark.parametrize("exchange", SUITE["exchanges"], ids=lambda e: e["name"])
def test_conformance_exchange(exchange: dict[str, Any]) -> None:
    replies: list[list[bytes]] = []
    session = None
    with local_server() as server, RawPeer(server.control_endpoint) as peer:
        for step in exchange["steps"]:
            if "raw" in step:
                peer.send_raw([bytes.fromhex(h) for h in step["raw"]])
            else:
                header = _fill(step["send"], session)
                peer.send_raw([TAG, msgpack.packb(header, use_bin_type=True)])
            raw = peer.recv_raw()
            replies.append(raw)
            if "same_as" in step:
                assert raw == replies[step["same_as"]], step
                continue
            reply = decode(raw, max_message_bytes=1 << 30)
            for key, want in step["expect"].items():
                assert getattr(reply, key) == want, (step, reply.body)
            for key, want in step.get("body", {}).items():
                assert reply.body[key] == want, (step, reply.body)
            if "body" in step and not step["body"]:
                assert reply.body == {}
            if "body_keys" in step:
                assert sorted(reply.body) == sorted(step["body_keys"]), step
            if "frames_shape" in step:
                assert list(reply.arrays["frames"].shape) == step["frames_shape"]
            if reply.type == "hello":
                session = reply.body["session"]
