# Builds on LeRobot's pi0 (lerobot/policies/pi0/modeling_pi0.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""ReconVLA on pi0 (`--policy.type=reconvla`): LeRobot's pi0 plus the training-only diffusion head that
reconstructs each camera's gaze region.

The recon branch (recon_branch.py) runs pi0's training forward unchanged while a forward hook keeps the
prefix hidden states of layer `recon_layer`; the image positions of those states condition `ReconDiT`,
which must denoise the (VAE-encoded) gaze crop of every camera. Its loss flows back through the language
layers and the multi-modal projector, and into SigLIP unless `freeze_vision_encoder` holds it (the official
ReconVLA and the `reconvla_paper` preset freeze it; pi0's default and the other presets train it), so the
backbone learns to look at what the task is about. At inference nothing of the head runs:
`select_action` / `predict_action_chunk` are pi0's.

pi0 is subclassed, not copied: the core model's constructor is pi0's own (the `tiny` variant's towers come
from `tiny.py`), the policy's runs pi0's few construction statements with ReconVLA's core model, and the
training forward is pi0's, observed through a forward hook. What is pi0's own here is that its core takes
the state as an input.
"""

from typing import ClassVar

from lerobot.policies.pi0.modeling_pi0 import PI0Policy, PI0Pytorch
from torch import Tensor, nn

from .configuration_reconvla import ReconVLAConfig
from .recon_branch import (
    EVAL_NOISE_SEED,
    GAZE_BOXES_AND_IMAGE_TRANSFORMS,
    RECON_HEAD_PREFIX,
    ReconCoreMixin,
    ReconPolicyMixin,
    capture_prefix_hidden_states,
    cuda_memory_metrics,
    make_recon_target,
)

__all__ = [
    "EVAL_NOISE_SEED",
    "GAZE_BOXES_AND_IMAGE_TRANSFORMS",
    "RECON_HEAD_PREFIX",
    "ReconVLAPolicy",
    "ReconVLAPytorch",
    "capture_prefix_hidden_states",
    "cuda_memory_metrics",
    "make_recon_target",
]


class ReconVLAPytorch(ReconCoreMixin, PI0Pytorch):
    """pi0's core model + `recon_head` (a ReconDiT), saved under `model.` like every pi0 weight."""

    base_core: ClassVar[type[nn.Module]] = PI0Pytorch


class ReconVLAPolicy(ReconPolicyMixin, PI0Policy):
    """pi0 + ReconVLA's reconstruction loss; inference is pi0's (the head is never called)."""

    config_class = ReconVLAConfig
    name = "reconvla"
    core_class: ClassVar[type[nn.Module]] = ReconVLAPytorch

    def _base_model_inputs(self, batch, images, img_masks, lang_tokens, lang_masks, actions) -> tuple:
        state: Tensor = self.prepare_state(batch)  # (B, max_state_dim): pi0 embeds it as one token
        return images, img_masks, lang_tokens, lang_masks, state, actions
