"""`bridges` and every submodule import without torch, `world` or `sdk`."""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import importlib, json, pkgutil, sys
import bridges
names = [m.name for m in pkgutil.walk_packages(bridges.__path__, "bridges.")]
for name in names:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "world", "sdk"))
print(json.dumps({"modules": names, "bad": bad}))
"""


def test_bridges_loads_no_torch_world_or_sdk() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "bridges.server" in result["modules"] and "bridges.bench" in result["modules"]
    assert result["bad"] == []
