#!/usr/bin/env bash
# Runs bench_gpu.py on a GPU machine from a copy of the repository: installs the wheels of
# gpu_wheels/ (python scripts/fill_gpu_wheels.py) into a folder of their own, then measures.
#   bash benchmarks/run_bench_gpu.sh --out bench_gpu.md       # further arguments go to bench_gpu.py
#   bash benchmarks/run_bench_gpu.sh --base both --out bench_gpu.md   # reconvla_pi05 against pi05 too
set -euo pipefail
cd "$(dirname "$0")/.."
SITE=${RECONVLA_BENCH_SITE:-/tmp/reconvla_bench_site}
PY=${PYTHON:-python3}
if compgen -G "gpu_wheels/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" gpu_wheels/*.whl
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" -m benchmarks.bench_gpu "$@"
