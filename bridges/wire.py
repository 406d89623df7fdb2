"""Wire codec for the bridge protocol `cwb/2`: tag frame, msgpack header map, raw buffers.

One message is a list of ZeroMQ frames (after any routing envelope):

    [b"cwb/2", msgpack(header), buffer_0, buffer_1, ...]

The header is a map with string keys, written in this order: `type`, `id`, `re`, `session`,
`seq`, `time`, `body`, and `bufs` when buffers follow. `bufs[i]` describes buffer `i`:
`{"name", "dtype", "shape", "encoding"}`. Nothing is ever unpickled; msgpack extension types
are refused. See `bridges/PROTOCOL.md` for the full specification.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

PROTOCOL = "cwb"
VERSION = 2
TAG = f"{PROTOCOL}/{VERSION}".encode()
MAX_ID = 2**63 - 1
MAX_TYPE_CHARS = 32
MAX_SESSION_CHARS = 64
MAX_NAME_CHARS = 32
MAX_NDIM = 4

# Little-endian on the wire whatever the host.
DTYPES: dict[str, np.dtype[Any]] = {
    "uint8": np.dtype("<u1"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "float32": np.dtype("<f4"),
}


def _png_available() -> bool:
    try:
        import imageio.v3  # noqa: F401
    except ImportError:
        return False
    return True


ENCODINGS: tuple[str, ...] = ("raw", "png") if _png_available() else ("raw",)


class WireError(Exception):
    """A request the server answers with an error reply `{code, message, retryable}`."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Message:
    """A decoded message. `arrays` holds the buffers by name, decoded to numpy (read-only)."""

    type: str
    id: int
    re: int | None = None
    session: str | None = None
    seq: int = 0
    time: float = 0.0
    body: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------- encode


def encode(
    type: str,
    *,
    id: int,
    re: int | None = None,
    session: str | None = None,
    seq: int = 0,
    time: float = 0.0,
    body: Mapping[str, Any] | None = None,
    arrays: Mapping[str, np.ndarray] | None = None,
) -> list[bytes | memoryview]:
    """Encode one message as ZeroMQ frames `[tag, header, *buffers]` (buffers are not copied)."""
    header: dict[str, Any] = {
        "type": type,
        "id": id,
        "re": re,
        "session": session,
        "seq": seq,
        "time": float(time),
        "body": dict(body or {}),
    }
    buffers: list[bytes | memoryview] = []
    if arrays:
        descs = []
        for name, array in arrays.items():
            dtype_name = array.dtype.name
            if dtype_name not in DTYPES:
                raise ValueError(
                    f"dtype {dtype_name} cannot go on the wire; use one of {list(DTYPES)}"
                )
            array = np.ascontiguousarray(array, dtype=DTYPES[dtype_name])
            descs.append(
                {"name": name, "dtype": dtype_name, "shape": list(array.shape), "encoding": "raw"}
            )
            buffers.append(array.data.cast("B"))  # flat, so len() is the byte count
        header["bufs"] = descs
    return [TAG, msgpack.packb(header, use_bin_type=True), *buffers]


def error_body(code: str, message: str, retryable: bool = False) -> dict[str, Any]:
    """The body of an `error` reply."""
    return {"code": code, "message": message, "retryable": retryable}


# ---------------------------------------------------------------- decode


def decode(
    parts: Sequence[bytes],
    *,
    max_header_bytes: int = 64 * 1024,
    max_message_bytes: int = 32 * 1024 * 1024,
    max_buffers: int = 4,
    max_depth: int = 16,
) -> Message:
    """Decode and validate frames `[tag, header, *buffers]`.

    Raises:
        WireError: with code BAD_MESSAGE (framing, msgpack, header fields), VERSION (other
            protocol version), TOO_LARGE (a size limit) or BAD_BUFFER (a buffer that does not
            match its descriptor).
    """
    if sum(len(p) for p in parts) > max_message_bytes:
        raise WireError("TOO_LARGE", f"message is over max_message_bytes={max_message_bytes}")
    if len(parts) < 2:
        raise WireError(
            "BAD_MESSAGE", f"got {len(parts)} frame(s); send [{TAG.decode()!r}, header, *buffers]"
        )
    check_tag(parts[0])
    if len(parts[1]) > max_header_bytes:
        raise WireError("TOO_LARGE", f"header is over max_header_bytes={max_header_bytes}")
    header = unpack_header(parts[1], max_depth=max_depth)
    msg_type = _field(header, "type", str, required=True)
    if not msg_type or len(msg_type) > MAX_TYPE_CHARS:
        raise WireError("BAD_MESSAGE", f"header 'type' must be 1..{MAX_TYPE_CHARS} chars")
    msg_id = _id_field(header, "id", required=True)
    assert msg_id is not None
    session = _field(header, "session", str)
    if session is not None and len(session) > MAX_SESSION_CHARS:
        raise WireError("BAD_MESSAGE", f"header 'session' is over {MAX_SESSION_CHARS} chars")
    seq = _id_field(header, "seq") or 0
    time = _field(header, "time", (int, float))
    if time is not None and not math.isfinite(time):
        raise WireError("BAD_MESSAGE", "header 'time' must be a finite number of seconds")
    body = _field(header, "body", dict)
    descs = _field(header, "bufs", list) or []
    if len(descs) > max_buffers:
        raise WireError("TOO_LARGE", f"{len(descs)} buffers; at most max_buffers={max_buffers}")
    if len(descs) != len(parts) - 2:
        raise WireError(
            "BAD_MESSAGE",
            f"header declares {len(descs)} buffer(s) but {len(parts) - 2} frame(s) follow it",
        )
    arrays: dict[str, np.ndarray] = {}
    for desc, buf in zip(descs, parts[2:], strict=True):
        name, array = decode_buffer(desc, buf, max_message_bytes)
        if name in arrays:
            raise WireError("BAD_BUFFER", f"buffer name {name!r} appears twice")
        arrays[name] = array
    return Message(
        type=msg_type,
        id=msg_id,
        re=_id_field(header, "re"),
        session=session,
        seq=seq,
        time=float(time or 0.0),
        body=body or {},
        arrays=arrays,
    )


def peek_id(frames: list[bytes]) -> int | None:
    """The request id of a message that failed to decode, if its header frame says one among its
    first entries (read from the frame's first 4 KiB only, so a header too large to decode, or a
    message over a size limit, still gets a reply naming the request)."""
    if len(frames) < 2:
        return None
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=4096, strict_map_key=False)
    unpacker.feed(bytes(frames[1][:4096]))
    try:
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key != "id":
                unpacker.skip()
                continue
            value = unpacker.unpack()
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
                return value
            return None
    except Exception:  # not msgpack, not a map, or the id lies past the first 4 KiB
        return None
    return None


def check_tag(tag: bytes) -> None:
    """Raise VERSION for another version of this protocol, BAD_MESSAGE for anything else."""
    if tag == TAG:
        return
    prefix = PROTOCOL.encode() + b"/"
    if tag.startswith(prefix) and tag[len(prefix) :].isdigit():
        raise WireError("VERSION", f"this server speaks {TAG.decode()}, got {tag[:16]!r}")
    raise WireError("BAD_MESSAGE", f"first frame must be the tag {TAG!r}, got {tag[:16]!r}")


def _refuse_ext(code: int, data: bytes) -> Any:
    raise WireError("BAD_MESSAGE", f"msgpack extension type {code} is not allowed")


def unpack_header(data: bytes, *, max_depth: int = 16) -> dict[str, Any]:
    """Unpack a header frame: a msgpack map with string keys, plain values, bounded nesting."""
    try:
        header = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_ext, timestamp=0
        )
    except WireError:
        raise
    except msgpack.ExtraData:
        raise WireError("BAD_MESSAGE", "trailing bytes after the header map") from None
    except Exception as exc:  # msgpack raises ValueError, FormatError, StackError, ...
        raise WireError("BAD_MESSAGE", f"header is not valid msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise WireError("BAD_MESSAGE", f"header must be a map, got {type(header).__name__}")
    check_plain(header, max_depth)
    return header


def check_plain(value: Any, max_depth: int) -> None:
    """Check nesting depth, string map keys and plain types, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict or kind is list:
            if depth > max_depth:
                raise WireError("BAD_MESSAGE", f"header nests deeper than max_depth={max_depth}")
            if kind is dict:
                for key in item:
                    if type(key) is not str:
                        raise WireError("BAD_MESSAGE", f"map keys must be strings, got {key!r:.40}")
                item = item.values()
            for sub in item:
                if type(sub) in _CONTAINERS:
                    stack.append((sub, depth + 1))
                elif type(sub) not in _SCALARS:
                    raise WireError("BAD_MESSAGE", f"{type(sub).__name__} values are not allowed")
        elif kind not in _SCALARS:
            raise WireError("BAD_MESSAGE", f"{kind.__name__} values are not allowed")


_CONTAINERS = (dict, list)
_SCALARS = (type(None), bool, int, float, str, bytes)  # msgpack's types without extensions


def _field(header: dict[str, Any], key: str, kind: Any, required: bool = False) -> Any:
    value = header.get(key)
    if value is None:
        if required:
            raise WireError("BAD_MESSAGE", f"header needs {key!r}")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WireError("BAD_MESSAGE", f"header {key!r} has the wrong type {type(value).__name__}")
    return value


def _id_field(header: dict[str, Any], key: str, required: bool = False) -> int | None:
    value = _field(header, key, int, required)
    if value is not None and not 0 <= value <= MAX_ID:
        raise WireError("BAD_MESSAGE", f"header {key!r} must be in 0..2**63-1")
    return value  # type: ignore[no-any-return]


def decode_buffer(desc: Any, buf: bytes, max_bytes: int) -> tuple[str, np.ndarray]:
    """Turn one buffer frame and its descriptor into a read-only array."""
    if not isinstance(desc, dict):
        raise WireError(
            "BAD_BUFFER", "each 'bufs' entry must be a map {name, dtype, shape, encoding}"
        )
    name, dtype_name = desc.get("name"), desc.get("dtype")
    shape, encoding = desc.get("shape"), desc.get("encoding", "raw")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        raise WireError(
            "BAD_BUFFER", f"buffer 'name' must be a string of 1..{MAX_NAME_CHARS} chars"
        )
    if dtype_name not in DTYPES:
        raise WireError("BAD_BUFFER", f"buffer {name!r}: dtype must be one of {list(DTYPES)}")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= MAX_NDIM
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise WireError("BAD_BUFFER", f"buffer {name!r}: shape must be 1..4 non-negative ints")
    dtype = DTYPES[dtype_name]
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > max_bytes:
        raise WireError("TOO_LARGE", f"buffer {name!r}: {shape} is over max_message_bytes")
    if encoding == "raw":
        if len(buf) != nbytes:
            raise WireError(
                "BAD_BUFFER",
                f"buffer {name!r}: {len(buf)} bytes but {dtype_name} x {shape} needs {nbytes}",
            )
        return name, np.frombuffer(buf, dtype=dtype).reshape(shape)
    if encoding == "png" and "png" in ENCODINGS:
        return name, _decode_png(name, buf, dtype_name, shape)
    raise WireError(
        "BAD_BUFFER", f"buffer {name!r}: unknown encoding {encoding!r}; use {ENCODINGS}"
    )


def _decode_png(name: str, buf: bytes, dtype_name: str, shape: list[int]) -> np.ndarray:
    import imageio.v3 as iio

    if dtype_name != "uint8" or len(shape) != 3 or shape[2] != 3:
        raise WireError("BAD_BUFFER", f"buffer {name!r}: png carries one uint8 (H, W, 3) image")
    try:
        image = np.asarray(iio.imread(buf, plugin="pillow", extension=".png"))
    except Exception as exc:  # imageio/pillow raise many types for corrupt data
        raise WireError("BAD_BUFFER", f"buffer {name!r}: not a readable png ({exc})") from None
    if image.dtype != np.uint8 or list(image.shape) != shape:
        raise WireError(
            "BAD_BUFFER",
            f"buffer {name!r}: png is {image.dtype} {list(image.shape)}, declared {shape}",
        )
    return image
