"""Configs of the simulated ALOHA: ``--robot.type=aloha_sim`` and ``--teleop.type=aloha_scripted``.

Light on purpose (imported with the package); the devices live in ``aloha_sim.py``.
"""

from dataclasses import dataclass, field

from lerobot.robots.config import RobotConfig
from lerobot.teleoperators.config import TeleoperatorConfig

from ..envs.constants import EPISODE_LENGTH, FPS, check_task
from .config_aloha import DEFAULT_CAMERAS, check_camera_names, check_max_relative_target

# Real ALOHA camera name -> camera of gym-aloha's scene.
SIM_CAMERAS = {"cam_high": "top", "cam_left_wrist": "left_wrist", "cam_right_wrist": "right_wrist"}


@RobotConfig.register_subclass("aloha_sim")
@dataclass
class AlohaSimConfig(RobotConfig):
    task: str = "insertion"  # "insertion" | "transfer_cube"
    # Seed of the first scene (object poses as gym-aloha samples them); scene k uses seed + k.
    seed: int = 0
    # Control rate: each send_action advances the physics by 1 / fps seconds (gym-aloha steps 0.02 s),
    # so set it to the --dataset.fps / --fps of the command. 50 must be divisible by it.
    fps: int = FPS
    # Physics steps (0.02 s) per scene; afterwards the next observation starts a new scene (seed + 1).
    # 400 = ACT / gym-aloha episodes = the scripted demonstrations' length.
    episode_length: int = EPISODE_LENGTH
    cameras: list[str] = field(default_factory=lambda: list(DEFAULT_CAMERAS))
    image_height: int = 224
    image_width: int = 224
    # Same meaning and units as the real `aloha` robot (rad, gripper fraction); off by default in sim.
    max_relative_target: float | dict[str, float] | None = None

    def __post_init__(self):
        # No super().__post_init__(): it checks camera *configs* (width/height/fps); these are names.
        check_task(self.task)
        check_camera_names(self.cameras, allowed=tuple(SIM_CAMERAS))
        check_max_relative_target(self.max_relative_target)
        if self.fps <= 0 or FPS % self.fps:
            raise ValueError(f"fps must divide {FPS} (the simulator's rate), got {self.fps}")
        if self.episode_length <= 0 or self.image_height <= 0 or self.image_width <= 0:
            raise ValueError("episode_length, image_height and image_width must be positive")


@TeleoperatorConfig.register_subclass("aloha_scripted")
@dataclass
class AlohaScriptedConfig(TeleoperatorConfig):
    # The `id` of the aloha_sim robot to drive (None: the only aloha_sim connected in this process).
    robot_id: str | None = None
