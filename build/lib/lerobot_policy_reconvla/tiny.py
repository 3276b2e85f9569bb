# Builds on LeRobot's pi0 (lerobot/policies/pi0/modeling_pi0.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""The `tiny` backbone variant: pi0's architecture at a few million parameters, for CPU tests and demos.

    with pi0_builds_tiny_towers():                 # only while pi0's core constructor runs
        PI0Pytorch.__init__(model, config, ...)    # config.paligemma_variant == "tiny"

pi0's core constructor (`PI0Pytorch.__init__`) looks up `get_gemma_config` and `PaliGemmaWithExpertModel`
in its own module, and knows only the gemma_* variants. The one way to have pi0's constructor build the
small towers, rather than retype it, is to rebind those two names while it runs. That is confined to
this module and made safe for anyone else building pi0 at the same time:
- one lock: two tiny builds never overlap, so the names are always restored to pi0's own;
- the rebound names answer every other variant exactly as pi0's do, so a stock pi0 built in another
  thread meanwhile gets pi0's classes;
- afterwards the towers are checked to be the tiny ones.
"""

import copy
import threading
from contextlib import contextmanager
from unittest import mock

import torch

from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi0.modeling_pi0 import (
    GemmaConfig,
    PaliGemmaForConditionalGenerationWithPiGemma,
    PaliGemmaWithExpertModel,
    PI0Pytorch,
    PiGemmaForCausalLM,
    get_gemma_config,
)

from .configuration_reconvla import TINY_GEMMA, TINY_VISION, TINY_VOCAB_SIZE

TINY = "tiny"


class TinyGemmaConfig(GemmaConfig):
    """pi0's GemmaConfig with TINY_GEMMA's sizes; its type marks it as the tiny variant's."""


def get_gemma_config_with_tiny(variant: str) -> GemmaConfig:
    """pi0's `get_gemma_config`, plus the `tiny` variant (configuration_reconvla.TINY_GEMMA)."""
    return TinyGemmaConfig(**TINY_GEMMA) if variant == TINY else get_gemma_config(variant)


class TinyPaliGemmaWithExpert(PaliGemmaWithExpertModel):
    """pi0's PaliGemma + action expert with a small SigLIP tower and vocabulary (the `tiny` variant).

    pi0's constructor hard-codes SigLIP so400m and PaliGemma's 257152-token vocabulary, which alone
    are ~0.5B parameters. It runs here unchanged on the meta device (no memory, no init); then the two
    towers it built are rebuilt from its own transformers configs with the sizes of TINY_VISION and
    TINY_VOCAB_SIZE. Forward, dtype handling and freezing stay pi0's.
    """

    def __init__(
        self,
        vlm_config: GemmaConfig,
        action_expert_config: GemmaConfig,
        *,
        precision: str = "bfloat16",
        **kwargs,
    ):
        # pi0 passes everything but the two Gemma configs by keyword (PI0Pytorch.__init__).
        with torch.device("meta"):
            super().__init__(vlm_config, action_expert_config, precision=precision, **kwargs)

        vlm_hf = copy.deepcopy(self.paligemma.config)
        vlm_hf._vocab_size = TINY_VOCAB_SIZE  # noqa: SLF001 - the field pi0 itself sets
        vlm_hf.image_token_index = TINY_VOCAB_SIZE
        vlm_hf.text_config.vocab_size = TINY_VOCAB_SIZE
        vlm_hf.vision_config.update(TINY_VISION)
        # The projector must land in the language width (pi0 hard-codes gemma_2b's 2048).
        vlm_hf.vision_config.projection_dim = vlm_config.width
        expert_hf = copy.deepcopy(self.gemma_expert.config)
        expert_hf.vocab_size = TINY_VOCAB_SIZE

        self.paligemma = PaliGemmaForConditionalGenerationWithPiGemma(config=vlm_hf)
        self.gemma_expert = PiGemmaForCausalLM(config=expert_hf)
        self.gemma_expert.model.embed_tokens = None  # as pi0: the expert reads embeddings, never tokens
        self.to_bfloat16_for_selected_params(precision)
        self._set_requires_grad()


def _paligemma_with_expert(vlm_config: GemmaConfig, action_expert_config: GemmaConfig, **kwargs):
    """What pi0's name `PaliGemmaWithExpertModel` builds while rebound: the tiny towers for the tiny
    configs, pi0's own class for any other (a pi0 built elsewhere in the meantime)."""
    if isinstance(vlm_config, TinyGemmaConfig):
        return TinyPaliGemmaWithExpert(vlm_config, action_expert_config, **kwargs)
    return PaliGemmaWithExpertModel(vlm_config, action_expert_config, **kwargs)


_REBIND_LOCK = threading.Lock()


@contextmanager
def pi0_builds_tiny_towers():
    """While inside, pi0's core constructor also knows the `tiny` variant (see the module's docstring)."""
    with _REBIND_LOCK, mock.patch.multiple(
        modeling_pi0, get_gemma_config=get_gemma_config_with_tiny, PaliGemmaWithExpertModel=_paligemma_with_expert
    ):
        yield


def init_pi0_core(model: PI0Pytorch, config, rtc_processor=None) -> None:
    """Runs pi0's core constructor on `model`, for the `tiny` variant too, and checks what it built."""
    if config.paligemma_variant != TINY:
        PI0Pytorch.__init__(model, config, rtc_processor=rtc_processor)
        return
    with pi0_builds_tiny_towers():
        PI0Pytorch.__init__(model, config, rtc_processor=rtc_processor)
    if not isinstance(model.paligemma_with_expert, TinyPaliGemmaWithExpert):
        raise RuntimeError(
            "pi0's core constructor no longer builds its towers by the names ReconVLA rebinds for the tiny "
            f"variant (got {type(model.paligemma_with_expert).__name__}); update lerobot_policy_reconvla.tiny"
        )
