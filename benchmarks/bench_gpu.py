"""Full-size ReconVLA against stock pi0 (and pi05) on one GPU, in one short run: chunk latency (eager and
compiled), training step time and peak memory (with and without the latent cache). Writes a markdown report.

    # on the GPU machine, from the repository root (packages it lacks come from gpu_wheels/):
    bash benchmarks/run_bench_gpu.sh --out bench_gpu.md
    # reconvla_pi05 against stock pi05 too (one section per base, about twice the time):
    bash benchmarks/run_bench_gpu.sh --base both --out bench_gpu.md
    # the same script at the tiny size on the CPU (what tests/test_benchmarks_smoke.py runs):
    .venv/bin/python -m benchmarks.bench_gpu --variant tiny --device cpu --quick --out /tmp/bench_gpu.md

What it measures, on random weights built directly on the device (gemma_2b + gemma_300m, DiT 1024 x 3;
latency does not depend on the weights' values):
- `predict_action_chunk`, batch 1, three 224 px cameras, 10 steps, eager and compiled (`torch.compile` of
  pi0's `sample_actions` and `forward` as `compile_model=true` does, both policies the same mode), the two
  policies alternating (ABBA), median ± IQR/2;
- one training step (`zero_grad` + `forward` + `backward` + `AdamW.step`), bf16 weights, full fine-tune with
  gradient checkpointing, batch 1 and 8: stock pi0, ReconVLA running its VAE (SD-VAE architecture, 128 px
  crops) and ReconVLA reading a latent cache built for the batch's frames; median of the timed steps;
- the peak memory of those steps: `torch.cuda.max_memory_allocated` above what was allocated before the
  optimizer was made (gradients, AdamW state, activations, the VAE), plus the policy's own weights.
With `--base pi05` or `both` the same for `reconvla_pi05` against stock pi05 (the twin is made as
`pi0_pair.py` says), one base after the other, the first base's pair freed before the next is built.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from benchmarks.bench_latent_cache import build_cache, dataset_batch, write_frames  # noqa: E402
from benchmarks.pi0_pair import (  # noqa: E402
    BASES,
    SD_VAE,
    SMALL_VAE,
    assert_same_chunks,
    compile_like_pi0_,
    load_class,
    make_config,
    make_stock_twin,
    save_vae,
)
from benchmarks.report import git_describe, machine, versions  # noqa: E402
from benchmarks.timing import interleaved, ratio  # noqa: E402


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def build_policy(args, vae_path: str, base: str):
    config = dataclasses.replace(make_config(args, "vae", vae_path, base), gradient_checkpointing=True)
    torch.manual_seed(0)
    with torch.device(args.device):  # random init on the device: seconds instead of minutes on the CPU
        policy = load_class(BASES[base].policy)(config)
    return policy.to(args.device)


def chunk_latency(args, recon, stock, batch, compiled: bool) -> dict:
    for policy in (recon, stock):
        policy.eval()
    started = time.perf_counter()
    # Identical chunks for the same noise (to kernel tolerance on a GPU); also the compile's first calls.
    assert_same_chunks(recon, stock, batch, compiled or args.device == "cuda")
    first_call_s = time.perf_counter() - started
    stats = interleaved(
        {
            "stock": lambda: stock.predict_action_chunk(batch),
            "reconvla": lambda: recon.predict_action_chunk(batch),
        },
        "chunk",
        rounds=args.rounds,
        threads=args.threads,
        min_run_time=args.min_run_time,
    )
    return dict(stats=stats, first_call_s=first_call_s)


def weights_bytes(policy) -> int:
    return sum(p.numel() * p.element_size() for p in policy.parameters())


def train_steps(args, policy, batch) -> dict:
    """Median step time and peak memory of `args.train_steps` steps after one warm-up step."""
    policy.train()
    if args.device == "cuda":
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    optimizer = torch.optim.AdamW(policy.get_optim_params(), lr=1e-5, weight_decay=0.0)
    times = []
    for step in range(1 + args.train_steps):
        synchronize(args.device)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = policy.forward(batch)
        loss.backward()
        optimizer.step()
        synchronize(args.device)
        if step:  # the first step allocates AdamW's state
            times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() - before if args.device == "cuda" else None
    optimizer.zero_grad(set_to_none=True)
    del optimizer
    return dict(median_s=statistics.median(times), peak_bytes=peak, weights_bytes=weights_bytes(policy))


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def fmt_gib(value: int | None) -> str:
    return "n/a (CPU)" if value is None else f"{value / 2**30:.2f} GiB"


def run(args, tmp: Path) -> dict:
    vae_path = save_vae(tmp / "vae", SMALL_VAE if args.quick else SD_VAE)
    frames_root = tmp / "frames"
    write_frames(frames_root, max(args.batch_sizes), args.image_shape)
    cache_dir = tmp / "cache"
    # The cache holds the VAE's posteriors of the gaze crops: they depend on the target settings alone, which
    # every base shares (a reading policy checks them), so one build serves all bases.
    results = {"cache_build_s": build_cache(frames_root, make_config(args, "vae", vae_path), cache_dir)}
    results["bases"] = {}
    for base in args.bases:
        results["bases"][base] = run_base(args, base, vae_path, frames_root, cache_dir)
        gc.collect()  # the pair of this base goes before the next is built
        if args.device == "cuda":
            torch.cuda.empty_cache()
    return results


def run_base(args, base: str, vae_path: str, frames_root: Path, cache_dir: Path) -> dict:
    results = {"latency": {}, "train": []}
    started = time.perf_counter()
    recon = build_policy(args, vae_path, base)
    stock = make_stock_twin(recon)
    results["build_s"] = time.perf_counter() - started
    print(f"[{base}] built both policies in {results['build_s']:.0f} s", flush=True)

    batches = {size: dataset_batch(frames_root, recon.config, size, args.device) for size in args.batch_sizes}

    batch_1 = batches[1] if 1 in batches else batches[min(batches)]
    results["latency"]["eager"] = chunk_latency(args, recon, stock, batch_1, compiled=False)
    print(f"[{base}] eager latency done", flush=True)

    # Training, eager.
    for size, batch in batches.items():
        for name, policy, cache in (
            (base, stock, None),
            ("reconvla, VAE", recon, None),
            ("reconvla, latent cache", recon, str(cache_dir)),
        ):
            if policy is recon:
                recon.config.recon_latent_cache = (
                    cache  # the same weights, reading the cache or running the VAE
                )
            row = train_steps(args, policy, batch)
            results["train"].append(dict(batch_size=size, name=name, **row))
            peak = fmt_gib(row["peak_bytes"])
            print(f"[{base}] train b{size} {name}: {fmt_ms(row['median_s'])}, peak {peak}", flush=True)
    recon.config.recon_latent_cache = None

    if not args.no_compile:
        # Training moved the two apart: the stock twin takes ReconVLA's weights again, so the chunks can be
        # compared.
        recon_weights = {k: v for k, v in recon.state_dict().items() if "recon_head" not in k}
        stock.load_state_dict(recon_weights, strict=True)
        for policy in (recon, stock):
            policy.config = dataclasses.replace(policy.config, compile_mode=args.compile_mode)
            compile_like_pi0_(policy)
        results["latency"]["compiled"] = chunk_latency(args, recon, stock, batch_1, compiled=True)
        print(f"[{base}] compiled latency done", flush=True)
    return results


def render(args, results: dict, argv: list[str], wall: float) -> str:
    cmd = "python -m benchmarks.bench_gpu " + " ".join(argv)
    stocks = " and ".join(args.bases)
    built = ", ".join(f"{base} {results['bases'][base]['build_s']:.0f} s" for base in args.bases)
    out = [
        f"# ReconVLA against stock {stocks} on one GPU (full size)"
        if args.variant == "full"
        else f"# ReconVLA against stock {stocks} (bench_gpu.py, tiny size)",
        "",
        f"- command: `{cmd}`; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; "
        f"wall time {wall / 60:.1f} min; commit {git_describe()}",
        *machine(),
        f"- versions: {versions()}",
        f"- variant `{args.variant}`, dtype {args.dtype}, device {args.device}; "
        f"random weights built on the device (both policies: {built})",
        f"- inputs: 3 cameras of {tuple(args.image_shape)}, chunk {args.chunk_size}, "
        f"{args.num_steps} denoising steps; "
        f"latent cache built for the batch's frames in {results['cache_build_s']:.1f} s",
    ]
    for base in args.bases:
        out += render_base(args, base, results["bases"][base])
    return "\n".join(out) + "\n"


def render_base(args, base: str, results: dict) -> list[str]:
    # A report of pi0 alone keeps its original headings; any other names the base in each.
    named = args.bases != ["pi0"]
    out = [
        "",
        f"## Chunk latency, batch 1{f' ({base} base)' if named else ''}",
        "",
        f"| mode | stock {base} | ReconVLA | ratio | first call (both, incl. compile) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for mode, row in results["latency"].items():
        stats = row["stats"]
        label = mode if mode == "eager" else f"compiled ({args.compile_mode})"
        out.append(
            f"| {label} | {stats['stock'].fmt()} | {stats['reconvla'].fmt()} | "
            f"{ratio(stats['reconvla'], stats['stock']):.3f} | {row['first_call_s']:.1f} s |"
        )
    out += [
        "",
        f"## Training step ({f'{base} base; ' if named else ''}{args.dtype}, full fine-tune, "
        "gradient checkpointing; "
        f"median of {args.train_steps} steps)",
        "",
        "Peak: `max_memory_allocated` during the steps minus what was allocated before the optimizer "
        "was made (gradients, AdamW state, activations; the VAE's weights in the VAE row, where they "
        "are loaded).",
        "",
        f"| batch | policy | step | ratio to {base} | peak above the weights | own weights |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    stock_times = {row["batch_size"]: row["median_s"] for row in results["train"] if row["name"] == base}
    for row in results["train"]:
        out.append(
            f"| {row['batch_size']} | {row['name']} | {fmt_ms(row['median_s'])} | "
            f"{row['median_s'] / stock_times[row['batch_size']]:.3f} | {fmt_gib(row['peak_bytes'])} | "
            f"{row['weights_bytes'] / 2**30:.2f} GiB |"
        )
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=("tiny", "full"), default="full")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument(
        "--base",
        choices=("pi0", "pi05", "both"),
        default="pi0",
        help="reconvla against stock pi0, reconvla_pi05 against stock pi05, or both (one after the other)",
    )
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--compile-mode", default="default", help="torch.compile mode of both policies")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--min-run-time", type=float, default=1.0)
    p.add_argument(
        "--quick", action="store_true", help="smoke setting: short runs, narrow VAE, batch 1 and 2"
    )
    p.add_argument("--out", default=None, help="markdown report to write")
    args = p.parse_args(argv)
    args.bases = ["pi0", "pi05"] if args.base == "both" else [args.base]
    # What pi0_pair.make_config reads.
    args.dtype = "bfloat16" if args.device == "cuda" else "float32"
    args.recon_head_dtype, args.chunk_size, args.num_steps, args.image_shape = (
        "float32",
        50,
        10,
        [3, 224, 224],
    )
    args.threads = args.threads or torch.get_num_threads()
    if args.quick:
        args.batch_sizes, args.train_steps, args.rounds, args.min_run_time = [1, 2], 1, 1, 0.05
        args.chunk_size, args.num_steps = 10, 2
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    return args


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args, Path(tmp))
    report = render(args, results, argv, time.time() - start)
    if args.out:
        Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
