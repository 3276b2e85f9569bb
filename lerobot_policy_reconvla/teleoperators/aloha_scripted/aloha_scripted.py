"""Scripted bimanual demonstrations as a LeRobot teleoperator: :class:`AlohaScripted`
(``--teleop.type=aloha_scripted``), the leader arms of the ``aloha_sim`` robot.

The demonstrations are ACT's recipe (``lerobot_policy_reconvla.sim.scripted``): open loop, computed
from a scene's seed alone. So the teleoperator needs nothing from the robot: given the robot's scene
settings (``AlohaSceneConfig``: task, first seed, fps, episode length) it keeps the same clock, one
control step (``substeps`` physics steps) per ``get_action``, and returns the joint targets the
demonstration of the current scene reaches at the end of that step; after ``episode_length`` physics
steps it moves on to the next seed, as the robot does. LeRobot's loops (record, teleoperate) call
``robot.get_observation``, ``teleop.get_action`` and ``robot.send_action`` once each per step, so the
two clocks stay equal: ``(teleop.scene_seed, teleop.sim_step) == (robot.scene_seed, robot.sim_step)``
whenever ``get_action`` is called.

    teleop = AlohaScripted(AlohaScriptedConfig(task="insertion", fps=10))
    teleop.connect()
    action = teleop.get_action()    # {"left_waist.pos": rad, ..., "right_gripper.pos": 0..1}
"""

from __future__ import annotations

import logging
from functools import cached_property

from lerobot.teleoperators.teleoperator import Teleoperator
from lerobot.utils.decorators import check_if_already_connected, check_if_not_connected

from ...embodiment.aloha import JOINT_NAMES
from .config_aloha_scripted import AlohaScriptedConfig

logger = logging.getLogger(__name__)


class AlohaScripted(Teleoperator):
    """Plays the scripted demonstration of each scene of an ``aloha_sim`` with the same scene settings."""

    config_class = AlohaScriptedConfig
    name = "aloha_scripted"

    def __init__(self, config: AlohaScriptedConfig):
        super().__init__(config)
        self.config = config
        self.substeps = config.substeps  # physics steps (0.02 s) per get_action
        self.scene_seed: int | None = None
        self.sim_step = 0  # physics steps of the current scene already played
        self._script = None  # sim.scripted.ScriptedPolicy of scene_seed

    @cached_property
    def action_features(self) -> dict[str, type]:
        return {f"{n}.pos": float for n in JOINT_NAMES}

    @cached_property
    def feedback_features(self) -> dict[str, type]:
        return {}

    @property
    def is_connected(self) -> bool:
        return self.scene_seed is not None

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    @check_if_already_connected
    def connect(self, calibrate: bool = True) -> None:
        # The first scene's demonstration is computed on the first get_action (MuJoCo loads then).
        self.scene_seed, self.sim_step, self._script = self.config.seed, 0, None
        logger.info(
            "%s connected (task %s, seed %d, %d Hz).",
            self,
            self.config.task,
            self.config.seed,
            self.config.fps,
        )

    @check_if_not_connected
    def get_action(self) -> dict[str, float]:
        from ...sim.scripted import ScriptedPolicy

        if self.sim_step >= self.config.episode_length:  # the robot starts the next scene now too
            self.scene_seed, self.sim_step, self._script = self.scene_seed + 1, 0, None
        if self._script is None:
            self._script = ScriptedPolicy(self.config.task, self.scene_seed, self.config.episode_length)
        # The target the demonstration reaches at the end of this control interval.
        action = self._script.action(self.sim_step + self.substeps - 1)  # (14,)
        self.sim_step += self.substeps
        return {f"{n}.pos": float(v) for n, v in zip(JOINT_NAMES, action, strict=True)}

    def send_feedback(self, feedback: dict[str, float]) -> None:
        raise NotImplementedError("aloha_scripted takes no feedback")

    @check_if_not_connected
    def disconnect(self) -> None:
        self.scene_seed, self._script = None, None
        logger.info("%s disconnected.", self)
