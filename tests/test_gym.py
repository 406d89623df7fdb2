"""The gymnasium adapter passes gymnasium's own checker and follows its contract."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch

gymnasium = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from sdk.gym_env import ENV_ID, ChunkworldEnv  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("observation", ["frame", "chunk"])
def test_check_env(observation: str) -> None:
    env = gymnasium.make(ENV_ID, model="tiny", observation=observation, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    shape = (32, 32, 3) if observation == "frame" else (2, 32, 32, 3)
    assert env.observation_space.shape == shape and env.action_space.n == 6
    env.close()


def test_reward_termination_truncation_render() -> None:
    seen: list[int] = []

    def reward(frames: np.ndarray, info: dict) -> float:
        seen.append(info["tick"])
        return float(frames.shape[0])

    env = ChunkworldEnv(
        model="tiny",
        prompt="night",
        max_ticks=3,
        render_mode="rgb_array",
        reward_fn=reward,
        terminate_fn=lambda f, i: i["tick"] == 2,
    )
    obs, info = env.reset(seed=1)
    assert obs.shape == (32, 32, 3) and info["tick"] == 0 and info["prompt"] == "night"
    out = [env.step(4)[1:4] for _ in range(3)]
    assert out == [(2.0, False, False), (2.0, True, False), (2.0, False, True)]
    assert seen == [1, 2, 3]
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.shape == (32, 32, 3)
    env.close()
    env.close()


def test_same_seed_same_observations() -> None:
    env = ChunkworldEnv(model="tiny")
    a = [env.reset(seed=4)[0]] + [env.step(i % 6)[0] for i in range(3)]
    b = [env.reset(seed=4)[0]] + [env.step(i % 6)[0] for i in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    env.close()


def test_human_render_with_dummy_video(monkeypatch) -> None:
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = ChunkworldEnv(model="tiny", render_mode="human")
    env.reset(seed=0)
    env.step(1)
    assert env.render() is None and env._window is not None
    env.close()
    assert env._window is None and os.environ["SDL_VIDEODRIVER"] == "dummy"
