"""Play a world in a window: the model generates on its own thread, the window draws at the
world's fps. Arrows/WASD move, space fire, Enter types a prompt, P pause, N step, R reset,
F5/F9 save/load, V record, F12 screenshot, Esc quit (all shown in the window).

python samples/play.py                                   # the shipped default model
python samples/play.py --model tiny --prompt "night, two balls" --record run.gif
python samples/play.py --headless --max-ticks 50 --record run.npy   # no window: offscreen
"""

from __future__ import annotations

import argparse
import os

from sdk import Session
from sdk.play import PlayOptions, Start, play

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--model", default="default", help="'default', 'tiny' or a checkpoint dir")
parser.add_argument("--prompt", default="", help="caption of the world")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--record", help="record to .gif/.mp4/.npy (+ an action log .log.json)")
parser.add_argument("--max-ticks", type=int, default=None, help="quit after this many ticks")
parser.add_argument("--headless", action="store_true", help="no window (SDL dummy driver)")
args = parser.parse_args()
if args.headless:
    os.environ["SDL_VIDEODRIVER"] = "dummy"

with Session.load(args.model, seed=args.seed) as session:
    start = Start(prompt=args.prompt, seed=args.seed)
    ticks = play(session, PlayOptions(start=start, record=args.record, max_ticks=args.max_ticks))
print(f"played {ticks} ticks")
