#!/usr/bin/env bash
# The project's test command: sets up ./.venv (Python 3.12, found by itself) and runs every test, offline.
# Arguments go to pytest (a file, -k, -m "not slow", ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
# Two pytest processes (pytest-xdist), the cores split between them: most tests spend their time in one
# thread (MuJoCo, small tensors), so a second process fills the core the first leaves idle. A file goes to
# one process as a whole (its module fixtures are built once), in file order, the closed-loop file first
# (tests/conftest.py says why).
WORKERS=2
threads=$(( $(nproc) / WORKERS ))
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( threads > 0 ? threads : 1 ))}"

# pytest's status 5 is "no test selected" (arguments that select no `serial` test, or only those).
pytest_run() {
  local status=0
  .venv/bin/python -m pytest -q "$@" || status=$?
  return $(( status == 5 ? 0 : status ))
}
status=0
pytest_run --durations=15 -n "$WORKERS" --dist loadfile --no-loadscope-reorder -m "not serial" "$@" \
  || status=$?
# Then the tests marked `serial` (CPU DDP, which can deadlock at exit on a loaded machine), by themselves.
pytest_run -m serial "$@" || status=$?
exit "$status"
