"""ALOHA robots and teleoperators for LeRobot's CLIs, registered on import (configs only: light).

- ``--robot.type=aloha``: the real ALOHA, two ViperX 300 followers on Dynamixel buses (``aloha.py``).
- ``--teleop.type=aloha_leader``: its two WidowX 250 leader arms (``aloha.py``).
- ``--robot.type=aloha_sim``: the same features backed by the three-camera MuJoCo scene (``aloha_sim.py``).
- ``--teleop.type=aloha_scripted``: scripted demonstrations driving ``aloha_sim`` (``aloha_sim.py``).

LeRobot builds the devices from the configs by its naming convention (``config_<x>.<Name>Config`` ->
``<x>.<Name>``), so the device modules (Dynamixel SDK, MuJoCo) load only when a device is made.
See ``docs/robots.md`` for the commands.
"""

from .config_aloha import AlohaConfig, AlohaLeaderConfig
from .config_aloha_sim import AlohaScriptedConfig, AlohaSimConfig

__all__ = ["AlohaConfig", "AlohaLeaderConfig", "AlohaScriptedConfig", "AlohaSimConfig"]
