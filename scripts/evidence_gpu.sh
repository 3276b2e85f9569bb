#!/usr/bin/env bash
# The evidence experiment's gpu preset in one run on one GPU machine that has torch, transformers, peft,
# accelerate and einops but neither LeRobot, diffusers nor MuJoCo, and no network: installs gpu_wheels/ into a
# folder of its own, then generates the data and trains and evaluates every arm and seed at once. Each run's
# outcome and grounding measures are appended to <out stem>_files/lift_pair_runs.jsonl as it finishes; the
# report comes last.
#   python scripts/fill_gpu_wheels.py        # here (about 58 MiB)
#   bash scripts/evidence_gpu.sh             # there, from the repository's root; further flags go to the experiment
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${RECONVLA_GPU_WHEELS:-gpu_wheels}
SITE=${RECONVLA_GPU_SITE:-/tmp/reconvla_gpu_site}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
fi
# The repository's source comes first; the installed copy of this project supplies its metadata (LeRobot finds
# plugins by it) and the console scripts in $SITE/bin.
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PATH="$SITE/bin:$PATH"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
exec "$PY" -m lerobot_policy_reconvla.experiments.evidence --preset=gpu --out=outputs/evidence_gpu/evidence.md \
  --work_dir=outputs/evidence_gpu/work "$@"
