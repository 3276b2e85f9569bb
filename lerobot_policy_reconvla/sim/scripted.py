"""Scripted demonstrations for gym-aloha's insertion and transfer-cube scenes and the one-arm lifts.

The ACT recipe (Zhao et al. 2023, sim data): end-effector waypoints, linearly interpolated, drive the
mocap-welded grippers of the *end-effector* scene; the joint positions that result (and the commanded
gripper openings) are then replayed as joint targets in the *joint-space* scene, which is the one that
is rendered and recorded. Object poses come from gym-aloha's seeded samplers, so a seed means the same
scene in both simulations and in ``AlohaMultiCamEnv.reset(seed=...)``.

    from lerobot_policy_reconvla.sim.scripted import scripted_episode, replay

    episode = scripted_episode("insertion", seed=3)     # mocap rollout, no rendering (~0.2 s)
    episode.actions                                      # (400, 14) float64 joint targets, action[t]
                                                         # (the lift tasks: 150 steps, right arm only)
    episode.scene.object_pose                            # (14,) peg + socket poses
    result = replay(episode)                             # joint-space replay, no rendering
    result.success                                       # gym-aloha's success (reward 4) reached

    # or step it yourself, e.g. in a rendering env or a scripted teleoperator:
    env = AlohaMultiCamEnv(task="insertion"); obs, info = env.reset(seed=3)
    for action in episode.actions: obs, reward, terminated, truncated, info = env.step(action)

``ScriptedPolicy(task, seed)`` wraps the same thing step by step: ``policy.action(t) -> (14,)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
from gym_aloha.constants import normalize_puppet_gripper_position

from .constants import check_task, default_episode_length
from .tasks import Scene, make_task_environment, scene_cubes, scene_for_seed

# --- quaternions (w, x, y, z), as MuJoCo stores them -------------------------------------------------


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b, then a, in a's frame)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_from_axis_angle(axis, degrees: float) -> np.ndarray:
    """E.g. quat_from_axis_angle([1, 0, 0], 90) -> [0.7071, 0.7071, 0, 0]."""
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    half = np.deg2rad(degrees) / 2
    return np.concatenate([[np.cos(half)], np.sin(half) * axis])


# --- waypoints -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waypoint:
    t: int  # control step at which the gripper reaches this pose
    xyz: np.ndarray  # (3,) world position of the mocap body (gripper_link)
    quat: np.ndarray  # (4,) wxyz
    gripper: float  # normalised opening: 0 closed, 1 open


def interpolate(waypoints: list[Waypoint], t: float) -> np.ndarray:
    """(8,) [xyz, quat, gripper] at step t, linear between the surrounding waypoints (held after the last)."""
    if t >= waypoints[-1].t:
        w = waypoints[-1]
        return np.concatenate([w.xyz, w.quat, [w.gripper]])
    k = max(i for i, w in enumerate(waypoints) if w.t <= t)
    a, b = waypoints[k], waypoints[k + 1]
    f = (t - a.t) / (b.t - a.t)
    # Linear quaternion blend, as in ACT; the mocap weld tolerates the small non-unit error in between.
    return np.concatenate(
        [
            a.xyz + f * (b.xyz - a.xyz),
            a.quat + f * (b.quat - a.quat),
            [a.gripper + f * (b.gripper - a.gripper)],
        ]
    )


def transfer_cube_waypoints(start_left, start_right, cube_pose):
    """Right arm picks the cube, meets the left arm mid-air, left arm takes it. Poses: (7,) xyz + quat."""
    cube = np.asarray(cube_pose[:3])
    pick = quat_mul(start_right[3:], quat_from_axis_angle([0, 1, 0], -60))  # tilt the right gripper down
    # ACT's waypoints (the mocap frame sits between the fingers): grasp 1.5 cm below the sampled centre,
    # the left gripper closes 2 cm past the meeting point, around the cube held by the right one.
    take = quat_from_axis_angle([1, 0, 0], 90)  # left gripper rolled to face the right one
    meet = np.array([0.0, 0.5, 0.25])
    W = Waypoint
    left = [
        W(0, start_left[:3], start_left[3:], 0),
        W(100, meet + [-0.1, 0, -0.02], take, 1),  # approach the meeting point, open
        W(260, meet + [0.02, 0, -0.02], take, 1),  # slide in around the cube
        W(310, meet + [0.02, 0, -0.02], take, 0),  # close
        W(360, meet + [-0.1, 0, -0.02], np.array([1.0, 0, 0, 0]), 0),  # pull away holding it
        W(400, meet + [-0.1, 0, -0.02], np.array([1.0, 0, 0, 0]), 0),
    ]
    right = [
        W(0, start_right[:3], start_right[3:], 0),
        W(90, cube + [0, 0, 0.08], pick, 1),  # above the cube, open
        W(130, cube + [0, 0, -0.015], pick, 1),  # down around it
        W(170, cube + [0, 0, -0.015], pick, 0),  # close
        W(200, meet + [0.05, 0, 0], pick, 0),  # lift towards the meeting point
        W(220, meet, pick, 0),
        W(310, meet, pick, 1),  # release once the left gripper has closed
        W(360, meet + [0.1, 0, 0], pick, 1),  # back off
        W(400, meet + [0.1, 0, 0], pick, 1),
    ]
    return left, right


def insertion_waypoints(start_left, start_right, object_pose):
    """Left arm grasps the socket, right arm the peg; they meet and the peg slides into the socket."""
    peg, socket = np.asarray(object_pose[:3]), np.asarray(object_pose[7:10])
    # Both grippers pitched down 60 degrees from the (identical) starting orientation.
    pick_right = quat_mul(start_right[3:], quat_from_axis_angle([0, 1, 0], -60))
    pick_left = quat_mul(start_right[3:], quat_from_axis_angle([0, 1, 0], 60))
    meet = np.array([0.0, 0.5, 0.15])
    # Both objects are grasped 3 cm below their sampled centres (z = 0.05), but at rest the peg's centre is
    # at 0.01 and the socket's at 0.022, so the peg sits ~1.2 cm lower in its gripper than the socket's
    # opening in the other: raise the right gripper to line them up (ACT: 0.00715, which leaves the peg
    # 5-10 mm low on MuJoCo 3.8 and it catches the socket's rim).
    lift_right = 0.0145
    # Each gripper stops 4 cm short of the meeting point (ACT: 5 cm). The peg (half-length 6 cm) touches
    # the pin (half-length 4 cm, centred in the socket) only once the objects' centres are < 10 cm apart;
    # at 5 cm per side they end up right at 10 cm and the pin is touched on some seeds only.
    insert = 0.04
    W = Waypoint
    left = [
        W(0, start_left[:3], start_left[3:], 0),
        W(120, socket + [0, 0, 0.08], pick_left, 1),
        W(170, socket + [0, 0, -0.03], pick_left, 1),
        W(220, socket + [0, 0, -0.03], pick_left, 0),
        W(285, meet + [-0.1, 0, 0], pick_left, 0),
        W(340, meet + [-insert, 0, 0], pick_left, 0),  # insert
        W(400, meet + [-insert, 0, 0], pick_left, 0),
    ]
    right = [
        W(0, start_right[:3], start_right[3:], 0),
        W(120, peg + [0, 0, 0.08], pick_right, 1),
        W(170, peg + [0, 0, -0.03], pick_right, 1),
        W(220, peg + [0, 0, -0.03], pick_right, 0),
        W(285, meet + [0.1, 0, lift_right], pick_right, 0),
        W(340, meet + [insert, 0, lift_right], pick_right, 0),  # insert
        W(400, meet + [insert, 0, lift_right], pick_right, 0),
    ]
    return left, right


LIFT_APPROACH_STEPS = (
    55  # the lift script reaches above its cube at this step: the approach, where the cube is chosen
)


def lift_waypoints(start_left, start_right, cube_pose):
    """Right arm picks the cube and lifts it 10 cm; the left arm stays where it starts."""
    cube = np.asarray(cube_pose[:3])
    pick = quat_mul(start_right[3:], quat_from_axis_angle([0, 1, 0], -60))  # as transfer_cube's grasp
    W = Waypoint
    left = [W(0, start_left[:3], start_left[3:], 0), W(150, start_left[:3], start_left[3:], 0)]
    right = [
        W(0, start_right[:3], start_right[3:], 0),
        W(LIFT_APPROACH_STEPS, cube + [0, 0, 0.08], pick, 1),  # above the cube, open
        W(90, cube + [0, 0, -0.015], pick, 1),  # down around it
        W(105, cube + [0, 0, -0.015], pick, 0),  # close
        W(115, cube + [0, 0, -0.015], pick, 0),  # let the joint-space replay's fingers settle on it
        W(140, cube + [0, 0, 0.1], pick, 0),  # lift
        W(150, cube + [0, 0, 0.1], pick, 0),
    ]
    return left, right


WAYPOINT_FNS = {
    "insertion": insertion_waypoints,
    "transfer_cube": transfer_cube_waypoints,
    "lift": lift_waypoints,
    "lift_named": lift_waypoints,
    "lift_pair": lift_waypoints,
}


def scripted_object_pose(scene: Scene) -> np.ndarray:
    """The pose(s) the script moves to: every object, or for the lift tasks the named cube's (7,)."""
    if scene.target is None:
        return scene.object_pose
    i = scene_cubes(scene.task).index(scene.target)
    return scene.object_pose[7 * i : 7 * i + 7]


# --- mocap rollout -> joint trajectory -------------------------------------------------------------

# Rotational weight of the mocap welds (the weld's ``torquescale``, eq_data[10]; MJCF default 1).
WELD_TORQUESCALE = 10.0


def stiffen_mocap_welds(physics, torquescale: float | None = None) -> None:
    """Make the mocap welds hold the grippers' orientation, as they did on MuJoCo 2.3.7.

    MuJoCo 3.0 changed how a weld's rotational rows are weighted (the constraint's diagonal
    approximation, changelog 3.0.0), so with gym-aloha's soft weld (solref 0.01, solimp .25 .25) and the
    default torquescale of 1 the grippers sag and twist by up to ~80 degrees away from the commanded
    orientation while the position part still tracks; the fingers then meet the objects at the wrong
    angle and grasps slip. Raising torquescale brings the orientation error under ~3 degrees.
    The relative pose (eq_data[3:10], from the reference configuration) is kept: ACT's waypoints
    describe the mocap frame, ~13 cm ahead of gripper_link, between the fingers.
    """
    model = physics.model
    scale = WELD_TORQUESCALE if torquescale is None else torquescale
    for i in range(model.neq):
        if model.eq_type[i] == 1:  # mjEQ_WELD
            model.eq_data[i, 10] = scale


@dataclass
class ScriptedEpisode:
    task: str
    seed: int
    scene: Scene  # object poses, task string, named cube
    actions: np.ndarray  # (T, 14) joint targets; grippers normalised as the joint env expects
    ee_success: bool  # success already reached in the mocap scene
    ee_max_reward: float


def scripted_episode(task: str, seed: int, episode_length: int | None = None) -> ScriptedEpisode:
    """Roll the waypoint script out in the mocap scene; return the joint targets to replay.

    action[t] = the arm joint positions the mocap scene reached *after* its step t, with the grippers
    set to the opening commanded at step t (normalised); fingers follow commands, not measured width,
    so a closing gripper keeps squeezing in the replay.
    """
    check_task(task)
    return scripted_episode_for_scene(scene_for_seed(task, seed), seed, episode_length)


def scripted_episode_for_scene(
    scene: Scene, seed: int = -1, episode_length: int | None = None
) -> ScriptedEpisode:
    """:func:`scripted_episode` for any scene (e.g. objects placed by hand); `seed` is only recorded."""
    task = scene.task
    episode_length = episode_length or default_episode_length(task)
    env = make_task_environment(task, mocap=True)
    stiffen_mocap_welds(env.physics)
    scene.apply(env)
    ts = env.reset()
    left, right = WAYPOINT_FNS[task](
        ts.observation["mocap_pose_left"], ts.observation["mocap_pose_right"], scripted_object_pose(scene)
    )

    actions = np.zeros((episode_length, 14))  # (T, 14)
    rewards = []
    for t in range(episode_length):
        ts = env.step(np.concatenate([interpolate(left, t), interpolate(right, t)]))  # (16,)
        rewards.append(ts.reward)
        qpos = ts.observation["qpos"].copy()  # (14,)
        ctrl = ts.observation["gripper_ctrl"]  # (4,) left +-, right +-
        qpos[6] = normalize_puppet_gripper_position(ctrl[0])
        qpos[13] = normalize_puppet_gripper_position(ctrl[2])
        actions[t] = qpos
    return ScriptedEpisode(
        task=task,
        seed=seed,
        scene=scene,
        actions=actions,
        ee_success=bool(max(rewards) == env.task.max_reward),
        ee_max_reward=float(max(rewards)),
    )


@dataclass
class ReplayResult:
    success: bool  # gym-aloha success (reward 4) reached at any step
    max_reward: float
    rewards: np.ndarray  # (T,)
    states: np.ndarray  # (T, 14) agent_pos *before* each action (what a dataset frame records)


def replay(episode: ScriptedEpisode) -> ReplayResult:
    """Replay the joint targets in the joint-space scene, physics only (no rendering)."""
    env = make_task_environment(episode.task, mocap=False)
    episode.scene.apply(env)
    ts = env.reset()
    states, rewards = [], []
    for action in episode.actions:
        states.append(ts.observation["qpos"].copy())
        ts = env.step(action)
        rewards.append(ts.reward)
    rewards = np.asarray(rewards, dtype=np.float64)
    return ReplayResult(
        success=bool(rewards.max() == env.task.max_reward),
        max_reward=float(rewards.max()),
        rewards=rewards,
        states=np.asarray(states),
    )


class ScriptedPolicy:
    """Step-by-step view of a scripted episode (for a scripted teleoperator or a custom loop).

    The trajectory is open loop: it is computed once from the seed's object poses, so drive an env
    reset with the same seed. After the last step the final action is held.
    """

    def __init__(self, task: str, seed: int, episode_length: int | None = None):
        self.episode = scripted_episode(task, seed, episode_length)

    def __len__(self) -> int:
        return len(self.episode.actions)

    def action(self, t: int) -> np.ndarray:
        return self.episode.actions[min(t, len(self.episode.actions) - 1)].copy()
