"""gym-aloha's bimanual ViperX scenes as dm_control environments, without per-step rendering.

    from lerobot_policy_reconvla.sim.tasks import make_task_environment, object_pose_for_seed

    env = make_task_environment("insertion")              # joint-position control
    env.task.object_pose = object_pose_for_seed("insertion", seed=3)
    ts = env.reset()                                      # ts.observation["qpos"]: (14,)
    ts = env.step(action)                                 # action: (14,) joint targets

Shared by the gym env (``envs.aloha_multicam``), the scripted demonstrations (``sim.scripted``) and the
``aloha_sim`` robot. Rendering and gaze boxes live elsewhere (``sim.render``, ``sim.gaze``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("MUJOCO_GL", "egl")  # headless CPU rendering; must precede dm_control's import

import numpy as np
from dm_control import mujoco
from dm_control.rl import control
from gym_aloha.constants import ASSETS_DIR, DT, START_ARM_POSE
from gym_aloha.tasks.sim import InsertionTask, TransferCubeTask
from gym_aloha.tasks.sim_end_effector import InsertionEndEffectorTask, TransferCubeEndEffectorTask
from gym_aloha.utils import sample_box_pose, sample_insertion_pose

from ..envs.constants import check_task

SUCCESS_REWARD = 4  # gym-aloha's max_reward for both tasks


@dataclass(frozen=True)
class TaskSpec:
    joint_xml: str
    mocap_xml: str
    object_bodies: tuple[str, ...]  # bodies whose geoms make the gaze box (sim.gaze)


TASK_SPECS = {
    "insertion": TaskSpec(
        "bimanual_viperx_insertion.xml", "bimanual_viperx_end_effector_insertion.xml", ("peg", "socket")
    ),
    "transfer_cube": TaskSpec(
        "bimanual_viperx_transfer_cube.xml", "bimanual_viperx_end_effector_transfer_cube.xml", ("box",)
    ),
}


def object_pose_for_seed(task: str, seed: int | None) -> np.ndarray:
    """gym-aloha's object pose(s) for `seed`: (7,) cube or (14,) peg + socket, each xyz + wxyz quat."""
    check_task(task)
    if task == "transfer_cube":
        return sample_box_pose(seed)
    return np.concatenate(sample_insertion_pose(seed))


# --- dm_control tasks: gym-aloha's rewards and actuation, our own reset and no per-step rendering ----
# gym-aloha's tasks render three 640x480 cameras in every get_observation (~0.6 s per step on CPU) and
# take object poses from a module-level global (joint space) or an unseeded RNG (mocap); we override both.


class _PoseMixin:
    object_pose: np.ndarray | None = None

    @staticmethod
    def get_env_state(physics):
        return physics.data.qpos.copy()[16:]  # object poses

    def get_observation(self, physics):
        return {"qpos": self.get_qpos(physics), "qvel": self.get_qvel(physics), "env_state": self.get_env_state(physics)}


class _JointSpaceMixin(_PoseMixin):
    def initialize_episode(self, physics):
        with physics.reset_context():
            physics.named.data.qpos[:16] = START_ARM_POSE
            np.copyto(physics.data.ctrl, START_ARM_POSE)
            physics.data.qpos[16:] = self.object_pose
        base_initialize_episode(self, physics)


class _MocapMixin(_PoseMixin):
    def initialize_episode(self, physics):
        self.initialize_robots(physics)
        physics.data.qpos[16:] = self.object_pose
        base_initialize_episode(self, physics)

    def get_observation(self, physics):
        obs = super().get_observation(physics)
        obs["mocap_pose_left"] = np.concatenate([physics.data.mocap_pos[0], physics.data.mocap_quat[0]])
        obs["mocap_pose_right"] = np.concatenate([physics.data.mocap_pos[1], physics.data.mocap_quat[1]])
        obs["gripper_ctrl"] = physics.data.ctrl.copy()  # (4,) finger position targets
        return obs


def base_initialize_episode(task, physics):
    # dm_control's base.Task.initialize_episode (colours); skips gym-aloha's pose-setting overrides.
    from dm_control.suite import base

    base.Task.initialize_episode(task, physics)


class _InsertionJoint(_JointSpaceMixin, InsertionTask):
    pass


class _TransferCubeJoint(_JointSpaceMixin, TransferCubeTask):
    pass


class _InsertionMocap(_MocapMixin, InsertionEndEffectorTask):
    pass


class _TransferCubeMocap(_MocapMixin, TransferCubeEndEffectorTask):
    pass


_TASK_CLASSES = {
    ("insertion", False): _InsertionJoint,
    ("transfer_cube", False): _TransferCubeJoint,
    ("insertion", True): _InsertionMocap,
    ("transfer_cube", True): _TransferCubeMocap,
}


def make_task_environment(task: str, mocap: bool = False) -> control.Environment:
    """dm_control environment for `task`: joint-position control, or end-effector (mocap) control.

    Set ``env.task.object_pose = object_pose_for_seed(task, seed)`` before ``env.reset()``.
    Joint space: ``env.step(action (14,))``; mocap: ``env.step([xyz, wxyz, grip] * 2 -> (16,))``.
    """
    check_task(task)
    spec = TASK_SPECS[task]
    physics = mujoco.Physics.from_xml_path(str(ASSETS_DIR / (spec.mocap_xml if mocap else spec.joint_xml)))
    # Mocap welds keep MuJoCo's relpose from qpos0 (a ~13 cm offset from mocap body to gripper_link):
    # the waypoints (ACT's) are written for that offset.
    return control.Environment(
        physics,
        _TASK_CLASSES[(task, mocap)](),
        time_limit=float("inf"),  # episode length is ours to enforce
        control_timestep=DT,
        n_sub_steps=None,
        flat_observation=False,
    )
