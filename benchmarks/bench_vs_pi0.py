"""ReconVLA against LeRobot's stock pi0 (and pi05), side by side in one process: inference latency, training
step time, peak memory, and where the time of the reconstruction branch goes. Writes a markdown report.

    .venv/bin/python -m benchmarks.bench_vs_pi0 --variant tiny --out docs/benchmarks.md
    # reconvla_pi05 against stock pi05 (--base both: one table per base in one report):
    .venv/bin/python -m benchmarks.bench_vs_pi0 --variant tiny --base pi05 --out /tmp/bench_pi05.md
    # on a GPU machine (full size, bf16, compile off and on):
    python -m benchmarks.bench_vs_pi0 --variant full --device cuda --batch-sizes 1 8 32 \
        --compile both --dtype bfloat16 --out docs/benchmarks.md

The parts: `pi0_pair.py` builds the two policies of a base on identical weights (and says how the stock
side is obtained), `timing.py` times them alternately, `memory.py` measures peak memory in fresh processes,
`report.py` writes the markdown. This file runs the measurements for each base, compile setting and batch
size.

What is timed (warm-up calls excluded; median and IQR over all blocks):
- `predict_action_chunk(batch)`: one chunk, 10 Euler steps with KV cache.
- `select_action(batch)` right after `reset()` (queue empty: computes a chunk) and on a full queue
  (pops one action; the cost of 49 of every 50 control steps).
- one optimizer step: `zero_grad`, `policy.forward(batch)` (ReconVLA: action + recon loss over all
  cameras), `loss.backward()`, `AdamW.step()` over `policy.get_optim_params()`.
- the recon branch by parts: target encoding (`ReconTarget.__call__`, pixels and VAE; the VAEs are
  random-init `diffusers.AutoencoderKL`s saved to a temp dir: weights do not change the time), the
  head's forward and forward+backward (`ReconHead`: DDPM noising + ReconDiT), and the cost of the
  hidden-state capture hook (the stock core's training forward+backward with and without the hook).

Benchmarks are not tests: nothing here fails on time. Only the equivalence check can fail.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from benchmarks.memory import measure_memory, memory_worker  # noqa: E402
from benchmarks.pi0_pair import (  # noqa: E402
    ACTION_DIM,
    CAMERAS,
    SD_VAE,
    SMALL_VAE,
    assert_same_chunks,
    build_reconvla,
    compile_like_pi0_,
    make_batch,
    make_optimizer,
    make_stock_twin,
    save_vae,
    train_step_fn,
)
from benchmarks.report import TARGETS, Results, Row, fmt_bytes, render, verdict_ratio  # noqa: E402
from benchmarks.timing import Stat, interleaved, oom_guard, ratio  # noqa: E402

KEPT_FROM = "## Analysis"


def timed(fns: dict, label: str, args, rounds: int | None = None) -> dict[str, Stat]:
    """`interleaved` with the command line's rounds, threads and minimum run time."""
    return interleaved(
        fns, label, rounds=rounds or args.rounds, threads=args.threads, min_run_time=args.min_run_time
    )


def run_size(args, res: Results, base: str, batch_size: int, compile_on: bool, vae_paths: dict) -> None:
    """Every measurement of one base at one batch size and compile setting; `base` names the stock policy."""
    tag = "on" if compile_on else "off"
    full_gpu = args.variant == "full" and args.device == "cuda"
    where = f"{base} base, " if res.names_bases else ""
    t0 = time.time()
    recon_px = build_reconvla(args, "pixels", None, base=base)
    stock = make_stock_twin(recon_px)
    policies = {base: stock, "reconvla-pixels": recon_px}
    if "vae" in args.recon_targets:
        recon_vae = build_reconvla(args, "vae", vae_paths[args.vae_arch], base=base)
        missing, unexpected = recon_vae.load_state_dict(
            {k: v for k, v in recon_px.state_dict().items() if "recon_head" not in k}, strict=False
        )
        assert not unexpected and all("recon_head" in k for k in missing)
        policies["reconvla-vae"] = recon_vae
    if "pixels" not in args.recon_targets:
        policies.pop("reconvla-pixels")
    if compile_on:
        for p in policies.values():
            compile_like_pi0_(p)
    recons = [n for n in policies if n != base]
    batch = make_batch(recon_px.config, batch_size, args.device)
    res.prompt_lengths[base] = recon_px.config.tokenizer_max_length
    print(f"[{base} b={batch_size} compile={tag}] built in {time.time() - t0:.1f}s", flush=True)

    res.notes.append(
        f"{where}batch {batch_size}, compile {tag}: modules walked by `eval()`/`train()`: {base} "
        f"{sum(1 for _ in stock.modules())}, "
        + ", ".join(f"{n} {sum(1 for _ in policies[n].modules())}" for n in recons)
    )
    when = f"{base} " if res.names_bases else ""
    res.load.append((f"{when}b{batch_size}/{tag} start", os.getloadavg()[0]))

    # ---- equivalence (before any timing) ----
    for name in recons:
        diff = assert_same_chunks(policies[name], stock, batch, compile_on)
        res.notes.append(
            f"{where}batch {batch_size}, compile {tag}: {name} and {base} action chunks identical "
            f"(max |diff| {diff:.1e}, same noise)"
        )
    recon = policies.get("reconvla-pixels") or policies["reconvla-vae"]

    def row(what, stock_figure, recon_figure, r, target="", verdict=""):
        return Row(batch_size, tag, what, stock_figure, recon_figure, r, target, verdict, base=base)

    # ---- inference ----
    def chunk_fn(p):
        return lambda: p.predict_action_chunk(batch)

    def refill_fn(p):
        def fn():
            p.reset()
            p.select_action(batch)

        return fn

    def pop_fn(p):
        # Puts one ready action back in the queue, then select_action pops it: the base's cost of 49 of every
        # 50 control steps (an append of ~0.1 µs included).
        action = torch.zeros(batch_size, ACTION_DIM, device=args.device)

        def fn():
            p._action_queue.append(action)
            p.select_action(batch)

        return fn

    for what, make in (
        ("predict_action_chunk", chunk_fn),
        ("select_action, empty queue (computes a chunk)", refill_fn),
    ):
        stats = oom_guard(timed, {"stock": make(stock), "reconvla": make(recon)}, what, args)
        if isinstance(stats, Exception):
            res.rows.append(row(what, "OOM", "OOM", None))
            continue
        r = ratio(stats["reconvla"], stats["stock"])
        res.rows.append(
            row(
                what,
                stats["stock"],
                stats["reconvla"],
                r,
                f"<= {TARGETS['inference_ratio']}",
                verdict_ratio(r, TARGETS["inference_ratio"]),
            )
        )
        if what == "predict_action_chunk" and args.device == "cuda":
            res.chunk_latency.append((base, batch_size, tag, stats["reconvla"], stats["stock"]))
    # Queue hits are microseconds: time them as many times as blocked_autorange likes.
    for p in (stock, recon):
        p.reset()
    stats = timed({"stock": pop_fn(stock), "reconvla": pop_fn(recon)}, "select_action, queue hit", args)
    res.rows.append(
        row(
            "select_action, queue hit (pops one action)*",
            stats["stock"],
            stats["reconvla"],
            ratio(stats["reconvla"], stats["stock"]),
            "",
            "informative",
        )
    )

    # ---- training step ----
    steps = {}
    for name, p in policies.items():
        p.train()
        steps[name] = train_step_fn(p, make_optimizer(p), batch)
    train_stats = oom_guard(timed, steps, "train step", args)
    for name in recons:
        label = (
            f"train step ({name.split('-')[1]} target"
            f"{', ' + args.vae_arch + '-VAE' if 'vae' in name else ''})"
        )
        if isinstance(train_stats, Exception):
            res.rows.append(row(label, "OOM", "OOM", None))
            continue
        r = ratio(train_stats[name], train_stats[base])
        res.rows.append(
            row(
                label,
                train_stats[base],
                train_stats[name],
                r,
                f"<= {TARGETS['train_time_ratio']} (full, GPU, bf16)",
                verdict_ratio(r, TARGETS["train_time_ratio"]) if full_gpu else "not measured on a GPU yet",
            )
        )

    # ---- where the recon time goes ----
    if not args.no_breakdown and not isinstance(train_stats, Exception):
        breakdown(args, res, base, batch_size, tag, policies, batch, train_stats, vae_paths)

    del policies, stock, recon, recon_px, steps
    if args.device == "cuda":
        torch.cuda.empty_cache()

    res.load.append((f"{when}b{batch_size}/{tag} end", os.getloadavg()[0]))

    # ---- peak memory (fresh subprocess per policy) ----
    if not args.no_memory:
        mem = {
            kind: measure_memory(args, base, kind, batch_size, compile_on)
            for kind in [base] + [f"reconvla-{t}" for t in args.recon_targets]
        }
        res.memory_method = next((m["method"] for m in mem.values() if m.get("method")), "")
        for kind in [k for k in mem if k != base]:
            a, b = mem[base].get("peak_bytes"), mem[kind].get("peak_bytes")
            r = b / a if a and b else None
            label = (
                f"peak memory, train step ({kind.split('-')[1]} target"
                f"{', ' + args.vae_arch + '-VAE' if 'vae' in kind else ''})"
            )
            res.rows.append(
                row(
                    label,
                    fmt_bytes(a, mem[base]),
                    fmt_bytes(b, mem[kind]),
                    r,
                    f"<= {TARGETS['train_memory_ratio']} (full, GPU, bf16)",
                    verdict_ratio(r, TARGETS["train_memory_ratio"])
                    if full_gpu
                    else "not measured on a GPU yet",
                )
            )


def breakdown(
    args,
    res: Results,
    base: str,
    batch_size: int,
    tag: str,
    policies: dict,
    batch: dict,
    train_stats,
    vae_paths,
):
    from lerobot_policy_reconvla.gaze_box import batch_gaze_boxes, whole_image_if_absent
    from lerobot_policy_reconvla.recon.target import ReconTarget, load_frozen_vae
    from lerobot_policy_reconvla.recon_branch import capture_prefix_hidden_states

    stock = policies[base]
    recons = [n for n in policies if n != base]
    config = stock.config
    images = [batch[f"observation.images.{cam}"] for cam in CAMERAS]
    boxes = list(whole_image_if_absent(batch_gaze_boxes(batch, list(CAMERAS), set())).unbind(1))  # K x (B, 4)
    grid = config.recon_token_grid
    n_targets = batch_size * len(CAMERAS)

    pixel_size = 32 if args.variant == "tiny" else 128
    pixel_target = ReconTarget("pixels", pixel_size, grid)
    fns = {}
    fns[f"target: pixels (crop+resize, {pixel_size} px)"] = lambda: pixel_target(images, boxes)
    for arch, path in vae_paths.items():
        vae = load_frozen_vae(path, 4, 8).to(args.device)
        if args.dtype == "bfloat16" and args.device == "cuda":
            vae = vae.to(torch.bfloat16)
        target = ReconTarget("vae", 128, grid, vae_loader=lambda v=vae: v)
        fns[f"target: {arch}-VAE encode (crop+resize, 128 px -> 4x16x16)"] = lambda t=target: t(images, boxes)

    # Head forward / forward+backward on the real condition shape, with gradient into the condition.
    for name in recons:
        head = policies[name].model.recon_head
        dtype = next(policies[name].model.paligemma_with_expert.paligemma.parameters()).dtype
        width = policies[name].model.paligemma_with_expert.paligemma.config.text_config.hidden_size
        cond = torch.randn(n_targets, grid * grid, width, device=args.device, dtype=dtype, requires_grad=True)
        tgt = torch.randn(n_targets, grid * grid, head.target.token_channels, device=args.device)
        label = name.split("-")[1]

        def head_fwd(h=head, c=cond, t=tgt):
            with torch.no_grad():
                h(c, t, len(CAMERAS))

        def head_fwd_train(h=head, c=cond, t=tgt):
            h(c, t, len(CAMERAS))

        def head_fwd_bwd(h=head, c=cond, t=tgt):
            h.zero_grad(set_to_none=True)
            c.grad = None
            h(c, t, len(CAMERAS)).mean().backward()

        dit = head.dit.config
        shape = (
            f"DiT {dit.width}x{dit.depth}, {n_targets * head.timestep_repeats} seqs x {grid * grid} tokens"
        )
        fns[f"head ({label}): forward, no grad [{shape}]"] = head_fwd
        fns[f"head ({label}): forward, with grad"] = head_fwd_train
        fns[f"head ({label}): forward + backward"] = head_fwd_bwd

    # Capture hook: the stock core's training forward + backward of the action loss, with and without the
    # hook. Its inputs are what the ReconVLA policy hands the same core (pi0's include the state, pi05's not).
    model = stock.model
    images_pp, masks_pp = stock._preprocess_images(batch)
    lang, lang_mask = batch["observation.language.tokens"], batch["observation.language.attention_mask"]
    actions = stock.prepare_action(batch)
    core_inputs = policies[recons[0]]._base_model_inputs(batch, images_pp, masks_pp, lang, lang_mask, actions)
    noise = torch.randn_like(actions)
    t = torch.full((batch_size,), 0.5, device=args.device)
    language_model = model.paligemma_with_expert.paligemma.model.language_model

    def core_fwd_bwd(hook: bool):
        def fn():
            model.zero_grad(set_to_none=True)
            ctx = (
                capture_prefix_hidden_states(language_model, config.recon_layer)
                if hook
                else contextlib.nullcontext()
            )
            with ctx:
                loss = model.forward(*core_inputs, noise, t).mean()
            loss.backward()

        return fn

    model.train()
    parts_rounds = max(2, args.rounds // 2) if not args.quick else 1
    no_hook, with_hook = f"{base} core fwd+bwd, no hook", f"{base} core fwd+bwd, with capture hook"
    hook_stats = timed(
        {no_hook: core_fwd_bwd(False), with_hook: core_fwd_bwd(True)}, "hook", args, rounds=parts_rounds
    )
    stats = timed(fns, "recon parts", args, rounds=parts_rounds)
    stats.update(hook_stats)
    hook_cost = hook_stats[with_hook].median - hook_stats[no_hook].median
    for name in recons:
        extra = train_stats[name].median - train_stats[base].median
        stats[f"ReconVLA ({name.split('-')[1]}) train step - {base} train step (whole recon overhead)"] = (
            Stat(extra, None)
        )
    stats["capture hook overhead (difference of the two rows above)"] = Stat(hook_cost, None)
    ref = train_stats.get("reconvla-vae", train_stats.get("reconvla-pixels"))
    for name, s in stats.items():
        share = s.median / ref.median if s.median is not None else None
        res.breakdown.append((base, batch_size, tag, name, s, share))


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--variant", choices=("tiny", "full"), default="tiny")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default=None,
        help="policy dtype; default float32 on CPU, bfloat16 on CUDA",
    )
    p.add_argument(
        "--batch-sizes", type=int, nargs="+", default=None, help="default: 1 2 (tiny), 1 8 32 (full)"
    )
    p.add_argument("--compile", choices=("off", "on", "both"), default="off")
    p.add_argument(
        "--base",
        choices=("pi0", "pi05", "both"),
        default="pi0",
        help="reconvla against stock pi0, reconvla_pi05 against stock pi05, or both (one table per base)",
    )
    p.add_argument(
        "--compile-mode",
        default="max-autotune",
        help=(
            "torch.compile mode of both policies "
            "(pi0's default: max-autotune, which autotunes for minutes on a CPU)"
        ),
    )
    p.add_argument("--recon-targets", nargs="+", choices=("pixels", "vae"), default=["pixels", "vae"])
    p.add_argument(
        "--recon-head-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="precision the reconstruction head computes in (the config's recon_head_dtype)",
    )
    p.add_argument(
        "--vae-arch", choices=("sd", "small"), default="sd", help="VAE of the training-step comparison"
    )
    p.add_argument("--image-shape", type=int, nargs=3, default=[3, 224, 224], metavar=("C", "H", "W"))
    p.add_argument("--chunk-size", type=int, default=50)
    p.add_argument("--num-steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds per comparison")
    p.add_argument(
        "--min-run-time", type=float, default=2.0, help="blocked_autorange min_run_time per round, s"
    )
    p.add_argument("--memory-steps", type=int, default=3)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-breakdown", action="store_true")
    p.add_argument(
        "--quick", action="store_true", help="smoke setting: batch 1, 1 round, short runs, small VAE"
    )
    p.add_argument("--extra-notes", default=None, help="markdown file appended to the report (analysis)")
    p.add_argument("--out", default=None, help="markdown report to write (e.g. docs/benchmarks.md)")
    # internal: memory subprocess
    p.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--memory-batch-size", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--compile-on", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.bases = ["pi0", "pi05"] if args.base == "both" else [args.base]
    if args.memory_worker and args.base == "both":
        p.error("--memory-worker measures one base")
    if args.dtype is None:
        args.dtype = "bfloat16" if args.device == "cuda" else "float32"
    if args.batch_sizes is None:
        args.batch_sizes = [1, 2] if args.variant == "tiny" else [1, 8, 32]
    if args.quick:
        args.batch_sizes, args.rounds, args.min_run_time, args.memory_steps = [1], 1, 0.05, 1
        args.chunk_size, args.num_steps, args.vae_arch = 10, 2, "small"
        args.image_shape = [3, 64, 64]
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    return args


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_worker:
        memory_worker(args)
        return
    # Every policy of a run shares the code objects torch.compile guards on (each base's stock and ReconVLA
    # twins, two targets, each batch size, calls with and without noise=): above dynamo's default of 8
    # entries per code object it would fall back to eager for the rest of the run.
    torch._dynamo.config.recompile_limit = 64
    start = time.time()
    res = Results(bases=args.bases)
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    with tempfile.TemporaryDirectory() as tmp:
        vae_paths = {"small": save_vae(Path(tmp) / "small", SMALL_VAE)}
        if not args.quick:
            vae_paths["sd"] = save_vae(Path(tmp) / "sd", SD_VAE)
        for base in args.bases:
            for compile_on in compiles:
                for batch_size in args.batch_sizes:
                    run_size(args, res, base, batch_size, compile_on, vae_paths)
    report = render(args, res, argv, time.time() - start)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Sections written by hand or by other scripts (from "## Analysis" on) outlive a regeneration.
        kept = out.read_text().partition(KEPT_FROM)[1:] if out.exists() else ("", "")
        out.write_text(report + ("\n" + "".join(kept) if kept[0] else ""))
    print(report)


if __name__ == "__main__":
    main()
