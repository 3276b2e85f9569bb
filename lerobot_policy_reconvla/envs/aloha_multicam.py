"""A gymnasium env over gym-aloha's MuJoCo scenes that renders several cameras and gaze boxes per step.

    import os; os.environ.setdefault("MUJOCO_GL", "egl")   # before dm_control is imported
    from lerobot_policy_reconvla.envs.aloha_multicam import AlohaMultiCamEnv

    env = AlohaMultiCamEnv(task="transfer_cube", cameras=["top", "left_wrist"], image_size=(224, 224))
    obs, info = env.reset(seed=0)         # same object poses as gym-aloha for the same seed
    obs["pixels"]["top"]                  # (224, 224, 3) uint8 RGB
    obs["agent_pos"]                      # (14,) joint positions, grippers normalised (0 closed, 1 open)
    info["gaze_boxes"]["top"]             # (4,) float32 [x0, y0, x1, y1] in [0, 1], or [-1]*4 if out of view
    obs, reward, terminated, truncated, info = env.step(action)   # action: (14,) joint targets
    info["is_success"]                    # reward == 4 (gym-aloha's success)

Also registered with gymnasium as ``lerobot_policy_reconvla/AlohaMultiCam-v0`` (see ``envs/__init__``).

Pieces others reuse:
- :func:`make_task_environment` builds the dm_control environment (joint space or mocap) without any
  per-step rendering; :func:`object_pose_for_seed` gives gym-aloha's object pose for a seed.
- :func:`gaze_box` projects the task objects' geoms through a camera (pose + fovy).

Gaze box: the axis-aligned image box of the task's object geoms (transfer cube: the cube; insertion:
the union of the peg and the socket, so one box per camera). Each geom's local bounding box is
clipped against the camera's near plane and its corners projected with the camera's pose and fovy;
the box is clipped to the image. It is "absent" ([-1, -1, -1, -1]) when nothing of the objects lies
inside the camera's view frustum. Occlusion (e.g. by a gripper) is not considered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

os.environ.setdefault("MUJOCO_GL", "egl")  # headless CPU rendering; must precede dm_control's import

import gymnasium as gym
import numpy as np
from dm_control import mujoco
from dm_control.rl import control
from gym_aloha.constants import ASSETS_DIR, DT, START_ARM_POSE
from gym_aloha.tasks.sim import InsertionTask, TransferCubeTask
from gym_aloha.tasks.sim_end_effector import InsertionEndEffectorTask, TransferCubeEndEffectorTask
from gym_aloha.utils import sample_box_pose, sample_insertion_pose
from gymnasium import spaces

from .constants import (
    DEFAULT_CAMERAS,
    EPISODE_LENGTH,
    FPS,
    JOINT_NAMES,
    TASK_DESCRIPTIONS,
    check_cameras,
    check_task,
)

ABSENT_BOX = np.full(4, -1.0, dtype=np.float32)
SUCCESS_REWARD = 4  # gym-aloha's max_reward for both tasks


@dataclass(frozen=True)
class _TaskSpec:
    joint_xml: str
    mocap_xml: str
    object_bodies: tuple[str, ...]  # bodies whose geoms make the gaze box


TASK_SPECS = {
    "insertion": _TaskSpec(
        "bimanual_viperx_insertion.xml", "bimanual_viperx_end_effector_insertion.xml", ("peg", "socket")
    ),
    "transfer_cube": _TaskSpec(
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


# --- gaze boxes ------------------------------------------------------------------------------------

# The 12 edges of a box, as pairs of corner indices; corner i has signs from the bits of i.
_CORNER_SIGNS = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], dtype=np.float64) * 2 - 1
_EDGES = [(i, i | (1 << b)) for i in range(8) for b in range(3) if not i & (1 << b)]


def object_geom_ids(physics, bodies: Sequence[str]) -> np.ndarray:
    body_ids = [physics.model.name2id(name, "body") for name in bodies]
    return np.flatnonzero(np.isin(physics.model.geom_bodyid, body_ids))


def _geom_corners_world(physics, geom_ids: np.ndarray) -> np.ndarray:
    """(G, 8, 3) world corners of each geom's local bounding box (exact for box geoms)."""
    aabb = physics.model.geom_aabb[geom_ids]  # (G, 6): local centre (3), half-sizes (3)
    local = aabb[:, None, :3] + _CORNER_SIGNS[None] * aabb[:, None, 3:]  # (G, 8, 3)
    xmat = physics.data.geom_xmat[geom_ids].reshape(-1, 3, 3)  # (G, 3, 3)
    return np.einsum("gij,gkj->gki", xmat, local) + physics.data.geom_xpos[geom_ids][:, None]


def gaze_box(physics, camera: str, geom_ids: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Normalised [x0, y0, x1, y1] (x right, y down) of the geoms seen by `camera`, or ABSENT_BOX.

    Pinhole model as MuJoCo renders it: camera frame columns of ``cam_xmat`` (x right, y up, looking
    along -z), vertical field of view ``cam_fovy``, square pixels, near plane ``znear * extent``.
    """
    height, width = image_size
    cam_id = physics.model.name2id(camera, "camera")
    cam_pos = physics.data.cam_xpos[cam_id]
    cam_rot = physics.data.cam_xmat[cam_id].reshape(3, 3)  # columns: camera axes in world
    focal = 0.5 * height / np.tan(np.deg2rad(physics.model.cam_fovy[cam_id]) / 2)  # pixels
    near = physics.model.vis.map.znear * physics.model.stat.extent

    corners = _geom_corners_world(physics, geom_ids)  # (G, 8, 3)
    cam_pts = (corners - cam_pos) @ cam_rot  # (G, 8, 3) in camera frame
    depth = -cam_pts[..., 2]  # (G, 8), positive in front
    points = [cam_pts[depth > near]]
    # Edges crossing the near plane: keep their crossing point so boxes partly behind the camera clip right.
    for a, b in _EDGES:
        da, db = depth[:, a], depth[:, b]
        crossing = (da > near) != (db > near)
        if crossing.any():
            t = ((near - da[crossing]) / (db[crossing] - da[crossing]))[:, None]
            points.append(cam_pts[crossing, a] + t * (cam_pts[crossing, b] - cam_pts[crossing, a]))
    points = np.concatenate(points)  # (P, 3)
    if len(points) == 0:
        return ABSENT_BOX.copy()
    d = -points[:, 2]
    u = (0.5 * width + focal * points[:, 0] / d) / width  # (P,) normalised, x right
    v = (0.5 * height - focal * points[:, 1] / d) / height  # (P,) normalised, y down
    x0, x1, y0, y1 = u.min(), u.max(), v.min(), v.max()
    if x1 <= 0 or x0 >= 1 or y1 <= 0 or y0 >= 1:  # entirely outside the image
        return ABSENT_BOX.copy()
    return np.clip([x0, y0, x1, y1], 0.0, 1.0).astype(np.float32)


# --- the gymnasium env ------------------------------------------------------------------------------


class AlohaMultiCamEnv(gym.Env):
    """gym-aloha's insertion / transfer-cube scenes (joint-position control) with several cameras.

    Args:
        task: "insertion" or "transfer_cube".
        cameras: any cameras of the scene (see ``constants.SCENE_CAMERAS``); default top + both wrists.
        image_size: (height, width) of every camera image.
        episode_length: steps before ``truncated`` (400, like ACT and gym-aloha).
        gaze_boxes: compute ``info["gaze_boxes"]`` every step (cheap: no rendering involved).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(
        self,
        task: str = "insertion",
        cameras: Sequence[str] = DEFAULT_CAMERAS,
        image_size: Sequence[int] = (224, 224),
        episode_length: int = EPISODE_LENGTH,
        render_mode: str = "rgb_array",
        gaze_boxes: bool = True,
    ):
        super().__init__()
        self.task = check_task(task)
        self.cameras = check_cameras(cameras)
        if len(image_size) != 2 or min(image_size) <= 0:
            raise ValueError(f"image_size must be (height, width) with positive values, got {image_size}")
        if render_mode != "rgb_array":
            raise ValueError(f"render_mode must be 'rgb_array', got {render_mode!r}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.episode_length = int(episode_length)
        self.render_mode = render_mode
        self.compute_gaze_boxes = gaze_boxes
        self.task_description = TASK_DESCRIPTIONS[self.task]
        self.joint_names = JOINT_NAMES

        self._env = make_task_environment(self.task, mocap=False)
        self._geom_ids = object_geom_ids(self.physics, TASK_SPECS[self.task].object_bodies)
        self._step = 0

        h, w = self.image_size
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Dict(
                    {cam: spaces.Box(0, 255, shape=(h, w, 3), dtype=np.uint8) for cam in self.cameras}
                ),
                "agent_pos": spaces.Box(-1000.0, 1000.0, shape=(14,), dtype=np.float64),
            }
        )
        # Joint targets (rad) and normalised grippers; gym-aloha declares [-1, 1] but uses the raw values.
        self.action_space = spaces.Box(-np.pi, np.pi, shape=(14,), dtype=np.float32)

    @property
    def physics(self):
        return self._env.physics

    def render_cameras(self) -> dict[str, np.ndarray]:
        """{cam: (H, W, 3) uint8} of the current state."""
        h, w = self.image_size
        return {cam: self.physics.render(height=h, width=w, camera_id=cam) for cam in self.cameras}

    def gaze_boxes(self) -> dict[str, np.ndarray]:
        """{cam: (4,) float32} normalised [x0, y0, x1, y1] of the task objects, [-1]*4 when absent."""
        return {cam: gaze_box(self.physics, cam, self._geom_ids, self.image_size) for cam in self.cameras}

    def _observation(self, raw: dict) -> dict:
        return {"pixels": self.render_cameras(), "agent_pos": raw["qpos"].copy()}

    def _info(self, is_success: bool) -> dict:
        info = {"is_success": bool(is_success)}
        if self.compute_gaze_boxes:
            info["gaze_boxes"] = self.gaze_boxes()
        return info

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Options: ``object_pose`` (7,) / (14,) to place the objects explicitly instead of by seed."""
        super().reset(seed=seed)
        options = options or {}
        if "object_pose" in options:
            pose = np.asarray(options["object_pose"], dtype=np.float64)
        else:
            # Unseeded resets draw a seed from the env's RNG, so a seeded first reset fixes the sequence.
            episode_seed = seed if seed is not None else int(self.np_random.integers(2**31))
            pose = object_pose_for_seed(self.task, episode_seed)
        self._env.task.object_pose = pose
        self._step = 0
        ts = self._env.reset()
        return self._observation(ts.observation), self._info(False)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (14,):
            raise ValueError(f"action must have shape (14,), got {action.shape}")
        ts = self._env.step(action)
        self._step += 1
        reward = float(ts.reward)
        is_success = reward == SUCCESS_REWARD
        terminated = is_success  # like gym-aloha: the episode ends on success
        truncated = self._step >= self.episode_length
        return self._observation(ts.observation), reward, terminated, truncated, self._info(is_success)

    def render(self):
        """The first camera at the observation size (used by lerobot-eval's videos)."""
        h, w = self.image_size
        return self.physics.render(height=h, width=w, camera_id=self.cameras[0])

    def close(self):
        pass
