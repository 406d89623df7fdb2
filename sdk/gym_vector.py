"""Gymnasium vector env: ``num_envs`` worlds stepped in one forward pass (``sdk.SessionBatch``).

    from sdk.gym_vector import ChunkworldVectorEnv
    envs = ChunkworldVectorEnv(16, model="tiny", prompt="night", max_ticks=100)
    obs, infos = envs.reset(seed=0)                 # obs (16, H, W, 3) uint8
    obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())

The conventions of ``gymnasium.vector.VectorEnv``: batched observations, rewards, terminations
and truncations (arrays of ``num_envs``), ``infos`` as a dict of arrays with a ``_key`` mask per
key, and next-step autoreset (``metadata["autoreset_mode"]``): a sub-env that ended on one step
is reset by the next, which returns its first observation with reward 0 and no termination.
Each sub-env behaves as ``sdk.gym_env.ChunkworldEnv`` would inside ``SyncVectorEnv`` (same
seeds: ``reset(seed=s)`` gives sub-env ``i`` seed ``s + i``, and an autoreset draws its seed from
that sub-env's own generator); its frames are the same within ``SessionBatch``'s tolerance.
``reset(options={"reset_mask": mask})`` resets only the masked sub-envs; ``options`` may also
hold ``prompt`` (every reset sub-env) or ``prompts`` (one per sub-env).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from sdk.batch import SessionBatch
from sdk.errors import ArgumentError
from sdk.types import Chunk

RewardFn = Callable[[np.ndarray, dict[str, Any]], float]
TerminateFn = Callable[[np.ndarray, dict[str, Any]], bool]


class ChunkworldVectorEnv(VectorEnv):  # type: ignore[type-arg]
    """``num_envs`` worlds as one vector env; arguments as ``ChunkworldEnv`` (per sub-env)."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int,
        *,
        model: str | Path = "default",
        prompt: str = "",
        observation: str = "frame",
        reward_fn: RewardFn | None = None,
        terminate_fn: TerminateFn | None = None,
        max_ticks: int | None = 1000,
        batch: SessionBatch | None = None,
        **session_options: Any,
    ) -> None:
        if observation not in ("frame", "chunk"):
            raise ArgumentError(f"observation must be 'frame' or 'chunk', got {observation!r}")
        if batch is None:
            batch = SessionBatch.load(model, size=num_envs, **session_options)
        elif len(batch) != num_envs:
            raise ArgumentError(f"batch has {len(batch)} sessions, num_envs is {num_envs}")
        self.batch, self.num_envs = batch, num_envs
        info = batch[0].info if num_envs else None
        assert info is not None, "num_envs must be at least 1"
        frame = (info.frame_height, info.frame_width, 3)
        shape = frame if observation == "frame" else (info.chunk_frames, *frame)
        self.single_observation_space = spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        self.single_action_space = spaces.Discrete(len(info.actions))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {**self.metadata, "render_fps": info.fps}
        self.prompt, self.observation = prompt, observation
        self.reward_fn, self.terminate_fn, self.max_ticks = reward_fn, terminate_fn, max_ticks
        self._rngs = [seeding.np_random()[0] for _ in range(num_envs)]
        self._prompts = [prompt] * num_envs
        self._done = np.zeros(num_envs, dtype=bool)
        self._obs: np.ndarray = np.zeros((num_envs, *shape), dtype=np.uint8)
        self._keys = len(info.actions)

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start episodes (all, or ``options["reset_mask"]``'s); see the module docstring."""
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=bool)))
        if mask.shape != (self.num_envs,) or mask.dtype != bool:
            raise ArgumentError(f"reset_mask must be a bool array of shape ({self.num_envs},)")
        seeds = self._seeds(seed)
        if "prompts" in options:
            self._prompts = [str(p) for p in options.pop("prompts")]
        elif "prompt" in options:
            self._prompts = [str(options.pop("prompt"))] * self.num_envs
        if options:
            raise ArgumentError(f"unknown reset options {sorted(options)}; see the docstring")
        which = [i for i in range(self.num_envs) if mask[i]]
        for i in which:  # as gymnasium.Env.reset(seed=s): a new generator seeded with s
            if seeds[i] is not None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
        infos: dict[str, Any] = {}
        for i, chunk in zip(which, self._reset(which, [seeds[i] for i in which]), strict=True):
            self._obs[i] = self._frame(chunk)
            infos = self._add_info(infos, self._info(chunk), i)
        self._done[mask] = False
        return self._obs.copy(), infos

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One tick of every sub-env (those that ended last step are reset instead)."""
        acts = np.asarray(actions)
        if acts.shape != (self.num_envs,) or not self.action_space.contains(acts.astype(np.int64)):
            raise ArgumentError(
                f"actions must be {self.num_envs} key ids in [0, {self._keys}), got {actions!r}"
            )
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        resets = [i for i in range(self.num_envs) if self._done[i]]
        for i, chunk in zip(resets, self._reset(resets, [None] * len(resets)), strict=True):
            self._obs[i] = self._frame(chunk)
            infos = self._add_info(infos, self._info(chunk), i)
        steps = {i: int(acts[i]) for i in range(self.num_envs) if not self._done[i]}
        for i, chunk in zip(steps, self.batch.step(steps) if steps else [], strict=True):
            info = self._info(chunk)
            self._obs[i] = self._frame(chunk)
            if self.reward_fn is not None:
                rewards[i] = float(self.reward_fn(chunk.frames, info))
            if self.terminate_fn is not None:
                terminated[i] = bool(self.terminate_fn(chunk.frames, info))
            truncated[i] = self.max_ticks is not None and chunk.tick >= self.max_ticks
            infos = self._add_info(infos, info, i)
        self._done = terminated | truncated
        return self._obs.copy(), rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        self.batch.close()

    # --- internals --------------------------------------------------------------------------
    def _seeds(self, seed: int | list[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, int):
            return [seed + i for i in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ArgumentError(f"seed must be an int or {self.num_envs} seeds, got {seed!r}")
        return list(seed)

    def _reset(self, which: list[int], seeds: list[int | None]) -> list[Chunk]:
        """Reset sub-envs ``which`` together; a None seed is drawn from the sub-env's generator
        (as ``ChunkworldEnv.reset`` without a seed)."""
        if not which:
            return []
        use = [
            int(self._rngs[i].integers(0, 2**62)) if s is None else s
            for i, s in zip(which, seeds, strict=True)
        ]
        return self.batch.reset(which, prompts=[self._prompts[i] for i in which], seeds=use)

    def _frame(self, chunk: Chunk) -> np.ndarray:
        return chunk.frames[-1] if self.observation == "frame" else chunk.frames

    @staticmethod
    def _info(chunk: Chunk) -> dict[str, Any]:
        return {"tick": chunk.tick, "action_tick": chunk.action_tick, "prompt": chunk.prompt}
