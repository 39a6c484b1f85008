#!/usr/bin/env bash
# Set up (see setup.sh) and run the default test suite: CPU only, no network, tiny checkpoints built in code.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
