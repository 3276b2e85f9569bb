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
- the dataset, its gaze boxes and the images: every step compares the batch's boxes with the cached ones
  and each crop's signature (a 16 x 16 thumbnail and its amount of detail) with the cached one, so a
  changed dataset, changed boxes or an augmentation that changes the crop
  (`--dataset.image_transforms.enable=true`) stop training with the frame and camera named, instead of
  training on targets of other pixels;
- the VAE's weights: hashed into the cache's name, so another VAE under the same name builds another cache.

The cache is a directory (default `<dataset root>/reconvla_latents/<key>`; its layout and reader:
training/latent_cache_reader.py). It is built in `<dir>.partial` and renamed when complete: a killed build
resumes from its last finished batch when run again.
"""

import errno
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from lerobot.configs import parser
from lerobot.configs.train import TrainPipelineConfig
from lerobot.utils.constants import OBS_IMAGES

from ..common.cli import OutOfSpace, out_of_space, run_entry_point
from ..common.durable import publish, read_json, refuse_other_settings, staging_path, write_json_atomically
from ..common.processes import die_with_parent
from ..gaze_box import batch_gaze_boxes, whole_image_if_absent
from .latent_cache_reader import (
    FORMAT_VERSION,
    METADATA_FILE,
    THUMBNAIL_SIZE,
    LatentCacheError,
    camera_files,
    crop_signature,
    target_settings,
)

logger = logging.getLogger(__name__)

CACHE_DIR_NAME = "reconvla_latents"
PROGRESS_FILE = "progress.json"
CACHE_DTYPES = {"float32": np.float32, "float16": np.float16}


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


def _policy_cameras(cfg: CacheLatentsConfig, dataset) -> list[str]:
    """The names of the cameras to cache: the policy's, else the dataset's, under `--rename_map`."""
    from ..configuration_reconvla import camera_name

    renamed = {cfg.rename_map.get(key, key) for key in dataset.meta.features}
    wanted = (
        cfg.policy.camera_keys
        if cfg.policy.input_features
        else [cfg.rename_map.get(key, key) for key in dataset.meta.camera_keys]
    )
    missing = [key for key in wanted if key not in renamed]
    if missing:
        raise LatentCacheError(
            f"the policy's camera(s) {missing} are not in dataset {cfg.dataset.repo_id!r} (cameras "
            f"{dataset.meta.camera_keys}) under --rename_map={cfg.rename_map}"
        )
    return [camera_name(key) for key in wanted]


def _open_staging(staging: Path, identity: dict, shapes: dict, dtypes: dict) -> tuple[dict, int]:
    """Creates or reopens the arrays of an unfinished build; returns them and the frames already done.

    A build's files are created at their full size, their disk blocks reserved, before any frame is encoded:
    a disk that cannot hold the cache says so at once (OutOfSpace) instead of after hours of encoding, or as
    a SIGBUS when a memory-mapped page finds no free block. The progress file is written only once every
    array exists whole, so a build stopped while creating them starts over."""
    if (staging / PROGRESS_FILE).is_file():
        refuse_other_settings(
            read_json(staging / METADATA_FILE),
            identity,
            what=f"{staging} holds an unfinished build of another cache",
            remedy="delete it to start over, or run with the arguments it was started with",
        )
        done = read_json(staging / PROGRESS_FILE)["frames_done"]
        logger.info("Resuming the unfinished build in %s: %d frames already cached", staging, done)
        return _open_arrays(staging, identity["cameras"], shapes, dtypes, "r+"), done
    if staging.exists():
        shutil.rmtree(staging)  # stopped while creating its files: nothing was cached yet
    needed = sum(int(np.prod(shapes[part])) * np.dtype(dtypes[part]).itemsize for part in shapes)
    needed *= len(identity["cameras"])
    staging.mkdir(parents=True)
    try:
        free = shutil.disk_usage(staging).free
        if free < needed:
            raise OSError(errno.ENOSPC, f"needs {needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB free")
        write_json_atomically(staging / METADATA_FILE, identity)
        arrays = _open_arrays(staging, identity["cameras"], shapes, dtypes, "w+")
        for camera_arrays in arrays.values():
            for array in camera_arrays.values():
                _reserve_blocks(Path(array.filename), array.offset + array.nbytes)
        write_json_atomically(staging / PROGRESS_FILE, {"frames_done": 0})
    except OSError as error:
        if out_of_space(error) is None:
            raise
        shutil.rmtree(staging, ignore_errors=True)  # gives the space back; nothing was cached
        raise OutOfSpace(
            f"no space left for the latent cache in {staging.parent} ({error.strerror or error}; the cache "
            f"takes {needed / 2**20:.1f} MiB): free some space, or choose another --cache_dir, and run the "
            "same command again"
        ) from error
    return arrays, 0


def _open_arrays(staging: Path, cameras: list[str], shapes: dict, dtypes: dict, mode: str) -> dict:
    return {
        camera: {
            part: np.lib.format.open_memmap(path, mode=mode, dtype=dtypes[part], shape=shapes[part])
            for part, path in camera_files(staging, camera).items()
        }
        for camera in cameras
    }


def _reserve_blocks(path: Path, size: int) -> None:
    """Allocates `path`'s disk blocks up to `size` bytes (a memory map's file is otherwise sparse)."""
    with path.open("r+b") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # file systems without it: sparse
                raise


def _worker_init(parent_pid: int, worker_id: int) -> None:
    die_with_parent(parent_pid)  # a build killed outright takes its decoding workers with it


def build_latent_cache(cfg: CacheLatentsConfig) -> Path:
    """Encodes every frame's gaze crops once; returns the finished cache's directory."""
    from lerobot.datasets import LeRobotDataset
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from ..configuration_reconvla import ReconSettings
    from ..recon_branch import make_recon_target

    cfg.output_dir = None  # nothing is trained or written there; lerobot-train's check must not refuse it
    cfg.validate()
    policy = cfg.policy
    if not isinstance(
        policy, ReconSettings
    ):  # reconvla or reconvla_pi05: the targets do not depend on the base
        raise LatentCacheError(
            f"--policy.type={policy.type}: the latent cache is for reconvla and reconvla_pi05 policies"
        )
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
        cfg.dataset.repo_id,
        root=cfg.dataset.root,
        revision=cfg.dataset.revision,
        video_backend=cfg.dataset.video_backend,
    )
    cameras = _policy_cameras(cfg, dataset)
    device = torch.device(policy.device or "cpu")
    target = make_recon_target(policy)
    vae = target.vae.to(device)
    identity = {
        "format": FORMAT_VERSION,
        "dataset": {"repo_id": cfg.dataset.repo_id, "fingerprint": _dataset_fingerprint(Path(dataset.root))},
        "num_frames": dataset.num_frames,
        "cameras": cameras,
        "target": target_settings(policy),
        "vae_weights": _vae_fingerprint(vae),
        "vae_config": {key: vae.config[key] for key in ("scaling_factor", "shift_factor")},
        "dtype": cfg.cache_dtype,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    directory = Path(cfg.cache_dir) if cfg.cache_dir else Path(dataset.root) / CACHE_DIR_NAME / key
    if (directory / METADATA_FILE).is_file():
        refuse_other_settings(
            read_json(directory / METADATA_FILE),
            identity,
            what=f"{directory} holds a cache of other inputs",
            remedy="choose another --cache_dir",
        )
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
        "posterior": CACHE_DTYPES[cfg.cache_dtype],
        "box": np.float32,
        "thumbnail": np.float16,
        "detail": np.float32,
    }
    staging = staging_path(directory)
    arrays, done = _open_staging(staging, identity, shapes, dtypes)
    said: set[str] = set()  # what batch_gaze_boxes has warned about

    loader = DataLoader(
        torch.utils.data.Subset(dataset, range(done, num_frames)),
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        shuffle=False,
        worker_init_fn=partial(_worker_init, os.getpid()),
    )
    progress = tqdm(total=num_frames, initial=done, unit="frame", desc="caching latents")
    with progress, torch.no_grad():
        for batch in loader:
            frames = batch["index"].long().numpy()  # (B,)
            if not np.array_equal(frames, np.arange(done, done + len(frames))):
                raise LatentCacheError(
                    f"dataset {cfg.dataset.repo_id!r}: frame indices are not 0..N-1 in order"
                )
            batch = {cfg.rename_map.get(key, key): value for key, value in batch.items()}  # policy's names
            images = [batch[f"{OBS_IMAGES}.{camera}"].to(device) for camera in cameras]  # K x (B, 3, H, W)
            # As the policy crops them (the same checks and whole-image fallback), so every step can compare.
            boxes = whole_image_if_absent(batch_gaze_boxes(batch, cameras, said)).to(device)  # (B, K, 4)
            boxes = list(boxes.unbind(1))  # K x (B, 4), as the crops take them
            parameters = target.posterior(target.crops(images, boxes)).parameters  # ((B K), 2C, h, w)
            parameters = rearrange(parameters, "(b k) c h w -> b k c h w", k=len(cameras)).cpu().numpy()
            thumbnails, detail = crop_signature(target, images, boxes)  # ((B K), 3, 16, 16), ((B K),)
            thumbnails = rearrange(thumbnails, "(b k) c h w -> b k c h w", k=len(cameras)).cpu().numpy()
            detail = rearrange(detail, "(b k) -> b k", k=len(cameras)).cpu().numpy()
            rows = slice(done, done + len(frames))
            for k, camera in enumerate(cameras):
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
