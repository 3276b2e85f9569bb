"""``--robot.type=aloha``: the real ALOHA, two ViperX 300 followers on Dynamixel buses.

Only the config is imported here (the package is imported on every LeRobot command); LeRobot builds
:class:`~.aloha.Aloha` from it by its naming convention, loading the Dynamixel SDK then.
"""

from .config_aloha import AlohaConfig

__all__ = ["AlohaConfig"]
