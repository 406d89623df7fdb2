"""``chunkworld train``: the one training recipe (``world/train/pipeline.py``), evaluated at the
end through ``Session`` as users drive it.

::

    chunkworld train --game arcade --out runs/arcade --minutes 180
    chunkworld play --model runs/arcade/model
    chunkworld train --game mygames.paddle:Paddle --out runs/paddle   # any game: docs/your-game.md

The recipe is world code and never imports the SDK; this command hands it an evaluation that
loads the finished model into a :class:`sdk.Session` and runs the scorecard
(``world/eval/scorecard.py``) on held-out seeds. The tiny preset gets a short scorecard (a test
runs the whole recipe in a minute or two); the others the full one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def evaluate(
    model_dir: Path, out: Path, *, quick: bool = False, game: str = "arcade"
) -> dict[str, Any]:
    """The scorecard of the model in ``model_dir`` through a Session; ``quick``: a few ticks.

    ``game`` (a built-in name or ``package.module:ClassName``) is the true game it is scored
    against: the arcade's own scorecard for the arcade, the protocol's lines
    (:mod:`world.eval.gamecard`) for any other; ``""`` (recordings, no game): no scorecard.
    """
    from sdk.session import Session
    from world.eval.scorecard import ScorecardConfig, scorecard
    from world.games import load_game
    from world.games.arcade import Game as Arcade

    if not game:
        return {"lines": {}, "met": 0, "note": "trained on recordings: no game to score against"}
    true_game = load_game(game)
    if not isinstance(true_game, Arcade):
        from world.eval.gamecard import game_scorecard

        with Session.load(str(model_dir)) as session:
            return game_scorecard(
                session,
                true_game,
                chunk_frames=session.info.chunk_frames,
                history_chunks=session.info.history_chunks,
                episodes=2 if quick else 8,
                horizon=4 if quick else 16,
                long_ticks=20 if quick else 1000,
                out=out,
            )

    config = (
        ScorecardConfig(episodes=2, horizon=4, long_ticks=20, prompt_trials=4)
        if quick
        else ScorecardConfig()
    )
    with Session.load(str(model_dir)) as session:
        info = session.info
        return scorecard(
            session,
            frame_size=info.frame_height,
            chunk_frames=info.chunk_frames,
            history_chunks=info.history_chunks,
            config=config,
            out=out,
        )


def main(argv: list[str] | None = None) -> None:
    from world.train.pipeline import RecipeConfig, make_world
    from world.train.trainkit import run_command

    def run(rc: RecipeConfig) -> Path:
        quick = rc.preset == "tiny"
        game = "" if rc.data else rc.game
        return make_world(rc, lambda m, o: evaluate(m, o, quick=quick, game=game))

    run_command(RecipeConfig, "chunkworld train", __doc__, run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
