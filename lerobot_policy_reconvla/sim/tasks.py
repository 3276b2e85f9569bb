"""gym-aloha's bimanual ViperX scenes as dm_control environments, without per-step rendering.

    from lerobot_policy_reconvla.sim.tasks import make_task_environment, scene_for_seed

    env = make_task_environment("lift_named")             # joint-position control
    scene = scene_for_seed("lift_named", seed=3)          # object poses, the named cube, the task string
    scene.apply(env)                                      # before every reset
    ts = env.reset()                                      # ts.observation["qpos"]: (14,)
    ts = env.step(action)                                 # action: (14,) joint targets
    ts.reward == env.task.max_reward                      # success
    scene_naming_every_cube("lift_pair", seed=7)          # seeds 6 and 7: scene 6, red then green named

Tasks: gym-aloha's bimanual ``insertion`` and ``transfer_cube``, and three one-arm lifts in the same scene:
``lift`` (gym-aloha's red cube, placed in the middle of transfer_cube's area), ``lift_named`` (red, green and
blue cubes placed at random; the task string names one, and only that cube lifted is success) and
``lift_pair`` (a red and a green cube in two fixed slots, near-copies of ``lift``'s placement, which cube
sits in which slot and which is named drawn per episode: the choice is the whole difficulty).

Shared by the gym env (``sim.env``), the scripted demonstrations (``sim.scripted``) and the
``aloha_sim`` robot. Rendering and gaze boxes live elsewhere (``sim.render``, ``sim.gaze``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

os.environ.setdefault("MUJOCO_GL", "egl")  # headless CPU rendering; must precede dm_control's import

import numpy as np
from dm_control import mujoco
from dm_control.rl import control
from gym_aloha.constants import ASSETS_DIR, DT, START_ARM_POSE
from gym_aloha.tasks.sim import InsertionTask, TransferCubeTask
from gym_aloha.tasks.sim_end_effector import InsertionEndEffectorTask, TransferCubeEndEffectorTask
from gym_aloha.utils import sample_box_pose, sample_insertion_pose

from .constants import CUBE_COLOURS, NAMED_CUBE_TASKS, TASK_DESCRIPTIONS, check_task, naming_instruction

SUCCESS_REWARD = 4  # gym-aloha's max_reward of insertion and transfer_cube
LIFT_SUCCESS_REWARD = 3  # lift tasks: 1 touched by the right gripper, 2 off the table, 3 lifted LIFT_HEIGHT
LIFT_HELD_REWARD = 2  # lift tasks: the named cube held by the right gripper, off the table
LIFT_HEIGHT = 0.05  # m the named cube's centre must rise above its resting height, held by the right gripper
CUBE_REST_Z = 0.02  # centre of a 4 cm cube resting on the table (z = 0)
LIFTED_Z = CUBE_REST_Z + 0.02  # a cube this high counts as picked up, for the wrong-object record

# gym-aloha's red cube is body "box", geom "red_box"; the lift_named scene adds the other colours alike.
CUBE_BODIES = {colour: "box" if colour == "red" else f"box_{colour}" for colour in CUBE_COLOURS}
CUBE_GEOMS = {colour: f"{colour}_box" for colour in CUBE_COLOURS}
CUBE_RGBA = {"red": (1.0, 0.0, 0.0, 1.0), "green": (0.0, 0.8, 0.0, 1.0), "blue": (0.1, 0.3, 1.0, 1.0)}
RIGHT_FINGERS = ("vx300s_right/10_left_gripper_finger", "vx300s_right/10_right_gripper_finger")

# lift placements: uniform in the middle of transfer_cube's area (gym-aloha's x 0-0.2, y 0.4-0.6), 10 x 10
# cm, so a policy trained for minutes on a CPU can place its grasp. The grasp tolerates about 2 cm: the
# script for the area's centre, replayed blind on held-out placements, lifts 11 of 50 cubes (22 %,
# `evaluate_scripted --task lift --blind`), the floor a policy that looks must beat.
LIFT_X_RANGE = (0.05, 0.15)
LIFT_Y_RANGE = (0.45, 0.55)

# lift_named placements: uniform in this area (reachable by the right arm alone), cubes' centres at
# least NAMED_MIN_SEPARATION apart so the open gripper (~11 cm between fingers) fits around one cube.
NAMED_X_RANGE = (-0.05, 0.2)
NAMED_Y_RANGE = (0.4, 0.65)
NAMED_MIN_SEPARATION = 0.1

# lift_pair placements: two slots 14 cm apart across the right arm's reach (y), each cube within 1 cm of
# its slot's centre, so the grasp itself is nearly a fixed motion (the lift script replayed blind at a
# slot's centre lifts a cube placed there) and only the instruction decides which slot to reach.
PAIR_SLOTS = ((0.1, 0.43), (0.1, 0.57))
PAIR_JITTER = 0.01


@dataclass(frozen=True)
class TaskSpec:
    joint_xml: str
    mocap_xml: str
    object_bodies: tuple[str, ...]  # every task object, in qpos order (its gaze box: see Scene.gaze_bodies)


_CUBE_XMLS = ("bimanual_viperx_transfer_cube.xml", "bimanual_viperx_end_effector_transfer_cube.xml")
TASK_SPECS = {
    "insertion": TaskSpec(
        "bimanual_viperx_insertion.xml", "bimanual_viperx_end_effector_insertion.xml", ("peg", "socket")
    ),
    "transfer_cube": TaskSpec(*_CUBE_XMLS, ("box",)),
    "lift": TaskSpec(*_CUBE_XMLS, ("box",)),
    **{
        task: TaskSpec(*_CUBE_XMLS, tuple(CUBE_BODIES[c] for c in cubes))
        for task, cubes in NAMED_CUBE_TASKS.items()
    },
}


def scene_cubes(task: str) -> tuple[str, ...]:
    """Colours of the cubes in `task`'s scene, in qpos order (none for insertion)."""
    bodies = TASK_SPECS[check_task(task)].object_bodies
    return tuple(colour for colour in CUBE_COLOURS if CUBE_BODIES[colour] in bodies)


@dataclass(frozen=True)
class Scene:
    """What a seed decides about an episode: where the objects are and what the task string asks."""

    task: str
    object_pose: np.ndarray  # (7 * objects,) xyz + wxyz per object of TASK_SPECS[task].object_bodies
    instruction: str  # the task string (prompt)
    gaze_bodies: tuple[str, ...]  # bodies whose geoms make the gaze box: the objects the task is about
    target: str | None = None  # lift tasks: colour of the cube to lift

    def apply(self, env) -> None:
        """Place the objects (and set the cube to lift) for the next ``env.reset()``."""
        env.task.object_pose = self.object_pose
        if self.target is not None:
            env.task.target = self.target

    def slot(self, colour: str) -> int | None:
        """lift_pair: the slot (index into PAIR_SLOTS) the `colour` cube was placed in; None for other tasks
        or an empty colour. Tells which slot a policy went for, whatever the instruction named."""
        if self.task != "lift_pair" or not colour:
            return None
        index = TASK_SPECS[self.task].object_bodies.index(CUBE_BODIES[colour])
        xy = self.object_pose[7 * index : 7 * index + 2]  # (2,) the cube's x, y as placed
        return int(np.argmin(np.linalg.norm(np.asarray(PAIR_SLOTS) - xy, axis=1)))

    def naming(self, colour: str) -> Scene:
        """The same placement with `colour` named: its task string, gaze box and success."""
        cubes = NAMED_CUBE_TASKS.get(self.task, ())
        if colour not in cubes:
            raise ValueError(f"a {self.task!r} scene names one of {list(cubes)}, not {colour!r}")
        return replace(
            self,
            instruction=naming_instruction(self.task, colour),
            gaze_bodies=(CUBE_BODIES[colour],),
            target=colour,
        )


def _named_cube_poses(rng: np.random.RandomState) -> np.ndarray:
    """(3, 3) cube centres, pairwise at least NAMED_MIN_SEPARATION apart (rejection sampling)."""
    low, high = (NAMED_X_RANGE[0], NAMED_Y_RANGE[0]), (NAMED_X_RANGE[1], NAMED_Y_RANGE[1])
    while True:
        xy = rng.uniform(low, high, size=(len(CUBE_COLOURS), 2))
        gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1)[np.triu_indices(len(xy), 1)]
        if gaps.min() >= NAMED_MIN_SEPARATION:
            return np.concatenate([xy, np.full((len(xy), 1), 0.05)], axis=1)


def _pair_cube_poses(rng: np.random.RandomState) -> np.ndarray:
    """(2, 3) centres of the red and the green cube: each in its own slot (drawn), jittered."""
    slots = np.asarray(PAIR_SLOTS)[rng.permutation(len(PAIR_SLOTS))]  # (2, 2) slot of red, of green
    xy = slots + rng.uniform(-PAIR_JITTER, PAIR_JITTER, size=slots.shape)
    return np.concatenate([xy, np.full((len(xy), 1), 0.05)], axis=1)


def scene_for_seed(task: str, seed: int | None) -> Scene:
    """The scene of `seed`: gym-aloha's samplers for its tasks, our own for the lifts."""
    check_task(task)
    if task == "insertion":
        return Scene(
            task, np.concatenate(sample_insertion_pose(seed)), TASK_DESCRIPTIONS[task], ("peg", "socket")
        )
    if task == "transfer_cube":
        return Scene(task, sample_box_pose(seed), TASK_DESCRIPTIONS[task], ("box",))
    rng = np.random.RandomState(seed)
    if task == "lift":
        xy = rng.uniform((LIFT_X_RANGE[0], LIFT_Y_RANGE[0]), (LIFT_X_RANGE[1], LIFT_Y_RANGE[1]))
        pose = np.concatenate([xy, [0.05, 1.0, 0.0, 0.0, 0.0]])  # (7,) dropped 3 cm onto the table, upright
        return Scene(task, pose, TASK_DESCRIPTIONS[task], ("box",), "red")
    cubes = NAMED_CUBE_TASKS[task]
    centres = _named_cube_poses(rng) if task == "lift_named" else _pair_cube_poses(rng)  # (cubes, 3)
    target = cubes[rng.randint(len(cubes))]
    upright = np.array([1.0, 0.0, 0.0, 0.0])
    pose = np.concatenate([np.concatenate([c, upright]) for c in centres])  # (7 * cubes,)
    return Scene(task, pose, naming_instruction(task, target), (CUBE_BODIES[target],), target)


def every_cube_scene_seed(task: str, seed: int) -> int:
    """The seed that places the objects of episode `seed` when seeds name every cube in turn: `seed` rounded
    down to a multiple of the scene's cubes (n). Rounding down, not seed // n, keeps the scenes among the
    seeds asked for, so a seed range kept apart from the training seeds stays apart (seed // n would send
    evaluation seeds 20000-20009 to 10000-10004, the held-out scenes)."""
    cubes = NAMED_CUBE_TASKS.get(check_task(task))
    if cubes is None:
        raise ValueError(
            f"name_every_cube needs a task whose instruction names one of several cubes "
            f"({list(NAMED_CUBE_TASKS)}); {task!r} has one instruction"
        )
    return seed - seed % len(cubes)


def scene_naming_every_cube(task: str, seed: int, scene_seed: int | None = None) -> Scene:
    """Episode `seed` when consecutive seeds name every cube of one scene in turn (n cubes): seeds nk ..
    nk + n - 1 share the placement of seed nk (``every_cube_scene_seed``; `scene_seed`: that seed's
    instead) and name the scene's cubes in qpos order, cubes[seed % n]. A run of seeds starting at a
    multiple of n, n per scene, runs every scene under every instruction."""
    placed = every_cube_scene_seed(task, seed)  # refuses a task without named cubes
    if scene_seed is not None:
        placed = scene_seed
    cubes = NAMED_CUBE_TASKS[task]
    return scene_for_seed(task, placed).naming(cubes[seed % len(cubes)])


def object_pose_for_seed(task: str, seed: int | None) -> np.ndarray:
    """The object pose(s) of `seed`'s scene: (7,) cube, (14,) peg + socket or two cubes, (21,) three cubes."""
    return scene_for_seed(task, seed).object_pose


# --- dm_control tasks: gym-aloha's rewards and actuation, our own reset and no per-step rendering ----
# gym-aloha's tasks render three 640x480 cameras in every get_observation (~0.6 s per step on CPU) and
# take object poses from a module-level global (joint space) or an unseeded RNG (mocap); we override both.


class _PoseMixin:
    object_pose: np.ndarray | None = None

    @staticmethod
    def get_env_state(physics):
        return physics.data.qpos.copy()[16:]  # object poses

    def get_observation(self, physics):
        return {
            "qpos": self.get_qpos(physics),
            "qvel": self.get_qvel(physics),
            "env_state": self.get_env_state(physics),
        }


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


def _contact_pairs(physics) -> set[tuple[str, str]]:
    """Geom-name pairs in contact now, both orders."""
    pairs = set()
    for contact in physics.data.contact[: physics.data.ncon]:
        pair = (physics.model.id2name(contact.geom1, "geom"), physics.model.id2name(contact.geom2, "geom"))
        pairs.update([pair, pair[::-1]])
    return pairs


class _LiftMixin:
    """One-arm lift of the named cube: gym-aloha's contact checks, our own success (held and raised)."""

    target: str = "red"

    def __init__(self, random=None):
        super().__init__(random=random)
        self.max_reward = LIFT_SUCCESS_REWARD

    def get_reward(self, physics):
        contacts = _contact_pairs(physics)
        cube = CUBE_GEOMS[self.target]
        held = any((cube, finger) in contacts for finger in RIGHT_FINGERS)
        on_table = (cube, "table") in contacts
        if held and not on_table and cube_height(physics, self.target) >= LIFT_HEIGHT:
            return LIFT_SUCCESS_REWARD
        if held and not on_table:
            return LIFT_HELD_REWARD
        return 1 if held else 0


def cube_height(physics, colour: str) -> float:
    """Height (m) of the `colour` cube's centre above its resting height on the table."""
    return float(physics.named.data.xpos[CUBE_BODIES[colour]][2]) - CUBE_REST_Z


def lifted_cubes(physics, colours=CUBE_COLOURS) -> list[str]:
    """Colours of the cubes a gripper holds at least 2 cm above their resting height (not just dropped
    into place at reset: they start 3 cm up)."""
    contacts = _contact_pairs(physics)
    fingers = [
        name
        for name in (physics.model.id2name(i, "geom") for i in range(physics.model.ngeom))
        if name and name.endswith("gripper_finger")
    ]
    return [
        c
        for c in colours
        if physics.named.data.xpos[CUBE_BODIES[c]][2] >= LIFTED_Z
        and any((CUBE_GEOMS[c], finger) in contacts for finger in fingers)
    ]


class _LiftJoint(_LiftMixin, _JointSpaceMixin, TransferCubeTask):
    pass


class _LiftMocap(_LiftMixin, _MocapMixin, TransferCubeEndEffectorTask):
    pass


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
    ("lift", False): _LiftJoint,
    ("lift", True): _LiftMocap,
    ("lift_named", False): _LiftJoint,
    ("lift_named", True): _LiftMocap,
    ("lift_pair", False): _LiftJoint,
    ("lift_pair", True): _LiftMocap,
}


def _load_physics(task: str, xml: str) -> mujoco.Physics:
    """gym-aloha's scene; for the named-cube tasks, with their other cubes added beside its red one."""
    path = str(ASSETS_DIR / xml)
    added = scene_cubes(task)[1:]
    if not added:
        return mujoco.Physics.from_xml_path(path)
    import mujoco as mj
    from dm_control.mujoco.wrapper import core

    spec = mj.MjSpec.from_file(path)
    red = spec.body(CUBE_BODIES["red"])
    red_geom = red.geoms[0]
    for colour in added:  # the same cube (mass, friction, contact), another colour
        body = spec.worldbody.add_body(name=CUBE_BODIES[colour], pos=[0, 0.5, 0.05])
        body.ipos, body.mass, body.inertia, body.explicitinertial = [0, 0, 0], red.mass, red.inertia, True
        body.add_freejoint(name=f"{colour}_box_joint").frictionloss = red.joints[0].frictionloss
        body.add_geom(
            name=CUBE_GEOMS[colour],
            type=mj.mjtGeom.mjGEOM_BOX,
            size=red_geom.size,
            friction=red_geom.friction,
            condim=red_geom.condim,
            solimp=red_geom.solimp,
            solref=red_geom.solref,
            rgba=CUBE_RGBA[colour],
        )
    # gym-aloha's keyframe lists one cube's qpos; the added cubes make it the wrong length.
    for key in list(spec.keys):
        spec.delete(key)
    return mujoco.Physics.from_model(core.MjModel(spec.compile()))


def make_task_environment(task: str, mocap: bool = False) -> control.Environment:
    """dm_control environment for `task`: joint-position control, or end-effector (mocap) control.

    Call ``scene_for_seed(task, seed).apply(env)`` before ``env.reset()``.
    Joint space: ``env.step(action (14,))``; mocap: ``env.step([xyz, wxyz, grip] * 2 -> (16,))``.
    """
    check_task(task)
    spec = TASK_SPECS[task]
    physics = _load_physics(task, spec.mocap_xml if mocap else spec.joint_xml)
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
