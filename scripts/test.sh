#!/usr/bin/env bash
# The test command of the README: set up, lint, type-check, then run every test tier.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The Docker tier needs a running engine; on a fresh machine none is.  Not fatal here:
# without one the tier skips with its reason (and fails under EQLISCSI_RIG_REQUIRED=1).
bash rig/docker/ensure-dockerd.sh || echo "test.sh: no Docker engine; the Docker tier will skip"
stage() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
stage "ruff"
.venv/bin/ruff check eqliscsi rig tests bench
.venv/bin/ruff format --check eqliscsi rig tests bench
stage "mypy"
.venv/bin/mypy
stage "pytest"
exec .venv/bin/python -m pytest -q -ra "$@"
