# placeholder, replaced by the policy-core work
from dataclasses import dataclass

from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi0.configuration_pi0 import PI0Config


@PreTrainedConfig.register_subclass("reconvla")
@dataclass
class ReconVLAConfig(PI0Config):
    pass
