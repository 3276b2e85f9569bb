"""The latent cache: a ReconVLA training step reading the VAE's posteriors from the cache, against stock pi0
and against the same step running the VAE; the cache's build time and size. Writes its section of a
markdown report (between markers, so the rest of the file is left as it is).

    .venv/bin/python -m benchmarks.bench_latent_cache --out docs/benchmarks.md

Two target layouts, each with a random-init `diffusers.AutoencoderKL` (weights do not change the time):
- `sd`: the defaults, Stable Diffusion's VAE architecture (4 latent channels), 128 px crops, 1 latent
  per token;
- `paper`: ReconVLA's official layout, FLUX.1's VAE architecture (16 latent channels, no quant convs), 256 px
  crops, 2 x 2 latents = 64 channels per token.
The frames come from a LeRobotDataset written for the run (random 224 x 224 images, a gaze box per camera),
the cache is built from it by `build_latent_cache` (what `reconvla-cache-latents` runs), and the batch is
those frames as the dataset delivers them, so every step passes the cache's checks. Before timing, the
cached and the encoding policy (same weights) must give the same loss for the same seed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.pi0_pair import (  # noqa: E402
    CAMERAS,
    GAZE_BOX,
    SD_VAE,
    SMALL_VAE,
    make_batch,
    make_config,
    make_optimizer,
    make_stock_twin,
    save_vae,
    train_step_fn,
)
from benchmarks.report import git_describe, machine, versions  # noqa: E402
from benchmarks.timing import interleaved, ratio  # noqa: E402
from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy  # noqa: E402

BEGIN = "<!-- bench_latent_cache.py: begin -->"
END = "<!-- bench_latent_cache.py: end -->"
# FLUX.1's VAE: SD's architecture with 16 latent channels, no quant convs, and its own shift and scale.
FLUX_VAE = dict(
    SD_VAE,
    latent_channels=16,
    use_quant_conv=False,
    use_post_quant_conv=False,
    shift_factor=0.1159,
    scaling_factor=0.3611,
)
LAYOUTS = {
    "sd": dict(
        vae=SD_VAE, image_size=128, description="SD-VAE architecture, 128 px crops, 4 x 1 x 1 per token"
    ),
    "paper": dict(
        vae=FLUX_VAE,
        image_size=256,
        description="FLUX.1-VAE architecture, 256 px crops, 16 x 2 x 2 per token",
    ),
}


def write_frames(root: Path, num_frames: int, image_shape) -> None:
    from lerobot.datasets import LeRobotDataset

    from lerobot_policy_reconvla.sim.generate import dataset_features

    _, height, width = image_shape
    dataset = LeRobotDataset.create(
        repo_id="local/bench_latent_cache",
        fps=50,
        root=root,
        robot_type="aloha",
        use_videos=False,
        features=dataset_features(CAMERAS, (height, width), use_videos=False),
    )
    rng = np.random.default_rng(0)
    for _ in range(num_frames):
        frame = {
            "observation.state": rng.standard_normal(14).astype(np.float32),
            "action": rng.standard_normal(14).astype(np.float32),
            "task": "Pick up the cube.",
        }
        for cam in CAMERAS:
            frame[f"observation.images.{cam}"] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            frame[f"observation.gaze_box.{cam}"] = np.float32(GAZE_BOX)
        dataset.add_frame(frame)
    dataset.save_episode()
    dataset.finalize()


def build_cache(root: Path, policy_config, cache_dir: Path) -> float:
    from lerobot.configs.default import DatasetConfig

    from lerobot_policy_reconvla.training.latent_cache import CacheLatentsConfig, build_latent_cache

    config = CacheLatentsConfig(
        dataset=DatasetConfig(repo_id="local/bench_latent_cache", root=str(root)),
        policy=copy.deepcopy(policy_config),
        cache_dir=cache_dir,
        batch_size=8,
        num_workers=0,
    )
    start = time.perf_counter()
    build_latent_cache(config)
    return time.perf_counter() - start


def dataset_batch(root: Path, config, batch_size: int, device: str) -> dict:
    """make_batch's batch with the dataset's first frames (images, boxes, `index`) in place of random ones."""
    from lerobot.datasets import LeRobotDataset

    dataset = LeRobotDataset("local/bench_latent_cache", root=root)
    frames = torch.utils.data.default_collate([dataset[i] for i in range(batch_size)])
    batch = make_batch(config, batch_size, device)
    for key in [f"observation.images.{cam}" for cam in CAMERAS] + [
        f"observation.gaze_box.{cam}" for cam in CAMERAS
    ]:
        batch[key] = frames[key].to(device)
    batch["index"] = frames["index"].to(device)
    return batch


def same_loss(cached, encoding, batch) -> float:
    losses = []
    for policy in (cached, encoding):
        policy.train()
        torch.manual_seed(7)
        losses.append(policy.forward(batch)[1]["recon_loss"])
    difference = abs(losses[0] - losses[1]) / abs(losses[1])
    assert difference < 1e-4, (
        f"cached and encoded targets give different losses {losses}: the comparison is void"
    )
    return difference


def run_layout(args, name: str, tmp: Path) -> list[dict]:
    layout = LAYOUTS[name]
    vae_path = save_vae(tmp / f"vae_{name}", SMALL_VAE if args.quick else layout["vae"])
    root = tmp / f"frames_{name}"
    write_frames(root, args.frames, args.image_shape)
    config = make_config(args, "vae", vae_path)
    config = dataclasses.replace(
        config,
        recon_image_size=layout["image_size"],
        recon_vae_latent_channels=layout["vae"]["latent_channels"],
    )
    torch.manual_seed(0)
    encoding = ReconVLAPolicy(config)
    # Off its zero init: a zero head predicts 0 whatever the target, and the loss check below would be void.
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in encoding.model.recon_head.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    cache_dir = tmp / f"cache_{name}"
    build_seconds = build_cache(root, encoding.config, cache_dir)
    cache_bytes = sum(path.stat().st_size for path in cache_dir.iterdir())
    per_thousand = 1000 / args.frames
    rows = []
    for batch_size in args.batch_sizes:
        cached = copy.deepcopy(encoding)
        cached.config.recon_latent_cache = str(cache_dir)
        pi0 = make_stock_twin(encoding)
        batch = dataset_batch(root, encoding.config, batch_size, args.device)
        difference = same_loss(cached, encoding, batch)
        steps = {}
        for policy_name, policy in (("pi0", pi0), ("vae", encoding), ("cache", cached)):
            policy.train()
            steps[policy_name] = train_step_fn(policy, make_optimizer(policy), batch)
        stats = interleaved(
            steps,
            f"train step {name} b{batch_size}",
            rounds=args.rounds,
            threads=args.threads,
            min_run_time=args.min_run_time,
        )
        rows.append(
            dict(
                layout=name,
                batch_size=batch_size,
                stats=stats,
                difference=difference,
                build_s_per_1000=build_seconds * per_thousand,
                mib_per_1000=cache_bytes * per_thousand / 2**20,
            )
        )
        print(
            f"[{name} b{batch_size}] pi0 {stats['pi0'].fmt()} vae {stats['vae'].fmt()} "
            f"cache {stats['cache'].fmt()}",
            flush=True,
        )
        del cached, pi0
    return rows


def render(args, rows: list[dict], argv: list[str], wall: float) -> str:
    cmd = ".venv/bin/python -m benchmarks.bench_latent_cache " + " ".join(argv)
    out = [
        BEGIN,
        "## Latent cache (training step without the VAE)",
        "",
        f"Generated by `{cmd}` ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {wall / 60:.1f} min, "
        f"commit {git_describe()}); see the docstring of `benchmarks/bench_latent_cache.py`.",
        "",
        *machine(),
        f"- versions: {versions()}",
        f"- variant `{args.variant}`, device {args.device}, float32, torch threads {args.threads}, "
        f"3 cameras of {tuple(args.image_shape)}; {args.rounds} rounds alternating the three policies, "
        f"`blocked_autorange(min_run_time={args.min_run_time})`, median ± IQR/2",
        "- train step: `zero_grad` + `forward` + `backward` + `AdamW.step`; ReconVLA running the VAE on "
        "the gaze crops (`vae`) and reading the posteriors from the cache (`cache`, with its per-step box "
        "and crop checks)",
        f"- build and size: `build_latent_cache` over {args.frames} frames (3 cameras, batch 8, "
        "no decoding workers, PNG frames), scaled to 1,000 frames; float32 posteriors "
        "(`--cache_dtype float16` halves them)",
        "",
        "| layout | batch | stock pi0 | ReconVLA, VAE | ratio | ReconVLA, cache | ratio | target "
        "| loss cached vs encoded | build s / 1,000 frames | MiB / 1,000 frames |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        stats = row["stats"]
        vae_ratio, cache_ratio = ratio(stats["vae"], stats["pi0"]), ratio(stats["cache"], stats["pi0"])
        verdict = "met" if cache_ratio <= 1.5 else f"missed ({cache_ratio:.2f} > 1.5)"
        out.append(
            f"| {row['layout']}: {LAYOUTS[row['layout']]['description']} | {row['batch_size']} "
            f"| {stats['pi0'].fmt()} | "
            f"{stats['vae'].fmt()} | {vae_ratio:.2f} | {stats['cache'].fmt()} | {cache_ratio:.2f} "
            f"| <= 1.5 (CPU, tiny): {verdict} | "
            f"rel. diff {row['difference']:.1e} | {row['build_s_per_1000']:.0f} | {row['mib_per_1000']:.0f} |"
        )
    out.append(END)
    return "\n".join(out)


def write_section(path: Path, section: str) -> None:
    """Replaces the section between the markers, or appends it."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=("tiny", "full"), default="tiny")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--frames", type=int, default=32, help="frames the build time and size are measured on")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--min-run-time", type=float, default=2.0)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke setting: sd layout with a narrow VAE, batch 1, short runs (numbers meaningless)",
    )
    p.add_argument("--out", default=None, help="markdown file whose latent-cache section is (re)written")
    args = p.parse_args(argv)
    # What pi0_pair.make_config reads.
    args.dtype, args.recon_head_dtype, args.chunk_size, args.num_steps = "float32", "float32", 50, 10
    args.image_shape, args.compile_mode = [3, 224, 224], "default"
    if args.quick:
        args.layouts, args.batch_sizes, args.frames, args.rounds, args.min_run_time = ["sd"], [1], 8, 1, 0.05
        args.chunk_size, args.num_steps = 10, 2
    return args


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for name in args.layouts for row in run_layout(args, name, Path(tmp))]
    section = render(args, rows, argv, time.time() - start)
    if args.out:
        write_section(Path(args.out), section)
    print(section)


if __name__ == "__main__":
    main()
