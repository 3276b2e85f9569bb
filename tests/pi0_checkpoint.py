"""A pi0-format checkpoint made locally: the tiny architecture saved the way LeRobot saves a pi0 policy.

`config.json` has `type: pi0` and only pi0's fields, `model.safetensors` only pi0's tensors, and the
processors are pi0's (LeRobot's own `tokenizer_processor` step, pointed at a local tokenizer instead of
PaliGemma's on the Hub).
"""

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from lerobot.processor import TokenizerProcessorStep
from lerobot_policy_reconvla.configuration_reconvla import TINY_TOKENIZER_DIR
from lerobot_policy_reconvla.processor_reconvla import (
    ReconVLATokenizerProcessorStep,
    make_reconvla_pre_post_processors,
)


def save_as_pi0_checkpoint(policy, directory: Path, strip_model_prefix: bool = False, dataset_stats=None) -> dict:
    """Writes `policy`'s pi0 part as a pi0 checkpoint; returns the saved tensors."""
    directory.mkdir(parents=True)
    policy.save_pretrained(directory)
    state = load_file(directory / "model.safetensors")
    state = {k: v for k, v in state.items() if not k.startswith("model.recon_head.")}
    if strip_model_prefix:  # as openpi-converted checkpoints (e.g. lerobot/pi0_base) store them
        state = {k.removeprefix("model."): v for k, v in state.items()}
    save_file(state, directory / "model.safetensors")
    config = json.loads((directory / "config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("recon_") and k != "tokenizer_name"}
    config["type"] = "pi0"
    (directory / "config.json").write_text(json.dumps(config, indent=2))

    preprocessor, postprocessor = make_reconvla_pre_post_processors(policy.config, dataset_stats)
    preprocessor.steps = [
        TokenizerProcessorStep(
            tokenizer_name=str(TINY_TOKENIZER_DIR), max_length=step.max_length, padding_side="right",
            padding="max_length",
        )  # fmt: skip
        if isinstance(step, ReconVLATokenizerProcessorStep)
        else step
        for step in preprocessor.steps
    ]
    preprocessor.save_pretrained(directory)
    postprocessor.save_pretrained(directory)
    return state
