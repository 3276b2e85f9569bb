"""Named presets for LeRobot's `--config_path`, shipped inside the package (`lerobot_policy_reconvla/configs/`).

    python -m lerobot_policy_reconvla.tools.presets                  # list them
    python -m lerobot_policy_reconvla.tools.presets reconvla_tiny    # print the file's path

    lerobot-train --config_path=$(python -m lerobot_policy_reconvla.tools.presets reconvla_tiny) --dataset.repo_id=...

In a source checkout, `configs/policy/` and `configs/env/` at the top level are links to these folders,
so `--config_path=configs/policy/reconvla_tiny.json` works from the repository root too.
"""

import sys
from pathlib import Path

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"


def available_presets() -> dict[str, Path]:
    """{name: path} of every preset: `configs/<kind>/<name>.json` (kind: policy, env)."""
    return {path.stem: path for path in sorted(CONFIGS_DIR.glob("*/*.json"))}


def preset_path(name: str) -> Path:
    presets = available_presets()
    if name not in presets:
        raise KeyError(f"no preset named {name!r}; available presets: {sorted(presets)} (in {CONFIGS_DIR})")
    return presets[name]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        for name, path in available_presets().items():
            print(f"{name}\t{path}")
        return 0
    try:
        print(preset_path(args[0]))
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
