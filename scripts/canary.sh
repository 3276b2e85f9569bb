#!/usr/bin/env bash
# The plugin against another LeRobot: a source tree, e.g. a clone of LeRobot's main branch.
#
#   bash scripts/canary.sh <LeRobot source tree> [pytest arguments, default: -m "not slow"]
#
# Builds .venv-canary: that LeRobot installed over the packages of the project's .venv (set up first by
# scripts/setup_venv.sh; nothing of .venv is changed, and no dependency is resolved again: the canary is
# offline). Then, in that environment: the tests (the fast suite unless arguments say otherwise), and one
# pass of the tiny preset through LeRobot's own commands: reconvla-generate, lerobot-train, lerobot-eval.
# Prints the LeRobot version and commit it ran on; exit status 0 when everything passed.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$1/pyproject.toml" ]; then
  echo "usage: bash scripts/canary.sh <LeRobot source tree (with pyproject.toml)> [pytest arguments]" >&2
  exit 2
fi
tree=$(cd "$1" && pwd)
shift
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh

venv=.venv-canary
base_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
base_python=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
rm -rf "$venv"
"$base_python" -m venv "$venv"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# .venv's packages after the canary's own (its LeRobot comes first); the project's editable install too.
echo "import site; site.addsitedir('$base_site')" >"$site/reconvla_base_packages.pth"
# --ignore-installed: install beside .venv's LeRobot, never uninstall it from there.
"$venv/bin/python" -m pip install -q --no-deps --no-build-isolation --ignore-installed "$tree"
# The console scripts of .venv's packages (accelerate, the plugin's own, ...) that the canary's LeRobot did
# not install, run by the canary's Python.
canary_python="$(pwd)/$venv/bin/python"
for script in .venv/bin/*; do
  name=$(basename "$script")
  if [ ! -e "$venv/bin/$name" ] && head -c 2 "$script" | grep -q '#!' && head -n 1 "$script" | grep -q python; then
    { echo "#!$canary_python"; tail -n +2 "$script"; } >"$venv/bin/$name"
    chmod +x "$venv/bin/$name"
  fi
done
version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("lerobot"))')
commit=$(git -C "$tree" rev-parse HEAD 2>/dev/null || echo "not a git checkout")
echo "[canary] LeRobot $version ($commit) from $tree"
"$venv/bin/python" -c 'import lerobot, lerobot_policy_reconvla; print("[canary] imports", lerobot.__file__)'

export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
status=0
# docs/cli.md lists the flags of the LeRobot CI runs (its parsers write it): another LeRobot's differ.
if [ $# -eq 0 ]; then set -- -m "not slow" --deselect tests/test_cli_reference.py::test_cli_reference_is_up_to_date; fi
"$venv/bin/python" -m pytest -q -p no:cacheprovider -n 2 --dist loadfile "$@" || status=$?

# One pass of the tiny preset through LeRobot's commands, as a user runs them.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
  "$venv/bin/python" -m lerobot_policy_reconvla.sim.generate --task=lift --num_episodes=1 \
    --root="$work/data" --repo_id=local/canary --image_size='[48,64]' --episode_length=20 \
    --keep_failed=true --workers=1 --shadows=false &&
    "$venv/bin/lerobot-train" --config_path=configs/policy/reconvla_tiny.json --dataset.repo_id=local/canary \
      --dataset.root="$work/data" --output_dir="$work/train" --steps=2 --batch_size=2 --save_freq=2 \
      --num_workers=0 --wandb.enable=false &&
    "$venv/bin/lerobot-eval" --policy.path="$work/train/checkpoints/last/pretrained_model" \
      --env.type=aloha_multicam --env.task=lift --env.observation_height=48 --env.observation_width=64 \
      --env.episode_length=10 --eval.n_episodes=1 --eval.batch_size=1 --output_dir="$work/eval"
} >"$work/pass.log" 2>&1 && echo "[canary] tiny preset: generate, lerobot-train, lerobot-eval passed" || {
  status=1
  tail -n 40 "$work/pass.log"
  echo "[canary] tiny preset pass FAILED"
}
echo "[canary] LeRobot $version ($commit): $([ "$status" = 0 ] && echo passed || echo FAILED)"
exit "$status"
