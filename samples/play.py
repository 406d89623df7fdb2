"""Play a world in a pygame window: arrows/WASD move, space fire, P pause, N step, R reset, Esc quit.

python samples/play.py                       # the shipped default model
python samples/play.py --model tiny --prompt "night, two balls"
"""

from __future__ import annotations

import argparse

from sdk import Session
from sdk.play import PlayOptions, play

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument(
    "--model", default="default", help="'default', 'tiny' or a checkpoint directory"
)
parser.add_argument("--prompt", default="", help="caption of the world")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

with Session.load(args.model, seed=args.seed) as session:
    ticks = play(session, PlayOptions(prompt=args.prompt, seed=args.seed))
print(f"played {ticks} ticks")
