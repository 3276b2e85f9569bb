#!/usr/bin/env bash
# The main job: sets up ./.venv (Python 3.12, found by itself) and runs the offline CPU demo.
# Arguments go to reconvla-demo, e.g. --output_dir=outputs/demo --steps=600 (all of them: docs/cli.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
exec .venv/bin/python -m lerobot_policy_reconvla.tools.demo "$@"
