"""Dodge: a ship at the bottom moves left/right, rocks fall from the top. Written from
docs/your-game.md alone by someone who had not seen the project (only its layout was tidied for
the linter), to check that the page is enough; train a world on it with

    chunkworld train --game samples.dodge_game:Dodge --out runs/dodge --minutes 40
"""

import numpy as np

SHIP, ROCK, SKY = (40, 200, 255), (230, 120, 30), (10, 10, 30)
SIZE, SHIP_W, ROCK_W, SPEED, MOVE = 64, 6, 4, 1, 2


class Dodge:
    actions = ["noop", "left", "right"]  # the first is the no-op
    size = SIZE

    def reset(self, seed: int) -> np.ndarray:
        self.rng = np.random.default_rng(seed)  # all randomness from the seed
        self.x = SIZE // 2  # left edge of the ship
        self.rocks = [[int(self.rng.integers(0, SIZE - ROCK_W)), int(self.rng.integers(0, 30))]]
        self.timer = int(self.rng.integers(10, 25))
        return self.render()

    def step(self, action: str) -> np.ndarray:
        move = {"noop": 0, "left": -MOVE, "right": MOVE}[action]
        self.x = int(np.clip(self.x + move, 0, SIZE - SHIP_W))
        kept = []
        for rx, ry in self.rocks:
            ry += SPEED
            hit = ry + ROCK_W > SIZE - 4 and rx < self.x + SHIP_W and self.x < rx + ROCK_W
            if not hit and ry + ROCK_W <= SIZE:
                kept.append([rx, ry])
        self.rocks = kept
        self.timer -= 1
        if self.timer <= 0 or not self.rocks:
            self.rocks.append([int(self.rng.integers(0, SIZE - ROCK_W)), 0])
            self.timer = int(self.rng.integers(18, 30))
        return self.render()

    def render(self) -> np.ndarray:
        f = np.empty((SIZE, SIZE, 3), np.uint8)
        f[:] = SKY
        for rx, ry in self.rocks:
            f[ry : ry + ROCK_W, rx : rx + ROCK_W] = ROCK
        f[-4:-1, self.x : self.x + SHIP_W] = SHIP
        return f

    def describe(self) -> str:  # optional: a caption of the scene
        return f"a ship dodges {len(self.rocks)} falling rocks"

    def policy(self, rng: np.random.Generator) -> str:  # optional: play-like keys
        return str(rng.choice(self.actions, p=[0.4, 0.3, 0.3]))

    def player(self, frame: np.ndarray) -> tuple[float, float] | None:  # optional
        ys, xs = np.nonzero(np.abs(frame.astype(int) - SHIP).sum(-1) < 90)
        return (float(xs.mean()), float(ys.mean())) if len(xs) else None

    def objects(self, frame: np.ndarray) -> dict[str, int]:  # optional
        mask = np.abs(frame.astype(int) - ROCK).sum(-1) < 90
        seen, count = np.zeros_like(mask), 0  # rocks = 4-connected blobs of >= 3 pixels
        for y0, x0 in zip(*np.nonzero(mask), strict=True):
            if seen[y0, x0]:
                continue
            stack, n, seen[y0, x0] = [(y0, x0)], 0, True
            while stack:
                y, x = stack.pop()
                n += 1
                for v, u in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                    if 0 <= v < SIZE and 0 <= u < SIZE and mask[v, u] and not seen[v, u]:
                        seen[v, u] = True
                        stack.append((v, u))
            count += n >= 3
        return {"rocks": int(count)}
