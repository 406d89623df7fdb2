"""Catch: a paddle at the bottom, a ball falling from the top. A complete game of the protocol
(docs/your-game.md); train a world on it with

    chunkworld train --game samples.catch_game:Catch --out runs/catch
"""

import numpy as np

PADDLE, BALL, SKY = (255, 220, 0), (230, 50, 50), (20, 30, 70)


class Catch:
    actions = ["noop", "left", "right"]  # the first is the no-op
    size = 32  # frame side: any multiple of 16 up to 128

    def reset(self, seed: int) -> np.ndarray:
        self.rng = np.random.default_rng(seed)  # all randomness from the seed
        self.x = self.size // 2
        self.drop()
        return self.render()

    def drop(self) -> None:
        self.ball = [int(self.rng.integers(2, self.size - 2)), 0]

    def step(self, action: str) -> np.ndarray:
        move = {"noop": 0, "left": -2, "right": 2}[action]
        self.x = int(np.clip(self.x + move, 4, self.size - 4))
        self.ball[1] += 1
        if self.ball[1] >= self.size - 4:
            self.drop()
        return self.render()

    def render(self) -> np.ndarray:
        f = np.empty((self.size, self.size, 3), np.uint8)
        f[:] = SKY
        f[-3:-1, self.x - 4 : self.x + 4] = PADDLE
        bx, by = self.ball
        f[by : by + 2, bx - 1 : bx + 1] = BALL
        return f

    def describe(self) -> str:  # optional: a caption of the scene
        return "a paddle catches a falling ball"

    def player(self, frame: np.ndarray) -> tuple[float, float] | None:  # optional
        ys, xs = np.nonzero(np.abs(frame.astype(int) - PADDLE).sum(-1) < 90)
        return (float(xs.mean()), float(ys.mean())) if len(xs) else None

    def objects(self, frame: np.ndarray) -> dict[str, int]:  # optional
        return {"balls": int((np.abs(frame.astype(int) - BALL).sum(-1) < 90).sum() >= 2)}
