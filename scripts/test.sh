#!/usr/bin/env bash
# Set up (scripts/setup.sh), then lint, type-check and run the default test suite.
# Slow and model-quality checks are behind markers: add `-m slow` or `-m quality` to run them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The Godot client's test needs headless Godot 3 (Debian: godot3-server); without it, it skips.
if ! command -v godot3-server >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  { timeout 300 apt-get install -y -qq godot3-server \
    || { timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq godot3-server; }; } \
    >/dev/null 2>&1 || echo "note: godot3-server not installed; tests/test_engine_clients.py will skip"
fi
# The C# (Unity) client's test needs mcs + mono (Debian: mono-mcs, mono-runtime); without, it skips.
if ! command -v mcs >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  { timeout 300 apt-get install -y -qq mono-mcs mono-runtime \
    || { timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq mono-mcs mono-runtime; }; } \
    >/dev/null 2>&1 || echo "note: mono-mcs not installed; tests/test_engine_clients.py will skip"
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
