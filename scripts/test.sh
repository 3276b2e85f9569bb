#!/usr/bin/env bash
# The project's test command: sets up ./.venv (Python 3.12, found by itself) and runs every test, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
# Two test processes, a test file each at a time (a file's shared fixtures are built once): much of a test's
# time is single-threaded (interpreter start-up, imports, simulation, encoding), so two keep two cores busy.
# One torch thread each, so the two do not contend for the cores. Later flags override these (-n 0: one process).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec .venv/bin/python -m pytest -q --durations=15 --numprocesses=2 --dist=loadfile "$@"
