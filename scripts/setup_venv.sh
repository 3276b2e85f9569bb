#!/usr/bin/env bash
# Creates ./.venv with a Python 3.12 found on this machine and installs the project into it.
# Idempotent: a second run only re-installs the project (editable) if pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python312() {
  # A pyenv shim named python3.12 may sit on PATH without working, so run each candidate.
  local candidates=(python3.12)
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv root)"/versions/3.12*/bin/python3.12)
  fi
  candidates+=(/usr/bin/python3.12 /usr/local/bin/python3.12)
  for candidate in "${candidates[@]}"; do
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  echo "error: no working Python 3.12 found (tried: ${candidates[*]}); LeRobot 0.6 needs Python >= 3.12" >&2
  return 1
}

# torchcodec (LeRobot's preferred video decoder) needs FFmpeg's shared libraries at runtime.
ensure_ffmpeg_libs() {
  if ldconfig -p 2>/dev/null | grep -q 'libavcodec.so.59'; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing FFmpeg shared libraries for torchcodec"
    local libs=(libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8)
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${libs[@]}" >/dev/null 2>&1; then
      apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${libs[@]}" >/dev/null
    fi
  else
    echo "[setup] warning: FFmpeg shared libraries missing; video datasets will need --dataset.video_backend=pyav" >&2
  fi
}

ensure_ffmpeg_libs
if [ ! -x .venv/bin/python ]; then
  PYTHON=$(find_python312)
  echo "[setup] creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.reconvla-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing lerobot_policy_reconvla[test] into .venv (first time: several minutes)"
  .venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v -E '^WARNING: Location .* is ignored' || true
  .venv/bin/python -c 'import lerobot_policy_reconvla' # fail here, not later, if the install is broken
  touch "$stamp"
fi
