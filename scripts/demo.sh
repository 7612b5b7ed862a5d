#!/usr/bin/env bash
# The demo of the README: set up, then run the main job on the embedded rig.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m rig.demo "$@"
