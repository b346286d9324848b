#!/usr/bin/env bash
# The main job: set everything up, then serve the example experiment (examples/sentiment) on
# port 8030. Stop it with Ctrl-C; start workers against it from any machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
exec "${GRIDEXP_VENV:-$ROOT/.venv}/bin/gridexp-server" "$ROOT/examples/sentiment" --port "${PORT:-8030}" "$@"
