"""Named presets for LeRobot's `--config_path`, shipped inside the package
(`lerobot_policy_reconvla/configs/`).

    reconvla-presets                        # list them
    reconvla-presets --name=reconvla_tiny   # print the file's path

    lerobot-train --config_path=$(reconvla-presets --name=reconvla_tiny) --dataset.repo_id=...

(or ``python -m lerobot_policy_reconvla.tools.presets ...``)

In a source checkout, `configs/policy/` and `configs/env/` at the top level are links to these folders,
so `--config_path=configs/policy/reconvla_tiny.json` works from the repository root too.
"""

from dataclasses import dataclass
from pathlib import Path

from lerobot.configs import parser

from ..common.cli import UsageError, run_entry_point

PROG = "reconvla-presets"
CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class PresetsConfig:
    """Lists the shipped presets, or prints the path of one."""

    # A preset's name: print its file's path (default: list every preset with its path).
    name: str | None = None


def available_presets() -> dict[str, Path]:
    """{name: path} of every preset: `configs/<kind>/<name>.json` (kind: policy, env)."""
    return {path.stem: path for path in sorted(CONFIGS_DIR.glob("*/*.json"))}


def preset_path(name: str) -> Path:
    presets = available_presets()
    if name not in presets:
        raise KeyError(f"no preset named {name!r}; available presets: {sorted(presets)} (in {CONFIGS_DIR})")
    return presets[name]


@parser.wrap()
def presets_command(cfg: PresetsConfig) -> int:
    if cfg.name is None:
        for name, path in available_presets().items():
            print(f"{name}\t{path}")
        return 0
    try:
        print(preset_path(cfg.name))
    except KeyError as error:
        raise UsageError(f"--name={cfg.name}: {error.args[0]}") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    """``reconvla-presets``: exit status 0, or 2 for an unknown preset (one line naming the available
    ones)."""
    return run_entry_point(presets_command, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(main())
