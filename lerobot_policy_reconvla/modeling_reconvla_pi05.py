# Builds on LeRobot's pi05 (lerobot/policies/pi05/modeling_pi05.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""ReconVLA on pi0.5 (`--policy.type=reconvla_pi05`): LeRobot's pi05 plus the same training-only recon head.

The head reads the PaliGemma prefix's visual hidden states, which pi05 builds exactly as pi0 does (images
first, then the prompt); the recon branch (recon_branch.py) is shared with `reconvla`. What is pi05's own
stays pi05's: its core conditions the action expert's norms on time and takes no state input (the
processor writes the state into the prompt), so `_base_model_inputs` passes no state. At inference nothing
of the head runs: `select_action` / `predict_action_chunk` are pi05's.
"""

from typing import ClassVar

from lerobot.policies.pi05.modeling_pi05 import PI05Policy, PI05Pytorch
from torch import nn

from .configuration_reconvla_pi05 import ReconVLAPi05Config
from .recon_branch import ReconCoreMixin, ReconPolicyMixin


class ReconVLAPi05Pytorch(ReconCoreMixin, PI05Pytorch):
    """pi05's core model + `recon_head` (a ReconDiT), saved under `model.` like every pi05 weight."""

    base_core: ClassVar[type[nn.Module]] = PI05Pytorch


class ReconVLAPi05Policy(ReconPolicyMixin, PI05Policy):
    """pi05 + ReconVLA's reconstruction loss; inference is pi05's (the head is never called)."""

    config_class = ReconVLAPi05Config
    name = "reconvla_pi05"
    core_class: ClassVar[type[nn.Module]] = ReconVLAPi05Pytorch

    def _base_model_inputs(self, batch, images, img_masks, lang_tokens, lang_masks, actions) -> tuple:
        # pi05's core reads the state from the prompt's tokens (Pi05PrepareStateTokenizerProcessorStep).
        return images, img_masks, lang_tokens, lang_masks, actions
