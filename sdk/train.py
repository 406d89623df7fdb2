"""``chunkworld train``: the one training recipe (``world/train/pipeline.py``), evaluated at the
end through ``Session`` as users drive it.

::

    chunkworld train --game arcade --out runs/arcade --minutes 180
    chunkworld play --model runs/arcade/model

The recipe is world code and never imports the SDK; this command hands it an evaluation that
loads the finished model into a :class:`sdk.Session` and runs the scorecard
(``world/eval/scorecard.py``) on held-out seeds. The tiny preset gets a short scorecard (a test
runs the whole recipe in a minute or two); the others the full one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def evaluate(model_dir: Path, out: Path, *, quick: bool = False) -> dict[str, Any]:
    """The scorecard of the model in ``model_dir`` through a Session; ``quick``: a few ticks."""
    from sdk.session import Session
    from world.eval.scorecard import ScorecardConfig, scorecard

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
        return make_world(rc, lambda m, o: evaluate(m, o, quick=quick))

    run_command(RecipeConfig, "chunkworld train", __doc__, run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
