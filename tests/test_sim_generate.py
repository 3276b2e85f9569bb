"""The scripted-demo generator writes LeRobotDataset v3 files LeRobot loads; resume, refuse, interrupt."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from lerobot_policy_reconvla.sim.constants import TASK_DESCRIPTIONS
from lerobot_policy_reconvla.sim.generate import SIDECAR
from tests.fixtures import processes
from tests.fixtures.cli import run_cli

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def generate(*args) -> str:
    """reconvla-generate with `args`, in this process; what it wrote."""
    return run_cli("reconvla-generate", [str(arg) for arg in args])


def short_args(root: Path, episodes: int) -> list[str]:
    """The short dataset's flags: 2 cameras at 32 x 48, 12-step episodes that cannot succeed (so
    --keep_failed=true), one worker (the simulation runs in the generator's process)."""
    return [
        "--task=transfer_cube",
        f"--num_episodes={episodes}",
        f"--root={root}",
        "--repo_id=local/cube",
        "--cameras=[top,left_wrist]",
        "--image_size=[32,48]",
        "--episode_length=12",
        "--keep_failed=true",
        "--workers=1",
    ]


@pytest.fixture(scope="module")
def short_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen") / "cube"
    generate(*short_args(root, 2))  # one worker: workers do not change the data (tested below)
    return root


def test_generated_dataset_loads_with_the_right_features_lengths_and_task(short_dataset):
    ds = LeRobotDataset("local/cube", root=short_dataset)
    assert ds.meta.total_episodes == 2 and len(ds) == 24 and ds.fps == 50
    f = ds.features
    assert f["observation.images.top"]["dtype"] == "video" and tuple(
        f["observation.images.top"]["shape"]
    ) == (32, 48, 3)
    assert f["observation.state"]["names"][:7] == [
        "left_waist",
        "left_shoulder",
        "left_elbow",
        "left_forearm_roll",
        "left_wrist_angle",
        "left_wrist_rotate",
        "left_gripper",
    ]
    assert f["action"]["names"][7] == "right_waist" and tuple(f["action"]["shape"]) == (14,)
    assert f["observation.gaze_box.left_wrist"]["names"] == ["x0", "y0", "x1", "y1"]
    assert "observation.images.right_wrist" not in f
    assert list(ds.meta.tasks.index) == [TASK_DESCRIPTIONS["transfer_cube"]]

    item = ds[13]  # episode 1, frame 1
    assert item["task"] == TASK_DESCRIPTIONS["transfer_cube"] and int(item["episode_index"]) == 1
    assert item["observation.images.top"].shape == (3, 32, 48)  # decoded video, CHW float
    assert item["observation.images.top"].std() > 0
    box = item["observation.gaze_box.top"]
    assert box.shape == (4,) and box.dtype == torch.float32
    assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1  # the cube is in the top view
    # The first state is gym-aloha's start pose; actions are the scripted joint targets.
    first = ds[0]
    np.testing.assert_allclose(
        first["observation.state"][:6].numpy(), [0, -0.96, 1.16, 0, -0.3, 0], atol=1e-4
    )
    assert json.loads((short_dataset / SIDECAR).read_text())["episodes"][1]["seed"] == 1


def test_generated_boxes_pass_the_policys_box_checks(short_dataset):
    from lerobot_policy_reconvla.gaze_box import check_gaze_box_stats, is_malformed

    ds = LeRobotDataset("local/cube", root=short_dataset)
    check_gaze_box_stats(ds.meta.stats)  # what lerobot-train's policy construction checks
    for cam in ("top", "left_wrist"):
        boxes = torch.as_tensor(np.stack(ds.hf_dataset[f"observation.gaze_box.{cam}"]))  # (N, 4)
        assert len(boxes) == 24 and not is_malformed(boxes).any(), cam  # what every batch checks


def directory_contents(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a directory)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


def test_a_finished_run_run_again_says_nothing_and_changes_no_file(short_dataset, capsys):
    # A clean finish leaves none of LeRobot's scratch space (per-camera frame directories) behind.
    assert not (short_dataset / "images").exists() and not list(short_dataset.glob("tmp*"))
    before = directory_contents(short_dataset)
    episodes = len(json.loads((short_dataset / SIDECAR).read_text())["episodes"])
    output = generate(*short_args(short_dataset, episodes))
    output += capsys.readouterr().err
    assert "interrupted" not in output and f"already holds {episodes} episodes" in output
    assert directory_contents(short_dataset) == before  # same paths, same bytes


def test_rerun_resumes_and_a_different_setup_is_refused(short_dataset, capsys):
    from lerobot_policy_reconvla.sim.generate import main

    generate(*short_args(short_dataset, 3))
    ds = LeRobotDataset("local/cube", root=short_dataset)
    assert ds.meta.total_episodes == 3 and len(ds) == 36
    assert [e["seed"] for e in json.loads((short_dataset / SIDECAR).read_text())["episodes"]] == [0, 1, 2]
    assert int(ds[30]["episode_index"]) == 2

    assert (
        main(
            [
                "--task=transfer_cube",
                "--num_episodes=4",
                f"--root={short_dataset}",
                "--repo_id=local/cube",
                "--cameras=[top]",
                "--image_size=[32,48]",
                "--keep_failed=true",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "refusing to resume" in err and "--cameras" in err
    assert (
        main(
            [
                "--task=insertion",
                "--num_episodes=4",
                f"--root={short_dataset}",
                "--repo_id=local/cube",
                "--cameras=[top,left_wrist]",
                "--image_size=[32,48]",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "refusing to resume" in err and "Traceback" not in err
    assert LeRobotDataset("local/cube", root=short_dataset).meta.total_episodes == 3  # untouched


def test_bad_arguments_name_the_valid_values(tmp_path, capsys):
    from lerobot_policy_reconvla.sim.generate import main

    common = ["--num_episodes=1", f"--root={tmp_path / 'x'}", "--repo_id=local/x"]
    assert main(["--task=stack", *common]) == 2
    assert (
        "valid tasks: ['insertion', 'transfer_cube', 'lift', 'lift_named', 'lift_pair']"
        in capsys.readouterr().err
    )
    assert main(["--task=insertion", *common, "--cameras=[cam_high]"]) == 2
    err = capsys.readouterr().err
    assert "unknown camera(s) ['cam_high']; valid cameras" in err and "left_wrist" in err
    assert main(["--task=insertion", *common, "--workers=0"]) == 2
    assert "--workers must be positive, got 0" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("not a dataset")
    assert (
        main(["--task=insertion", "--num_episodes=1", f"--root={tmp_path / 'junk'}", "--repo_id=local/x"])
        == 2
    )
    assert "holds no LeRobot dataset" in capsys.readouterr().err
    assert (tmp_path / "junk" / "file.txt").read_text() == "not a dataset"
    assert not (tmp_path / "x").exists()  # refused before anything was written


# SIGINT with two worker processes (they must stop with the generator), SIGTERM with the episodes
# simulated in the generator's own process (no worker interpreters to start: the first episode comes sooner).
@pytest.mark.parametrize("sig, workers", [(signal.SIGTERM, 1), (signal.SIGINT, 2)])
def test_interrupted_run_leaves_a_loadable_dataset_of_finished_episodes(tmp_path, sig, workers):
    root = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "lerobot_policy_reconvla.sim.generate",
        "--task=transfer_cube",
        "--num_episodes=50",
        f"--root={root}",
        "--repo_id=local/killed",
        "--images=true",
        "--cameras=[top,left_wrist,right_wrist]",
        "--image_size=[24,24]",
        "--episode_length=120",
        "--keep_failed=true",
        f"--workers={workers}",
    ]
    sidecar, log = root / SIDECAR, tmp_path / "generate.log"
    with (
        log.open("w") as out,
        processes.started(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=ENV) as proc,
    ):
        # A first episode takes seconds alone, minutes on a loaded machine (two workers start first).
        deadline = time.time() + 600
        # Wait for the first saved episode, then for the second to be under way, and stop it mid-episode.
        while time.time() < deadline:
            if sidecar.exists() and json.loads(sidecar.read_text())["episodes"]:
                break
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        else:
            pytest.fail("no episode saved in time")
        time.sleep(0.8)  # an episode takes a few seconds: this lands inside the next one
        proc.send_signal(sig)
        proc.wait(timeout=120)
    assert proc.returncode == 130, log.read_text()[-3000:]
    saved = json.loads(sidecar.read_text())["episodes"]
    ds = LeRobotDataset("local/killed", root=root)
    assert ds.meta.total_episodes == len(saved) >= 1
    assert len(ds) == 120 * len(saved)  # no half episode
    assert ds[len(ds) - 1]["observation.images.top"].shape == (3, 24, 24)
    # Nothing of the episode in flight stays: no frames awaiting encoding, no temporary videos.
    assert not (root / "images").exists() and not list(root.glob("tmp*"))


def test_two_workers_write_the_dataset_one_process_writes(tmp_path):
    args = [
        "--task=transfer_cube",
        "--num_episodes=3",
        "--repo_id=local/par",
        "--images=true",
        "--cameras=[top,left_wrist]",
        "--image_size=[24,32]",
        "--episode_length=10",
        "--keep_failed=true",
        "--seed=5",
    ]
    from lerobot_policy_reconvla.sim.generate import main

    assert main([*args, f"--root={tmp_path / 'one'}", "--workers=1"]) == 0  # in this process
    generate(*args, f"--root={tmp_path / 'two'}", "--workers=2")
    one, two = (
        LeRobotDataset("local/par", root=tmp_path / "one"),
        LeRobotDataset("local/par", root=tmp_path / "two"),
    )
    assert one.meta.total_episodes == two.meta.total_episodes == 3 and len(one) == len(two) == 30
    for i in range(len(one)):
        a, b = one[i], two[i]
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b[key]), (i, key)
            else:
                assert value == b[key], (i, key)
    sidecars = [json.loads((tmp_path / name / SIDECAR).read_text()) for name in ("one", "two")]
    assert sidecars[0]["episodes"] == sidecars[1]["episodes"] and [
        e["seed"] for e in sidecars[0]["episodes"]
    ] == [5, 6, 7]


def test_perturbed_demonstrations_of_one_scene_record_the_scripts_targets(tmp_path, capsys):
    """--scene_seed places every episode alike; --action_noise moves the arms off the script's path while the
    recorded action stays the script's target (what the policy learns to command from where it is)."""
    from lerobot_policy_reconvla.sim.scripted import scripted_episode

    root, steps = tmp_path / "one_scene", 40
    args = [
        "--task=lift",
        "--repo_id=local/one",
        "--images=true",
        "--cameras=[top]",
        "--image_size=[24,32]",
        f"--episode_length={steps}",
        "--keep_failed=true",
        "--scene_seed=3",
        "--workers=1",
        f"--root={root}",
    ]
    generate(*args, "--num_episodes=2", "--action_noise=0.05")
    ds = LeRobotDataset("local/one", root=root)
    episodes = [[ds[i] for i in range(len(ds)) if int(ds[i]["episode_index"]) == e] for e in (0, 1)]
    script = torch.as_tensor(scripted_episode("lift", 3, steps).actions, dtype=torch.float32)  # (T, 14)
    states = []
    for rows in episodes:
        torch.testing.assert_close(torch.stack([r["action"] for r in rows]), script)
        states.append(torch.stack([r["observation.state"] for r in rows]))  # (T, 14)
    torch.testing.assert_close(states[0][0], states[1][0])  # same start
    arm_gap = (states[0] - states[1])[:, :6].abs().amax(dim=1)  # (T,) left arm, which the script holds still
    assert arm_gap[-10:].min() > 0.005, arm_gap  # each episode's seed drew its own perturbation
    sidecar = json.loads((root / SIDECAR).read_text())
    assert sidecar["scene_seed"] == 3 and sidecar["action_noise"] == 0.05
    assert [e["seed"] for e in sidecar["episodes"]] == [0, 1]

    from lerobot_policy_reconvla.sim.generate import main

    assert main([*args, "--num_episodes=3", "--action_noise=0.0"]) == 2
    assert "--action_noise=0.05, this run asks for --action_noise=0.0" in capsys.readouterr().err


def test_arm_perturbation_is_smooth_seeded_and_leaves_the_grippers_alone():
    from lerobot_policy_reconvla.sim.episodes import arm_perturbation

    noise = arm_perturbation(seed=7, steps=20000, std=0.02)  # (T, 14)
    assert noise.shape == (20000, 14) and not noise[:, [6, 13]].any()
    assert 0.015 < noise[:, :6].std() < 0.025  # the stationary std asked for
    arm = noise[:, 1]  # (T,) one joint

    def autocorrelation(lag):
        return np.corrcoef(arm[:-lag], arm[lag:])[0, 1]

    # A drift, not per-step jitter (which has none): correlation e^(-lag / 20) for the default 20 steps.
    assert autocorrelation(1) > 0.9 and 0.25 < autocorrelation(20) < 0.5
    np.testing.assert_array_equal(noise, arm_perturbation(seed=7, steps=20000, std=0.02))
    assert not np.allclose(noise, arm_perturbation(seed=8, steps=20000, std=0.02))
    assert not arm_perturbation(seed=7, steps=10, std=0.0).any()
