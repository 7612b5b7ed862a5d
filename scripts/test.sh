#!/usr/bin/env bash
# The test command of the README: set up, lint, type-check, then run every test tier.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
stage() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
stage "ruff"
.venv/bin/ruff check eqliscsi rig tests bench
.venv/bin/ruff format --check eqliscsi rig tests bench
stage "mypy"
.venv/bin/mypy
stage "pytest"
exec .venv/bin/python -m pytest -q -ra "$@"
