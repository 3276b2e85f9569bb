"""Start-up checks of the recon loss's silent traps, and the paper preset."""

import json
import logging

import pytest
import torch
from lerobot.configs.train import TrainPipelineConfig

from lerobot_policy_reconvla.configuration_reconvla import ReconVLAConfig
from lerobot_policy_reconvla.modeling_reconvla import (
    GAZE_BOXES_AND_IMAGE_TRANSFORMS,
    ReconVLAPolicy,
    ReconVLAPytorch,
)
from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors
from lerobot_policy_reconvla.tools.presets import preset_path
from tests.fixtures.cli import run_train
from tests.fixtures.tiny_policy import TINY_CLI, raw_batch, tiny_config


def test_training_traps_are_said_once(caplog):
    config = tiny_config(train_expert_only=True, recon_condition_on_language=True)
    policy = ReconVLAPolicy(config)
    pre, _ = make_reconvla_pre_post_processors(config)
    batch = pre(raw_batch())
    policy.train()
    with caplog.at_level(logging.WARNING):
        policy.forward(batch)
        policy.forward(batch)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("train_expert_only=true with recon_weight=1.0" in m for m in messages) == 1
    assert sum("recon_condition_on_language=true" in m for m in messages) == 1
    # The policy cannot see --dataset.image_transforms: with gaze boxes, what they must not do is said.
    assert sum(m == GAZE_BOXES_AND_IMAGE_TRANSFORMS for m in messages) == 1
    assert "--dataset.image_transforms" in GAZE_BOXES_AND_IMAGE_TRANSFORMS

    caplog.clear()
    quiet = ReconVLAPolicy(tiny_config())
    quiet.train()
    with caplog.at_level(logging.WARNING):
        quiet.forward(pre(raw_batch(gaze_boxes=False)))
    assert not any(
        "train_expert_only" in r.getMessage()
        or "recon_condition_on_language" in r.getMessage()
        or r.getMessage() == GAZE_BOXES_AND_IMAGE_TRANSFORMS
        for r in caplog.records
    )


# ReconVLA's official settings, each with where the official code (OpenHelix-Team/ReconVLA) sets it.
# The paper preset must hold every one; what it cannot hold is listed in docs/design.md.
OFFICIAL_SETTINGS = {
    # README.md: the VAE of `--mm_pixel_decoder ./pretrained_vae` (scripts/train_vla/finetune.sh)
    "recon_vae": ("John6666/flux1-dev-fp8-flux", "README.md, mm_pixel_decoder"),
    "recon_vae_subfolder": ("vae", "README.md, mm_pixel_decoder"),
    "recon_vae_latent_channels": (
        16,
        "recon/model/pixel_decoder/flux_decoder.py: latent_dim = latent_channels * 4",
    ),
    "recon_vae_sample_posterior": (True, "recon/recon_arch.py: posterior.sample() - shift_factor"),
    "recon_pad_to_square": (True, "train_vla.py: expand2square(target_image, processor.image_mean)"),
    "recon_weight": (1.0, "recon/model/language_model/recon_qwen.py: loss = loss + vm_loss"),
    "freeze_vision_encoder": (True, "train_vla.py: unfreeze_mm_vision_tower = False"),
    "recon_head_dtype": ("float32", "flux_decoder.py / recon_arch.py: the head and VAE in fp32"),
    "recon_condition_on_language": (False, "recon_arch.py compute_vm_loss: image hidden states only"),
    "recon_dit_depth": (3, "denoiser_vit3x"),
    "recon_dit_width": (1024, "denoiser_vit3x"),
    "recon_dit_heads": (16, "denoiser_vit3x"),
    "recon_timestep_repeats": (4, "compute_vm_loss: each target repeated 4 times"),
    "recon_num_train_timesteps": (1000, "DDPM, 1000 steps"),
    "optimizer_lr": (2e-5, "scripts/train_vla/finetune.sh: --learning_rate 2e-5"),
    "optimizer_weight_decay": (0.0, "scripts/train_vla/finetune.sh: --weight_decay 0."),
    "optimizer_betas": ((0.9, 0.999), "train_vla.py: optim adamw_torch, transformers' default betas"),
    "optimizer_eps": (1e-8, "train_vla.py: optim adamw_torch, transformers' default eps"),
    "recon_lr_scale": (1.0, "recon_trainer.py: separate learning rates only if set; the scripts set none"),
}


def test_paper_preset_holds_every_official_setting_and_builds_at_full_size():
    cfg = TrainPipelineConfig.from_pretrained(
        str(preset_path("reconvla_paper")), cli_args=["--dataset.repo_id=local/any", "--policy.device=cpu"]
    )
    policy = cfg.policy
    assert isinstance(policy, ReconVLAConfig)
    for field_name, (official, source) in OFFICIAL_SETTINGS.items():
        value = getattr(policy, field_name)
        value = tuple(value) if isinstance(value, list) else value
        assert value == official, f"{field_name}={value!r}; the official is {official!r} ({source})"
    # 16 px of gaze crop per image token, as the official (432 px for SigLIP-384's 27 x 27 grid): 256 px here.
    assert policy.recon_image_size == 16 * policy.recon_token_grid == 256
    optimizer = policy.get_optimizer_preset()
    assert (optimizer.lr, tuple(optimizer.betas), optimizer.weight_decay) == (2e-5, (0.9, 0.999), 0.0)
    with torch.device("meta"):  # shapes only: no 3B allocation, no VAE download (it loads at the first step)
        model = ReconVLAPytorch(policy)
    head = model.recon_head
    assert head.target.patch == 2 and head.target.token_channels == 16 * 2 * 2  # 2 x 2 latents per token
    dit = head.dit
    assert (len(dit.blocks), dit.config.width, dit.config.num_heads) == (3, 1024, 16)
    assert dit.config.cond_dim == 2048  # gemma_2b's hidden states condition the head
    assert not any(
        p.requires_grad for p in model.paligemma_with_expert.paligemma.model.vision_tower.parameters()
    )
    assert head.target._vae is None


@pytest.mark.slow
def test_lerobot_train_with_gaze_boxes_and_photometric_augmentation_says_what_transforms_must_not_do(
    tmp_path, dataset_3cam
):
    photometric = json.dumps({"brightness": {"type": "ColorJitter", "kwargs": {"brightness": [0.5, 1.5]}}})
    output = run_train(
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            "--dataset.repo_id=local/synthetic_3cam",
            f"--dataset.root={dataset_3cam}",
            "--batch_size=2",
            "--log_freq=1",
            "--num_workers=0",
            "--wandb.enable=false",
            "--dataset.image_transforms.enable=true",
            f"--dataset.image_transforms.tfs={photometric}",
            "--steps=2",
            "--save_freq=2",
            f"--output_dir={tmp_path / 'photometric'}",
        ]
    )
    assert output.count("recon_loss:") >= 2
    assert output.count(GAZE_BOXES_AND_IMAGE_TRANSFORMS) == 1
