"""`aloha_sim` + `aloha_scripted` in-process, and the real CLIs on them: lerobot-record -> lerobot-train
--policy.type=reconvla -> lerobot-rollout; plus a policy whose cameras do not match the robot."""

from __future__ import annotations

import builtins
import gc
import json
import threading

import numpy as np
import pytest
from lerobot.robots import make_robot_from_config
from lerobot.teleoperators import make_teleoperator_from_config

from lerobot_policy_reconvla.embodiment.aloha import JOINT_NAMES
from lerobot_policy_reconvla.robots import AlohaConfig, AlohaSimConfig
from lerobot_policy_reconvla.robots.aloha.aloha import Aloha
from lerobot_policy_reconvla.robots.aloha_sim.aloha_sim import AlohaSim
from lerobot_policy_reconvla.teleoperators import AlohaScriptedConfig
from lerobot_policy_reconvla.teleoperators.aloha_scripted.aloha_scripted import AlohaScripted
from tests.fixtures.cli import run_cli
from tests.fixtures.tiny_policy import TINY_CLI, tiny_config

TASK = "Insert the peg into the socket."
H, W, FPS = 96, 128, 5
SIM_ARGS = [
    "--robot.type=aloha_sim",
    "--robot.task=insertion",
    f"--robot.fps={FPS}",
    f"--robot.image_height={H}",
    f"--robot.image_width={W}",
]
# The scripted teleoperator plays the robot's scenes: same task, first seed, rate and length.
SCRIPTED_ARGS = ["--teleop.type=aloha_scripted", "--teleop.task=insertion", f"--teleop.fps={FPS}"]
CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")


# --- in-process ---------------------------------------------------------------------------------------


@pytest.fixture
def sim():
    robot = make_robot_from_config(AlohaSimConfig(fps=10, image_height=H, image_width=W, episode_length=40))
    teleop = make_teleoperator_from_config(AlohaScriptedConfig(fps=10, episode_length=40))
    teleop.connect()
    robot.connect()
    yield robot, teleop
    robot.disconnect()
    teleop.disconnect()


def test_sim_has_the_real_robots_features(tmp_path):
    sim = AlohaSim(AlohaSimConfig(image_height=480, image_width=640, calibration_dir=tmp_path))
    real = Aloha(
        AlohaConfig(calibration_dir=tmp_path)
    )  # default cameras: 480 x 640 cam_high / cam_left_wrist / cam_right_wrist
    assert sim.observation_features == real.observation_features
    assert sim.action_features == real.action_features
    assert list(sim.action_features) == [f"{n}.pos" for n in JOINT_NAMES]


def test_scripted_teleop_drives_the_sim_and_scenes_roll_over(sim):
    robot, teleop = sim
    assert isinstance(robot, AlohaSim) and isinstance(teleop, AlohaScripted)
    first = robot.get_observation()
    assert set(first) == {f"{n}.pos" for n in JOINT_NAMES} | set(CAMERAS)
    for cam in CAMERAS:
        assert (
            first[cam].shape == (H, W, 3) and first[cam].dtype == np.uint8 and first[cam].flags.c_contiguous
        )
    assert first["left_gripper.pos"] == pytest.approx(0.0, abs=0.1)  # gym-aloha starts closed (normalised)

    for _ in range(5):  # 5 steps of 0.1 s = 25 physics steps
        robot.get_observation()
        assert (teleop.scene_seed, teleop.sim_step) == (robot.scene_seed, robot.sim_step)  # same clock
        sent = robot.send_action(teleop.get_action())
    assert robot.sim_step == 25 and robot.scene_seed == 0
    obs = robot.get_observation()
    # The arms follow the demonstration (grippers opening on the way to the objects).
    assert obs["left_gripper.pos"] > first["left_gripper.pos"] + 0.03
    assert max(abs(obs[k] - first[k]) for k in robot.action_features) > 0.05
    assert obs["right_waist.pos"] == pytest.approx(sent["right_waist.pos"], abs=0.05)

    for _ in range(3):  # 40 physics steps: the scene is over; the next observation starts seed 1
        robot.send_action(teleop.get_action())
        robot.get_observation()
    assert robot.scene_seed == 1 and robot.sim_step == 0
    # The teleoperator moves on with it: the first action of scene 1 is its demonstration's, not scene 0's.
    from lerobot_policy_reconvla.sim.scripted import ScriptedPolicy

    action = teleop.get_action()
    assert (teleop.scene_seed, teleop.sim_step) == (1, 5)
    expected = ScriptedPolicy("insertion", 1, 40).action(4)
    np.testing.assert_allclose([action[f"{n}.pos"] for n in JOINT_NAMES], expected)


def test_sim_clips_and_refuses_bad_actions():
    robot = AlohaSim(
        AlohaSimConfig(fps=50, image_height=H, image_width=W, max_relative_target={"left_waist": 0.05})
    )
    robot.connect()
    try:
        obs = robot.get_observation()
        sent = robot.send_action({"left_waist.pos": obs["left_waist.pos"] + 1.0})
        assert sent["left_waist.pos"] == pytest.approx(obs["left_waist.pos"] + 0.05)
        with pytest.raises(ValueError, match="non-finite"):
            robot.send_action({"left_waist.pos": float("inf")})
        with pytest.raises(ValueError, match="unknown action key"):
            robot.send_action({"waist.pos": 0.0})
    finally:
        robot.disconnect()


def test_sim_config_errors():
    with pytest.raises(ValueError, match="unknown ALOHA camera name"):
        AlohaSimConfig(cameras=["top"])  # the sim's own name: the robot speaks the real ALOHA's names
    with pytest.raises(ValueError, match="fps must divide 50"):
        AlohaSimConfig(fps=30)
    with pytest.raises(ValueError, match="unknown task"):
        AlohaSimConfig(task="fold_shirt")
    # The teleoperator takes the same scene settings, checked the same way.
    with pytest.raises(ValueError, match=r"fps must divide 50 .*got 30"):
        AlohaScriptedConfig(fps=30)
    with pytest.raises(ValueError, match="episode_length must be positive, got 0"):
        AlohaScriptedConfig(episode_length=0)


def test_scripted_teleop_must_be_connected():
    from lerobot.utils.errors import DeviceNotConnectedError

    teleop = AlohaScripted(AlohaScriptedConfig())
    with pytest.raises(DeviceNotConnectedError, match="not connected"):
        teleop.get_action()


# --- the CLIs: record -> train -> rollout -------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("record") / "aloha_sim_scripted"
    output = run_cli(
        "lerobot-record",
        [
            *SIM_ARGS,
            *SCRIPTED_ARGS,
            "--dataset.repo_id=local/aloha_sim_scripted",
            f"--dataset.root={root}",
            f"--dataset.single_task={TASK}",
            f"--dataset.fps={FPS}",
            "--dataset.num_episodes=2",
            "--dataset.episode_time_s=2",
            "--dataset.reset_time_s=0",
            "--dataset.video=false",
            "--dataset.push_to_hub=false",
            "--display_data=false",
            "--play_sounds=false",
        ],
    )
    return root, output


@pytest.fixture(scope="module")
def checkpoint(recorded, tmp_path_factory):
    root, _ = recorded
    run = tmp_path_factory.mktemp("train") / "run"
    output = run_cli(
        "lerobot-train",
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            "--dataset.repo_id=local/aloha_sim_scripted",
            f"--dataset.root={root}",
            f"--output_dir={run}",
            "--steps=2",
            "--batch_size=2",
            "--save_freq=2",
            "--log_freq=1",
            "--num_workers=0",
            "--wandb.enable=false",
        ],
    )
    assert "step:2 " in output and "recon_loss:" in output
    return run / "checkpoints" / "last" / "pretrained_model"


@pytest.mark.slow
def test_record_writes_a_three_camera_dataset(recorded):
    root, output = recorded
    assert "Recording episode 1" in output
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and info["robot_type"] == "aloha_sim" and info["fps"] == FPS
    assert info["features"]["observation.state"]["names"] == [f"{n}.pos" for n in JOINT_NAMES]
    assert info["features"]["action"]["names"] == [f"{n}.pos" for n in JOINT_NAMES]
    for cam in CAMERAS:
        assert info["features"][f"observation.images.{cam}"]["shape"] == [H, W, 3]

    from lerobot.datasets import LeRobotDataset

    dataset = LeRobotDataset("local/aloha_sim_scripted", root=root)
    assert dataset.num_frames >= 4  # ~5 frames per 2 s episode at 5 fps on this CPU
    frames = [dataset[i] for i in range(dataset.num_frames)]
    actions = np.stack([f["action"].numpy() for f in frames])
    states = np.stack([f["observation.state"].numpy() for f in frames])
    assert np.abs(np.diff(actions, axis=0)).max() > 1e-3  # the scripted demonstration moves
    assert np.abs(states[1:] - actions[:-1]).max() < 0.3  # the robot followed its actions
    assert frames[0]["observation.images.cam_high"].shape == (3, H, W)


@pytest.mark.slow
def test_rollout_runs_the_trained_policy_and_records_it(checkpoint, tmp_path):
    root = tmp_path / "rollout_aloha_sim"
    output = run_cli(
        "lerobot-rollout",
        [
            "--strategy.type=episodic",
            *SIM_ARGS,
            f"--policy.path={checkpoint}",
            f"--fps={FPS}",
            "--dataset.repo_id=local/rollout_aloha_sim",
            f"--dataset.root={root}",
            f"--dataset.single_task={TASK}",
            f"--dataset.fps={FPS}",
            "--dataset.num_episodes=1",
            "--dataset.episode_time_s=6",
            "--dataset.reset_time_s=0",
            "--dataset.video=false",
            "--dataset.push_to_hub=false",
            "--display_data=false",
            "--play_sounds=false",
        ],
    )
    assert "Rollout finished" in output and "AlohaSim disconnected" in output
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 1 and info["total_frames"] >= 2 and info["robot_type"] == "aloha_sim"
    assert info["features"]["action"]["names"] == [f"{n}.pos" for n in JOINT_NAMES]
    assert {f"observation.images.{c}" for c in CAMERAS} <= set(info["features"])


# --- a policy whose features do not match the robot ------------------------------------------------


@pytest.fixture(scope="module")
def mismatched_checkpoint(tmp_path_factory):
    """A tiny ReconVLA trained on the sim env's camera names (top, left_wrist, right_wrist)."""
    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy

    path = tmp_path_factory.mktemp("mismatch") / "policy"
    ReconVLAPolicy(tiny_config()).save_pretrained(path)
    return path


@pytest.mark.slow
def test_rollout_refuses_a_policy_with_other_cameras(mismatched_checkpoint):
    output = run_cli(
        "lerobot-rollout",
        [
            "--strategy.type=base",
            *SIM_ARGS,
            f"--policy.path={mismatched_checkpoint}",
            "--duration=2",
            "--play_sounds=false",
        ],
        expect_ok=False,
    )
    assert "Visual feature mismatch between policy and robot hardware" in output
    assert "observation.images.cam_high" in output and "--rename_map" in output


def test_real_aloha_left_unpowered_when_rollout_refuses_the_policy(
    mismatched_checkpoint, tmp_path, monkeypatch
):
    """LeRobot's own build_rollout_context on the real robot class over fake buses: it connects the
    robot (torque on), then raises on the camera mismatch without disconnecting it. The motors must end
    unpowered anyway: Robot.__del__ when the robot is collected, else our atexit hook when the CLI exits."""
    from lerobot.configs import PreTrainedConfig
    from lerobot.rollout import RolloutConfig, build_rollout_context

    from lerobot_policy_reconvla.robots.aloha.arms import FOLLOWER_MODELS, MOTOR_IDS, torque_off_at_exit
    from tests.fixtures.aloha_rig import ZERO_POSE, Hand, all_torques, follower_config
    from tests.fixtures.fake_dynamixel import _REGISTRY, FakeDynamixelBus, install_fake_serial
    from tests.fixtures.faketestcamera import fake_cams

    install_fake_serial(monkeypatch)
    by_id = {MOTOR_IDS[name]: model for name, model in FOLLOWER_MODELS.items()}
    buses = {
        f"follower_{s}": FakeDynamixelBus(f"follower_{s}", by_id, dict(ZERO_POSE)) for s in ("left", "right")
    }
    monkeypatch.setattr(builtins, "input", Hand(buses, "follower"))
    policy = PreTrainedConfig.from_pretrained(mismatched_checkpoint)
    policy.pretrained_path = mismatched_checkpoint
    cfg = RolloutConfig(robot=follower_config(tmp_path, cameras=fake_cams()), policy=policy, device="cpu")
    with pytest.raises(ValueError, match="Visual feature mismatch") as refused:
        build_rollout_context(cfg, threading.Event())
    assert "cam_high" in str(refused.value) and "observation.images.top" in str(refused.value)
    assert len(buses["follower_left"].sent(0x83, 116)) > 0  # it did connect and arm the robot first
    del refused
    gc.collect()
    torque_off_at_exit()  # what atexit runs as the CLI exits with the error
    assert not any(all_torques(buses).values())
    _REGISTRY.clear()
