"""``--teleop.type=aloha_leader``: the real ALOHA's two WidowX 250 leader arms.

Only the config is imported here (the package is imported on every LeRobot command); LeRobot builds
:class:`~.aloha_leader.AlohaLeader` from it by its naming convention, loading the Dynamixel SDK then.
"""

from .config_aloha_leader import AlohaLeaderConfig

__all__ = ["AlohaLeaderConfig"]
