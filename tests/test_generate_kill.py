"""Fault injection: the generator killed with SIGKILL at every stage of an episode loses no finished episode.

Each run is killed at a named point (tests/fixtures/kill_at.py), the next run resumes; the final dataset must
equal, file for file and frame for frame, the one an unkilled run writes.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from lerobot_policy_reconvla.sim.recovery import SIDECAR
from tests.fixtures import processes

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
EPISODES, LENGTH = 3, 10
# Killed runs never reach the end: every kill is followed by a run that resumes (and is killed in turn).
# (point, its n-th call, simulation workers): two worker processes where the kill finds them busy (the
# processes a killed run could leave behind: they must die with it); elsewhere the episodes are simulated
# in the generator's own process, which spares each run two interpreters importing LeRobot (the data does
# not depend on the workers).
KILLS = [
    ("commit", 1, 1),  # creating the dataset: before the staging directory is renamed into place
    ("add_frame", 15, 2),  # during the second episode (the first one committed), workers simulating ahead
    ("encode_video", 2, 1),  # saving it: parquet rows and the first camera's video in place, not the second's
    ("save_metadata", 1, 1),  # saving it: data and video in place, no metadata yet
    ("finalize", 1, 1),  # saved, files not closed: no parquet footer, episode metadata still buffered
    ("commit", 1, 2),  # complete on disk, not committed; the workers hold the next episodes
    ("next_episode", 2, 1),  # between episodes: the second committed, the third not started
]


def generator_args(root: Path, workers: int) -> list[str]:
    return [
        "--task=transfer_cube",
        f"--num_episodes={EPISODES}",
        f"--root={root}",
        "--repo_id=local/kill",
        "--cameras=[top,left_wrist]",
        "--image_size=[24,32]",
        f"--episode_length={LENGTH}",
        "--keep_failed=true",
        f"--workers={workers}",
    ]


def run(root: Path, kill: tuple[str, int] | None, log: Path, workers: int = 1) -> tuple[int, str, list[str]]:
    """(exit code, output, processes of the run still alive 15 s after it ended)."""
    args = generator_args(root, workers)
    if kill is None:
        cmd = [sys.executable, "-m", "lerobot_policy_reconvla.sim.generate"]
    else:
        cmd = [sys.executable, "-m", "tests.fixtures.kill_at", kill[0], str(kill[1]), "--"]
    # Output to a file, not a pipe: a pipe would also wait for any child the killed process left behind.
    with (
        log.open("w") as out,
        processes.started([*cmd, *args], stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=ENV) as process,
    ):
        code = process.wait(timeout=300)
        alive = processes.wait_for_no_command_process(process, within=15)
        left = []
        for leftover in alive:
            try:
                left.append(processes.describe(leftover))
            except psutil.NoSuchProcess:  # exited since
                continue
    return code, log.read_text(), left


def files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != Path(SIDECAR).name
    )


@pytest.mark.slow
def test_sigkill_at_every_stage_loses_nothing_and_the_result_equals_an_unkilled_run(tmp_path):
    from lerobot_policy_reconvla.sim.generate import main

    reference_root, killed_root = tmp_path / "reference", tmp_path / "killed"
    # The unkilled reference, in this process with one worker: the data does not depend on the workers
    # (test_sim_generate.py compares one and two).
    assert main(generator_args(reference_root, workers=1)) == 0

    survived = []
    for i, (point, n, workers) in enumerate(KILLS):
        kill = (point, n)
        code, output, left = run(killed_root, kill, tmp_path / f"kill{i}.log", workers)
        assert code == -signal.SIGKILL and f"KILL at {kill[0]} #{kill[1]}" in output, output[-3000:]
        assert not left, f"alive 15 s after the kill at {kill}: {left}"  # workers die with the generator
        assert "Traceback" not in output, output[-3000:]  # the rollback of the previous kill went through
        survived.append(kill)
    code, output, left = run(killed_root, None, tmp_path / "final.log")
    assert code == 0 and "Traceback" not in output and not left, (left, output[-3000:])
    assert len(survived) == len(KILLS)

    reference = LeRobotDataset("local/kill", root=reference_root)
    killed = LeRobotDataset("local/kill", root=killed_root)
    assert killed.meta.total_episodes == EPISODES and len(killed) == EPISODES * LENGTH
    seeds = [e["seed"] for e in json.loads((killed_root / SIDECAR).read_text())["episodes"]]
    assert (
        seeds
        == [e["seed"] for e in json.loads((reference_root / SIDECAR).read_text())["episodes"]]
        == [0, 1, 2]
    )
    assert files(killed_root) == files(reference_root)  # nothing left over from the killed runs
    for column in ["observation.state", "action", "observation.gaze_box.top", "episode_index", "frame_index"]:
        np.testing.assert_array_equal(
            np.stack(killed.hf_dataset[column]), np.stack(reference.hf_dataset[column])
        )
    for index in range(0, len(killed), 3):
        # Same frames through the same encoder: decoded pixels agree to within the codec's noise.
        torch.testing.assert_close(
            killed[index]["observation.images.top"],
            reference[index]["observation.images.top"],
            atol=4 / 255,
            rtol=0,
        )
