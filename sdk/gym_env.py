"""Gymnasium adapter: a chunkworld session as a ``gymnasium.Env``.

Importing this module registers ``chunkworld/World-v0``::

    import gymnasium
    import sdk.gym_env  # noqa: F401  (registers the id)
    env = gymnasium.make("chunkworld/World-v0", model="tiny", prompt="night, two balls")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

One env step is one tick: the chosen key is held for the whole chunk. The observation is the
last frame, uint8 (H, W, 3), or with ``observation="chunk"`` the whole chunk (F, H, W, 3).
Reward and termination come from callables ``reward_fn(frames, info) -> float`` and
``terminate_fn(frames, info) -> bool`` (defaults: 0.0 and never); ``max_ticks`` truncates.
``render_mode="rgb_array"`` returns the last frame; ``"human"`` shows it in a pygame window.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
from gymnasium import spaces

from sdk.session import Session
from sdk.types import Chunk

ENV_ID = "chunkworld/World-v0"
RewardFn = Callable[[np.ndarray, dict[str, Any]], float]
TerminateFn = Callable[[np.ndarray, dict[str, Any]], bool]


class ChunkworldEnv(gymnasium.Env[np.ndarray, np.int64]):
    """A world as an environment. See the module docstring for the contract.

    Args:
        model: ``Session.load`` name or checkpoint directory (``"tiny"`` for tests).
        prompt: caption of every episode ("" = null caption).
        observation: ``"frame"`` (last frame) or ``"chunk"`` (all frames of the tick).
        reward_fn, terminate_fn: called with the chunk's frames and the step's info dict.
        max_ticks: episode length after which ``truncated`` is True (None: never).
        render_mode: None, ``"rgb_array"`` or ``"human"``.
        session: an already open Session to use instead of loading ``model``.
        **session_options: passed to ``Session.load`` (device, steps, in_flight, threads,
            precision).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "human"], "render_fps": 15}

    def __init__(
        self,
        *,
        model: str | Path = "default",
        prompt: str = "",
        observation: str = "frame",
        reward_fn: RewardFn | None = None,
        terminate_fn: TerminateFn | None = None,
        max_ticks: int | None = 1000,
        render_mode: str | None = None,
        session: Session | None = None,
        **session_options: Any,
    ) -> None:
        if observation not in ("frame", "chunk"):
            raise ValueError(f"observation must be 'frame' or 'chunk', got {observation!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None, 'rgb_array' or 'human', got {render_mode!r}"
            )
        self.session = session if session is not None else Session.load(model, **session_options)
        info = self.session.info
        self.prompt = prompt
        self.observation = observation
        self.reward_fn = reward_fn
        self.terminate_fn = terminate_fn
        self.max_ticks = max_ticks
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": info.fps}
        frame = (info.frame_height, info.frame_width, 3)
        shape = frame if observation == "frame" else (info.chunk_frames, *frame)
        self.observation_space = spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        self.action_space = spaces.Discrete(len(info.actions))
        self._chunk: Chunk | None = None
        self._window: Any = None
        self._clock: Any = None

    def _obs(self, chunk: Chunk) -> np.ndarray:
        return (chunk.frames[-1] if self.observation == "frame" else chunk.frames).copy()

    def _info(self, chunk: Chunk) -> dict[str, Any]:
        # no timings here: info must be identical for identical seeds and actions
        return {"tick": chunk.tick, "action_tick": chunk.action_tick, "prompt": chunk.prompt}

    @property
    def last_chunk(self) -> Chunk | None:
        """The last chunk made (frames, tick, compute time ``ms``), or None before reset."""
        return self._chunk

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode. ``options`` may hold ``prompt``, ``image`` or ``video`` (see
        ``Session.reset``). Without a seed, episodes draw one from ``self.np_random``."""
        super().reset(seed=seed)
        options = dict(options or {})
        use_seed = seed if seed is not None else int(self.np_random.integers(0, 2**62))
        prompt = options.pop("prompt", self.prompt)
        chunk = self.session.reset(prompt=prompt, seed=use_seed, **options)
        self._chunk = chunk
        if self.render_mode == "human":
            self.render()
        return self._obs(chunk), self._info(chunk)

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        chunk = self.session.step(int(action))
        self._chunk = chunk
        info = self._info(chunk)
        reward = float(self.reward_fn(chunk.frames, info)) if self.reward_fn else 0.0
        terminated = bool(self.terminate_fn(chunk.frames, info)) if self.terminate_fn else False
        truncated = self.max_ticks is not None and chunk.tick >= self.max_ticks
        if self.render_mode == "human":
            self.render()
        return self._obs(chunk), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode is None or self._chunk is None:
            return None
        frame = self._chunk.frames[-1]
        if self.render_mode == "rgb_array":
            return frame.copy()
        import pygame  # optional extra: pip install 'chunkworld[play]'

        scale = max(1, 384 // frame.shape[0])
        if self._window is None:
            pygame.init()
            self._window = pygame.display.set_mode((frame.shape[1] * scale, frame.shape[0] * scale))
            pygame.display.set_caption("chunkworld")
            self._clock = pygame.time.Clock()
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        self._window.blit(pygame.transform.scale_by(surface, scale), (0, 0))
        pygame.event.pump()
        pygame.display.flip()
        self._clock.tick(self.metadata["render_fps"])
        return None

    def close(self) -> None:
        if self._window is not None:
            import pygame

            pygame.display.quit()
            self._window = None
        self.session.close()


def _register() -> None:
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="sdk.gym_env:ChunkworldEnv")


_register()
