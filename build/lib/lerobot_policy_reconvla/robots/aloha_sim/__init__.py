"""``--robot.type=aloha_sim``: the real ALOHA's features backed by gym-aloha's MuJoCo scenes.

Only the config is imported here (the package is imported on every LeRobot command); LeRobot builds
:class:`~.aloha_sim.AlohaSim` from it by its naming convention, and MuJoCo loads when it connects.
"""

from .config_aloha_sim import AlohaSceneConfig, AlohaSimConfig

__all__ = ["AlohaSceneConfig", "AlohaSimConfig"]
