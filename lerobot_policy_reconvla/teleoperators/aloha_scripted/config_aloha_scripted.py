"""Config of the scripted ALOHA teleoperator: ``--teleop.type=aloha_scripted``.

Light on purpose (imported with the package); the device lives in ``aloha_scripted.py``.
"""

from dataclasses import dataclass

from lerobot.teleoperators.config import TeleoperatorConfig

from ...robots.aloha_sim.config_aloha_sim import AlohaSceneConfig


@TeleoperatorConfig.register_subclass("aloha_scripted")
@dataclass(kw_only=True)
class AlohaScriptedConfig(TeleoperatorConfig, AlohaSceneConfig):
    """Give ``task``, ``seed``, ``fps`` and ``episode_length`` the values of the ``aloha_sim`` robot it
    drives."""

    def __post_init__(self):
        self.check_scene()
