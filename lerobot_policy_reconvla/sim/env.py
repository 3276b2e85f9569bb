"""A gymnasium env over gym-aloha's MuJoCo scenes that renders several cameras and gaze boxes per step.

    import os; os.environ.setdefault("MUJOCO_GL", "egl")   # before dm_control is imported
    from lerobot_policy_reconvla.sim.env import AlohaMultiCamEnv

    env = AlohaMultiCamEnv(task="lift_named", cameras=["top", "left_wrist"], image_size=(224, 224))
    obs, info = env.reset(seed=0)         # the seed's scene (sim.tasks.scene_for_seed); gym-aloha's poses
    env.task_description                  # this episode's task string, e.g. "Pick up the green cube."
    obs["pixels"]["top"]                  # (224, 224, 3) uint8 RGB
    obs["agent_pos"]                      # (14,) joint positions, grippers normalised (0 closed, 1 open)
    info["gaze_boxes"]["top"]             # (4,) float32 [x0, y0, x1, y1] in [0, 1], or [-1]*4 if out of view
    obs, reward, terminated, truncated, info = env.step(action)   # action: (14,) joint targets
    info["is_success"]                    # reward == the task's max reward (gym-aloha's 4; lifts: 3)
    info["first_lifted"]                  # lift tasks: colour of the first cube picked up so far, or ""
    env.scene.slot("red")                 # lift_pair: the slot (0 or 1) the red cube was placed in

Also registered with gymnasium as ``lerobot_policy_reconvla/AlohaMultiCam-v0`` (see ``envs/__init__``).
The scenes and their physics come from ``sim.tasks``, the gaze boxes from ``sim.gaze``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

os.environ.setdefault("MUJOCO_GL", "egl")  # headless CPU rendering; must precede dm_control's import

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..embodiment.aloha import JOINT_NAMES
from .constants import (
    DEFAULT_CAMERAS,
    FPS,
    check_cameras,
    check_observe_every,
    check_task,
    default_episode_length,
)
from .gaze import DEFAULT_GAZE_MIN_SIZE, gaze_box, object_geom_ids
from .render import MultiCameraRenderer
from .tasks import (
    LIFT_HELD_REWARD,
    Scene,
    cube_height,
    every_cube_scene_seed,
    lifted_cubes,
    make_task_environment,
    scene_cubes,
    scene_for_seed,
    scene_naming_every_cube,
)


class AlohaMultiCamEnv(gym.Env):
    """gym-aloha's ALOHA scenes (joint-position control) with several cameras.

    Args:
        task: "insertion", "transfer_cube", "lift" or "lift_named" (``constants.TASKS``).
        cameras: any cameras of the scene (see ``constants.SCENE_CAMERAS``); default top + both wrists.
        image_size: (height, width) of every camera image.
        episode_length: steps before ``truncated``; None: the task's (400 like ACT and gym-aloha; lifts 150).
        gaze_boxes: compute ``info["gaze_boxes"]`` every step (cheap: no rendering involved).
        gaze_min_size: smallest side of a gaze box, as a fraction of the image's short side
            (``sim.gaze``): a small object's box grows around its centre to keep its surroundings.
        scene_seed: place every episode as this seed does, whatever seed ``reset`` gets (one scene
            evaluated again and again, e.g. whether a policy fits the placement it was trained on).
        name_every_cube: tasks naming one of n cubes: seeds nk .. nk + n - 1 share seed nk's scene (or
            `scene_seed`'s) and name its cubes in turn (``sim.tasks.scene_naming_every_cube``), so n
            consecutive seeds from a multiple of n run one scene under every instruction. Refused for a
            task with one instruction.
        outcome_log: a file to append one JSON line to per finished episode: its seed, the seed that
            placed its objects (``scene_seed``), task string, named cube (``target``), success, highest
            reward (lift tasks: 2 = the named cube held off the table), steps and (lift tasks) the first
            cube lifted; a wrong-object rate counts those lines, a retarget rate groups them by scene.
        shadows: render shadows, as gym-aloha does (True); False is ~3x faster but the images differ
            (``sim.render``): use the same setting for training data and evaluation.
        observe_every: render the cameras on reset and every `observe_every`-th step only; the steps
            between return the last rendered images again (``agent_pos`` stays current). A chunking
            policy reads the observation only when it replans (LeRobot's ``select_action`` every
            ``n_action_steps`` calls, from the episode's first), so with ``observe_every`` dividing
            ``n_action_steps`` it sees the very same images and acts the same, at a fraction of the
            rendering, which is most of an evaluation episode's time on a CPU. Never for a policy that
            reads every step's images, nor for recording observations. ``render()`` (videos) stays
            current. 1 (default): every step.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(
        self,
        task: str = "insertion",
        cameras: Sequence[str] = DEFAULT_CAMERAS,
        image_size: Sequence[int] = (224, 224),
        episode_length: int | None = None,
        render_mode: str = "rgb_array",
        gaze_boxes: bool = True,
        shadows: bool = True,
        gaze_min_size: float = DEFAULT_GAZE_MIN_SIZE,
        scene_seed: int | None = None,
        outcome_log: str | None = None,
        name_every_cube: bool = False,
        observe_every: int = 1,
    ):
        super().__init__()
        self.task = check_task(task)
        self.cameras = check_cameras(cameras)
        if len(image_size) != 2 or min(image_size) <= 0:
            raise ValueError(f"image_size must be (height, width) with positive values, got {image_size}")
        if render_mode != "rgb_array":
            raise ValueError(f"render_mode must be 'rgb_array', got {render_mode!r}")
        if not 0 <= gaze_min_size <= 1:
            raise ValueError(
                f"gaze_min_size is a fraction of the image's short side in [0, 1], got {gaze_min_size}"
            )
        if name_every_cube:
            every_cube_scene_seed(self.task, 0)  # refuses, naming the option, a task with one instruction
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.episode_length = int(episode_length or default_episode_length(self.task))
        self.render_mode = render_mode
        self.compute_gaze_boxes = gaze_boxes
        self.gaze_min_size = float(gaze_min_size)
        self.scene_seed = scene_seed
        self.outcome_log = outcome_log
        self.name_every_cube = bool(name_every_cube)
        self.observe_every = check_observe_every(observe_every)
        self._episode_seed: int | None = None
        self._scene_seed: int | None = None  # the seed whose placement this episode has
        self._succeeded = False
        self.joint_names = JOINT_NAMES
        self.scene: Scene = scene_for_seed(self.task, 0)  # replaced at every reset
        self.task_description = self.scene.instruction  # read by lerobot-eval every step: this episode's

        self._env = make_task_environment(self.task, mocap=False)
        # Persistent cameras for every step (built before anything renders this physics).
        self._renderer = MultiCameraRenderer(self.physics, self.cameras, self.image_size, shadows=shadows)
        self._last_images: dict[str, np.ndarray] | None = None  # of the current state, for render()
        # The observation's images, rendered at the last observed step (every `observe_every` steps).
        self._observed_images: dict[str, np.ndarray] = {}
        self._geom_ids = object_geom_ids(self.physics, self.scene.gaze_bodies)
        self._step = 0
        self._first_lifted = ""
        self._max_reward = 0.0
        # Lift tasks: steps with the named cube held off the table, and its highest rise while held (m).
        # They tell a cube that slipped from one held and never raised the 5 cm of a success.
        self._tracks_holds = self.task.startswith("lift")
        self._held_steps = 0
        self._max_held_height = 0.0

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
        self._last_images = self._renderer.render()
        return self._last_images

    def gaze_boxes(self) -> dict[str, np.ndarray]:
        """{cam: (4,) float32} normalised [x0, y0, x1, y1] of the task objects, [-1]*4 when absent."""
        return {
            cam: gaze_box(self.physics, cam, self._geom_ids, self.image_size, min_size=self.gaze_min_size)
            for cam in self.cameras
        }

    def _observation(self, raw: dict) -> dict:
        if self._step % self.observe_every == 0:  # reset is step 0: always observed
            self._observed_images = self.render_cameras()
        return {"pixels": self._observed_images, "agent_pos": raw["qpos"].copy()}

    def _info(self, is_success: bool) -> dict:
        info = {"is_success": bool(is_success)}
        if self.scene.target is not None:
            if not self._first_lifted:
                lifted = lifted_cubes(self.physics, scene_cubes(self.task))
                self._first_lifted = lifted[0] if lifted else ""
            info["first_lifted"] = self._first_lifted  # which cube the policy went for (wrong-object rate)
        if self.compute_gaze_boxes:
            info["gaze_boxes"] = self.gaze_boxes()
        return info

    def reset(self, seed: int | None = None, options: dict | None = None):
        """The scene of `seed` (``sim.tasks.scene_for_seed``). Options: ``scene`` (a ``Scene``) to set it
        explicitly, or ``object_pose`` to move the seed's objects elsewhere."""
        super().reset(seed=seed)
        options = options or {}
        if "scene" in options:
            scene, self._episode_seed, self._scene_seed = options["scene"], None, None
        else:
            # Unseeded resets draw a seed from the env's RNG, so a seeded first reset fixes the sequence.
            episode_seed = seed if seed is not None else int(self.np_random.integers(2**31))
            if self.name_every_cube:  # the seed picks the named cube: it is logged as itself
                self._episode_seed = episode_seed
                scene = scene_naming_every_cube(self.task, episode_seed, self.scene_seed)
                self._scene_seed = (
                    every_cube_scene_seed(self.task, episode_seed)
                    if self.scene_seed is None
                    else self.scene_seed
                )
            else:
                self._episode_seed = episode_seed if self.scene_seed is None else self.scene_seed
                self._scene_seed = self._episode_seed
                scene = scene_for_seed(self.task, self._episode_seed)
        if "object_pose" in options:
            scene = dataclasses.replace(
                scene, object_pose=np.asarray(options["object_pose"], dtype=np.float64)
            )
        if scene.task != self.task:
            raise ValueError(f"options['scene'] is a {scene.task!r} scene, this env runs {self.task!r}")
        self.scene = scene
        self.task_description = scene.instruction
        self._geom_ids = object_geom_ids(self.physics, scene.gaze_bodies)
        scene.apply(self._env)
        self._step = 0
        self._first_lifted = ""
        self._succeeded = False
        self._max_reward = 0.0
        self._held_steps = 0
        self._max_held_height = 0.0
        self._last_images = None
        ts = self._env.reset()
        return self._observation(ts.observation), self._info(False)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (14,):
            raise ValueError(f"action must have shape (14,), got {action.shape}")
        self._last_images = None
        ts = self._env.step(action)
        self._step += 1
        reward = float(ts.reward)
        self._max_reward = max(self._max_reward, reward)
        if self._tracks_holds and reward >= LIFT_HELD_REWARD:
            self._held_steps += 1
            self._max_held_height = max(self._max_held_height, cube_height(self.physics, self.scene.target))
        is_success = reward == self._env.task.max_reward
        terminated = is_success  # like gym-aloha: the episode ends on success
        truncated = self._step >= self.episode_length
        info = self._info(is_success)
        if (terminated or truncated) and self.outcome_log and not self._succeeded:
            self._log_outcome(is_success, reward, info)
        self._succeeded |= is_success
        return self._observation(ts.observation), reward, terminated, truncated, info

    def _log_outcome(self, success: bool, last_reward: float, info: dict) -> None:
        record = {
            "seed": self._episode_seed,
            "scene_seed": self._scene_seed,  # with target (the named cube): groups episodes by scene
            "task": self.task_description,
            "target": self.scene.target,
            "success": bool(success),
            "max_reward": self._max_reward,
            "last_reward": last_reward,
            "steps": self._step,
            "first_lifted": info.get("first_lifted"),
        }
        if self.task == "lift_pair":  # which slot it went for: the pair's reading beside the colour
            record["first_lifted_slot"] = self.scene.slot(info.get("first_lifted") or "")
        if self._tracks_holds:
            record["held_steps"] = self._held_steps
            record["max_held_height_cm"] = round(100 * self._max_held_height, 2)
        with open(self.outcome_log, "a") as log:
            log.write(json.dumps(record) + "\n")

    def render(self):
        """The first camera at the observation size (used by lerobot-eval's videos)."""
        camera = self.cameras[0]
        if self._last_images is not None:  # the observation of this very state has it already
            return self._last_images[camera].copy()
        return self._renderer.render([camera])[camera]

    def close(self):
        pass
