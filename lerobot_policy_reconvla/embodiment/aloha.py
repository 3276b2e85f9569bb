"""ALOHA's joint names, in the order of LeRobot's ALOHA datasets (``lerobot/aloha_sim_*``).

One definition shared by the real robot's motors, the simulator's qpos / actions and the generated
datasets' ``observation.state`` / ``action`` names, so a policy trained on one runs on the others.

    JOINT_NAMES[:3]   # ('left_waist', 'left_shoulder', 'left_elbow')
    len(JOINT_NAMES)  # 14: the left arm's seven (gripper last), then the right arm's
"""

import math

SIDES = ("left", "right")
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
JOINT_NAMES = tuple(f"{side}_{joint}" for side in SIDES for joint in ARM_JOINTS)  # (14,)
GRIPPER_INDICES = tuple(i for i, name in enumerate(JOINT_NAMES) if name.endswith("_gripper"))  # (6, 13)


def joint_goals(action: dict[str, float], device: object) -> dict[str, float]:
    """`{"<joint>.pos": value}` -> `{"<joint>": value}`, refused whole (nothing sent) if any key is not a
    joint or any value is not finite. `device` names the robot in the error.

        joint_goals({"left_waist.pos": 0.1}, "aloha")   # {'left_waist': 0.1}
    """
    unknown = [
        key for key in action if not key.endswith(".pos") or key.removesuffix(".pos") not in JOINT_NAMES
    ]
    if unknown:
        expected = [f"{name}.pos" for name in JOINT_NAMES]
        raise ValueError(f"{device}: unknown action key(s) {unknown}; expected {expected}")
    goal = {key.removesuffix(".pos"): float(value) for key, value in action.items()}
    bad = {name: value for name, value in goal.items() if not math.isfinite(value)}
    if bad:
        raise ValueError(f"{device}: non-finite action values {bad}; nothing was sent")
    return goal


def cap_joint_goals(
    goal: dict[str, float], present: dict[str, float], max_relative_target: float | dict[str, float] | None
) -> dict[str, float]:
    """Caps each goal to `max_relative_target` (one number, or per joint) away from the present position,
    with LeRobot's own `ensure_safe_goal_position` (which logs what it clipped)."""
    if max_relative_target is None:
        return goal
    from lerobot.robots.utils import ensure_safe_goal_position

    caps = {
        name: max_relative_target.get(name, math.inf)
        if isinstance(max_relative_target, dict)
        else max_relative_target
        for name in goal
    }
    return ensure_safe_goal_position({name: (g, float(present[name])) for name, g in goal.items()}, caps)
