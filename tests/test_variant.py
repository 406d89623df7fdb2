"""The arcade variant that measures fine-tuning: a valid protocol game, unlike the arcade in
colour and with a block the player cannot enter, recorded through the Recorder into a dataset
the recipe loads."""

from __future__ import annotations

import numpy as np

from world.eval.variant import BOX, OBSTACLE, ArcadeVariant, record
from world.games.arcade import Game
from world.games.protocol import validate_game
from world.train.data import Dataset


def test_the_variant_is_a_valid_game_with_its_own_colours() -> None:
    game = ArcadeVariant()
    assert validate_game(game)["optional"] == ["player", "objects"]
    frame, arcade = game.reset(7), Game().reset(7)
    colours = {tuple(c) for c in frame.reshape(-1, 3)}
    assert OBSTACLE in colours and not colours & {(176, 216, 240), (128, 128, 128)}
    assert game.objects(frame) == {"balls": len(game.game._balls)}
    assert frame.shape == arcade.shape


def test_the_player_stops_at_the_block() -> None:
    game = ArcadeVariant()
    r0, r1, c0, c1 = BOX
    for seed in range(12):
        game.reset(seed)
        game.game.place_player(10, (r0 + r1) // 2)  # level with the block, left of it
        for _ in range(40):
            frame = game.step("right")
            x, y = game.player(frame)
            assert x + game.game.config.player_size / 2 <= c0 + 0.5
        assert abs(game.game.player_position[0] + 3 - c0) <= 2  # it got there and stopped


def test_a_recording_loads_as_a_dataset(tmp_path) -> None:
    record(str(tmp_path / "rec"), clips=2, clip_frames=16)
    ds = Dataset(tmp_path / "rec")
    assert len(ds) == 2 and list(ds.meta.actions) == ArcadeVariant.actions
    first = next(iter(ds))
    assert first.frames.shape == (16, 64, 64, 3)
    assert np.array_equal(first.frames[0], ArcadeVariant().reset(1000))
