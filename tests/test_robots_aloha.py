"""The real `aloha` robot and `aloha_leader` teleoperator over fake Dynamixel buses.

LeRobot's DynamixelMotorsBus and dynamixel_sdk run unchanged; only the serial port is fake (it speaks
Dynamixel Protocol 2.0, see tests/fixtures/fake_dynamixel.py). A calibration "hand" answers the prompts
of `calibrate()` and moves the fake joints, as a person would.
"""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest
from lerobot.cameras.opencv import OpenCVCameraConfig
from lerobot.robots import make_robot_from_config
from lerobot.teleoperators import make_teleoperator_from_config

from lerobot_policy_reconvla.embodiment.aloha import JOINT_NAMES
from lerobot_policy_reconvla.robots import AlohaConfig
from lerobot_policy_reconvla.robots.aloha.aloha import Aloha
from lerobot_policy_reconvla.robots.aloha.arms import MOTOR_IDS, torque_off_at_exit
from lerobot_policy_reconvla.teleoperators.aloha_leader.aloha_leader import AlohaLeader
from tests.fixtures.aloha_rig import (
    CLOSED,
    TICKS_PER_RAD,
    ZERO_POSE,
    Hand,
    all_torques,
    connected_follower,
    follower_config,
    leader_config,
    no_input,
)
from tests.fixtures.fake_dynamixel import (
    ADDR_GOAL_POSITION,
    ADDR_OPERATING_MODE,
    ADDR_SECONDARY_ID,
    INST_SYNC_WRITE,
)
from tests.fixtures.faketestcamera import fake_cams

# --- tests ------------------------------------------------------------------------------------------


def test_lerobot_factories_find_the_devices(tmp_path):
    robot = make_robot_from_config(follower_config(tmp_path))
    teleop = make_teleoperator_from_config(leader_config(tmp_path))
    assert type(robot) is Aloha and type(teleop) is AlohaLeader
    assert list(robot.action_features) == [f"{n}.pos" for n in JOINT_NAMES]
    assert list(teleop.action_features) == list(robot.action_features)


def test_connect_calibrate_read_write(tmp_path, arms, monkeypatch):
    hand = Hand(arms, "follower")
    monkeypatch.setattr(builtins, "input", hand)
    robot = Aloha(follower_config(tmp_path, max_relative_target=None, cameras=fake_cams()))
    robot.connect()  # no calibration file: calibrates through the prompts
    assert len(hand.prompts) == 3 and "zero pose" in hand.prompts[0]

    # Calibration stored like LeRobot's other robots, both arms in one file.
    saved = tmp_path / "cal" / "test.json"
    assert saved.is_file() and set(robot.calibration) == {
        f"{s}_{m}" for s in ("left", "right") for m in MOTOR_IDS
    }
    assert robot.calibration["left_gripper"].range_max - robot.calibration["left_gripper"].range_min == 1000

    # Configuration reached the motors: shadows follow their primaries, modes, torque on, no jump.
    left = arms["follower_left"]
    assert left.motors[3].get(ADDR_SECONDARY_ID, 1) == 2 and left.motors[5].get(ADDR_SECONDARY_ID, 1) == 4
    assert left.motors[1].get(ADDR_OPERATING_MODE, 1) == 4 and left.motors[9].get(ADDR_OPERATING_MODE, 1) == 5
    assert all(all_torques(arms).values())
    assert left.motors[1].actual == ZERO_POSE[1]  # torque came on holding the pose, not a stale goal

    obs = robot.get_observation()
    assert set(obs) == {f"{n}.pos" for n in JOINT_NAMES} | {"cam_high", "cam_left_wrist", "cam_right_wrist"}
    assert obs["cam_high"].shape == (24, 32, 3)
    assert all(abs(obs[f"{s}_{j}.pos"]) < 1e-9 for s in ("left", "right") for j in ("waist", "elbow"))
    assert obs["left_gripper.pos"] == pytest.approx(1.0)  # left open by the hand

    action = dict.fromkeys(robot.action_features, 0.0) | {"left_waist.pos": 0.5, "right_gripper.pos": 0.25}
    sent = robot.send_action(action)
    assert sent == action
    # 0.5 rad from the zero pose (tick 2047 after homing), in raw ticks.
    assert left.motors[1].present == pytest.approx(2047 + 0.5 * TICKS_PER_RAD, abs=1)
    right_gripper = arms["follower_right"].motors[9]
    assert right_gripper.present == pytest.approx(CLOSED["follower"] + 250, abs=1)  # 1/4 of its range
    obs = robot.get_observation()
    assert obs["left_waist.pos"] == pytest.approx(0.5, abs=2e-3)
    assert obs["right_gripper.pos"] == pytest.approx(0.25, abs=2e-3)
    robot.disconnect()
    assert not any(all_torques(arms).values())

    # A second session reads the stored calibration and matches the motors: no prompt at all.
    monkeypatch.setattr(builtins, "input", no_input)
    again = Aloha(follower_config(tmp_path))
    again.connect()
    assert again.is_calibrated
    again.disconnect()


def test_max_relative_target_clips_per_motor(tmp_path, arms, monkeypatch):
    robot = connected_follower(
        tmp_path, arms, monkeypatch, max_relative_target={"left_waist": 0.1, "left_gripper": 0.2}
    )
    start = robot.get_observation()
    action = {k: start[k] for k in robot.action_features} | {
        "left_waist.pos": 1.0,
        "left_elbow.pos": -0.7,
        "left_gripper.pos": 0.0,
    }
    sent = robot.send_action(action)
    assert sent["left_waist.pos"] == pytest.approx(0.1)  # capped
    assert sent["left_gripper.pos"] == pytest.approx(start["left_gripper.pos"] - 0.2)  # capped
    assert sent["left_elbow.pos"] == pytest.approx(-0.7)  # no cap for this motor
    obs = robot.get_observation()
    assert obs["left_waist.pos"] == pytest.approx(0.1, abs=2e-3)  # the robot went where `sent` says
    robot.disconnect()


def test_write_failure_mid_episode_cuts_torque_on_both_arms(tmp_path, arms, monkeypatch):
    robot = connected_follower(tmp_path, arms, monkeypatch)
    for _step in range(3):
        obs = robot.get_observation()
        robot.send_action({k: obs[k] + 0.01 for k in robot.action_features})
    arms["follower_right"].fail_next_write(INST_SYNC_WRITE, ADDR_GOAL_POSITION)
    goals_before = {i: m.goal for i, m in arms["follower_right"].motors.items()}
    obs = robot.get_observation()
    with pytest.raises(ConnectionError, match="torque disabled on both arms"):
        robot.send_action({k: obs[k] + 0.01 for k in robot.action_features})
    assert not any(all_torques(arms).values())
    assert {i: m.goal for i, m in arms["follower_right"].motors.items()} == goals_before
    # The next step must not silently re-arm the robot.
    with pytest.raises(ConnectionError, match="torque is off after an error"):
        robot.send_action({k: obs[k] for k in robot.action_features})
    assert not any(all_torques(arms).values())
    robot.disconnect()


def test_read_failure_cuts_torque_on_the_arm_still_answering(tmp_path, arms, monkeypatch):
    robot = connected_follower(tmp_path, arms, monkeypatch)
    arms["follower_left"].unplugged = True
    with pytest.raises(ConnectionError, match="Failed to sync read"):
        robot.get_observation()
    assert not any(arms["follower_right"].torques().values())
    arms["follower_left"].unplugged = False
    robot.disconnect()
    assert not any(all_torques(arms).values())


def test_bad_actions_are_refused_before_any_write(tmp_path, arms, monkeypatch):
    robot = connected_follower(tmp_path, arms, monkeypatch)
    n_writes = len(arms["follower_left"].sent(INST_SYNC_WRITE))
    with pytest.raises(ValueError, match="non-finite"):
        robot.send_action({"left_waist.pos": float("nan")})
    with pytest.raises(ValueError, match="unknown action key"):
        robot.send_action({"left_waist": 0.0})
    assert len(arms["follower_left"].sent(INST_SYNC_WRITE)) == n_writes
    assert all(all_torques(arms).values())  # a refused action is not a fault
    robot.disconnect()


def test_leader_drives_follower_with_gripper_mapping(tmp_path, arms, monkeypatch):
    monkeypatch.setattr(builtins, "input", Hand(arms, "leader"))
    leader = AlohaLeader(leader_config(tmp_path))
    leader.connect()
    assert not any(all_torques(arms, "leader").values())  # leaders are moved by hand
    follower = connected_follower(tmp_path, arms, monkeypatch, max_relative_target=None)

    lead_left = arms["leader_left"]
    lead_left.motors[4].set_position(lead_left.motors[4].actual + 300)  # elbow
    gripper = lead_left.motors[9]
    gripper.set_position(gripper.actual + (CLOSED["leader"] + 125 - gripper.present))  # 1/4 of 500 ticks
    action = leader.get_action()
    assert action["left_elbow.pos"] == pytest.approx(300 / TICKS_PER_RAD, abs=1e-3)
    assert action["left_gripper.pos"] == pytest.approx(0.25, abs=1e-3)

    follower.send_action(action)
    obs = follower.get_observation()
    assert obs["left_elbow.pos"] == pytest.approx(action["left_elbow.pos"], abs=2e-3)
    # Same fraction on the follower's own (different, 1000-tick) gripper range.
    follower_gripper = arms["follower_left"].motors[9]
    assert follower_gripper.present == pytest.approx(CLOSED["follower"] + 250, abs=1)
    assert arms["follower_left"].motors[5].goal == arms["follower_left"].motors[4].goal  # shadow follows
    leader.disconnect()
    follower.disconnect()


def test_unknown_port_clear_error_and_other_arm_left_unpowered(tmp_path, arms, monkeypatch):
    for motor in arms["follower_left"].motors.values():
        motor.table[64] = 1  # powered from an earlier session
    config = follower_config(tmp_path)
    config.right_arm_port = "/dev/ttyDXL_does_not_exist"
    robot = Aloha(config)
    with pytest.raises(ConnectionError, match="right arm on port '/dev/ttyDXL_does_not_exist'"):
        robot.connect()
    assert not any(arms["follower_left"].torques().values())
    assert not robot.buses["left"].is_connected


def test_missing_motor_is_named(tmp_path, arms, monkeypatch):
    del arms["follower_left"].motors[6]
    with pytest.raises(ConnectionError, match=r"left arm(.|\n)*Missing motor IDs(.|\n)*- 6"):
        Aloha(follower_config(tmp_path)).connect()


def test_camera_that_cannot_open(tmp_path, arms, monkeypatch):
    # An earlier session left the arms calibrated and powered.
    earlier = connected_follower(tmp_path, arms, monkeypatch, disable_torque_on_disconnect=False)
    earlier.disconnect()
    assert all(all_torques(arms).values())

    cams = {
        "cam_high": OpenCVCameraConfig(index_or_path=Path("/dev/CAM_NOT_THERE"), fps=30, width=64, height=48)
    }
    robot = Aloha(follower_config(tmp_path, cameras=cams))
    with pytest.raises(ConnectionError, match="camera 'cam_high' could not be opened"):
        robot.connect()
    assert not any(all_torques(arms).values())
    assert not robot.buses["left"].is_connected and not robot.buses["right"].is_connected


def test_config_rejects_bad_names():
    with pytest.raises(ValueError, match="unknown ALOHA camera name"):
        AlohaConfig(cameras={"top": OpenCVCameraConfig(index_or_path=0, fps=30, width=64, height=48)})
    with pytest.raises(ValueError, match="unknown motor"):
        AlohaConfig(max_relative_target={"left_wrist": 0.1})
    with pytest.raises(ValueError, match="positive"):
        AlohaConfig(max_relative_target=-1.0)


def test_exit_hook_cuts_torque_of_a_robot_left_connected(tmp_path, arms, monkeypatch):
    robot = connected_follower(tmp_path, arms, monkeypatch)
    assert all(all_torques(arms).values())
    torque_off_at_exit()  # what atexit runs when a CLI dies after robot.connect()
    assert not any(all_torques(arms).values())
    del robot
