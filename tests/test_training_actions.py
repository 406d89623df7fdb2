"""training_actions: play-like streams plus what play rarely holds (long idles, keys alternating
every frame), deterministic, and recorded in a dataset so a replay plays the same keys."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from world.games.actions import ACTIONS, LEFT, NOOP, RIGHT, training_actions
from world.train.datagen import Replayer, generate_dataset


def _longest_run(a: np.ndarray, value: int) -> int:
    best = run = 0
    for x in a:
        run = run + 1 if x == value else 0
        best = max(best, run)
    return best


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400))
def test_deterministic_in_range_and_sized(seed, n):
    a = training_actions(np.random.default_rng(seed), n)
    b = training_actions(np.random.default_rng(seed), n)
    assert a.dtype == np.int64 and a.shape == (n,)
    assert np.array_equal(a, b)
    assert ((a >= 0) & (a < len(ACTIONS))).all()


def test_holds_long_idles_and_alternation():
    a = training_actions(np.random.default_rng(0), 20_000)
    assert _longest_run(a, NOOP) >= 48  # idles up to 64 frames
    pairs = (a[:-1] == LEFT) & (a[1:] == RIGHT) | (a[:-1] == RIGHT) & (a[1:] == LEFT)
    assert pairs.mean() > 0.03  # left/right switching every frame is common, not a fluke


def test_dataset_records_its_policy_and_replays_it(tmp_path):
    ds = generate_dataset(tmp_path / "d", 2, 32, seed=5, progress=False, policy=training_actions)
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["generator"]["policy"] == "training_actions"
    replayed = [acts for acts, _ in Replayer(tmp_path / "d").script(1)]
    assert np.array_equal(np.concatenate(replayed), ds.load_all().actions[1])
