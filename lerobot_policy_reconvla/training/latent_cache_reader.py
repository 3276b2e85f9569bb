"""Reading a latent cache (built by `reconvla-cache-latents`, training/latent_cache.py): its layout, the
check that it fits the policy and each batch, and the stored posteriors. Imports nothing of the policy, so
the policy can read a cache and the command can build one with the policy's target, without a cycle.

Layout of a cache directory: `cache.json` (what it was built from, written last), and per camera
`<camera>.posterior.npy` (N, 2 C, h, w), the VAE posterior's mean and log-variance as diffusers'
`DiagonalGaussianDistribution` holds them, `<camera>.box.npy` (N, 4), the box the crop was cut from,
`<camera>.thumbnail.npy` (N, 3, 16, 16) and `<camera>.detail.npy` (N,), the crop's signature; all indexed
by the dataset's `index`.
"""

import json
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from ..common.durable import staging_path

FORMAT_VERSION = 1
METADATA_FILE = "cache.json"
# The policy settings a VAE target depends on; a cache holds targets for exactly these values.
TARGET_FIELDS = (
    "recon_vae",
    "recon_vae_subfolder",
    "recon_vae_latent_channels",
    "recon_vae_downsample",
    "recon_image_size",
    "recon_pad_to_square",
)
# A crop's signature: its colours at 16 x 16 (area means of a 64 x 64 crop) and its detail (mean absolute
# difference of neighbouring pixels of that crop), which blurring or sharpening changes while the means
# barely move.
SIGNATURE_CROP_SIZE = 64
THUMBNAIL_SIZE = 16
# Largest differences between a batch's signature and the cached one that still count as the same pixels:
# decoding the same frame twice gives 0; each of LeRobot's augmentations at the edge of its default range
# moves one of them by more (tests/test_latent_cache.py).
THUMBNAIL_TOLERANCE = 4 / 255  # mean absolute difference in the crops' [-1, 1] range
DETAIL_TOLERANCE = 0.02  # relative


class LatentCacheError(ValueError):
    """A cache that does not fit the policy, the dataset or the batch (one clear line)."""


def target_settings(policy_config) -> dict:
    return {name: getattr(policy_config, name) for name in TARGET_FIELDS}


def camera_files(directory: Path, camera: str) -> dict[str, Path]:
    return {part: directory / f"{camera}.{part}.npy" for part in ("posterior", "box", "thumbnail", "detail")}


def crop_signature(target, images: list[Tensor], boxes: list[Tensor]) -> tuple[Tensor, Tensor]:
    """What identifies a gaze crop's pixels, cheaply: ((B K), 3, 16, 16) thumbnails and ((B K),) detail.

    Args: as `ReconTarget.crops` (K cameras' images in [0, 1] and the boxes they are cropped to).
    """
    crops = target.crops(images, boxes, size=SIGNATURE_CROP_SIZE)  # ((B K), 3, 64, 64) in [-1, 1]
    thumbnails = torch.nn.functional.avg_pool2d(crops, SIGNATURE_CROP_SIZE // THUMBNAIL_SIZE)
    detail = (crops.diff(dim=-1).abs().mean(dim=(1, 2, 3)) + crops.diff(dim=-2).abs().mean(dim=(1, 2, 3))) / 2
    return thumbnails, detail


class LatentCache:
    """A finished cache, memory-mapped: per-frame posterior parameters, crop boxes and crop signatures."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        metadata_path = self.directory / METADATA_FILE
        if not metadata_path.is_file():
            staging = staging_path(self.directory)
            hint = (
                f" {staging} holds an unfinished build: run reconvla-cache-latents again to finish it."
                if staging.exists()
                else " Build it with reconvla-cache-latents (same arguments as lerobot-train)."
            )
            raise LatentCacheError(
                f"recon_latent_cache={str(directory)!r} is not a finished latent cache (no "
                f"{METADATA_FILE}).{hint}"
            )
        self.metadata = json.loads(metadata_path.read_text())
        if self.metadata.get("format") != FORMAT_VERSION:
            raise LatentCacheError(
                f"recon_latent_cache={str(directory)!r} has format {self.metadata.get('format')}, this "
                f"version reads format {FORMAT_VERSION}: rebuild it with reconvla-cache-latents"
            )
        self.num_frames = self.metadata["num_frames"]
        self.cameras = self.metadata["cameras"]
        self.vae_config = self.metadata["vae_config"]
        self._arrays = {
            camera: {
                part: np.load(path, mmap_mode="r")
                for part, path in camera_files(self.directory, camera).items()
            }
            for camera in self.cameras
        }

    def check_fits(self, policy_config, cameras: list[str]) -> None:
        """Refuses a cache built for other target settings or without one of the policy's cameras."""
        built_for = self.metadata["target"]
        for name, value in target_settings(policy_config).items():
            if built_for.get(name) != value:
                raise LatentCacheError(
                    f"recon_latent_cache={str(self.directory)!r} was built with "
                    f"{name}={built_for.get(name)!r}, but the policy has {name}={value!r}: rebuild the cache "
                    "with reconvla-cache-latents and the same --policy settings, or train without "
                    "--policy.recon_latent_cache"
                )
        missing = [camera for camera in cameras if camera not in self.cameras]
        if missing:
            raise LatentCacheError(
                f"recon_latent_cache={str(self.directory)!r} has cameras {self.cameras}, not the policy's "
                f"{missing}: build it with the same --rename_map as training"
            )

    def posteriors(
        self, index: Tensor, cameras: list[str], boxes: list[Tensor], signature: tuple[Tensor, Tensor]
    ) -> Tensor:
        """The cached posterior parameters of a batch, after checking that it shows the cached crops.

        Args:
            index: (B,) the frames' dataset `index`.
            cameras: K camera names (without `observation.images.`), in the policy's order.
            boxes: K x (B, 4) the boxes the policy crops its targets to.
            signature: the batch's `crop_signature`.
        Returns:
            ((B K), 2 C, h, w) fp32 on the device of `thumbnails`, batch-major like the policy's targets.
        """
        frames = index.detach().cpu().reshape(-1).long().numpy()  # (B,)
        outside = frames[(frames < 0) | (frames >= self.num_frames)]
        if outside.size:
            raise LatentCacheError(
                f"frame index {int(outside[0])} is outside the {self.num_frames} frames of "
                f"recon_latent_cache={str(self.directory)!r}: it was built from another dataset"
            )
        thumbnails, detail = signature
        device = thumbnails.device
        batch_thumbnails = rearrange(thumbnails.float(), "(b k) c h w -> b k c h w", k=len(cameras))
        batch_detail = rearrange(detail.float(), "(b k) -> b k", k=len(cameras))
        parameters = []
        for k, camera in enumerate(cameras):
            arrays = self._arrays[camera]
            cached_boxes = torch.from_numpy(arrays["box"][frames]).to(device)  # (B, 4)
            moved = ~torch.isclose(cached_boxes, boxes[k].float(), atol=1e-6).all(-1)  # (B,)
            if moved.any():
                i = int(moved.nonzero()[0])
                raise LatentCacheError(
                    f"frame {int(frames[i])}, camera {camera!r}: the batch's gaze box {boxes[k][i].tolist()} "
                    f"is not the cached {cached_boxes[i].tolist()}: the dataset or its boxes changed since "
                    "the cache was built; rebuild it with reconvla-cache-latents"
                )
            cached_thumbnails = torch.from_numpy(arrays["thumbnail"][frames].astype(np.float32)).to(device)
            difference = (batch_thumbnails[:, k] - cached_thumbnails).abs().mean(dim=(1, 2, 3))  # (B,)
            cached_detail = torch.from_numpy(arrays["detail"][frames]).to(device)  # (B,)
            detail_change = (batch_detail[:, k] - cached_detail).abs() / cached_detail.clamp(min=1e-6)  # (B,)
            changed = (difference > THUMBNAIL_TOLERANCE) | (detail_change > DETAIL_TOLERANCE)
            if changed.any():
                i = int(changed.nonzero()[0])
                raise LatentCacheError(
                    f"frame {int(frames[i])}, camera {camera!r}: the batch's gaze crop differs from the "
                    f"cached one (colours by {difference[i].item():.3f} in [-1, 1], tolerance "
                    f"{THUMBNAIL_TOLERANCE:.3f}; detail by {100 * detail_change[i].item():.1f} %, tolerance "
                    f"{100 * DETAIL_TOLERANCE:.0f} %). The cache holds targets of the stored frames only: "
                    "turn image augmentation off (--dataset.image_transforms.enable=false) or train without "
                    "--policy.recon_latent_cache; if the dataset changed, rebuild the cache"
                )
            parameters.append(torch.from_numpy(arrays["posterior"][frames].astype(np.float32)))
        stacked = torch.stack(parameters, dim=1)  # (B, K, 2C, h, w)
        return rearrange(stacked, "b k c h w -> (b k) c h w").to(device)
