#!/usr/bin/env bash
# The project's test command: sets up ./.venv (Python 3.12, found by itself) and runs every test, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
# Two pytest processes (pytest-xdist), the cores split between them: most tests spend their time in one
# thread (imports, MuJoCo, small tensors), so a second process fills the core the first leaves idle.
# tests/fixtures/scheduling.py starts the longest files first and runs the tests marked `alone` by themselves.
WORKERS=2
threads=$(( $(nproc) / WORKERS ))
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( threads > 0 ? threads : 1 ))}"
exec .venv/bin/python -m pytest -q --durations=15 -n "$WORKERS" --dist loadfile --no-loadscope-reorder "$@"
