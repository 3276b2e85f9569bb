#!/usr/bin/env bash
# Fills benchmarks/gpu_wheels/ with the packages bench_gpu.py needs that a bare GPU machine with torch,
# transformers, peft, accelerate, einops and the usual scientific stack (numpy, pandas, pyarrow, scipy, opencv,
# pillow) lacks: LeRobot, diffusers, draccus, gymnasium and what they import. Each at the version installed in
# the project's environment, as Python 3.12 manylinux wheels; fails if the folder passes 60 MiB.
#   bash benchmarks/fill_gpu_wheels.sh            # uses .venv/bin/python (made by scripts/setup_venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=benchmarks/gpu_wheels
LIMIT_MIB=60
PACKAGES=(lerobot diffusers draccus gymnasium Farama-Notifications datasets av deepdiff orderly-set mergedeep
          dill multiprocess pydantic pydantic_core typing-inspection pyserial dm-tree pytz)
specs=()
for name in "${PACKAGES[@]}"; do
  specs+=("$name==$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")")
done
rm -rf "$DEST"
mkdir -p "$DEST"
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$DEST" "${specs[@]}"
size_mib=$(( $(du -sb "$DEST" | cut -f1) / 1048576 ))
echo "$DEST: $(ls "$DEST" | wc -l) wheels, ${size_mib} MiB"
if (( size_mib > LIMIT_MIB )); then
  echo "error: $DEST is ${size_mib} MiB, over the ${LIMIT_MIB} MiB a GPU run can carry" >&2
  exit 1
fi
