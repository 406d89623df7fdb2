"""The dataset format of chunkworld: one format for generated data and for a user's own game.

A dataset is a directory::

    meta.json           format name and version, frame size, fps, chunk_frames, action names,
                        state column names (optional), generator info
    clips/000000.npz    one clip per file, written by numpy.savez_compressed, read with
    clips/000001.npz    allow_pickle=False (no pickle anywhere)
    ...

A clip file holds

=============  ==============  ===============================================================
key            dtype, shape    meaning
=============  ==============  ===============================================================
frames         uint8 (T,H,W,3)  RGB frames
actions        int16 (T,)       action id per frame: ``frames[t]`` is the frame produced while
                                ``actions[t]`` was held (the first frame that shows it)
captions       uint8 (B,)       UTF-8 JSON list of ``T // chunk_frames`` strings: the caption
                                of each chunk
state          float32 (T,S)    optional: one row of ``meta.state_fields`` per frame
events         uint8 (B,)       UTF-8 JSON list of ``{"frame", "chunk", "prompt", "events"}``
info           uint8 (B,)       UTF-8 JSON object: free-form facts (seeds, source, ...)
=============  ==============  ===============================================================

``T`` is a multiple of ``chunk_frames``. Files are written to a temporary name and renamed, so a
reader never sees half a clip. See docs/DATA.md for the full description and how to record a
game of one's own.

Generated data comes from :mod:`world.train.datagen` (``chunkworld data generate``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from world.games.actions import ACTIONS

FORMAT = "chunkworld-dataset"
VERSION = 1
_JSON_KEYS = ("captions", "events", "info")


@dataclass(frozen=True)
class DatasetMeta:
    """The contents of ``meta.json``."""

    frame_size: tuple[int, int]  # (H, W) of every frame
    chunk_frames: int = 4  # frames per chunk: one caption per chunk
    fps: float = 15.0  # playback rate of the recording
    actions: tuple[str, ...] = ACTIONS  # action names; the index is the id stored in clips
    state_fields: tuple[str, ...] | None = None  # column names of ``state``; None: no state
    clip_frames: int | None = None  # every clip has this many frames (None: lengths may vary)
    generator: dict[str, Any] = field(default_factory=dict)  # how the data was made

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.frame_size)
        object.__setattr__(self, "frame_size", (h, w))
        object.__setattr__(self, "actions", tuple(self.actions))
        if self.state_fields is not None:
            object.__setattr__(self, "state_fields", tuple(self.state_fields))
        if h < 1 or w < 1:
            raise ValueError(f"frame_size must be positive (H, W), got {self.frame_size}")
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        if not self.actions or len(self.actions) > 32767:
            raise ValueError(f"actions must name 1..32767 actions, got {len(self.actions)}")
        if self.clip_frames is not None and self.clip_frames % self.chunk_frames:
            raise ValueError(
                f"clip_frames={self.clip_frames} must be a multiple of chunk_frames={self.chunk_frames}"
            )

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["frame_size"] = list(self.frame_size)
        d["actions"] = list(self.actions)
        d["state_fields"] = None if self.state_fields is None else list(self.state_fields)
        return {"format": FORMAT, "version": VERSION, **d}

    @classmethod
    def from_json(cls, d: Any, where: str = "meta.json") -> DatasetMeta:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(
                f"{where} is not a chunkworld dataset description (format != {FORMAT!r})"
            )
        if d.get("version") != VERSION:
            raise ValueError(
                f"{where} has format version {d.get('version')!r}; this chunkworld reads version "
                f"{VERSION}: regenerate the data or use the chunkworld release that wrote it"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names - {"format", "version"}
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}")
        if "frame_size" not in d:
            raise ValueError(f"{where} lacks 'frame_size'")
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from e


@dataclass(frozen=True)
class Clip:
    """One clip of a dataset."""

    id: str
    frames: np.ndarray  # uint8 (T, H, W, 3)
    actions: np.ndarray  # int64 (T,)
    captions: tuple[str, ...]  # one per chunk
    state: np.ndarray | None  # float32 (T, S)
    events: tuple[dict[str, Any], ...]  # prompts applied during the clip
    info: dict[str, Any]

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class ClipBatch:
    """Clips of equal length stacked for training."""

    ids: tuple[str, ...]
    frames: np.ndarray  # uint8 (N, T, H, W, 3)
    actions: np.ndarray  # int64 (N, T)
    captions: list[list[str]]  # (N, T // chunk_frames)
    state: np.ndarray | None  # float32 (N, T, S), None when any clip has no state


def _json_bytes(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_meta(path: Path) -> DatasetMeta:
    if not path.is_dir():
        raise FileNotFoundError(
            f"no dataset at {path}: make one with `chunkworld data generate --out {path}` "
            "or world.train.data.DatasetWriter"
        )
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} is missing: {path} is not a chunkworld dataset")
    try:
        d = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{meta_path} is not valid JSON ({e}); restore or regenerate it") from e
    return DatasetMeta.from_json(d, str(meta_path))


def clip_files(path: Path) -> list[Path]:
    clips = path / "clips"
    if not clips.is_dir():
        return []
    return sorted(p for p in clips.iterdir() if p.suffix == ".npz" and not p.name.startswith("."))


class DatasetWriter:
    """Writes clips into a dataset directory, creating it (and ``meta.json``) if needed.

    Opening an existing dataset appends to it; its ``meta.json`` must agree with ``meta``
    on frame size, chunk length, actions and state fields.
    """

    def __init__(self, path: str | os.PathLike[str], meta: DatasetMeta | dict[str, Any]) -> None:
        self.path = Path(path)
        if isinstance(meta, dict):
            meta = DatasetMeta(**meta)
        self.meta = meta
        meta_path = self.path / "meta.json"
        if meta_path.exists():
            old = _read_meta(self.path)
            for name in ("frame_size", "chunk_frames", "actions", "state_fields"):
                if getattr(old, name) != getattr(meta, name):
                    raise ValueError(
                        f"{meta_path} has {name}={getattr(old, name)!r} but the writer was given "
                        f"{getattr(meta, name)!r}: write to a new directory"
                    )
            self.meta = old
        else:
            (self.path / "clips").mkdir(parents=True, exist_ok=True)
            text = json.dumps(meta.to_json(), indent=2) + "\n"
            _write_atomic(meta_path, lambda f: f.write(text.encode("utf-8")))
        (self.path / "clips").mkdir(exist_ok=True)
        existing = [int(p.stem) for p in clip_files(self.path) if p.stem.isdigit()]
        self._next = max(existing, default=-1) + 1

    def append(
        self,
        frames: np.ndarray,
        actions: np.ndarray | Sequence[int | str],
        captions: Sequence[str],
        state: np.ndarray | None = None,
        events: Sequence[dict[str, Any]] = (),
        info: dict[str, Any] | None = None,
    ) -> str:
        """Validate and write one clip; returns its id (``"000123"``).

        ``actions`` may be ids or names of ``meta.actions``; ``captions`` has one string per
        chunk (``len(frames) // chunk_frames``).
        """
        m = self.meta
        frames = np.asarray(frames)
        h, w = m.frame_size
        if frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8, got {frames.dtype}: convert with "
                "np.clip(x * 255, 0, 255).astype(np.uint8) for floats in [0, 1]"
            )
        if frames.ndim != 4 or frames.shape[1:] != (h, w, 3):
            raise ValueError(
                f"frames must have shape (T, {h}, {w}, 3) to match meta.frame_size, got "
                f"{frames.shape}; resize frames or write them to a dataset of their size"
            )
        t = len(frames)
        f = m.chunk_frames
        if t == 0 or t % f:
            raise ValueError(
                f"a clip needs a positive multiple of chunk_frames={f} frames, got {t}: trim to "
                f"{t - t % f} frames or pad to {t + (-t) % f}"
            )
        if m.clip_frames is not None and t != m.clip_frames:
            raise ValueError(f"every clip of this dataset has {m.clip_frames} frames, got {t}")
        acts = self._action_ids(actions, t)
        captions = list(captions)
        if len(captions) != t // f or not all(isinstance(c, str) for c in captions):
            raise ValueError(
                f"captions must be {t // f} strings (one per chunk of {f} frames), got "
                f"{len(captions)} items; use '' for a chunk without caption"
            )
        arrays: dict[str, Any] = {"frames": frames, "actions": acts}
        if state is not None:
            if m.state_fields is None:
                raise ValueError(
                    "state given but meta.state_fields is None: create the dataset with "
                    "DatasetMeta(state_fields=[...column names...])"
                )
            st = np.asarray(state, dtype=np.float32)
            if st.shape != (t, len(m.state_fields)):
                raise ValueError(
                    f"state must have shape (T, S) = ({t}, {len(m.state_fields)}) "
                    f"(one row of meta.state_fields per frame), got {st.shape}"
                )
            arrays["state"] = st
        arrays["captions"] = _json_bytes(captions)
        arrays["events"] = _json_bytes(list(events))
        arrays["info"] = _json_bytes(info or {})
        clip_id = f"{self._next:06d}"
        _write_atomic(
            self.path / "clips" / f"{clip_id}.npz", lambda fh: np.savez_compressed(fh, **arrays)
        )
        self._next += 1
        return clip_id

    def _action_ids(self, actions: Any, t: int) -> np.ndarray:
        names = self.meta.actions
        a = np.asarray(actions)
        if a.dtype.kind in "US":
            lookup = {n: i for i, n in enumerate(names)}
            bad = sorted({str(x) for x in a.ravel() if str(x) not in lookup})
            if bad:
                raise ValueError(f"unknown action names {bad}; valid: {list(names)}")
            a = np.array([lookup[str(x)] for x in a.ravel()], dtype=np.int64).reshape(a.shape)
        if a.dtype.kind not in "iu":
            raise ValueError(
                f"actions must be integer ids or names of {list(names)}, got dtype {a.dtype}"
            )
        if a.shape != (t,):
            raise ValueError(f"actions must have shape ({t},) (one per frame), got {a.shape}")
        if t and (a.min() < 0 or a.max() >= len(names)):
            raise ValueError(
                f"action ids must be in 0..{len(names) - 1} ({', '.join(names)}), "
                f"got {int(a.min())}..{int(a.max())}"
            )
        return a.astype(np.int16)


class Dataset:
    """Reads a dataset directory: ``len(ds)``, ``ds[i]`` -> :class:`Clip`, ``ds.load_all()``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.meta = _read_meta(self.path)
        self._files = clip_files(self.path)
        self.ids: tuple[str, ...] = tuple(p.stem for p in self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self) -> Iterator[Clip]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int | str) -> Clip:
        if isinstance(index, str):
            if index not in self.ids:
                raise KeyError(f"no clip {index!r} in {self.path}")
            index = self.ids.index(index)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"clip index {index} out of range for {n} clips")
        return self._load(self._files[index])

    def _load(self, file: Path) -> Clip:
        m = self.meta
        try:
            with np.load(file, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
            raise ValueError(
                f"clip file {file} is corrupt or not a chunkworld clip ({type(e).__name__}: {e}); "
                "delete it or regenerate the dataset"
            ) from e
        missing = [k for k in ("frames", "actions", "captions") if k not in data]
        if missing:
            raise ValueError(
                f"clip file {file} lacks {missing}; delete it or regenerate the dataset"
            )
        frames, actions = data["frames"], data["actions"]
        h, w = m.frame_size
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (h, w, 3):
            raise ValueError(
                f"clip file {file}: frames are {frames.dtype} {frames.shape}, meta.json says "
                f"uint8 (T, {h}, {w}, 3)"
            )
        t = len(frames)
        if actions.shape != (t,) or actions.dtype.kind not in "iu":
            raise ValueError(
                f"clip file {file}: actions are {actions.dtype} {actions.shape}, expected ({t},) ints"
            )
        bad = np.flatnonzero((actions < 0) | (actions >= len(m.actions)))
        if len(bad):
            raise ValueError(
                f"clip file {file}: frame {int(bad[0])} has action id {int(actions[bad[0]])}, "
                f"meta.json names {len(m.actions)} actions {list(m.actions)}"
            )
        parsed: dict[str, Any] = {}
        for key in _JSON_KEYS:
            if key in data:
                try:
                    parsed[key] = json.loads(data[key].tobytes().decode("utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise ValueError(f"clip file {file}: {key} is not UTF-8 JSON ({e})") from e
        captions = parsed["captions"]
        if not isinstance(captions, list) or len(captions) != t // m.chunk_frames:
            raise ValueError(
                f"clip file {file}: expected {t // m.chunk_frames} captions (one per chunk), got "
                f"{len(captions) if isinstance(captions, list) else type(captions).__name__}"
            )
        state = data.get("state")
        if state is not None and (
            m.state_fields is None or state.shape != (t, len(m.state_fields))
        ):
            raise ValueError(
                f"clip file {file}: state shape {state.shape} does not match meta.state_fields"
            )
        return Clip(
            id=file.stem,
            frames=frames,
            actions=actions.astype(np.int64),
            captions=tuple(str(c) for c in captions),
            state=state,
            events=tuple(parsed.get("events", [])),
            info=parsed.get("info", {}),
        )

    def load_all(self, frames: int | None = None) -> ClipBatch:
        """Every clip stacked: ``frames`` (N, T, H, W, 3) etc. Clips must have equal length, or
        pass ``frames`` (a multiple of chunk_frames) to keep the first ``frames`` of each."""
        if not len(self):
            raise ValueError(f"dataset {self.path} has no clips")
        f = self.meta.chunk_frames
        if frames is not None and (frames <= 0 or frames % f):
            raise ValueError(
                f"frames must be a positive multiple of chunk_frames={f}, got {frames}"
            )
        clips = list(self)
        lengths = sorted({len(c) for c in clips})
        if frames is None and len(lengths) > 1:
            raise ValueError(
                f"clips have different lengths {lengths[:5]}: pass load_all(frames=T) with "
                f"T <= {lengths[0]} to crop them, or read clips one by one"
            )
        t = lengths[0] if frames is None else frames
        if t > lengths[0]:
            raise ValueError(f"frames={t} is longer than the shortest clip ({lengths[0]} frames)")
        with_state = all(c.state is not None for c in clips)
        return ClipBatch(
            ids=tuple(c.id for c in clips),
            frames=np.stack([c.frames[:t] for c in clips]),
            actions=np.stack([c.actions[:t] for c in clips]),
            captions=[list(c.captions[: t // f]) for c in clips],
            state=np.stack([c.state[:t] for c in clips]) if with_state else None,  # type: ignore[index]
        )
