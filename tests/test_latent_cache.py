"""The latent cache: the same training loss as the VAE it replaces, and refusal of anything it does not
fit."""

import json
import shutil

import numpy as np
import pytest
import torch
from lerobot.configs.default import DatasetConfig
from lerobot.datasets import LeRobotDataset
from lerobot.transforms import ImageTransformsConfig, SharpnessJitter
from torch.utils.data import default_collate
from torchvision.transforms import v2

from lerobot_policy_reconvla.common.durable import STAGING_SUFFIX, ResumeRefused
from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors
from lerobot_policy_reconvla.recon.target import ReconTarget
from lerobot_policy_reconvla.training.latent_cache import (
    PROGRESS_FILE,
    CacheLatentsConfig,
    build_latent_cache,
)
from lerobot_policy_reconvla.training.latent_cache_reader import LatentCache, LatentCacheError
from tests.fixtures.cli import run_cli, run_train, train_args
from tests.fixtures.tiny_policy import CAMERAS, CHUNK, TINY_CLI, perturb_head_, tiny_config

REPO_ID = "local/synthetic_3cam"
FRAMES = [3, 17, 25, 38]  # both episodes


def vae_config(tiny_vae_dir, **overrides):
    # 128 px crops through the 8x VAE: 16 x 16 latents, 2 x 2 per token of the 8 x 8 grid.
    fields = dict(recon_target="vae", recon_vae=str(tiny_vae_dir), recon_image_size=128, push_to_hub=False)
    return tiny_config(**(fields | overrides))


def build(dataset_root, policy_config, cache_dir, **options):
    dataset = DatasetConfig(repo_id=REPO_ID, root=str(dataset_root))
    config = CacheLatentsConfig(
        dataset=dataset, policy=policy_config, cache_dir=cache_dir, batch_size=8, num_workers=0
    )
    for name, value in options.items():
        setattr(config, name, value)
    return build_latent_cache(config)


@pytest.fixture(scope="module")
def cache_dir(dataset_3cam, tiny_vae_dir, tmp_path_factory):
    return build(dataset_3cam, vae_config(tiny_vae_dir), tmp_path_factory.mktemp("cache") / "latents")


def training_batch(dataset_root, frames=FRAMES) -> dict:
    """Frames as lerobot-train's dataloader delivers them to pi0 (an action chunk per frame, `index` kept)."""
    dataset = LeRobotDataset(
        REPO_ID, root=dataset_root, delta_timestamps={"action": [step / 50 for step in range(CHUNK)]}
    )
    return default_collate([dataset[i] for i in frames])


def loss_with_seed(policy, batch, seed=7):
    torch.manual_seed(seed)  # pi0's noise and time, the posterior sample and the head's noise, drawn in order
    return policy.forward(batch)[1]


def test_a_training_step_with_the_cache_has_the_loss_of_one_without(dataset_3cam, tiny_vae_dir, cache_dir):
    config = vae_config(tiny_vae_dir, recon_latent_cache=str(cache_dir))
    torch.manual_seed(0)
    policy = ReconVLAPolicy(config)
    perturb_head_(
        policy
    )  # a zero-init head predicts 0 for any target: the recon loss would not tell them apart
    policy.train()
    preprocessor, _ = make_reconvla_pre_post_processors(config)
    batch = preprocessor(training_batch(dataset_3cam))

    cached = loss_with_seed(policy, batch)
    assert policy.model.recon_head.target._vae is None  # the VAE was never loaded, let alone run
    policy.config.recon_latent_cache = None
    encoded = loss_with_seed(policy, batch)

    assert cached["action_loss"] == encoded["action_loss"]
    assert cached["recon_loss"] == pytest.approx(encoded["recon_loss"], rel=1e-5)
    # The cache holds the posterior, not one latent: each step draws a fresh target, as the VAE path does.
    policy.config.recon_latent_cache = str(cache_dir)
    boxes = policy.gaze_boxes(batch)
    draws = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        draws.append(policy.recon_targets(batch, boxes))  # ((B K), T, C)
    assert torch.equal(draws[0], draws[1]) and (draws[0] - draws[2]).abs().mean() > 1e-3


@pytest.mark.parametrize(
    ("field", "value"),
    [("recon_pad_to_square", True), ("recon_image_size", 256), ("recon_vae", "another/vae")],
)
def test_a_cache_built_for_other_target_settings_is_refused_naming_the_field(
    tiny_vae_dir, cache_dir, field, value
):
    config = vae_config(tiny_vae_dir, **{field: value})
    with pytest.raises(LatentCacheError, match=rf"built with {field}=.*but the policy has {field}={value!r}"):
        LatentCache(cache_dir).check_fits(config, list(CAMERAS))


def test_a_cache_without_a_policy_camera_is_refused(tiny_vae_dir, cache_dir):
    with pytest.raises(LatentCacheError, match=r"not the policy's \['front'\].*--rename_map"):
        LatentCache(cache_dir).check_fits(vae_config(tiny_vae_dir), ["top", "front"])


def cached_step(dataset_root, tiny_vae_dir, cache_dir, edit_batch):
    config = vae_config(tiny_vae_dir, recon_latent_cache=str(cache_dir))
    policy = ReconVLAPolicy(config)
    policy.train()
    preprocessor, _ = make_reconvla_pre_post_processors(config)
    batch = training_batch(dataset_root)
    edit_batch(batch)
    return policy.forward(preprocessor(batch))


def test_a_batch_whose_boxes_changed_since_the_cache_is_refused(dataset_3cam, tiny_vae_dir, cache_dir):
    def move_box(batch):
        batch["observation.gaze_box.left_wrist"][2] += 0.01

    with pytest.raises(
        LatentCacheError, match=r"frame 25, camera 'left_wrist': the batch's gaze box .* rebuild"
    ):
        cached_step(dataset_3cam, tiny_vae_dir, cache_dir, move_box)


# LeRobot's default augmentations (lerobot.transforms), each at the edge of its default range.
AUGMENTATIONS = {
    "brightness": v2.ColorJitter(brightness=(0.8, 0.8)),
    "contrast": v2.ColorJitter(contrast=(0.8, 0.8)),
    "saturation": v2.ColorJitter(saturation=(0.5, 0.5)),
    "hue": v2.ColorJitter(hue=(0.05, 0.05)),
    "affine": v2.RandomAffine(degrees=(5.0, 5.0), translate=(0.05, 0.05)),
    "sharpness": SharpnessJitter(sharpness=(0.5, 0.5)),
}


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_an_augmented_batch_is_refused(dataset_3cam, tiny_vae_dir, cache_dir, name):
    def augment(batch):
        torch.manual_seed(0)
        batch["observation.images.top"] = AUGMENTATIONS[name](batch["observation.images.top"])

    with pytest.raises(
        LatentCacheError, match=r"camera 'top': the batch's gaze crop differs from the cached one"
    ):
        cached_step(dataset_3cam, tiny_vae_dir, cache_dir, augment)


def test_the_unchanged_batch_passes_the_checks(dataset_3cam, tiny_vae_dir, cache_dir):
    _, losses = cached_step(dataset_3cam, tiny_vae_dir, cache_dir, lambda batch: None)
    assert np.isfinite(losses["recon_loss"]) and losses["recon_loss"] > 0


def test_augmentation_is_refused_before_a_cache_is_built(dataset_3cam, tiny_vae_dir, tmp_path):
    augmenting = ImageTransformsConfig(
        enable=True, tfs={}
    )  # photometric or not: every augmentation changes crops
    with pytest.raises(LatentCacheError, match="image_transforms.enable=true"):
        build(
            dataset_3cam,
            vae_config(tiny_vae_dir),
            tmp_path / "c",
            dataset=DatasetConfig(repo_id=REPO_ID, root=str(dataset_3cam), image_transforms=augmenting),
        )
    assert not (tmp_path / "c").exists() and not (tmp_path / f"c{STAGING_SUFFIX}").exists()


def test_an_interrupted_build_resumes_and_ends_equal_to_an_uninterrupted_one(
    dataset_3cam, tiny_vae_dir, cache_dir, tmp_path, monkeypatch
):
    encode = ReconTarget.posterior
    encoded_frames = []

    def interrupt_at_the_third_batch(self, crops):
        if len(encoded_frames) == 2:
            raise KeyboardInterrupt
        encoded_frames.append(len(crops) // len(CAMERAS))
        return encode(self, crops)

    monkeypatch.setattr(ReconTarget, "posterior", interrupt_at_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        build(dataset_3cam, vae_config(tiny_vae_dir), tmp_path / "latents")
    staging = tmp_path / f"latents{STAGING_SUFFIX}"
    assert json.loads((staging / PROGRESS_FILE).read_text()) == {"frames_done": 16}
    assert not (tmp_path / "latents").exists()  # nothing looks finished
    with pytest.raises(LatentCacheError, match="unfinished build: run reconvla-cache-latents again"):
        LatentCache(tmp_path / "latents")

    monkeypatch.setattr(ReconTarget, "posterior", encode)
    resumed = build(dataset_3cam, vae_config(tiny_vae_dir), tmp_path / "latents")
    assert not staging.exists()
    for path in sorted(cache_dir.glob("*.npy")):
        np.testing.assert_allclose(
            np.load(resumed / path.name), np.load(path), rtol=1e-5, atol=1e-6, err_msg=path.name
        )


def test_a_build_for_other_settings_does_not_resume_an_unfinished_one(
    dataset_3cam, tiny_vae_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(
        ReconTarget, "posterior", lambda self, crops: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    with pytest.raises(KeyboardInterrupt):
        build(dataset_3cam, vae_config(tiny_vae_dir), tmp_path / "latents")
    monkeypatch.undo()
    with pytest.raises(ResumeRefused, match=r"unfinished build of another cache \(differs in \['target'\]\)"):
        build(dataset_3cam, vae_config(tiny_vae_dir, recon_pad_to_square=True), tmp_path / "latents")


@pytest.mark.slow
def test_lerobot_train_reads_a_cache_built_by_the_command(dataset_3cam, tiny_vae_dir, tmp_path):
    vae = tmp_path / "vae"
    shutil.copytree(tiny_vae_dir, vae)
    policy_flags = [
        *TINY_CLI,
        "--policy.type=reconvla",
        "--policy.recon_target=vae",
        f"--policy.recon_vae={vae}",
        "--policy.recon_image_size=128",
    ]
    dataset_flags = [f"--dataset.repo_id={REPO_ID}", f"--dataset.root={dataset_3cam}"]
    output = run_cli("reconvla-cache-latents", [*dataset_flags, *policy_flags, "--num_workers=0"])
    cache_flag = next(line for line in output.splitlines() if line.startswith("train with: ")).removeprefix(
        "train with: "
    )
    assert cache_flag.startswith(f"--policy.recon_latent_cache={dataset_3cam / 'reconvla_latents'}/")
    shutil.rmtree(vae)  # training that ran the VAE would now fail to load it
    log = run_train(
        [*train_args(dataset_3cam, REPO_ID, tmp_path / "out", steps=2), *policy_flags, cache_flag]
    )
    assert "recon_loss" in log and "Traceback" not in log
