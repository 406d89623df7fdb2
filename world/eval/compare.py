"""Two scorecards of the same trials, line by line: which differences are more than chance.

::

    chunkworld compare runs/eval-default runs/eval-mine    # eval directories or scorecard.json

A scorecard (``chunkworld eval``) measures each line on a handful of units: 16 rollouts, 8 idle
starts, 48 prompt trials, 8 caption starts. Two models scored on the same trials (the same seeds,
so the same engine frames, actions and prompts) differ on a line by chance as well as by skill:
on 16 rollouts a line moves a few points when a single rollout goes the other way. So each line
is compared unit by unit (``units`` in the scorecard), with a paired sign test: of the units on
which the two differ, how many went each way. Were neither model better, each way would be as
likely as a coin's side, and ``p`` is the chance of a split at least this lopsided (exact,
two-sided). A line is ``better`` or ``worse`` where ``p`` < ``--alpha`` (0.05), else ``no clear
change``. Lines measured once (the long rollout, the pace, copy-last over every horizon) show
their values, untested.

The test asks only whether the second model wins more units than chance allows, not by how
much: a line can read ``no clear change`` while its mean moved, when a few units carry the move.
Scorecards written before units were kept compare by value alone.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from world.eval.scorecard import line_sense

ALPHA = 0.05


@dataclass(frozen=True)
class LineChange:
    """One line of two scorecards: values, the units each way, the sign test and its verdict."""

    name: str
    a: float
    b: float
    better: int  # units on which the second scorecard is better
    worse: int
    same: int
    p: float | None  # the sign test's p; None where the line has no units
    verdict: str  # "better", "worse", "no clear change", "not tested"


def sign_test(better: int, worse: int) -> float:
    """Exact two-sided sign test: the chance, were each unit a fair coin, of a split of
    ``better + worse`` units at least as lopsided as this one (1.0 when none differ)."""
    n, k = better + worse, min(better, worse)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def load_card(path: str | Path) -> dict[str, Any]:
    """A scorecard from an eval directory or its ``scorecard.json``.

    Raises:
        ValueError: no scorecard there, or not one (says what to pass).
    """
    p = Path(path)
    file = p / "scorecard.json" if p.is_dir() else p
    if not file.is_file():
        raise ValueError(
            f"{path}: no scorecard.json there; give a directory `chunkworld eval --out` wrote, "
            "or its scorecard.json"
        )
    try:
        card = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: not JSON ({e}); give a scorecard.json of chunkworld eval") from e
    if not isinstance(card, dict) or not isinstance(card.get("lines"), dict):
        raise ValueError(f"{file}: no 'lines' in it; give a scorecard.json of chunkworld eval")
    return card


def compare(a: dict[str, Any], b: dict[str, Any], alpha: float = ALPHA) -> list[LineChange]:
    """Each line both scorecards have, ``b`` against ``a``, in ``a``'s order.

    Raises:
        ValueError: the two were scored on different trials (their ``trials`` differ), where
            units would not pair.
    """
    if "trials" in a and "trials" in b and a["trials"] != b["trials"]:
        raise ValueError(
            f"the scorecards ran different trials ({a['trials']} against {b['trials']}): "
            "score both with the same chunkworld eval settings (--episodes, --horizon, "
            "--prompt-trials, --long-ticks) to compare them"
        )
    ua, ub = a.get("units", {}), b.get("units", {})
    rows = []
    for name, line in a["lines"].items():
        if name not in b["lines"]:
            continue
        va, vb = float(line["value"]), float(b["lines"][name]["value"])
        xa, xb = ua.get(name), ub.get(name)
        if xa is None or xb is None or len(xa) != len(xb):
            rows.append(LineChange(name, va, vb, 0, 0, 0, None, "not tested"))
            continue
        sign = 1.0 if line_sense(name, line) == "min" else -1.0
        diffs = [sign * (y - x) for x, y in zip(xa, xb, strict=True)]
        up, down = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        p = sign_test(up, down)
        verdict = "no clear change"
        if p < alpha:
            verdict = "better" if up > down else "worse"
        rows.append(LineChange(name, va, vb, up, down, len(diffs) - up - down, p, verdict))
    return rows


def render(rows: list[LineChange], names: tuple[str, str]) -> str:
    """The comparison as a text table, and a last line counting the verdicts."""
    head = f"{'line':<20} {'A':>9} {'B':>9}  {'B better / worse / same':>24}  {'p':>6}  verdict"
    out = [f"A: {names[0]}", f"B: {names[1]}", head]
    for r in rows:
        units = f"{r.better} / {r.worse} / {r.same}" if r.p is not None else "-"
        p = f"{r.p:.3f}" if r.p is not None else "-"
        out.append(f"{r.name:<20} {r.a:>9.4g} {r.b:>9.4g}  {units:>24}  {p:>6}  {r.verdict}")
    counts = {v: sum(r.verdict == v for r in rows) for v in ("better", "worse")}
    untested = [r.name for r in rows if r.p is None]
    out.append(
        f"B better on {counts['better']} lines, worse on {counts['worse']}, no clear change "
        f"on {len(rows) - len(untested) - sum(counts.values())}"
        + (f"; not tested: {', '.join(untested)}" if untested else "")
    )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="chunkworld compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", help="the scorecard to compare against (an eval directory or its JSON)")
    p.add_argument("b", help="the scorecard compared")
    p.add_argument(
        "--alpha", type=float, default=ALPHA, help="a line changes where p < alpha (0.05)"
    )
    args = p.parse_args(argv)
    if not 0.0 < args.alpha < 1.0:
        print(
            f"chunkworld compare: error: --alpha {args.alpha:g}: give it in (0, 1)", file=sys.stderr
        )
        return 2
    try:
        rows = compare(load_card(args.a), load_card(args.b), args.alpha)
    except ValueError as e:
        print(f"chunkworld compare: error: {e}", file=sys.stderr)
        return 2
    print(render(rows, (args.a, args.b)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
