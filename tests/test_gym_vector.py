"""The vector env keeps gymnasium's vector conventions and behaves as gymnasium's own
SyncVectorEnv over the single-world env (same seeds, same autoresets, frames within the batch
tolerance)."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode
from test_batch import assert_close

from sdk import Session, SessionBatch
from sdk.errors import ArgumentError
from sdk.gym_env import ChunkworldEnv
from sdk.gym_vector import ChunkworldVectorEnv
from world.core.model import WorldModel

N = 3


def brightness(frames: np.ndarray, info: dict[str, Any]) -> float:
    return round(float(frames.mean()) / 255.0, 2)


def ends_at_tick_2(frames: np.ndarray, info: dict[str, Any]) -> bool:
    return bool(info["tick"] == 2)


def _kwargs() -> dict[str, Any]:
    return {"prompt": "night", "reward_fn": brightness, "max_ticks": 3}


def _vector(model: WorldModel, **kw: Any) -> ChunkworldVectorEnv:
    batch = SessionBatch.from_model(model, size=N)
    return ChunkworldVectorEnv(N, batch=batch, **_kwargs(), **kw)


def _sync(model: WorldModel, **kw: Any) -> gymnasium.vector.SyncVectorEnv:
    def make() -> ChunkworldEnv:
        return ChunkworldEnv(session=Session.from_model(model), **_kwargs(), **kw)

    return gymnasium.vector.SyncVectorEnv([make] * N)


def test_same_as_sync_vector_env_of_the_single_env_with_autoresets(
    tiny_model: WorldModel,
) -> None:
    ours, theirs = _vector(tiny_model), _sync(tiny_model)
    assert ours.metadata["autoreset_mode"] == theirs.metadata["autoreset_mode"]
    assert ours.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert ours.observation_space == theirs.observation_space
    assert ours.action_space == theirs.action_space
    a_obs, a_info = ours.reset(seed=5)
    b_obs, b_info = theirs.reset(seed=5)
    assert_close(a_obs, b_obs)
    assert list(a_info["tick"]) == list(b_info["tick"]) == [0] * N
    rng = np.random.default_rng(0)
    for _ in range(9):  # max_ticks 3: every sub-env truncates and autoresets twice
        act = rng.integers(0, ours.single_action_space.n, N)
        a, b = ours.step(act), theirs.step(act)
        assert ours.observation_space.contains(a[0])
        assert_close(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], atol=0.011)  # rewards: rounded means
        assert list(a[2]) == list(b[2]) and list(a[3]) == list(b[3])
        assert list(a[4]["tick"]) == list(b[4]["tick"])
        assert list(a[4]["_tick"]) == list(b[4]["_tick"])
    ours.close()
    ours.close()


def test_termination_resets_only_that_world_on_the_next_step(tiny_model: WorldModel) -> None:
    envs = _vector(tiny_model, terminate_fn=ends_at_tick_2)
    envs.reset(seed=0)
    envs.step([0] * N)
    _, _, term, trunc, info = envs.step([1] * N)
    assert term.all() and not trunc.any() and list(info["tick"]) == [2] * N
    envs.reset(options={"reset_mask": np.array([True, False, False])})
    _, rewards, term, _, info = envs.step([0] * N)
    assert list(info["tick"]) == [1, 0, 0]  # 0 stepped after its reset; 1, 2 autoreset
    assert rewards[1] == rewards[2] == 0.0 and not term.any()


def test_reset_is_deterministic_and_returned_arrays_are_not_reused(
    tiny_model: WorldModel,
) -> None:
    one, two = _vector(tiny_model), _vector(tiny_model)
    a, _ = one.reset(seed=11)
    b, _ = two.reset(seed=11)
    assert data_equivalence(a, b, exact=True)
    a[:] = 0
    c = one.step([2] * N)[0]
    d = two.step([2] * N)[0]
    assert data_equivalence(c, d, exact=True) and c.any()


def test_the_single_env_still_passes_gymnasiums_checker(tiny_model: WorldModel) -> None:
    check_env(ChunkworldEnv(session=Session.from_model(tiny_model)), skip_render_check=True)


def test_bad_actions_and_options_get_typed_errors(tiny_model: WorldModel) -> None:
    envs = _vector(tiny_model)
    envs.reset(seed=0)
    with pytest.raises(ArgumentError, match=r"actions must be 3 key ids"):
        envs.step([0, 1])
    with pytest.raises(ArgumentError, match="reset_mask must be a bool array"):
        envs.reset(options={"reset_mask": [1, 0]})
    with pytest.raises(ArgumentError, match="unknown reset options"):
        envs.reset(options={"colour": "red"})
