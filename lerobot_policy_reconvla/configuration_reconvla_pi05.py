# Builds on LeRobot's pi05 configuration (lerobot/policies/pi05/configuration_pi05.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""Configuration of ReconVLA on pi0.5: LeRobot's `PI05Config` plus the same recon fields as `reconvla`.

Every pi05 field keeps pi05's meaning and default (quantile normalisation of state and action, the state
written into the prompt as 256-bin tokens, a 200-token prompt); the `recon_*` fields are `ReconSettings`'.
"""

from dataclasses import dataclass
from typing import ClassVar

from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi05.configuration_pi05 import PI05Config

from .configuration_reconvla import ReconSettings


@PreTrainedConfig.register_subclass("reconvla_pi05")
@dataclass
class ReconVLAPi05Config(ReconSettings, PI05Config):
    """pi05 + ReconVLA's reconstruction head (`--policy.type=reconvla_pi05`)."""

    base_type: ClassVar[str] = "pi05"

    @staticmethod
    def base_gemma_config(variant: str):
        # Imported here: it imports transformers, which the plugin's registration does without.
        from lerobot.policies.pi05.modeling_pi05 import get_gemma_config

        return get_gemma_config(variant)
