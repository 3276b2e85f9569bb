"""ALOHA teleoperators for LeRobot's CLIs, registered on import (configs only: light). One per package:

- ``--teleop.type=aloha_leader``: the real ALOHA's two WidowX 250 leader arms (``aloha_leader/``).
- ``--teleop.type=aloha_scripted``: scripted demonstrations for the ``aloha_sim`` robot (``aloha_scripted/``).

LeRobot builds the devices from the configs by its naming convention, so their modules (Dynamixel SDK,
MuJoCo) load only when a device is made. See ``docs/robots.md`` for the commands.
"""

from .aloha_leader import AlohaLeaderConfig
from .aloha_scripted import AlohaScriptedConfig

__all__ = ["AlohaLeaderConfig", "AlohaScriptedConfig"]
