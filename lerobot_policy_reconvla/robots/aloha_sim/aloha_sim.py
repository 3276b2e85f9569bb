"""A simulated ALOHA for LeRobot's CLIs: :class:`AlohaSim` (``--robot.type=aloha_sim``).

``AlohaSim`` has the features of the real ``aloha`` robot: ``left_waist.pos`` ... ``right_gripper.pos``
(joints in rad, grippers 0 closed .. 1 open, which is what gym-aloha's qpos and actions already use)
and images ``cam_high`` / ``cam_left_wrist`` / ``cam_right_wrist`` rendered from the scene's ``top`` /
``left_wrist`` / ``right_wrist`` cameras. A policy trained on one runs on the other unchanged.

Time and scenes belong to the robot: each ``send_action`` advances the physics by 1 / fps seconds,
and after ``episode_length`` physics steps (400 = 8 s, one scripted demonstration) the next
``get_observation`` starts a new scene with the next seed (``AlohaSceneConfig``). The
``aloha_scripted`` teleoperator, given the same scene settings, plays the demonstration of each scene
on the same clock, as a leader arm would be moved by a person who sees the table. So ``lerobot-record``
with ``--dataset.episode_time_s=8 --dataset.reset_time_s=0`` records one full demonstration per
episode, through LeRobot's own loop.
"""

from __future__ import annotations

import logging
from functools import cached_property

import numpy as np
from lerobot.lerobot_types import RobotAction, RobotObservation
from lerobot.robots.robot import Robot
from lerobot.utils.decorators import check_if_already_connected, check_if_not_connected

# The sim's qpos order is the real robot's feature order.
from ...embodiment.aloha import JOINT_NAMES, cap_joint_goals, joint_goals
from ...sim.constants import TASK_DESCRIPTIONS
from .config_aloha_sim import SIM_CAMERAS, AlohaSimConfig

logger = logging.getLogger(__name__)


class AlohaSim(Robot):
    """gym-aloha's bimanual ViperX scene (insertion or transfer cube) behind LeRobot's Robot API."""

    config_class = AlohaSimConfig
    name = "aloha_sim"

    def __init__(self, config: AlohaSimConfig):
        super().__init__(config)
        self.config = config
        # Camera name -> scene camera. LeRobot's CLIs size image writers with len(robot.cameras).
        self.cameras = {name: SIM_CAMERAS[name] for name in config.cameras}
        self.substeps = config.substeps  # physics steps (0.02 s) per control step
        self.task_description = TASK_DESCRIPTIONS[config.task]  # the scene's own once connected (lift_named)
        self._env = None
        self._renderer = None  # sim.render.MultiCameraRenderer of the connected scene
        self.scene_seed: int | None = None
        self.sim_step = 0  # physics steps since the scene started
        self.reward = 0.0
        self.is_success = False

    @cached_property
    def observation_features(self) -> dict[str, type | tuple]:
        h, w = self.config.image_height, self.config.image_width
        return {f"{n}.pos": float for n in JOINT_NAMES} | dict.fromkeys(self.cameras, (h, w, 3))

    @cached_property
    def action_features(self) -> dict[str, type]:
        return {f"{n}.pos": float for n in JOINT_NAMES}

    @property
    def is_connected(self) -> bool:
        return self._env is not None

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass  # a simulator is calibrated by construction

    def configure(self) -> None:
        pass

    @check_if_already_connected
    def connect(self, calibrate: bool = True) -> None:
        # MuJoCo loads here, not at import (the package is imported by every LeRobot command).
        from ...sim.render import MultiCameraRenderer
        from ...sim.tasks import make_task_environment

        self._env = make_task_environment(self.config.task)
        h, w = self.config.image_height, self.config.image_width
        # Persistent cameras, as the aloha_multicam env renders them (built before anything renders).
        self._renderer = MultiCameraRenderer(
            self._env.physics, list(self.cameras.values()), (h, w), shadows=self.config.shadows
        )
        self._start_scene(self.config.seed)
        logger.info(
            "%s connected (task %s, seed %d, %d Hz).",
            self,
            self.config.task,
            self.config.seed,
            self.config.fps,
        )

    def _start_scene(self, seed: int) -> None:
        from ...sim.tasks import scene_for_seed

        self.scene_seed = seed
        scene = scene_for_seed(self.config.task, seed)
        scene.apply(self._env)
        self.task_description = scene.instruction
        self._timestep = self._env.reset()
        self._target = np.asarray(self._timestep.observation["qpos"], dtype=np.float64).copy()  # (14,)
        self.sim_step, self.reward, self.is_success = 0, 0.0, False

    @property
    def scene_over(self) -> bool:
        return self.sim_step >= self.config.episode_length

    @check_if_not_connected
    def get_observation(self) -> RobotObservation:
        if self.scene_over:
            self._start_scene(self.scene_seed + 1)
        qpos = self._timestep.observation["qpos"]  # (14,) rad, grippers normalised
        obs: RobotObservation = {f"{n}.pos": float(v) for n, v in zip(JOINT_NAMES, qpos, strict=True)}
        images = self._renderer.render()  # {scene camera: (H, W, 3) uint8, C-contiguous}
        for name, scene_camera in self.cameras.items():
            obs[name] = images[scene_camera]
        return obs

    @check_if_not_connected
    def send_action(self, action: RobotAction) -> RobotAction:
        goal = joint_goals(action, self)
        present = dict(zip(JOINT_NAMES, self._timestep.observation["qpos"], strict=True))
        goal = cap_joint_goals(goal, present, self.config.max_relative_target)
        for k, v in goal.items():  # motors left out keep their previous target, as on the real robot
            self._target[JOINT_NAMES.index(k)] = v
        for _ in range(self.substeps):
            self._timestep = self._env.step(self._target.copy())
            self.sim_step += 1
            self.reward = float(self._timestep.reward or 0.0)
            self.is_success = self.is_success or self.reward == self._env.task.max_reward
        return {f"{k}.pos": v for k, v in goal.items()}

    @check_if_not_connected
    def disconnect(self) -> None:
        self._env.close()
        self._env = self._renderer = None
        logger.info("%s disconnected.", self)
