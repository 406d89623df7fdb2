"""Malformed model configs, snapshots and snapshot documents: each mutation of a valid file
(a field dropped, retyped or out of range; truncation; garbage bytes) gives a typed error that
names the file, or a correct load (tests/file_mutations.py says what correct means)."""

from __future__ import annotations

import functools
import json
import random
import tempfile
from pathlib import Path

import pytest
from file_mutations import KINDS, Bench
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdk import CheckpointLoadError, Session, Snapshot, SnapshotError


@functools.cache
def _bench() -> Bench:
    return Bench(Path(tempfile.mkdtemp(prefix="chunkworld-mutations-")))


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_a_mutated_file_is_refused_with_a_typed_error_or_loads_correctly(
    kind: str, rng: random.Random
) -> None:
    bench = _bench()
    what, data = bench.mutant(kind, rng)
    assert bench.judge(kind, what, data) in ("refused", "loaded")


def _config_dir(tmp_path: Path, edit) -> Path:
    bench = _bench()
    doc = json.loads((bench.model_dir / "config.json").read_text())
    edit(doc["model"])
    (tmp_path / "config.json").write_text(json.dumps(doc))
    (tmp_path / "model.safetensors").symlink_to(bench.model_dir / "model.safetensors")
    return tmp_path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m: m["denoiser"].update(dim="64"),
            r"denoiser\.dim='64': must be an integer in \[1, 16384\]",
        ),
        (
            lambda m: m["sampler"].update(steps=10**9),
            r"sampler\.steps=1000000000: must be an integer in \[1, 1000\]",
        ),
        (lambda m: m.update(fps=float("nan")), r"fps=nan: must be a finite number in \(0, 1000\]"),
        (lambda m: m.update(actions=["noop", "noop"]), r"actions=.*distinct non-empty strings"),
        (lambda m: m.update(codec=[]), r"codec=\[\]: must be a JSON object"),
        (lambda m: m["actions"].__setitem__(0, "wait"), r"actions=.*first is \"noop\""),
        (
            lambda m: m["sampler"].update(steps=3, in_flight=2),
            r"sampler\.steps=3 must be a multiple",
        ),
        (
            lambda m: m["text"].update(dim=10**4),
            r"text\.pos has shape \(17, 32\), config\.json implies \(17, 10000\)",
        ),
    ],
)
def test_a_bad_config_names_the_file_and_the_field(tmp_path: Path, edit, message: str) -> None:
    path = _config_dir(tmp_path, edit)
    with pytest.raises(CheckpointLoadError, match=message) as e:
        Session.load(path)
    assert str(path / "config.json") in str(e.value) or "model.safetensors" in str(e.value)


def test_a_snapshot_changed_after_writing_is_refused_and_the_session_kept(tmp_path: Path) -> None:
    bench = _bench()
    tensors_at = bench.valid.rfind(b"}") + 1  # the tensors follow the JSON header
    data = bytearray(bench.valid)
    data[tensors_at + 40] ^= 0x01  # one bit of one tensor
    path = tmp_path / "world.snapshot.safetensors"
    path.write_bytes(bytes(data))
    bench.session.restore(bench.before)
    with pytest.raises(
        SnapshotError, match=r"world\.snapshot\.safetensors: .*does not match its seal"
    ):
        Snapshot.load(path)
    assert bench.judge("snapshot", "one bit", bytes(data)) == "refused"
    assert bench.judge("snapshot", "unchanged", bench.valid) == "loaded"


def test_a_version_2_document_is_checked_field_by_field() -> None:
    snap = Snapshot.from_bytes(_bench().valid)
    meta = snap.meta()
    meta["version"] = 2
    meta["state"]["in_flight"][0]["step"] = 5  # steps is 2: no such step
    from safetensors.torch import save as st_save

    data = st_save(dict(snap.tensors), metadata={"chunkworld": json.dumps(meta)})
    with pytest.raises(
        SnapshotError, match=r"state\.in_flight\[0\]\.step=5: must be an integer in \[0, 1\]"
    ):
        Snapshot.from_bytes(data)
