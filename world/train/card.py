"""The model card the recipe writes beside its model (``<out>/model/MODEL_CARD.md``): the one
command that made it, the machine, the minutes and steps per stage, and the scorecard."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from world.core.cpus import usable_cores
from world.train.data import Dataset


def write_card(model_dir: Path, doc: dict[str, Any], out: Path) -> Path:
    """``<model_dir>/MODEL_CARD.md``: the command, the minutes per stage, the machine, the
    plan and the scorecard (when there is one)."""
    rc = doc["recipe"]
    shown = {
        k: v for k, v in rc.items() if v not in ("", None) and not (k == "game" and rc["data"])
    }
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in shown.items())
    title = f"world of the recordings in {rc['data']}" if rc["data"] else f"{rc['game']} world"
    lines = [
        f"# {title} ({rc['preset']} preset)",
        "",
        "Made by one command, with no other input:",
        "",
        f"    chunkworld train {flags}",
        "",
        f"Machine: {doc.get('cpu') or platform.machine()}, {usable_cores()} CPU cores; "
        f"finished {doc.get('finished') or time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC.",
        "",
        *_game_lines(rc, doc, out),
        "| stage | minutes | steps |",
        "| --- | --- | --- |",
    ]
    steps = doc["steps"]
    for name, sec in doc["seconds"].items():
        label, count = name, steps.get(name, "")
        if name == "denoiser" and "codec" in steps:  # one stage trains the codec, then it
            label, count = "codec, then denoiser", f"{steps['codec']}, {count}"
        lines.append(f"| {label} | {sec / 60:.1f} | {count} |")
    lines.append(f"| all | {sum(doc['seconds'].values()) / 60:.1f} | |")
    card_file = out / "scorecard.json"
    if card_file.exists():
        card = json.loads(card_file.read_text())
        lines += ["", "## Scorecard (`chunkworld eval`, held-out seeds, through Session)", ""]
        lines += ["| line | value | bar | met |", "| --- | --- | --- | --- |"]
        for name, row in card.get("lines", {}).items():
            lines.append(f"| {name} | {row['value']} | {row['bar']} | {row['met']} |")
    path = model_dir / "MODEL_CARD.md"
    if model_dir.exists():
        path.write_text("\n".join(lines) + "\n")
    return path


def _game_lines(rc: dict[str, Any], doc: dict[str, Any], out: Path) -> list[str]:
    """The world's frames, keys and pace per step: the recipe's budget is minutes, so a larger
    frame (tokens grow with the side squared) buys fewer steps, not a longer run."""
    data = Path(rc.get("data") or out / "data")
    if not (data / "meta.json").exists():
        return []
    meta = Dataset(data).meta
    h, w = meta.frame_size
    pace = ", ".join(f"{k} {v:.2f} s" for k, v in doc.get("pace_s", {}).items())
    source = f"recordings in {data}" if rc.get("data") else f"the game {rc['game']}"
    return [
        f"Learned from {source}: {h}x{w} frames, keys {', '.join(meta.actions)}.",
        f"Seconds per training step at this size: {pace or 'not planned yet'}; the budget is "
        "wall-clock minutes, so larger frames (tokens grow with the side squared) buy fewer "
        "steps in the same time.",
        "",
    ]
