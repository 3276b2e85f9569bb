"""ALOHA's joint names, in the order of LeRobot's ALOHA datasets (``lerobot/aloha_sim_*``).

One definition shared by the real robot's motors, the simulator's qpos / actions and the generated
datasets' ``observation.state`` / ``action`` names, so a policy trained on one runs on the others.

    JOINT_NAMES[:3]   # ('left_waist', 'left_shoulder', 'left_elbow')
    len(JOINT_NAMES)  # 14: the left arm's seven (gripper last), then the right arm's
"""

SIDES = ("left", "right")
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
JOINT_NAMES = tuple(f"{side}_{joint}" for side in SIDES for joint in ARM_JOINTS)  # (14,)
