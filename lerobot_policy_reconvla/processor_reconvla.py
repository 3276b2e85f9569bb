# Builds on LeRobot's pi0 processors (lerobot/policies/pi0/processor_pi0.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""ReconVLA's processors: pi0's pipelines with the configured tokenizer.

pi0's processor maker hard-codes PaliGemma's tokenizer (a Hub download). ReconVLA runs pi0's maker
with only that step swapped for `ReconVLATokenizerProcessorStep`, which takes
`config.resolved_tokenizer_name`: PaliGemma's for the gemma_* variants, the tokenizer shipped in this
package for `tiny` (saved under a portable name and resolved to the installed files on load), or any
local path / Hub repo set in `tokenizer_name`. Gaze boxes (`observation.gaze_box.*`) pass through
untouched: they are not policy inputs.
"""

from dataclasses import dataclass
from typing import Any
from unittest import mock

import torch
from transformers import AutoTokenizer

from lerobot.policies.pi0 import processor_pi0
from lerobot.policies.pi0.processor_pi0 import make_pi0_pre_post_processors
from lerobot.processor import PolicyAction, PolicyProcessorPipeline, ProcessorStepRegistry, TokenizerProcessorStep

from .configuration_reconvla import TINY_TOKENIZER, TINY_TOKENIZER_DIR, ReconVLAConfig


@ProcessorStepRegistry.register(name="reconvla_tokenizer_processor")
@dataclass
class ReconVLATokenizerProcessorStep(TokenizerProcessorStep):
    """LeRobot's tokenizer step, also resolving the shipped tiny tokenizer's name to its files."""

    def __post_init__(self):
        if self.tokenizer is None and self.tokenizer_name == TINY_TOKENIZER:
            # Set the loaded instance only: get_config() then still saves the portable name.
            self.input_tokenizer = AutoTokenizer.from_pretrained(TINY_TOKENIZER_DIR)
            return
        super().__post_init__()


def make_reconvla_pre_post_processors(
    config: ReconVLAConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    """pi0's pre/post-processors (`make_pi0_pre_post_processors`) with the configured tokenizer.

    pi0's maker builds its tokenizer step by the name `TokenizerProcessorStep` in its module; that name
    points at ReconVLA's step while the maker runs, so every other step, its settings and the order
    stay pi0's.
    """

    def tokenizer_step(**pi0_kwargs) -> ReconVLATokenizerProcessorStep:
        # pi0 passes PaliGemma's name; max_length and padding are kept as pi0 sets them.
        return ReconVLATokenizerProcessorStep(**{**pi0_kwargs, "tokenizer_name": config.resolved_tokenizer_name})

    with mock.patch.object(processor_pi0, "TokenizerProcessorStep", tokenizer_step):
        preprocessor, postprocessor = make_pi0_pre_post_processors(config, dataset_stats)
    if not any(isinstance(step, ReconVLATokenizerProcessorStep) for step in preprocessor.steps):
        raise RuntimeError("pi0's processor maker no longer builds its tokenizer step by name; update ReconVLA's swap")
    return preprocessor, postprocessor
