# Builds on LeRobot's pi0 (lerobot/policies/pi0/modeling_pi0.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""The `tiny` backbone variant: pi0's architecture at a few million parameters, for CPU tests and demos.

pi0's core constructor (`PI0Pytorch.__init__`) knows only the gemma_* variants, and its PaliGemma
hard-codes SigLIP so400m and a 257152-token vocabulary (~0.5B parameters on their own). So for `tiny`,
pi0's constructor runs unchanged for gemma_300m on the meta device (no memory, no initialisation);
then the two transformers towers are rebuilt from pi0's own transformers configs at the sizes of
configuration_reconvla's TINY_* tables, and the few layers whose size follows the action expert's
width are rebuilt at the tiny width. Everything else (module tree, forward, dtypes, freezing,
compilation) is what pi0's constructor made; a parameter left on the meta device is an error.
"""

import copy
from itertools import chain

import torch
from lerobot.policies.pi0.modeling_pi0 import PI0Pytorch
from lerobot.policies.pi_gemma import PaliGemmaForConditionalGenerationWithPiGemma, PiGemmaForCausalLM
from torch import nn

from .configuration_reconvla import TINY, TINY_LANGUAGE, TINY_VISION, TINY_VOCAB_SIZE

# The smallest of pi0's variants: what pi0's constructor builds on the meta device before the tiny towers.
STAND_IN_VARIANT = "gemma_300m"


def init_pi0_core(model: PI0Pytorch, config, rtc_processor=None) -> None:
    """Runs pi0's core constructor on `model`, then, for the `tiny` variant, rebuilds it at the tiny sizes."""
    if config.paligemma_variant != TINY:
        PI0Pytorch.__init__(model, config, rtc_processor=rtc_processor)
        return
    stand_in = copy.copy(config)  # the same settings but a variant pi0 knows; `config` itself is left alone
    stand_in.paligemma_variant = stand_in.action_expert_variant = STAND_IN_VARIANT
    with torch.device("meta"):
        PI0Pytorch.__init__(model, stand_in, rtc_processor=rtc_processor)
    model.config = config
    _rebuild_towers_tiny(model.paligemma_with_expert, config.dtype)
    width = TINY_LANGUAGE["hidden_size"]
    # pi0's layers sized by the action expert's width (PI0Pytorch.__init__), in pi0's attribute order.
    model.action_in_proj = nn.Linear(config.max_action_dim, width)
    model.action_out_proj = nn.Linear(width, config.max_action_dim)
    model.state_proj = nn.Linear(config.max_state_dim, width)
    model.action_time_mlp_in = nn.Linear(2 * width, width)
    model.action_time_mlp_out = nn.Linear(width, width)
    left = [name for name, tensor in chain(model.named_parameters(), model.named_buffers()) if tensor.is_meta]
    if left:
        raise RuntimeError(
            f"pi0's core constructor built {left[:5]} (of {len(left)} tensors), which the tiny variant does "
            "not rebuild at its sizes: add them to lerobot_policy_reconvla.tiny.init_pi0_core"
        )


def _rebuild_towers_tiny(towers, precision: str) -> None:
    """Replaces pi0's PaliGemma and action expert (built on the meta device) by tiny ones, from pi0's own
    transformers configs: the language sizes of TINY_LANGUAGE for both, SigLIP at TINY_VISION, a
    TINY_VOCAB_SIZE vocabulary. Then pi0's own dtype and freezing steps run again on the new towers."""
    vlm = copy.deepcopy(towers.paligemma.config)
    vlm.text_config.update(TINY_LANGUAGE)
    vlm.text_config.vocab_size = TINY_VOCAB_SIZE
    vlm._vocab_size = TINY_VOCAB_SIZE  # the field pi0 itself sets
    vlm.image_token_index = TINY_VOCAB_SIZE
    vlm.vision_config.update(TINY_VISION)
    # The projector must land in the language width (pi0 hard-codes gemma_2b's 2048).
    vlm.vision_config.projection_dim = TINY_LANGUAGE["hidden_size"]
    expert = copy.deepcopy(towers.gemma_expert.config)
    expert.update(TINY_LANGUAGE)
    expert.vocab_size = TINY_VOCAB_SIZE

    towers.paligemma = PaliGemmaForConditionalGenerationWithPiGemma(config=vlm)
    towers.gemma_expert = PiGemmaForCausalLM(config=expert)
    towers.gemma_expert.model.embed_tokens = None  # as pi0: the expert reads embeddings, never tokens
    towers.to_bfloat16_for_selected_params(precision)
    towers._set_requires_grad()  # pi0's own freezing step (it has no public one), for the new towers
