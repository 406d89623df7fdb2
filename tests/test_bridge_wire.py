"""The cwb/2 codec: round trips, every malformed-frame case, test vectors, a property test."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridges.vectors import build_vectors
from bridges.wire import TAG, WireError, decode, encode

VECTORS = Path(__file__).parent / "vectors" / "cwb2.json"
PROTOCOL_MD = Path(__file__).parent.parent / "bridges" / "PROTOCOL.md"


def header(**fields: object) -> bytes:
    base: dict[str, object] = {"type": "ping", "id": 1}
    base.update(fields)
    return msgpack.packb(base)


def code_of(parts: list[bytes], **limits: int) -> str:
    with pytest.raises(WireError) as info:
        decode(parts, **limits)
    return info.value.code


def test_round_trip_keeps_fields_and_arrays() -> None:
    frames = np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3)
    actions = np.array([1, 2, -3], dtype=np.int64)
    parts = encode("step", id=7, re=3, session="s1", seq=9, time=1.5, body={"tick": 2},
                   arrays={"frames": frames, "actions": actions})  # fmt: skip
    msg = decode([bytes(p) for p in parts])
    assert (msg.type, msg.id, msg.re, msg.session, msg.seq, msg.time) == (
        "step",
        7,
        3,
        "s1",
        9,
        1.5,
    )
    assert msg.body == {"tick": 2}
    np.testing.assert_array_equal(msg.arrays["frames"], frames)
    np.testing.assert_array_equal(msg.arrays["actions"], actions)


def test_unknown_header_fields_are_ignored() -> None:
    msg = decode([TAG, header(extra={"x": [1, 2]}, future=True)])
    assert msg.type == "ping"


@pytest.mark.parametrize(
    "frame",
    [
        b"\xc1",  # never-used msgpack byte: not msgpack
        header()[:-3],  # truncated
        header() + b"\x00",  # trailing bytes
        b"\x91" * 5_000,  # deep nesting past msgpack's own stack
        msgpack.packb([1, 2]),  # header not a map
        msgpack.packb({1: "a", "type": "ping", "id": 1}),  # non-string key
        b"\x82\xa4type\xa2\xff\xfe\xa2id\x01",  # bad UTF-8
        msgpack.packb({"type": "ping", "id": 1, "x": msgpack.ExtType(1, b"z")}),  # extension
        header(id="1"),  # wrong type
        header(id=-1),  # out of range
        header(type=""),
        header(time=math.nan),  # NaN
        header(time=math.inf),  # Inf
        header(body=[1]),
        header(x=json.loads("[" * 20 + "]" * 20)),  # nesting past max_depth
    ],
)
def test_bad_headers_are_bad_message(frame: bytes) -> None:
    assert code_of([TAG, frame]) == "BAD_MESSAGE"


def test_bytes_map_keys_are_refused() -> None:
    assert code_of([TAG, msgpack.packb({b"type": "ping", "id": 1})]) == "BAD_MESSAGE"


def test_tag_and_frame_count() -> None:
    assert code_of([b"cwb/1", header()]) == "VERSION"
    assert code_of([b"hello", header()]) == "BAD_MESSAGE"
    assert code_of([TAG]) == "BAD_MESSAGE"
    assert code_of([TAG, header(), b"extra"]) == "BAD_MESSAGE"  # no bufs declared


def buf(shape: list[int], dtype: str = "uint8", encoding: str = "raw") -> bytes:
    return header(bufs=[{"name": "image", "dtype": dtype, "shape": shape, "encoding": encoding}])


def test_buffers_must_match_their_descriptor() -> None:
    assert code_of([TAG, buf([2, 2, 3]), bytes(11)]) == "BAD_BUFFER"  # size != dtype x shape
    assert code_of([TAG, buf([2, 2, 3], "float64"), bytes(96)]) == "BAD_BUFFER"
    assert code_of([TAG, buf([2, 2, 3], encoding="jpeg"), bytes(12)]) == "BAD_BUFFER"
    assert code_of([TAG, buf([-1, 2, 3]), bytes(12)]) == "BAD_BUFFER"
    assert code_of([TAG, buf([1, 1, 1, 1, 1]), bytes(1)]) == "BAD_BUFFER"
    assert code_of([TAG, buf([2**40, 2**20, 3]), bytes(1)]) == "TOO_LARGE"
    assert code_of([TAG, buf([2, 2, 3]), bytes(12)], max_buffers=0) == "TOO_LARGE"
    assert decode([TAG, buf([2, 2, 3]), bytes(12)]).arrays["image"].shape == (2, 2, 3)


def test_png_decodes_and_corrupt_png_is_refused() -> None:
    iio = pytest.importorskip("imageio.v3")
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    data = iio.imwrite(io.BytesIO(), image, extension=".png") or b""
    if not data:
        stream = io.BytesIO()
        iio.imwrite(stream, image, extension=".png")
        data = stream.getvalue()
    np.testing.assert_array_equal(
        decode([TAG, buf([4, 5, 3], encoding="png"), data]).arrays["image"], image
    )
    assert code_of([TAG, buf([4, 5, 3], encoding="png"), data[:40]]) == "BAD_BUFFER"
    assert code_of([TAG, buf([5, 4, 3], encoding="png"), data]) == "BAD_BUFFER"


def test_oversized_message_and_header() -> None:
    assert code_of([TAG, header(), bytes(100)], max_message_bytes=64) == "TOO_LARGE"
    assert code_of([TAG, header(pad="x" * 200)], max_header_bytes=100) == "TOO_LARGE"


def test_vectors_file_matches_the_encoder_and_the_spec() -> None:
    stored = json.loads(VECTORS.read_text())
    assert stored == build_vectors()
    spec = PROTOCOL_MD.read_text()
    for vector in stored:
        parts = [bytes.fromhex(h) for h in vector["frames"]]
        msg = decode(parts)
        assert msg.type == vector["header"]["type"]
        for hexed in vector["frames"]:
            assert hexed in spec.replace("\n", "").replace(" ", ""), vector["name"]


plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip
header_maps = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["ping", "step", "hello", ""]) | plain,
        "id": st.integers(-5, 2**64 - 1) | plain,
        "session": plain,
        "seq": plain,
        "time": plain,
        "body": plain,
        "bufs": st.lists(
            st.dictionaries(st.sampled_from(["name", "dtype", "shape", "encoding"]), plain)
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    header_maps, st.lists(st.binary(max_size=64), max_size=3), st.sampled_from([TAG, b"cwb/9", b""])
)
def test_decoder_only_raises_wire_errors_on_header_maps(
    h: dict, bufs: list[bytes], tag: bytes
) -> None:
    try:
        msg = decode([tag, msgpack.packb(h), *bufs])
    except WireError as exc:
        assert exc.code in {"BAD_MESSAGE", "BAD_BUFFER", "TOO_LARGE", "VERSION"}
        return
    assert isinstance(msg.type, str) and isinstance(msg.id, int)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=5))
def test_decoder_only_raises_wire_errors_on_any_bytes(parts: list[bytes]) -> None:
    try:
        decode([TAG, *parts])
    except WireError:
        pass
