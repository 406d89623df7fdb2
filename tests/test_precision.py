"""Play precision: bf16 autocast where native (``world.core.cpus.bf16_enabled``), through the sampler
and the Session."""

from __future__ import annotations

import numpy as np
import pytest

from sdk import Session
from sdk.errors import ArgumentError
from world.core import cpus


class _CpuInfo:
    def __init__(self, text: str | None) -> None:
        self.text = text

    def __call__(self, _path: str) -> _CpuInfo:
        return self

    def read_text(self) -> str:
        if self.text is None:
            raise OSError("no /proc here")
        return self.text


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("flags : fpu avx512f avx512_bf16 sse", True),
        ("flags : fpu amx_bf16 amx_tile", True),
        ("flags : fpu avx512f avx512bw", False),  # AVX-512 without bf16: autocast is slower
        (None, False),  # no /proc/cpuinfo: fp32
    ],
)
def test_auto_means_bf16_only_where_the_cpu_has_it(monkeypatch, flags, expected):
    monkeypatch.setattr(cpus, "Path", _CpuInfo(flags))
    assert cpus.bf16_enabled("auto") is expected
    assert cpus.bf16_enabled("fp32") is False and cpus.bf16_enabled("bf16") is True


def test_an_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, fp32 or bf16, got 'fp16'"):
        cpus.bf16_enabled("fp16")
    with pytest.raises(ArgumentError, match="auto, fp32 or bf16"):
        Session.load("tiny", precision="fp16")


def _play(precision: str, seed: int = 3) -> list[np.ndarray]:
    with Session.load("tiny", seed=seed, precision=precision) as s:
        frames = [s.reset(prompt="night, two balls").frames]
        frames += [s.step(a).frames for a in ("right", "up", "fire", None)]
        return frames


def test_each_precision_is_deterministic_and_the_two_stay_close():
    bf16, fp32 = _play("bf16"), _play("fp32")
    assert all(np.array_equal(a, b) for a, b in zip(bf16, _play("bf16"), strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(fp32, _play("fp32"), strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(bf16, fp32, strict=True))
    for a, b in zip(bf16, fp32, strict=True):  # random weights; the trained model: ~59 dB
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0


def test_the_session_reports_the_precision_it_resolved_to():
    for asked, got in (("bf16", "bf16"), ("fp32", "fp32"), ("auto", None)):
        with Session.load("tiny", precision=asked) as s:
            expected = got or ("bf16" if cpus.bf16_enabled("auto") else "fp32")
            assert s.info.precision == expected


def test_snapshot_then_restore_replays_identical_frames_at_bf16():
    with Session.load("tiny", seed=5, precision="bf16") as s:
        s.reset(prompt="rain")
        s.step("left")
        snap = s.snapshot()
        first = [s.step(a).frames for a in ("up", "right", "fire")]
        s.restore(snap)
        again = [s.step(a).frames for a in ("up", "right", "fire")]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_the_norm_gives_torchs_mixed_dtype_values_without_its_warning():
    import warnings

    import torch
    from torch import nn

    from world.core.denoiser import RMSNorm

    torch.manual_seed(0)
    ours, theirs = RMSNorm(48), nn.RMSNorm(48)
    with torch.no_grad():
        theirs.weight.copy_(torch.randn(48))
        ours.weight.copy_(theirs.weight)
    x = torch.randn(3, 7, 48).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = ours(x)
        assert not w
        expected = theirs(x)
    assert got.dtype == expected.dtype == torch.bfloat16
    assert torch.equal(got, expected)


def test_a_snapshot_opens_at_another_precision_and_replays_exactly_at_its_own():
    with Session.load("tiny", seed=5, precision="bf16") as s:
        s.reset(prompt="rain")
        snap = s.snapshot()
        made = [s.step(a).frames for a in ("up", "right")]
    with Session.load("tiny", precision="bf16") as same:
        same.restore(snap)
        again = [same.step(a).frames for a in ("up", "right")]
    assert all(np.array_equal(a, b) for a, b in zip(made, again, strict=True))
    with Session.load("tiny", precision="fp32") as other:
        other.restore(snap)  # a save-game opens on a machine without native bf16
        frames = [other.step(a).frames for a in ("up", "right")]
        assert other.tick == 2
    for a, b in zip(made, frames, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0
