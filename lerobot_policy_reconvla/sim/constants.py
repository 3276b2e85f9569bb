"""Facts about the three-camera ALOHA sim that need no MuJoCo: task names, instructions, cameras.

Light on purpose (imported with the package). `tests/test_sim_env.py` checks `SCENE_CAMERAS` against
the cameras MuJoCo actually loads from gym-aloha's XML.
"""

import numbers
from collections.abc import Sequence

GYM_ID = "lerobot_policy_reconvla/AlohaMultiCam-v0"
FPS = 50  # gym-aloha DT = 0.02 s
EPISODE_LENGTH = 400

# The env's task description == the dataset's task string, so eval prompts match training prompts.
# `lift_named` and `lift_pair` name one of several cubes per episode: their description is a template,
# filled by the scene (`task_instructions` lists every string it can take).
TASK_DESCRIPTIONS = {
    "insertion": "Insert the peg into the socket.",
    "transfer_cube": "Pick up the cube with the right arm and transfer it to the left arm.",
    "lift": "Pick up the cube.",
    "lift_named": "Pick up the {colour} cube.",
    "lift_pair": "Pick up the {colour} cube.",
}
TASKS = tuple(TASK_DESCRIPTIONS)

# Cubes of the lift tasks, in the scene's order (qpos, object_pose): gym-aloha's red cube first.
CUBE_COLOURS = ("red", "green", "blue")
# The tasks whose instruction names one cube among several, and the cubes of their scenes.
NAMED_CUBE_TASKS = {"lift_named": CUBE_COLOURS, "lift_pair": ("red", "green")}

# Steps per episode: ACT's 400 for the bimanual tasks; the one-arm lifts finish in well under 150.
EPISODE_LENGTHS = {"insertion": 400, "transfer_cube": 400, "lift": 150, "lift_named": 150, "lift_pair": 150}

# Every camera in gym-aloha's scenes (scene.xml + the two wrist cameras of vx300s_left/right.xml).
SCENE_CAMERAS = ("left_pillar", "right_pillar", "top", "angle", "front_close", "left_wrist", "right_wrist")
DEFAULT_CAMERAS = ("top", "left_wrist", "right_wrist")


def check_task(task: str) -> str:
    if task not in TASK_DESCRIPTIONS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {list(TASKS)}")
    return task


def check_observe_every(observe_every) -> int:
    """The env's `observe_every` (steps between rendered observations), refused unless a whole number >= 1."""
    whole = isinstance(observe_every, numbers.Integral) and not isinstance(observe_every, bool)
    if not whole or observe_every < 1:
        raise ValueError(f"observe_every must be a whole number of steps >= 1, got {observe_every!r}")
    return int(observe_every)


def naming_instruction(task: str, colour: str) -> str:
    """The task string of a task naming a cube, when it names `colour`."""
    return TASK_DESCRIPTIONS[task].format(colour=colour)


def task_instructions(task: str) -> tuple[str, ...]:
    """Every task string an episode of `task` can carry (one, except where it names a cube)."""
    check_task(task)
    if task in NAMED_CUBE_TASKS:
        return tuple(naming_instruction(task, colour) for colour in NAMED_CUBE_TASKS[task])
    return (TASK_DESCRIPTIONS[task],)


def every_cube_episodes(task: str, first_seed: int, episodes: int) -> tuple[int, int]:
    """(first seed, episodes) for a run that names every cube of each scene in turn: the first seed rounded
    up to a multiple of the scene's cubes (n), the episodes to a multiple of n, so every scene runs under
    every instruction (none cut short). A task with one instruction keeps both.

    >>> every_cube_episodes("lift_pair", 1000, 5), every_cube_episodes("lift_named", 1000, 30)
    ((1000, 6), (1002, 30))
    """
    cubes = NAMED_CUBE_TASKS.get(check_task(task))
    if cubes is None:
        return first_seed, episodes
    n = len(cubes)
    return -(-first_seed // n) * n, -(-episodes // n) * n


def default_episode_length(task: str) -> int:
    return EPISODE_LENGTHS[check_task(task)]


def check_cameras(cameras: Sequence[str]) -> list[str]:
    if isinstance(cameras, str):
        raise ValueError(f"cameras must be a list of camera names, got the string {cameras!r}")
    cameras = list(cameras)
    if not cameras:
        raise ValueError(f"cameras must name at least one camera; valid cameras: {list(SCENE_CAMERAS)}")
    unknown = [cam for cam in cameras if cam not in SCENE_CAMERAS]
    if unknown:
        raise ValueError(f"unknown camera(s) {unknown}; valid cameras: {list(SCENE_CAMERAS)}")
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"cameras must be distinct, got {cameras}")
    return cameras
