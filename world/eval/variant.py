"""An arcade variant the shipped default never saw, for measuring fine-tuning (``--init``):
a sand sky, dark-teal walls, dark-grey balls, and a purple block in the room that the player
cannot enter (balls pass behind it). A protocol game (``docs/your-game.md``), so
``chunkworld eval --game world.eval.variant:ArcadeVariant`` scores any model on it; and a
recording of it through :class:`world.train.record.Recorder`, the way a game that is not a
Python object reaches the recipe::

    python -m world.eval.variant runs/variant-data            # 600 clips of 128 frames
    chunkworld train --data runs/variant-data --init default --out runs/variant --minutes 40
    chunkworld eval --game world.eval.variant:ArcadeVariant --model runs/variant/model
"""

from __future__ import annotations

import argparse

import numpy as np

from world.games.actions import held_key_actions
from world.games.arcade import PALETTE, SKY_RGB, WALL_RGB_DEFAULT, Game, GameConfig
from world.train.record import Recorder

SKY, WALL, BALL = (235, 215, 160), (20, 110, 110), (60, 60, 60)
OBSTACLE = (150, 60, 200)
BOX = (24, 40, 40, 48)  # rows 24..40, columns 40..48 of a 64 px frame
RECOLOUR = {SKY_RGB["day"]: SKY, PALETTE[WALL_RGB_DEFAULT]: WALL, PALETTE["red"]: BALL}
YELLOW = np.array((255, 220, 0))
RECORD_SEED = 1000  # clips from this seed on; the evaluation's seeds start far above


class ArcadeVariant:
    """The arcade on a day with no weather, recoloured, with a block the player stops at."""

    actions = list(Game.actions)

    def __init__(self) -> None:
        self.game = Game(GameConfig(random_scene=False))
        self.disc = self.game.ball_area

    def reset(self, seed: int) -> np.ndarray:
        g = self.game
        g.reset(seed)
        while self._inside(*g.player_position):  # a start inside the block: a free column
            x, y = g.player_position
            g.place_player(x - 2, y)
        return self.render()

    def _inside(self, x: int, y: int) -> bool:
        h, (r0, r1, c0, c1) = self.game.config.player_size // 2, BOX
        return x + h > c0 and x - h < c1 and y + h > r0 and y - h < r1

    def step(self, action: str) -> np.ndarray:
        g = self.game
        x, y = g.player_position
        g.step(action)
        if self._inside(*g.player_position):  # blocked: it stays where it was
            g.place_player(x, y)
        return self.render()

    def render(self) -> np.ndarray:
        frame = self.game.render()
        out = frame.copy()
        for old, new in RECOLOUR.items():
            out[(frame == old).all(-1)] = new
        r0, r1, c0, c1 = BOX
        out[r0:r1, c0:c1] = OBSTACLE
        return out

    def player(self, frame: np.ndarray) -> tuple[float, float] | None:
        ys, xs = np.nonzero(np.abs(frame.astype(int) - YELLOW).sum(-1) < 90)
        return (float(xs.mean()), float(ys.mean())) if len(xs) >= 8 else None

    def objects(self, frame: np.ndarray) -> dict[str, int]:
        near = np.abs(frame.astype(int) - np.array(BALL)).sum(-1) < 60
        return {"balls": int(round(near[3:-3, 3:-3].sum() / self.disc))}


def record(out: str, clips: int = 600, clip_frames: int = 128, chunk_frames: int = 4) -> None:
    """Play the variant with the recipe's held-key mix into a dataset at ``out``."""
    from tqdm import tqdm

    game = ArcadeVariant()
    with Recorder(out, actions=game.actions, chunk_frames=chunk_frames,
                  clip_frames=clip_frames) as rec:  # fmt: skip
        for clip in tqdm(range(clips), desc="record"):
            seed = RECORD_SEED + clip
            ids = held_key_actions(np.random.default_rng(seed), clip_frames - 1, len(game.actions))
            rec.add(game.reset(seed), "noop")
            for a in ids:
                rec.add(game.step(game.actions[a]), int(a))
            rec.cut()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a new directory for the dataset")
    parser.add_argument("--clips", type=int, default=600)
    args = parser.parse_args(argv)
    record(args.out, args.clips)


if __name__ == "__main__":
    main()
