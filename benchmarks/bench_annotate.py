"""Throughput of reconvla-annotate's detector step (frames/s) at the default detector's real size.

    .venv/bin/python benchmarks/bench_annotate.py                      # CPU, 480x640 frames, batch 1
    .venv/bin/python benchmarks/bench_annotate.py --device cuda --dtype bfloat16 --batch-size 8

Builds Grounding DINO with transformers' default `GroundingDinoConfig` (Swin-T backbone, BERT-base text
encoder, 900 queries, 6 + 6 layers: the architecture of IDEA-Research/grounding-dino-tiny) and its
default image processor (shortest edge 800, longest 1333, as that model's preprocessor), with RANDOM
weights, saved to a temporary directory and loaded back through `ZeroShotDetector.load`, the annotator's
own code path. Latency does not depend on the weight values, so this measures the real model's cost
without downloading it. Timed: `ZeroShotDetector.detect` on a batch of frames (pre-processing, forward,
post-processing), after one warm-up call; reported per frame, median over the timed calls.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lerobot_policy_reconvla.annotate import ZeroShotDetector


def save_random_grounding_dino(path: Path) -> int:
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    # A small WordPiece vocabulary: token ids stay inside BERT-base's 30522-row table; the text is a few
    # tokens long either way, as with the real tokenizer.
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "red", "cube", "peg", "socket"]
    model = GroundingDinoForObjectDetection(GroundingDinoConfig())
    model.save_pretrained(path)
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(),
        tokenizer=BertTokenizer(vocab={w: i for i, w in enumerate(words)}),
    )
    processor.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument(
        "--image-size", type=int, nargs=2, default=[480, 640], help="H W of the frames (real ALOHA: 480 640)"
    )
    p.add_argument("--calls", type=int, default=3, help="timed detector calls")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as directory:
        parameters = save_random_grounding_dino(Path(directory))
        dtype = getattr(torch, args.dtype)
        detector = ZeroShotDetector.load(directory, args.device, dtype, box_threshold=0.35)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (*args.image_size, 3), dtype=np.uint8) for _ in range(args.batch_size)]
    phrases = ["red cube"] * args.batch_size

    detector.detect(frames, phrases)  # warm-up
    seconds, cpu_seconds = [], []
    for _ in range(args.calls):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        detector.detect(frames, phrases)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append((time.perf_counter() - start) / args.batch_size)
        cpu_seconds.append((time.process_time() - cpu_start) / args.batch_size)
    per_frame = statistics.median(seconds)
    print(
        f"Grounding DINO (grounding-dino-tiny architecture, {parameters / 1e6:.0f} M parameters, "
        "random weights), "
        f"{args.image_size[0]}x{args.image_size[1]} frames, batch {args.batch_size}, "
        f"{args.device} {args.dtype}, "
        f"{torch.get_num_threads()} threads: {per_frame:.2f} s/frame = {1 / per_frame:.2f} frames/s "
        f"(median of {args.calls} calls; per call: {', '.join(f'{s:.2f}' for s in seconds)} s/frame)"
    )
    # Wall time depends on what else the machine runs; CPU time (all threads) much less so.
    print(
        f"CPU time: {statistics.median(cpu_seconds):.1f} CPU-s/frame (all threads); "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
    )


if __name__ == "__main__":
    main()
