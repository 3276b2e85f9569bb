"""Config of the real ALOHA leader: ``--teleop.type=aloha_leader`` (two WidowX 250 arms).

Light on purpose: imported with the package on every LeRobot command. The device class lives in
``aloha_leader.py``; LeRobot finds it by its naming convention (``AlohaLeaderConfig`` -> ``AlohaLeader``).
"""

from dataclasses import dataclass

from lerobot.teleoperators.config import TeleoperatorConfig


@TeleoperatorConfig.register_subclass("aloha_leader")
@dataclass
class AlohaLeaderConfig(TeleoperatorConfig):
    # One U2D2 per arm; ALOHA's udev rules give them these names.
    left_arm_port: str = "/dev/ttyDXL_master_left"
    right_arm_port: str = "/dev/ttyDXL_master_right"
