#!/usr/bin/env bash
# The project's test command: sets up ./.venv (Python 3.12, found by itself) and runs every test, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
exec .venv/bin/python -m pytest -q --durations=15 "$@"
