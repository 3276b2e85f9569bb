"""``--teleop.type=aloha_scripted``: ACT-style scripted demonstrations for the ``aloha_sim`` robot.

Only the config is imported here (the package is imported on every LeRobot command); LeRobot builds
:class:`~.aloha_scripted.AlohaScripted` from it by its naming convention, and MuJoCo loads on its
first demonstration.
"""

from .config_aloha_scripted import AlohaScriptedConfig

__all__ = ["AlohaScriptedConfig"]
