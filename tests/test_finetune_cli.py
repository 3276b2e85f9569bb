"""Fine-tuning from pi0 weights with LoRA through `lerobot-train --peft.*`, then loading as lerobot-eval
does."""

import json

import pytest
import torch
from lerobot.configs import PreTrainedConfig
from lerobot.datasets import LeRobotDatasetMetadata
from lerobot.policies.factory import make_policy, make_pre_post_processors
from safetensors.torch import load_file

from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
from tests.fixtures.base_checkpoint import save_as_base_checkpoint
from tests.fixtures.cli import run_cli, run_train, train_args
from tests.fixtures.tiny_policy import TINY_CLI, raw_batch, tiny_config

pytestmark = pytest.mark.slow


def test_lora_finetune_from_a_pi0_checkpoint_trains_and_saves_the_head(tmp_path, dataset_3cam):
    torch.manual_seed(0)
    pi0_dir = tmp_path / "pi0_tiny"
    meta = LeRobotDatasetMetadata("local/synthetic_3cam", root=dataset_3cam)
    pi0_state = save_as_base_checkpoint(ReconVLAPolicy(tiny_config()), pi0_dir, dataset_stats=meta.stats)

    output = run_train(
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            f"--policy.pretrained_path={pi0_dir}",
            "--peft.method_type=LORA",
            "--peft.r=4",
            *train_args(dataset_3cam, "local/synthetic_3cam", tmp_path / "run", steps=3),
        ]
    )
    assert "Loaded every pi0 weight" in output and "recon head starts fresh" in output
    assert "recon_loss:" in output

    checkpoint = tmp_path / "run" / "checkpoints" / "last" / "pretrained_model"
    adapter = load_file(checkpoint / "adapter_model.safetensors")
    adapter_config = json.loads((checkpoint / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(pi0_dir)
    for fragment in (
        "language_model.layers.1.self_attn.o_proj.lora_B",
        "gemma_expert.model.layers.1.self_attn.q_proj.lora_B",
    ):
        assert any(fragment in key for key in adapter), fragment
    head_keys = [key for key in adapter if "recon_head.dit" in key]
    assert any(key.endswith("blocks.0.ada_ln.1.weight") for key in head_keys)
    # The head trained: its zero-initialised modulation moved.
    ada = next(adapter[key] for key in head_keys if key.endswith("blocks.0.ada_ln.1.weight"))
    assert ada.abs().sum() > 0

    # Load exactly as lerobot-eval / lerobot-rollout do (--policy.path=<checkpoint>).
    config = PreTrainedConfig.from_pretrained(checkpoint)
    config.pretrained_path = checkpoint
    assert config.type == "reconvla" and config.use_peft
    policy = make_policy(config, ds_meta=meta)
    base = policy.base_model.model
    assert isinstance(base, ReconVLAPolicy)
    own = dict(base.named_parameters())
    # Frozen pi0 weights are pi0's, bit for bit (LoRA layers keep them as base_layer).
    for key in (
        "model.paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.weight",
        "model.paligemma_with_expert.paligemma.model.language_model.layers.1.mlp.up_proj.weight",
    ):
        assert torch.equal(own[key], pi0_state[key]), key
    q_proj = "model.paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.q_proj"
    assert torch.equal(own[f"{q_proj}.base_layer.weight"], pi0_state[f"{q_proj}.weight"])
    assert own[f"{q_proj}.lora_B.default.weight"].abs().sum() > 0  # trained, loaded
    loaded_ada = own["model.recon_head.dit.modules_to_save.default.blocks.0.ada_ln.1.weight"]
    assert torch.equal(loaded_ada, ada)

    pre, post = make_pre_post_processors(config, pretrained_path=str(checkpoint))
    batch = raw_batch(batch_size=1, gaze_boxes=False)
    batch.pop("action"), batch.pop("action_is_pad")
    action = post(policy.select_action(pre(batch)))
    assert action.shape == (1, 14) and torch.isfinite(action).all()

    # And lerobot-eval runs it in the sim (cameras and image size match the training data).
    run_cli(
        "lerobot-eval",
        [
            f"--policy.path={checkpoint}",
            "--env.type=aloha_multicam",
            "--env.task=transfer_cube",
            "--env.observation_height=96",
            "--env.observation_width=128",
            "--env.episode_length=10",
            "--eval.n_episodes=1",
            "--eval.batch_size=1",
            f"--output_dir={tmp_path / 'eval'}",
        ],
    )
    assert json.loads((tmp_path / "eval" / "eval_info.json").read_text())["overall"]["n_episodes"] == 1
