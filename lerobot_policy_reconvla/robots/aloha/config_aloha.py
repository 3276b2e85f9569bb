"""Config of the real ALOHA follower: ``--robot.type=aloha`` (two ViperX 300 arms).

Light on purpose: imported with the package on every LeRobot command. The device class lives in
``aloha.py``; LeRobot finds it by its naming convention (``config_aloha.AlohaConfig`` -> ``aloha.Aloha``).
The camera and ``max_relative_target`` checks here are shared with ``aloha_sim``.

Units (those of LeRobot's ALOHA datasets, so policies trained there run here unchanged): joints in
radians, 0 at the Interbotix zero pose; grippers normalised, 0 closed and 1 open.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

from lerobot.cameras import CameraConfig
from lerobot.cameras.opencv import OpenCVCameraConfig
from lerobot.robots.config import RobotConfig

from ...embodiment.aloha import JOINT_NAMES

CAMERA_NAMES = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
DEFAULT_CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")


def _default_cameras() -> dict[str, CameraConfig]:
    # ALOHA's udev rules name the USB cameras /dev/CAM_HIGH, /dev/CAM_LEFT_WRIST, ...
    return {
        name: OpenCVCameraConfig(index_or_path=Path(f"/dev/{name.upper()}"), fps=30, width=640, height=480)
        for name in DEFAULT_CAMERAS
    }


def check_camera_names(cameras, allowed=CAMERA_NAMES) -> None:
    unknown = [name for name in cameras if name not in allowed]
    if unknown:
        raise ValueError(
            f"unknown ALOHA camera name(s) {unknown}; use {list(allowed)} "
            "(the names of LeRobot's ALOHA datasets)"
        )


def check_max_relative_target(value) -> None:
    """None, a positive float, or {motor name: positive float} for some of JOINT_NAMES."""
    if value is None:
        return
    caps = value if isinstance(value, dict) else {"*": value}
    unknown = [k for k in caps if k != "*" and k not in JOINT_NAMES]
    if unknown:
        raise ValueError(f"max_relative_target: unknown motor(s) {unknown}; valid: {list(JOINT_NAMES)}")
    bad = {k: v for k, v in caps.items() if not (isinstance(v, int | float) and v > 0 and math.isfinite(v))}
    if bad:
        raise ValueError(f"max_relative_target must be positive and finite, got {bad}")


@RobotConfig.register_subclass("aloha")
@dataclass
class AlohaConfig(RobotConfig):
    # One U2D2 per arm; ALOHA's udev rules give them these names.
    left_arm_port: str = "/dev/ttyDXL_puppet_left"
    right_arm_port: str = "/dev/ttyDXL_puppet_right"

    disable_torque_on_disconnect: bool = True

    # Cap on |goal - present| per step, in action units (rad for joints, fraction of the range for the
    # grippers). A float for every motor or {motor: cap} (e.g. {"left_gripper": 0.2}); None disables it.
    # 0.1 rad ~ 5.7 deg, close to the old LeRobot ALOHA default of 5 degrees.
    max_relative_target: float | dict[str, float] | None = 0.1

    # cam_high, cam_left_wrist, cam_right_wrist (+ optional cam_low); OpenCV or RealSense configs.
    cameras: dict[str, CameraConfig] = field(default_factory=_default_cameras)

    # Trossen's advice for the ViperX joints (register units of 0.229 rpm); None leaves the motors' value.
    velocity_limit: int | None = 131

    def __post_init__(self):
        super().__post_init__()
        check_camera_names(self.cameras)
        check_max_relative_target(self.max_relative_target)
