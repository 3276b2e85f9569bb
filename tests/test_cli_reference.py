"""docs/cli.md is what the console scripts' own --help says today."""

import os
import sys
from pathlib import Path

from tests.fixtures import processes

REPO = Path(__file__).resolve().parents[1]


def test_cli_reference_is_up_to_date():
    env = dict(os.environ, HF_HUB_OFFLINE="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    result = processes.run(
        [sys.executable, REPO / "scripts" / "cli_reference.py", "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-5000:]
