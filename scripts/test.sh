#!/usr/bin/env bash
# Set up (see setup.sh) and run the default test suite: CPU only, no network, tiny checkpoints built in code.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One worker per core; a file's tests stay in one worker (they share its fixtures and its local Ray instance).
exec .venv/bin/python -m pytest -q -n auto --dist loadfile "$@"
