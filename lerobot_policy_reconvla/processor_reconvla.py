# Builds on LeRobot's pi0 processors (lerobot/policies/pi0/processor_pi0.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""ReconVLA's processors: pi0's steps, in pi0's order, with the configured tokenizer.

pi0's processor maker hard-codes PaliGemma's tokenizer (a Hub download). ReconVLA lists pi0's steps
itself, as `processor_pi0.make_pi0_pre_post_processors` does, from LeRobot's public processor API and
pi0's own `Pi0NewLineProcessor`, with `ReconVLATokenizerProcessorStep` as the tokenizer: it takes
`config.resolved_tokenizer_name`, PaliGemma's for the gemma_* variants, the tokenizer shipped in this
package for `tiny` (saved under a portable name and resolved to the installed files on load), or any
local path / Hub repo set in `tokenizer_name`. A test checks that the steps match pi0's one for one.
Gaze boxes (`observation.gaze_box.*`) pass through untouched: they are not policy inputs.
"""

from dataclasses import dataclass
from typing import Any

import torch
from lerobot.policies.pi0.processor_pi0 import Pi0NewLineProcessor
from lerobot.processor import (
    AbsoluteActionsProcessorStep,
    PolicyAction,
    PolicyProcessorPipeline,
    ProcessorStepRegistry,
    RelativeActionsProcessorStep,
    TokenizerProcessorStep,
    make_default_policy_processor_steps,
    make_policy_processor_pipelines,
)
from transformers import AutoTokenizer

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
    """pi0's pre/post-processors with the configured tokenizer.

    OpenPI's order, as pi0: raw -> relative -> normalize -> model -> unnormalize -> absolute.
    """
    relative = relative_actions_step(config)
    steps = make_default_policy_processor_steps(config, dataset_stats)
    input_steps = [
        steps.rename_observations,
        steps.add_batch_dim,
        Pi0NewLineProcessor(),  # PaliGemma's prompts end with a newline
        reconvla_tokenizer_step(config),
        steps.to_device,
        relative,
        steps.normalize,
    ]
    return make_policy_processor_pipelines(
        input_steps=input_steps, output_steps=output_steps(config, steps, relative)
    )


def relative_actions_step(config) -> RelativeActionsProcessorStep:
    """The bases' relative-actions step, from their config fields."""
    return RelativeActionsProcessorStep(
        enabled=config.use_relative_actions,
        exclude_joints=config.relative_exclude_joints,
        action_names=config.action_feature_names,
    )


def reconvla_tokenizer_step(config) -> ReconVLATokenizerProcessorStep:
    """The bases' tokenizer step (PaliGemma's settings) with the configured tokenizer."""
    return ReconVLATokenizerProcessorStep(
        tokenizer_name=config.resolved_tokenizer_name,
        max_length=config.tokenizer_max_length,
        padding_side="right",
        padding="max_length",
    )


def output_steps(config, steps, relative: RelativeActionsProcessorStep) -> list:
    """The bases' post-processor: unnormalize -> absolute -> to the CPU."""
    return [
        steps.unnormalize,
        AbsoluteActionsProcessorStep(enabled=config.use_relative_actions, relative_step=relative),
        steps.to_cpu,
    ]
