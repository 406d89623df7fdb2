"""Byte-level examples of cwb/2 messages: the source of `tests/vectors/cwb2.json` and of the
hex dumps in `bridges/PROTOCOL.md`. Regenerate with `python -m bridges.vectors > FILE` (the
JSON) and `python -m bridges.vectors --markdown` (section 6)."""

from __future__ import annotations

import json
import sys
from typing import Any

import msgpack

from bridges.fake import fake_frames
from bridges.wire import encode

T = 1700000000.25  # a fixed time so the bytes are fixed


def _examples() -> list[tuple[str, str, list[Any]]]:
    frames = fake_frames(bytes([16]), 1, 2, 2)  # uint8 (1, 2, 2, 3)
    return [
        ("ping", "client -> server ping", encode("ping", id=1, seq=1, time=T)),
        ("hello", "client -> server hello, one version, no options",
         encode("hello", id=2, seq=2, time=T, body={"versions": [2], "options": {}})),
        ("step", "client -> server: hold action 3 for the chunk",
         encode("step", id=3, session="a1b2", seq=3, time=T, body={"action": 3})),
        ("step_reply", "server -> client: a 1-frame 2x2 chunk, raw uint8",
         encode("step", id=10, re=3, session="a1b2", seq=10, time=T,
                body={"tick": 1, "action_tick": 1, "ms": 0.5}, arrays={"frames": frames})),
        ("error", "server -> client: step before reset",
         encode("error", id=11, re=4, session="a1b2", seq=11, time=T,
                body={"code": "NOT_RESET", "message": "call reset() before step()", "retryable": False})),
    ]  # fmt: skip


def build_vectors() -> list[dict[str, Any]]:
    """Each vector: name, what it is, its frames in hex, and its header decoded."""
    return [
        {
            "name": name,
            "description": text,
            "frames": [bytes(p).hex() for p in parts],
            "header": msgpack.unpackb(bytes(parts[1])),
        }
        for name, text, parts in _examples()
    ]


def markdown() -> str:
    """Section 6 of PROTOCOL.md: each vector's header and frames in hex, 96 digits a line."""
    out = []
    for vector in build_vectors():
        out += [f"### `{vector['name']}` — {vector['description']}", ""]
        out += [f"header: `{json.dumps(vector['header'], ensure_ascii=False)}`", "", "```"]
        for i, hexed in enumerate(vector["frames"]):
            out.append(f"frame {i}:")
            out += [hexed[j : j + 96] for j in range(0, len(hexed), 96)]
        out += ["```", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    print(markdown() if args == ["--markdown"] else json.dumps(build_vectors(), indent=1))


if __name__ == "__main__":
    main()
