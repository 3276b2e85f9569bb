# Builds on LeRobot's pi0 and pi05 (lerobot/policies/pi0/modeling_pi0.py, .../pi05/modeling_pi05.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""The `tiny` backbone variant: the base's architecture (pi0 or pi05) at a few million parameters, for CPU
tests and demos.

The bases' core constructors (`PI0Pytorch.__init__`, `PI05Pytorch.__init__`) know only the gemma_*
variants, and their PaliGemma hard-codes SigLIP so400m and a 257152-token vocabulary (~0.5B parameters on
their own). So for `tiny`, the base's constructor runs unchanged for gemma_300m on the meta device (no
memory, no initialisation); then the two transformers towers are rebuilt from the base's own transformers
configs at the sizes of configuration_reconvla's TINY_* tables, and the few layers whose size follows the
action expert's width are rebuilt at the tiny width. Everything else (module tree, forward, dtypes,
freezing, compilation) is what the base's constructor made; a parameter left on the meta device is an error.
"""

import copy
from itertools import chain

import torch
from lerobot.policies.pi_gemma import PaliGemmaForConditionalGenerationWithPiGemma, PiGemmaForCausalLM
from torch import nn

from .configuration_reconvla import TINY, TINY_LANGUAGE, TINY_VISION, TINY_VOCAB_SIZE

# The smallest of the bases' variants: built on the meta device before the tiny towers replace it.
STAND_IN_VARIANT = "gemma_300m"


def expert_width_layers(config, width: int) -> dict[str, tuple[int, int]]:
    """The base core's linear layers sized by the action expert's `width`: {attribute: (in, out)}, in the
    order of the base's constructor (PI0Pytorch.__init__ / PI05Pytorch.__init__)."""
    actions = {
        "action_in_proj": (config.max_action_dim, width),
        "action_out_proj": (width, config.max_action_dim),
    }
    if config.base_type == "pi0":  # the state is a token; time joins the actions through an MLP
        return {
            **actions,
            "state_proj": (config.max_state_dim, width),
            "action_time_mlp_in": (2 * width, width),
            "action_time_mlp_out": (width, width),
        }
    # pi05: the state is in the prompt; time conditions the expert's adaptive norms through an MLP
    return {**actions, "time_mlp_in": (width, width), "time_mlp_out": (width, width)}


def init_base_core(model: nn.Module, base_core: type[nn.Module], config, rtc_processor=None) -> None:
    """Runs the base's core constructor (`base_core.__init__`) on `model`, then, for the `tiny` variant,
    rebuilds it at the tiny sizes."""
    if config.paligemma_variant != TINY:
        base_core.__init__(model, config, rtc_processor=rtc_processor)
        return
    stand_in = copy.copy(config)  # the same settings but a variant the base knows; `config` is left alone
    stand_in.paligemma_variant = stand_in.action_expert_variant = STAND_IN_VARIANT
    with torch.device("meta"):
        base_core.__init__(model, stand_in, rtc_processor=rtc_processor)
    model.config = config
    _rebuild_towers_tiny(model.paligemma_with_expert, config.dtype)
    for name, (in_features, out_features) in expert_width_layers(
        config, TINY_LANGUAGE["hidden_size"]
    ).items():
        setattr(model, name, nn.Linear(in_features, out_features))
    left = [name for name, tensor in chain(model.named_parameters(), model.named_buffers()) if tensor.is_meta]
    if left:
        raise RuntimeError(
            f"{config.base_type}'s core constructor built {left[:5]} (of {len(left)} tensors), which the "
            "tiny variant does not rebuild at its sizes: add them to tiny.expert_width_layers"
        )


def _rebuild_towers_tiny(towers, precision: str) -> None:
    """Replaces the base's PaliGemma and action expert (built on the meta device) by tiny ones, from the
    base's own transformers configs: the language sizes of TINY_LANGUAGE for both, SigLIP at TINY_VISION, a
    TINY_VOCAB_SIZE vocabulary. Then the base's own dtype and freezing steps run again on the new towers."""
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
    for language in (vlm.text_config, expert):
        if getattr(language, "adarms_cond_dim", None):  # pi05's expert: its time condition has its width
            language.adarms_cond_dim = TINY_LANGUAGE["hidden_size"]

    towers.paligemma = PaliGemmaForConditionalGenerationWithPiGemma(config=vlm)
    towers.gemma_expert = PiGemmaForCausalLM(config=expert)
    towers.gemma_expert.model.embed_tokens = None  # as the base: the expert reads embeddings, never tokens
    towers.to_bfloat16_for_selected_params(precision)
    towers._set_requires_grad()  # the base's own freezing step (it has no public one), for the new towers
