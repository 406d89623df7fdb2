#!/usr/bin/env bash
# Set up (scripts/setup.sh), then lint, type-check and run the default test suite.
# Slow and model-quality checks are behind markers: add `-m slow` or `-m quality` to run them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The engine clients' tests need headless Godot 3 and mcs + mono; without them they skip.
bash scripts/install_clients.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
