"""Peak memory of one training step, measured in a fresh subprocess per policy and batch size.

CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`. CPU: the process's peak
resident set (`ru_maxrss`), reset to the current RSS once the model is built (Linux's
`/proc/self/clear_refs`), minus the RSS (psutil) before the model was built: model + gradients +
AdamW state + activations + allocator slack.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import torch

from benchmarks.pi0_pair import (
    SD_VAE,
    SMALL_VAE,
    build_reconvla,
    compile_like_pi0_,
    import_base,
    make_batch,
    make_optimizer,
    save_vae,
    to_stock_,
    train_step_fn,
)

REPO = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "MEMORY_RESULT "


def reset_peak_rss() -> bool:
    """Sets the peak RSS to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def memory_worker(args) -> None:
    """Runs in the subprocess: builds one policy (`args.memory_worker`: the base's name for the stock twin),
    trains a few steps, prints the peak."""
    import diffusers  # noqa: F401  - imported before the baseline, so imports are not counted

    import_base(args.base)

    cuda = args.device == "cuda"
    kind = args.memory_worker
    with tempfile.TemporaryDirectory() as tmp:
        vae_arch = SD_VAE if args.vae_arch == "sd" else SMALL_VAE
        vae_path = save_vae(Path(tmp) / "vae", vae_arch) if kind == "reconvla-vae" else None
        baseline = 0 if cuda else psutil.Process().memory_info().rss
        policy = build_reconvla(args, "vae" if kind == "reconvla-vae" else "pixels", vae_path, base=args.base)
        if kind == args.base:
            to_stock_(policy)
        if args.compile_on:
            compile_like_pi0_(policy)
        policy.train()
        step = train_step_fn(
            policy, make_optimizer(policy), make_batch(policy.config, args.memory_batch_size, args.device)
        )
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            method = "torch.cuda.max_memory_allocated"
        elif reset_peak_rss():
            method = "peak RSS (reset after the model is built) - RSS before model build"
        else:
            method = "peak RSS since process start - RSS before model build"
        try:
            for _ in range(args.memory_steps):  # the first step allocates AdamW's state and compiles
                step()
            if cuda:
                torch.cuda.synchronize()
            peak = (torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()) - baseline
            result = {"peak_bytes": peak, "method": method}
        except torch.OutOfMemoryError:
            result = {"peak_bytes": None, "method": method, "note": "OOM"}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def measure_memory(args, base: str, kind: str, batch_size: int, compile_on: bool) -> dict:
    """{"peak_bytes", "method"[, "note"]} of `kind` (`base` for the stock twin, reconvla-pixels,
    reconvla-vae) from a fresh process."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_vs_pi0",
        "--memory-worker",
        kind,
        "--base",
        base,
        "--memory-batch-size",
        str(batch_size),
        "--variant",
        args.variant,
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--threads",
        str(args.threads),
        "--chunk-size",
        str(args.chunk_size),
        "--num-steps",
        str(args.num_steps),
        "--vae-arch",
        args.vae_arch,
        "--recon-head-dtype",
        args.recon_head_dtype,
        "--image-shape",
        *map(str, args.image_shape),
        "--memory-steps",
        str(args.memory_steps),
    ]
    if compile_on:
        cmd += ["--compile-on", "--compile-mode", args.compile_mode]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line.removeprefix(RESULT_PREFIX))
    return {
        "peak_bytes": None,
        "method": "",
        "note": f"worker failed (rc {proc.returncode}): {proc.stderr[-300:]}",
    }
