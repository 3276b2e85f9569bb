# Builds on LeRobot's pi05 processors (lerobot/policies/pi05/processor_pi05.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""ReconVLA-on-pi05's processors: pi05's steps, in pi05's order, with the configured tokenizer.

As `processor_pi05.make_pi05_pre_post_processors` lists them, from LeRobot's public processor API and pi05's
own `Pi05PrepareStateTokenizerProcessorStep` (which writes the normalised state into the prompt as 256-bin
tokens, so normalisation comes before it), with `ReconVLATokenizerProcessorStep` in place of the tokenizer
pi05 hard-codes. A test checks that the steps match pi05's one for one. Gaze boxes pass through untouched.
"""

from typing import Any

import torch
from lerobot.policies.pi05.processor_pi05 import Pi05PrepareStateTokenizerProcessorStep
from lerobot.processor import (
    PolicyAction,
    PolicyProcessorPipeline,
    make_default_policy_processor_steps,
    make_policy_processor_pipelines,
)

from .configuration_reconvla_pi05 import ReconVLAPi05Config
from .processor_reconvla import output_steps, reconvla_tokenizer_step, relative_actions_step


def make_reconvla_pi05_pre_post_processors(
    config: ReconVLAPi05Config,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    """pi05's pre/post-processors with the configured tokenizer.

    OpenPI's order, as pi05: raw -> relative -> normalize -> state into the prompt -> tokenize -> model ->
    unnormalize -> absolute.
    """
    relative = relative_actions_step(config)
    steps = make_default_policy_processor_steps(config, dataset_stats)
    input_steps = [
        steps.rename_observations,
        steps.add_batch_dim,
        relative,
        steps.normalize,
        Pi05PrepareStateTokenizerProcessorStep(max_state_dim=config.max_state_dim),
        reconvla_tokenizer_step(config),
        steps.to_device,
    ]
    return make_policy_processor_pipelines(
        input_steps=input_steps, output_steps=output_steps(config, steps, relative)
    )
