"""ALOHA robots for LeRobot's CLIs, registered on import (configs only: light). One device per package:

- ``--robot.type=aloha``: the real ALOHA, two ViperX 300 followers on Dynamixel buses (``aloha/``).
- ``--robot.type=aloha_sim``: the same features backed by the three-camera MuJoCo scene (``aloha_sim/``).

Their teleoperators (``aloha_leader``, ``aloha_scripted``) live in ``lerobot_policy_reconvla.teleoperators``.
LeRobot builds the devices from the configs by its naming convention (``<x>/config_<x>.<Name>Config``
-> ``<x>/<x>.<Name>``), so the device modules (Dynamixel SDK, MuJoCo) load only when a device is made.
See ``docs/robots.md`` for the commands.
"""

from .aloha import AlohaConfig
from .aloha_sim import AlohaSimConfig

__all__ = ["AlohaConfig", "AlohaSimConfig"]
