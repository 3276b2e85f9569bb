"""Three-camera ALOHA simulation for LeRobot: the ``aloha_multicam`` env config.

This module is imported by the package ``__init__`` on every LeRobot command, so it stays light: it
imports only LeRobot's config classes and gymnasium's registry (both already loaded by LeRobot) and
registers the gym id with a *string* entry point. MuJoCo / dm_control load only when an env is built.

    lerobot-eval --env.type=aloha_multicam --env.task=insertion \
        --env.cameras='[top,left_wrist,right_wrist]' --env.observation_height=224 ...

or, from a preset file (see ``configs/env/`` and ``docs/sim.md``):

    lerobot-eval --config_path=configs/env/aloha_multicam_insertion.json --policy.path=...

The env itself: :class:`lerobot_policy_reconvla.sim.env.AlohaMultiCamEnv`.
"""

from dataclasses import dataclass, field

import gymnasium as gym
from lerobot.configs import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig
from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

from ..sim.constants import (
    DEFAULT_CAMERAS,
    FPS,
    GYM_ID,
    NAMED_CUBE_TASKS,
    SCENE_CAMERAS,
    TASK_DESCRIPTIONS,
    check_cameras,
    check_observe_every,
    check_task,
    default_episode_length,
)

__all__ = ["AlohaMultiCamEnvConfig", "DEFAULT_CAMERAS", "GYM_ID", "SCENE_CAMERAS", "TASK_DESCRIPTIONS"]

# A string entry point keeps MuJoCo out of import time; gym.make imports the module on first use.
if GYM_ID not in gym.registry:
    gym.register(id=GYM_ID, entry_point="lerobot_policy_reconvla.sim.env:AlohaMultiCamEnv")


@EnvConfig.register_subclass("aloha_multicam")
@dataclass
class AlohaMultiCamEnvConfig(EnvConfig):
    """gym-aloha's MuJoCo scenes rendering several cameras per step.

    Observation (per env): ``{"pixels": {cam: (H, W, 3) uint8}, "agent_pos": (14,)}``, which LeRobot's
    ``preprocess_observation`` turns into ``observation.images.<cam>`` and ``observation.state``.
    """

    task: str = "insertion"  # "insertion" | "transfer_cube" | "lift" | "lift_named" | "lift_pair"
    fps: int = FPS
    # None: the task's (EPISODE_LENGTHS: 400 as ACT / gym-aloha for the bimanual tasks, 150 for the lifts).
    episode_length: int | None = None
    cameras: list[str] = field(default_factory=lambda: list(DEFAULT_CAMERAS))
    # 224 x 224: the resolution PaliGemma consumes and the generator's default, so eval matches training.
    observation_height: int = 224
    observation_width: int = 224
    render_mode: str = "rgb_array"
    # gym-aloha renders shadows; false is ~3x faster on a CPU but the images differ: match the training data.
    shadows: bool = True
    # Place every episode as this seed does (one scene, evaluated again and again); None: by episode seed.
    scene_seed: int | None = None
    # Append one JSON line per finished episode here (seed, scene seed, task string, named cube, success,
    # first cube lifted).
    outcome_log: str | None = None
    # Tasks naming one of n cubes (lift_pair: 2, lift_named: 3): run each scene under every instruction, so
    # success measures following the instruction, not which slot a seed happened to name. Seeds nk .. nk+n-1
    # share seed nk's placement (scene_seed's, when set) and name the cubes in turn, cubes[seed % n].
    # lerobot-eval seeds episodes --seed, --seed + 1, ...: every scene is complete when --seed and
    # --eval.n_episodes are both multiples of n. Off: each seed draws its scene and named cube.
    name_every_cube: bool = False
    # Render the cameras every k-th step only; the steps between repeat the last images. A policy replanning
    # every n_action_steps (a multiple of k) reads only those, so it acts the same at about 1/k of the
    # rendering (most of an episode's time on a CPU). Videos stay current. 1: every step.
    observe_every: int = 1
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        check_task(self.task)
        check_cameras(self.cameras)
        if self.name_every_cube and self.task not in NAMED_CUBE_TASKS:
            raise ValueError(
                f"name_every_cube=true needs a task naming one of several cubes ({list(NAMED_CUBE_TASKS)}); "
                f"task {self.task!r} has one instruction"
            )
        check_observe_every(self.observe_every)
        if self.episode_length is None:
            self.episode_length = default_episode_length(self.task)
        if self.observation_height <= 0 or self.observation_width <= 0:
            raise ValueError(
                f"observation_height/observation_width must be positive, got "
                f"{self.observation_height}x{self.observation_width}"
            )
        # Rebuilt from the fields (not merged with what draccus decoded) so a preset can't go stale.
        self.features = {
            ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(14,)),
            "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(14,)),
        }
        self.features_map = {ACTION: ACTION, "agent_pos": OBS_STATE}
        for cam in self.cameras:
            key = f"pixels/{cam}"
            self.features[key] = PolicyFeature(
                type=FeatureType.VISUAL, shape=(self.observation_height, self.observation_width, 3)
            )
            self.features_map[key] = f"{OBS_IMAGES}.{cam}"

    @property
    def package_name(self) -> str:
        # Imported by EnvConfig.create_envs when GYM_ID is missing from gym's registry.
        return "lerobot_policy_reconvla.envs"

    @property
    def gym_id(self) -> str:
        return GYM_ID

    @property
    def task_description(self) -> str:
        # lift_named: a template ("Pick up the {colour} cube."); each episode's env fills in its colour.
        return TASK_DESCRIPTIONS[self.task]

    @property
    def gym_kwargs(self) -> dict:
        return {
            "task": self.task,
            "cameras": list(self.cameras),
            "image_size": (self.observation_height, self.observation_width),
            "episode_length": self.episode_length,
            "render_mode": self.render_mode,
            "shadows": self.shadows,
            "scene_seed": self.scene_seed,
            "outcome_log": self.outcome_log,
            "name_every_cube": self.name_every_cube,
            "observe_every": self.observe_every,
            # Consumed by gym.make: wraps the env in TimeLimit, which lerobot-eval reads.
            "max_episode_steps": self.episode_length,
        }
