"""Config of the simulated ALOHA: ``--robot.type=aloha_sim``, and the scene settings it shares with the
``aloha_scripted`` teleoperator.

Light on purpose (imported with the package); the device lives in ``aloha_sim.py``.
"""

from dataclasses import dataclass, field

from lerobot.robots.config import RobotConfig

from ...sim.constants import EPISODE_LENGTH, FPS, check_task
from ..aloha.config_aloha import DEFAULT_CAMERAS, check_camera_names, check_max_relative_target

# Real ALOHA camera name -> camera of gym-aloha's scene.
SIM_CAMERAS = {"cam_high": "top", "cam_left_wrist": "left_wrist", "cam_right_wrist": "right_wrist"}


@dataclass(kw_only=True)
class AlohaSceneConfig:
    """The sequence of scenes and its clock. The ``aloha_sim`` robot simulates it and the
    ``aloha_scripted`` teleoperator plays its demonstrations, so both take these fields, with the
    same values: scene k is placed by seed ``seed + k`` and lasts ``episode_length`` physics steps.
    """

    task: str = "insertion"  # "insertion" | "transfer_cube" | "lift" | "lift_named" | "lift_pair"
    # Seed of the first scene (object poses as gym-aloha samples them); scene k uses seed + k.
    seed: int = 0
    # Control rate: each step advances the physics by 1 / fps seconds (gym-aloha steps 0.02 s), so set
    # it to the --dataset.fps / --fps of the command. 50 must be divisible by it.
    fps: int = FPS
    # Physics steps (0.02 s) per scene, then the next scene (seed + 1) starts.
    # 400 = ACT / gym-aloha episodes = the scripted demonstrations' length.
    episode_length: int = EPISODE_LENGTH

    def check_scene(self) -> None:
        check_task(self.task)
        if self.fps <= 0 or FPS % self.fps:
            raise ValueError(f"fps must divide {FPS} (the simulator's rate), got {self.fps}")
        if self.episode_length <= 0:
            raise ValueError(f"episode_length must be positive, got {self.episode_length}")

    @property
    def substeps(self) -> int:
        """Physics steps (0.02 s) per control step."""
        return FPS // self.fps


@RobotConfig.register_subclass("aloha_sim")
@dataclass(kw_only=True)
class AlohaSimConfig(RobotConfig, AlohaSceneConfig):
    cameras: list[str] = field(default_factory=lambda: list(DEFAULT_CAMERAS))
    image_height: int = 224
    image_width: int = 224
    # gym-aloha renders shadows; false is ~3x faster on a CPU but the images differ: match the training data.
    shadows: bool = True
    # Same meaning and units as the real `aloha` robot (rad, gripper fraction); off by default in sim.
    max_relative_target: float | dict[str, float] | None = None

    def __post_init__(self):
        # No super().__post_init__(): it checks camera *configs* (width/height/fps); these are names.
        self.check_scene()
        check_camera_names(self.cameras, allowed=tuple(SIM_CAMERAS))
        check_max_relative_target(self.max_relative_target)
        if self.image_height <= 0 or self.image_width <= 0:
            raise ValueError(
                f"image_height and image_width must be positive, got {self.image_height}x{self.image_width}"
            )
