"""Shared fixtures: a tiny ReconVLA config/policy on three cameras and small LeRobotDataset files."""

import os
import sys
from pathlib import Path

import pytest
import torch

# Everything offline: no test may reach the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "offline")

sys.path.insert(0, str(Path(__file__).parent))

from lerobot.configs import FeatureType, PolicyFeature  # noqa: E402

from lerobot_policy_reconvla.configuration_reconvla import ReconVLAConfig  # noqa: E402
from lerobot_policy_reconvla.synthetic_dataset import write_synthetic_dataset  # noqa: E402

CAMERAS = ("top", "left_wrist", "right_wrist")
IMAGE_SHAPE = (3, 96, 128)  # (C, H, W), small so CPU tests stay fast; pi0 pads it to 224 px
CHUNK = 8

# The tiny head used by tests: pixels target (no VAE to load), a narrow DiT.
TINY_HEAD = dict(recon_target="pixels", recon_image_size=32, recon_dit_width=64, recon_dit_depth=2, recon_dit_heads=4)
TINY_CLI = [
    "--policy.paligemma_variant=tiny",
    "--policy.action_expert_variant=tiny",
    *[f"--policy.{k}={v}" for k, v in TINY_HEAD.items()],
    f"--policy.chunk_size={CHUNK}",
    f"--policy.n_action_steps={CHUNK}",
    "--policy.device=cpu",
    "--policy.push_to_hub=false",
]


def tiny_config(cameras=CAMERAS, image_shape=IMAGE_SHAPE, action_dim=14, **overrides) -> ReconVLAConfig:
    features = {f"observation.images.{cam}": PolicyFeature(FeatureType.VISUAL, image_shape) for cam in cameras}
    features["observation.state"] = PolicyFeature(FeatureType.STATE, (14,))
    kwargs = dict(
        paligemma_variant="tiny",
        action_expert_variant="tiny",
        device="cpu",
        chunk_size=CHUNK,
        n_action_steps=CHUNK,
        input_features=features,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (action_dim,))},
        **TINY_HEAD,
    )
    kwargs.update(overrides)
    return ReconVLAConfig(**kwargs)


def raw_batch(batch_size=2, cameras=CAMERAS, image_shape=IMAGE_SHAPE, gaze_boxes=True, seed=0) -> dict:
    """A batch as LeRobot's dataloader delivers it (before the preprocessor)."""
    generator = torch.Generator().manual_seed(seed)
    batch = {
        f"observation.images.{cam}": torch.rand(batch_size, *image_shape, generator=generator) for cam in cameras
    }
    batch["observation.state"] = torch.randn(batch_size, 14, generator=generator)
    batch["action"] = torch.randn(batch_size, CHUNK, 14, generator=generator)
    batch["action_is_pad"] = torch.zeros(batch_size, CHUNK, dtype=torch.bool)
    batch["task"] = ["Insert the peg into the socket."] * batch_size
    if gaze_boxes:
        for cam in cameras:
            batch[f"observation.gaze_box.{cam}"] = torch.tensor([[0.2, 0.25, 0.6, 0.75]] * batch_size)
    return batch


@pytest.fixture
def policy_and_processors():
    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors

    torch.manual_seed(0)
    config = tiny_config()
    policy = ReconVLAPolicy(config)
    preprocessor, postprocessor = make_reconvla_pre_post_processors(config)
    return policy, preprocessor, postprocessor


@pytest.fixture(scope="session")
def dataset_3cam(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("datasets") / "synthetic_3cam"
    write_synthetic_dataset(root, repo_id="local/synthetic_3cam", gaze_boxes=True)
    return root


@pytest.fixture(scope="session")
def dataset_3cam_no_boxes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("datasets") / "synthetic_3cam_no_boxes"
    write_synthetic_dataset(root, repo_id="local/synthetic_3cam_no_boxes", gaze_boxes=False)
    return root


def lerobot_cli(name: str) -> str:
    """Path of a LeRobot console script in this venv (the one running the tests)."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}"
    return str(path)


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory) -> Path:
    """A tiny diffusers AutoencoderKL saved locally: 4 latent channels, 8x downsampling (as recon_vae's default)."""
    from diffusers import AutoencoderKL

    directory = tmp_path_factory.mktemp("vae") / "tiny_vae"
    torch.manual_seed(0)
    AutoencoderKL(
        block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=4, layers_per_block=1,
    ).save_pretrained(directory)  # fmt: skip
    return directory
