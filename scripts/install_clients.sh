#!/usr/bin/env bash
# Install the toolchains the engine clients' tests need, where they are missing: headless Godot 3
# (Debian: godot3-server) for bridges/clients/godot, and mcs + mono (Debian: mono-mcs,
# mono-runtime) for the C# client in bridges/clients/unity. tests/test_engine_clients.py and
# tests/test_client_conformance.py skip a client whose toolchain is absent. Needs root and apt;
# otherwise it says so and leaves the tests to skip. `--reinstall` of the three packages took 34 s
# on the 2-core machine (2026-12-05); a bare machine also fetches their dependencies.
set -uo pipefail
want=()
command -v godot3-server >/dev/null || want+=(godot3-server)
command -v mcs >/dev/null || want+=(mono-mcs)
command -v mono >/dev/null || want+=(mono-runtime)
[ ${#want[@]} -eq 0 ] && [ "${1:-}" != "--reinstall" ] && exit 0
[ "${1:-}" = "--reinstall" ] && want=(godot3-server mono-mcs mono-runtime)
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
  echo "note: ${want[*]} not installed (needs root and apt-get); the engine clients' tests will skip"
  exit 0
fi
started=$(date +%s)
flags=(-y -qq)
[ "${1:-}" = "--reinstall" ] && flags+=(--reinstall)
{ timeout 300 apt-get install "${flags[@]}" "${want[@]}" \
  || { timeout 300 apt-get update -qq && timeout 300 apt-get install "${flags[@]}" "${want[@]}"; }; } \
  >/dev/null 2>&1 || { echo "note: ${want[*]} not installed; the engine clients' tests will skip"; exit 0; }
echo "installed ${want[*]} in $(( $(date +%s) - started )) s"
