"""Quality of the shipped default model against the true game (opt-in: ``pytest -m quality``).

These are the bar of the project's issue, checked with ``world.eval.evaluate`` on held-out seeds at
the play setting: the standard evaluation, about 4 minutes on two cores. They need the shipped
checkpoint.
"""

from __future__ import annotations

import pytest

from sdk.models import DEFAULT_DIR
from world.eval.evaluate import BAR, EvalConfig, evaluate

pytestmark = [
    pytest.mark.quality,
    pytest.mark.skipif(
        not (DEFAULT_DIR / "config.json").exists(), reason="no shipped default model"
    ),
]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    # the standard evaluation (48 episodes, 160 prompt trials, 1,000 ticks), the one the model
    # card quotes: at 8 episodes the shipped model passed the PSNR line on luck (above 28 dB one
    # chunk ahead there, 26.57 dB over the 48; the step-29,900 model with the tuned decoder)
    return evaluate(EvalConfig(model=str(DEFAULT_DIR), out=str(out)), progress=False)


def test_psnr_one_chunk_and_sixteen_chunks(result):
    assert result["psnr_1_db"] >= BAR["psnr_1_db"]
    assert result["psnr_avg16_db"] >= BAR["psnr_avg16_db"]


def test_beats_copy_last_frame_at_every_horizon(result):
    assert result["beats_copy_last_at_every_horizon"], (
        result["psnr_db"],
        result["copy_last_psnr_db"],
    )


def test_follows_actions(result):
    assert result["action_following"] >= BAR["action_following"]


def test_prompted_events_show_within_two_ticks(result):
    assert result["prompt_success"] >= BAR["prompt_success"], result["prompt_success_by_kind"]


def test_player_stays_detectable(result):
    assert result["stability"]["player_detectable"] >= BAR["player_detectable"]
