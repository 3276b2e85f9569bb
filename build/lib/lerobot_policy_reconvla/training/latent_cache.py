"""A latent cache: the frozen VAE's posterior over every frame's gaze crop, per camera, computed once.

Every epoch encodes the same crops of the same frames through the same frozen VAE; on the CPU that encode
is most of a tiny training step (docs/benchmarks.md). `reconvla-cache-latents` takes lerobot-train's own
arguments (`--config_path`, `--dataset.*`, `--policy.*`, `--rename_map`, `--batch_size`, `--num_workers`)
and stores, per camera, the posterior's parameters (mean and log-variance, as diffusers'
`DiagonalGaussianDistribution` holds them), so training still samples the target from the posterior at
every step, exactly as without the cache. Training reads it with `--policy.recon_latent_cache=<dir>`.

What a cache is valid for, and how a mismatch is caught:
- the target settings (VAE, subfolder, latent layout, crop size, square padding): stored, compared with the
  policy's config when training opens the cache (the differing field is named);
- the dataset, its gaze boxes and the images: every step compares the batch's resolved boxes with the cached
  ones and each crop's signature (a 16 x 16 thumbnail and its amount of detail) with the cached one, so a changed dataset, changed boxes
  or an augmentation that changes the crop (`--dataset.image_transforms.enable=true`) stop training with
  the frame and camera named, instead of training on targets of other pixels;
- the VAE's weights: hashed into the cache's name, so another VAE under the same name builds another cache.

Layout of `<dir>` (default `<dataset root>/reconvla_latents/<key>`): `cache.json` (what it was built from,
written last), and per camera `<camera>.posterior.npy` (N, 2 C, h, w), `<camera>.box.npy` (N, 4) and
`<camera>.thumbnail.npy` (N, 3, 16, 16) and `<camera>.detail.npy` (N,) (the crop's signature), indexed by the dataset's `index`. It is built in `<dir>.partial`
and renamed when complete: a killed build resumes from its last finished batch when run again.
"""

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from lerobot.configs import parser
from lerobot.configs.train import TrainPipelineConfig

from ..common.cli import run_entry_point
from ..common.durable import publish, read_json, refuse_other_settings, staging_path, write_json_atomically
from ..common.processes import die_with_parent

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CACHE_DIR_NAME = "reconvla_latents"
METADATA_FILE = "cache.json"
PROGRESS_FILE = "progress.json"
# The policy settings a VAE target depends on; a cache holds targets for exactly these values.
TARGET_FIELDS = (
    "recon_vae",
    "recon_vae_subfolder",
    "recon_vae_latent_channels",
    "recon_vae_downsample",
    "recon_image_size",
    "recon_pad_to_square",
)
CACHE_DTYPES = {"float32": np.float32, "float16": np.float16}
# A crop's signature: its colours at 16 x 16 (area means of a 64 x 64 crop) and its detail (mean absolute
# difference of neighbouring pixels of that crop), which blurring or sharpening changes while the means barely move.
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


def _camera_files(directory: Path, camera: str) -> dict[str, Path]:
    return {part: directory / f"{camera}.{part}.npy" for part in ("posterior", "box", "thumbnail", "detail")}


def crop_signature(target, images: list[Tensor], boxes: list[Tensor]) -> tuple[Tensor, Tensor]:
    """What identifies a gaze crop's pixels, cheaply: ((B K), 3, 16, 16) thumbnails and ((B K),) detail.

    Args: as `ReconTarget.crops` (K cameras' images in [0, 1] and resolved boxes).
    """
    crops = target.crops(images, boxes, size=SIGNATURE_CROP_SIZE)  # ((B K), 3, 64, 64) in [-1, 1]
    thumbnails = torch.nn.functional.avg_pool2d(crops, SIGNATURE_CROP_SIZE // THUMBNAIL_SIZE)
    detail = (crops.diff(dim=-1).abs().mean(dim=(1, 2, 3)) + crops.diff(dim=-2).abs().mean(dim=(1, 2, 3))) / 2
    return thumbnails, detail


class LatentCache:
    """A finished cache, memory-mapped: per-frame posterior parameters, resolved boxes and crop thumbnails."""

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
            raise LatentCacheError(f"recon_latent_cache={str(directory)!r} is not a finished latent cache (no {METADATA_FILE}).{hint}")
        self.metadata = json.loads(metadata_path.read_text())
        if self.metadata.get("format") != FORMAT_VERSION:
            raise LatentCacheError(
                f"recon_latent_cache={str(directory)!r} has format {self.metadata.get('format')}, this version "
                f"reads format {FORMAT_VERSION}: rebuild it with reconvla-cache-latents"
            )
        self.num_frames = self.metadata["num_frames"]
        self.cameras = self.metadata["cameras"]
        self.vae_config = self.metadata["vae_config"]
        self._arrays = {
            camera: {part: np.load(path, mmap_mode="r") for part, path in _camera_files(self.directory, camera).items()}
            for camera in self.cameras
        }

    def check_fits(self, policy_config, cameras: list[str]) -> None:
        """Refuses a cache built for other target settings or without one of the policy's cameras."""
        built_for = self.metadata["target"]
        for name, value in target_settings(policy_config).items():
            if built_for.get(name) != value:
                raise LatentCacheError(
                    f"recon_latent_cache={str(self.directory)!r} was built with {name}={built_for.get(name)!r}, "
                    f"but the policy has {name}={value!r}: rebuild the cache with reconvla-cache-latents and the "
                    "same --policy settings, or train without --policy.recon_latent_cache"
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
            boxes: K resolved boxes (B, 4), as the policy would crop them.
            signature: the batch's `crop_signature`.
        Returns:
            ((B K), 2 C, h, w) fp32 on the device of `thumbnails`, batch-major like the policy's targets.
        """
        frames = index.detach().cpu().reshape(-1).long().numpy()  # (B,)
        outside = frames[(frames < 0) | (frames >= self.num_frames)]
        if outside.size:
            raise LatentCacheError(
                f"frame index {int(outside[0])} is outside the {self.num_frames} frames of recon_latent_cache="
                f"{str(self.directory)!r}: it was built from another dataset"
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
                    f"frame {int(frames[i])}, camera {camera!r}: the batch's gaze box {boxes[k][i].tolist()} is not "
                    f"the cached {cached_boxes[i].tolist()}: the dataset or its boxes changed since the cache "
                    "was built; rebuild it with reconvla-cache-latents"
                )
            cached_thumbnails = torch.from_numpy(arrays["thumbnail"][frames].astype(np.float32)).to(device)
            difference = (batch_thumbnails[:, k] - cached_thumbnails).abs().mean(dim=(1, 2, 3))  # (B,)
            cached_detail = torch.from_numpy(arrays["detail"][frames]).to(device)  # (B,)
            detail_change = (batch_detail[:, k] - cached_detail).abs() / cached_detail.clamp(min=1e-6)  # (B,)
            changed = (difference > THUMBNAIL_TOLERANCE) | (detail_change > DETAIL_TOLERANCE)
            if changed.any():
                i = int(changed.nonzero()[0])
                raise LatentCacheError(
                    f"frame {int(frames[i])}, camera {camera!r}: the batch's gaze crop differs from the cached one "
                    f"(colours by {difference[i].item():.3f} in [-1, 1], tolerance {THUMBNAIL_TOLERANCE:.3f}; "
                    f"detail by {100 * detail_change[i].item():.1f} %, tolerance {100 * DETAIL_TOLERANCE:.0f} %). "
                    "The cache holds targets of the stored frames only: turn image augmentation off "
                    "(--dataset.image_transforms.enable=false) or train without --policy.recon_latent_cache; if "
                    "the dataset changed, rebuild the cache"
                )
            parameters.append(torch.from_numpy(arrays["posterior"][frames].astype(np.float32)))
        stacked = torch.stack(parameters, dim=1)  # (B, K, 2C, h, w)
        return rearrange(stacked, "b k c h w -> (b k) c h w").to(device)


# --------------------------------------------------------------------------------------------------
# Building


@dataclass
class CacheLatentsConfig(TrainPipelineConfig):
    """lerobot-train's arguments (only the dataset, policy, rename map, batch size and workers matter here)
    plus where and how to store the cache."""

    # Default: <dataset root>/reconvla_latents/<key of dataset, cameras, target settings, VAE weights, dtype>.
    cache_dir: Path | None = None
    # float16 halves the size; float32 reproduces the uncached targets exactly.
    cache_dtype: str = "float32"


def _dataset_fingerprint(root: Path) -> str:
    """Hash of the dataset's metadata and tabular data (frames, indices, gaze boxes); the images are checked
    per step through their thumbnails instead, since hashing every video would cost as much as decoding."""
    digest = hashlib.sha256()
    for path in sorted([root / "meta" / "info.json", *(root / "data").rglob("*.parquet")]):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _vae_fingerprint(vae) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _resolve_cameras(cfg: CacheLatentsConfig, dataset) -> list[tuple[str, str, str | None]]:
    """(policy camera name, dataset image key, dataset gaze-box key or None) for every camera to cache."""
    from ..gaze_box import gaze_box_key

    renamed = {cfg.rename_map.get(key, key): key for key in dataset.meta.features}
    image_prefix = "observation.images."
    wanted = cfg.policy.camera_keys if cfg.policy.input_features else [
        cfg.rename_map.get(key, key) for key in dataset.meta.camera_keys
    ]
    missing = [key for key in wanted if key not in renamed]
    if missing:
        raise LatentCacheError(
            f"the policy's camera(s) {missing} are not in dataset {cfg.dataset.repo_id!r} (cameras "
            f"{dataset.meta.camera_keys}) under --rename_map={cfg.rename_map}"
        )
    cameras = []
    for key in wanted:
        camera = key.removeprefix(image_prefix)
        box_key = renamed.get(gaze_box_key(camera))
        if box_key is None:
            logger.warning("No %s in the dataset: camera %r caches its whole image.", gaze_box_key(camera), camera)
        cameras.append((camera, renamed[key], box_key))
    return cameras


def _open_staging(staging: Path, identity: dict, shapes: dict, dtypes: dict) -> tuple[dict, int]:
    """Creates or reopens the arrays of an unfinished build; returns them and the frames already done."""
    if staging.exists():
        refuse_other_settings(
            read_json(staging / METADATA_FILE), identity, what=f"{staging} holds an unfinished build of another cache",
            remedy="delete it to start over, or run with the arguments it was started with",
        )  # fmt: skip
        done = read_json(staging / PROGRESS_FILE)["frames_done"]
        mode = "r+"
        logger.info("Resuming the unfinished build in %s: %d frames already cached", staging, done)
    else:
        staging.mkdir(parents=True)
        write_json_atomically(staging / METADATA_FILE, identity)
        write_json_atomically(staging / PROGRESS_FILE, {"frames_done": 0})
        done, mode = 0, "w+"
    arrays = {}
    for camera in identity["cameras"]:
        arrays[camera] = {
            part: np.lib.format.open_memmap(path, mode=mode, dtype=dtypes[part], shape=shapes[part])
            for part, path in _camera_files(staging, camera).items()
        }
    return arrays, done


def _worker_init(parent_pid: int, worker_id: int) -> None:
    die_with_parent(parent_pid)  # a build killed outright takes its decoding workers with it


def build_latent_cache(cfg: CacheLatentsConfig) -> Path:
    """Encodes every frame's gaze crops once; returns the finished cache's directory."""
    from lerobot.datasets import LeRobotDataset
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from ..configuration_reconvla import ReconVLAConfig
    from ..modeling_reconvla import make_recon_target
    from ..recon.target import boxes_or_whole_image

    cfg.output_dir = None  # nothing is trained or written there; lerobot-train's check must not refuse it
    cfg.validate()
    policy = cfg.policy
    if not isinstance(policy, ReconVLAConfig):
        raise LatentCacheError(f"--policy.type={policy.type}: the latent cache is for reconvla policies")
    if policy.recon_target != "vae":
        raise LatentCacheError(f"--policy.recon_target={policy.recon_target!r}: only VAE targets are cached")
    if cfg.dataset.image_transforms.enable:
        raise LatentCacheError(
            "--dataset.image_transforms.enable=true: augmentation changes the crops at every step, so no "
            "cached target fits them; train without a latent cache to augment"
        )
    if cfg.cache_dtype not in CACHE_DTYPES:
        raise LatentCacheError(f"--cache_dtype={cfg.cache_dtype!r}; expected one of {list(CACHE_DTYPES)}")

    dataset = LeRobotDataset(
        cfg.dataset.repo_id, root=cfg.dataset.root, revision=cfg.dataset.revision,
        video_backend=cfg.dataset.video_backend,
    )  # fmt: skip
    cameras = _resolve_cameras(cfg, dataset)
    device = torch.device(policy.device or "cpu")
    target = make_recon_target(policy)
    vae = target.vae.to(device)
    identity = {
        "format": FORMAT_VERSION,
        "dataset": {"repo_id": cfg.dataset.repo_id, "fingerprint": _dataset_fingerprint(Path(dataset.root))},
        "num_frames": dataset.num_frames,
        "cameras": [camera for camera, _, _ in cameras],
        "target": target_settings(policy),
        "vae_weights": _vae_fingerprint(vae),
        "vae_config": {key: vae.config[key] for key in ("scaling_factor", "shift_factor")},
        "dtype": cfg.cache_dtype,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    directory = Path(cfg.cache_dir) if cfg.cache_dir else Path(dataset.root) / CACHE_DIR_NAME / key
    if (directory / METADATA_FILE).is_file():
        refuse_other_settings(
            read_json(directory / METADATA_FILE), identity, what=f"{directory} holds a cache of other inputs",
            remedy="choose another --cache_dir",
        )  # fmt: skip
        logger.info("%s is up to date", directory)
        return directory

    side = policy.recon_image_size // policy.recon_vae_downsample
    num_frames = dataset.num_frames
    shapes = {
        "posterior": (num_frames, 2 * policy.recon_vae_latent_channels, side, side),
        "box": (num_frames, 4),
        "thumbnail": (num_frames, 3, THUMBNAIL_SIZE, THUMBNAIL_SIZE),
        "detail": (num_frames,),
    }
    dtypes = {
        "posterior": CACHE_DTYPES[cfg.cache_dtype], "box": np.float32, "thumbnail": np.float16, "detail": np.float32,
    }  # fmt: skip
    staging = staging_path(directory)
    arrays, done = _open_staging(staging, identity, shapes, dtypes)

    loader = DataLoader(
        torch.utils.data.Subset(dataset, range(done, num_frames)), batch_size=cfg.batch_size,
        num_workers=cfg.num_workers, shuffle=False, worker_init_fn=partial(_worker_init, os.getpid()),
    )  # fmt: skip
    with tqdm(total=num_frames, initial=done, unit="frame", desc="caching latents") as progress, torch.no_grad():
        for batch in loader:
            frames = batch["index"].long().numpy()  # (B,)
            if not np.array_equal(frames, np.arange(done, done + len(frames))):
                raise LatentCacheError(f"dataset {cfg.dataset.repo_id!r}: frame indices are not 0..N-1 in order")
            images = [batch[image_key].to(device) for _, image_key, _ in cameras]  # K x (B, 3, H, W)
            boxes = [
                boxes_or_whole_image(batch.get(box_key) if box_key else None, len(frames), device)
                for _, _, box_key in cameras
            ]  # K x (B, 4)
            parameters = target.posterior(target.crops(images, boxes)).parameters  # ((B K), 2C, h, w)
            parameters = rearrange(parameters, "(b k) c h w -> b k c h w", k=len(cameras)).cpu().numpy()
            thumbnails, detail = crop_signature(target, images, boxes)  # ((B K), 3, 16, 16), ((B K),)
            thumbnails = rearrange(thumbnails, "(b k) c h w -> b k c h w", k=len(cameras)).cpu().numpy()
            detail = rearrange(detail, "(b k) -> b k", k=len(cameras)).cpu().numpy()
            rows = slice(done, done + len(frames))
            for k, (camera, _, _) in enumerate(cameras):
                arrays[camera]["posterior"][rows] = parameters[:, k]
                arrays[camera]["box"][rows] = boxes[k].cpu().numpy()
                arrays[camera]["thumbnail"][rows] = thumbnails[:, k]
                arrays[camera]["detail"][rows] = detail[:, k]
            for camera_arrays in arrays.values():
                for array in camera_arrays.values():
                    array.flush()
            done += len(frames)
            # Progress is recorded only after the batch is on disk, so a resumed build never skips one.
            write_json_atomically(staging / PROGRESS_FILE, {"frames_done": done})
            progress.update(len(frames))

    del arrays  # closes the memory maps before the directory is renamed
    (staging / PROGRESS_FILE).unlink()
    publish(staging, directory)
    return directory


@parser.wrap()
def cache_latents(cfg: CacheLatentsConfig) -> Path:
    directory = build_latent_cache(cfg)
    size = sum(path.stat().st_size for path in directory.iterdir())
    print(f"latent cache: {directory} ({size / 2**20:.1f} MiB)")
    print(f"train with: --policy.recon_latent_cache={directory}")
    return directory


def main(argv: list[str] | None = None) -> int:
    """``reconvla-cache-latents``: exit status 0 built, 2 refused (one line), 130 interrupted (resumable)."""
    from lerobot.utils.utils import init_logging

    init_logging()
    status = run_entry_point(cache_latents, argv, prog="reconvla-cache-latents", refusals=(LatentCacheError,))
    if status == 130:
        print("\ninterrupted: run the same command again to resume from the last cached batch")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
