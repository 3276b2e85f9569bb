"""Start-up checks of the recon loss's silent traps, and the paper preset."""

import json
import logging
import os
import subprocess

import pytest
import torch
from tests.fixtures.cli import lerobot_cli
from tests.fixtures.lerobot_train import build_as_lerobot_train_does
from tests.fixtures.tiny_policy import TINY_CLI, raw_batch, tiny_config
from tests.fixtures import warm_python

from lerobot.configs import FeatureType, PolicyFeature
from lerobot.configs.default import DatasetConfig
from lerobot.configs.train import TrainPipelineConfig
from lerobot.transforms import ImageTransformConfig, ImageTransformsConfig
from lerobot_policy_reconvla.configuration_reconvla import ReconVLAConfig
from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy, ReconVLAPytorch
from lerobot_policy_reconvla.tools.presets import preset_path
from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors

BRIGHTNESS = {"brightness": ImageTransformConfig(type="ColorJitter", kwargs={"brightness": (0.8, 1.2)})}


def _config_with_gaze_boxes(**overrides) -> ReconVLAConfig:
    config = tiny_config(**overrides)
    for camera in ("top", "left_wrist"):
        config.input_features[f"observation.gaze_box.{camera}"] = PolicyFeature(FeatureType.STATE, (4,))
    return config


def _train_config(policy: ReconVLAConfig, image_transforms: ImageTransformsConfig) -> TrainPipelineConfig:
    dataset = DatasetConfig(repo_id="local/synthetic_3cam", image_transforms=image_transforms)
    return TrainPipelineConfig(dataset=dataset, policy=policy)


def test_geometric_augmentation_with_gaze_boxes_is_refused_naming_the_safe_transforms(dataset_3cam, tmp_path):
    # LeRobot's default transform set includes RandomAffine; the dataset has gaze boxes.
    cfg = _train_config(tiny_config(), ImageTransformsConfig(enable=True))
    with pytest.raises(ValueError, match=r"would move pixels \(\{'affine': 'RandomAffine'\}\).*gaze boxes") as error:
        build_as_lerobot_train_does(cfg, dataset_3cam, tmp_path / "train")
    assert "ColorJitter" in str(error.value) and "--dataset.image_transforms.enable=false" in str(error.value)
    assert not (tmp_path / "train" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("recon_weight", "image_transforms", "boxes"),
    [
        (1.0, ImageTransformsConfig(enable=True, tfs=BRIGHTNESS), True),  # photometric only
        (1.0, ImageTransformsConfig(enable=False), True),  # the default set, but disabled
        (1.0, ImageTransformsConfig(enable=True), False),  # no boxes: the whole image moves with its target
        (0.0, ImageTransformsConfig(enable=True), True),  # no recon loss
    ],
)
def test_augmentation_that_keeps_the_boxes_right_is_accepted(
    recon_weight, image_transforms, boxes, dataset_3cam, dataset_3cam_no_boxes, tmp_path
):
    cfg = _train_config(tiny_config(recon_weight=recon_weight), image_transforms)
    if not boxes:
        cfg.dataset.repo_id = "local/synthetic_3cam_no_boxes"
    build_as_lerobot_train_does(cfg, dataset_3cam if boxes else dataset_3cam_no_boxes, tmp_path / "train")


def test_a_training_config_outside_lerobot_train_is_not_looked_at():
    # Only lerobot-train's own `cfg` is read: a refusable training config in the caller's frame (as a
    # script that builds its own) does not stop a policy built from its policy config.
    other = _train_config(_config_with_gaze_boxes(), ImageTransformsConfig(enable=True))
    assert isinstance(ReconVLAPolicy(other.policy), ReconVLAPolicy)


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

    caplog.clear()
    quiet = ReconVLAPolicy(tiny_config())
    quiet.train()
    with caplog.at_level(logging.WARNING):
        quiet.forward(batch)
    assert not any("train_expert_only" in r.getMessage() or "recon_condition_on_language" in r.getMessage()
                   for r in caplog.records)  # fmt: skip


# ReconVLA's official settings, each with where the official code (OpenHelix-Team/ReconVLA) sets it.
# The paper preset must hold every one; what it cannot hold is listed in docs/design.md.
OFFICIAL_SETTINGS = {
    # README.md: the VAE of `--mm_pixel_decoder ./pretrained_vae` (scripts/train_vla/finetune.sh)
    "recon_vae": ("John6666/flux1-dev-fp8-flux", "README.md, mm_pixel_decoder"),
    "recon_vae_subfolder": ("vae", "README.md, mm_pixel_decoder"),
    "recon_vae_latent_channels": (16, "recon/model/pixel_decoder/flux_decoder.py: latent_dim = latent_channels * 4"),
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
    assert not any(p.requires_grad for p in model.paligemma_with_expert.paligemma.model.vision_tower.parameters())
    assert head.target._vae is None


def _run_train(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    return warm_python.run([lerobot_cli("lerobot-train"), *args], timeout=900, env=env)


@pytest.mark.slow
def test_lerobot_train_with_gaze_boxes_trains_under_photometric_augmentation_and_refuses_geometric(
    tmp_path, dataset_3cam
):
    common = [
        "--policy.type=reconvla", *TINY_CLI, "--dataset.repo_id=local/synthetic_3cam", f"--dataset.root={dataset_3cam}",
        "--batch_size=2", "--log_freq=1", "--num_workers=0", "--wandb.enable=false",
        "--dataset.image_transforms.enable=true",
    ]  # fmt: skip
    photometric = json.dumps({"brightness": {"type": "ColorJitter", "kwargs": {"brightness": [0.5, 1.5]}}})
    result = _run_train(
        [*common, f"--dataset.image_transforms.tfs={photometric}", "--steps=2", "--save_freq=2",
         f"--output_dir={tmp_path / 'photometric'}"]  # fmt: skip
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert output.count("recon_loss:") >= 2

    # LeRobot's default transform set (with RandomAffine): refused before the model is built.
    result = _run_train([*common, "--steps=2", f"--output_dir={tmp_path / 'affine'}"])
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("would move pixels ({'affine': 'RandomAffine'})") == 1, output[-5000:]
    assert "Creating policy" in output and "Start offline training" not in output


def test_lerobot_train_config_that_does_not_hold_the_policy_config_is_said_once(caplog):
    from lerobot_policy_reconvla.modeling_reconvla import _train_config_in

    policy_config = tiny_config()
    held = _train_config(policy_config, ImageTransformsConfig(enable=True))
    assert _train_config_in({"cfg": held}, policy_config) is held
    copied = _train_config(tiny_config(), ImageTransformsConfig(enable=True))  # as if LeRobot copied the config
    with caplog.at_level(logging.WARNING):
        assert _train_config_in({"cfg": copied}, policy_config) is None
        assert _train_config_in({}, policy_config) is None
    said = [r.getMessage() for r in caplog.records if "not checked against the gaze boxes" in r.getMessage()]
    assert len(said) == 1
