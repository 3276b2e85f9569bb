"""ReconVLA against LeRobot's stock pi0, side by side in one process: inference latency, training step
time, peak memory, and where the time of the reconstruction branch goes (issue 6).

    .venv/bin/python benchmarks/bench_vs_pi0.py --variant tiny --out docs/benchmarks.md
    # on a GPU machine (full size, bf16, compile off and on):
    python benchmarks/bench_vs_pi0.py --variant full --device cuda --batch-sizes 1 8 32 \
        --compile both --dtype bfloat16 --out docs/benchmarks.md

How "LeRobot's PI0Policy holding identical weights" is obtained
----------------------------------------------------------------
LeRobot 0.6.1's `PI0Config` rejects the `tiny` variant and `PI0Pytorch.__init__` hard-codes the SigLIP
so400m tower, so a stock `PI0Policy` cannot be *constructed* at tiny size. The benchmark therefore
builds one `ReconVLAPolicy`, deep-copies it, deletes `model.recon_head` from the copy and sets the
copy's classes to LeRobot's own `PI0Policy`, `PI0Pytorch` and `PaliGemmaWithExpertModel`
(`ReconVLAPaliGemmaWithExpert` only overrides `__init__`). Every method the copy runs is then
LeRobot's unmodified pi0 code (checked: none of the three classes is a ReconVLA class any more, and no
instance attribute shadows `forward` / `sample_actions`), on bit-identical weights. Before any timing
the script asserts that both policies return identical action chunks for the same noise.
`compile_model` is applied *after* the copy, to both, exactly as `PI0Pytorch.__init__` does it
(`torch.compile` of the bound `sample_actions` and `forward`): compiling before the copy would leave
the copy's compiled methods bound to the original ReconVLA model.

What is timed (torch.utils.benchmark.Timer.blocked_autorange; warm-up calls excluded; the policies
alternate round by round in one process, and the rounds are merged with Measurement.merge; median and
IQR over all blocks):
- `predict_action_chunk(batch)`: one chunk, 10 Euler steps with KV cache.
- `select_action(batch)` right after `reset()` (queue empty: computes a chunk) and on a full queue
  (pops one action; the cost of 49 of every 50 control steps).
- one optimizer step: `zero_grad`, `policy.forward(batch)` (ReconVLA: action + recon loss over all
  cameras), `loss.backward()`, `AdamW.step()` over `policy.get_optim_params()`.
- peak memory of that step, one fresh subprocess per policy and size: on CUDA
  `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`; on CPU the resident-set
  high-water mark (`VmHWM` in /proc/self/status, reset through /proc/self/clear_refs once the model
  is built; `ru_maxrss` if that reset is not allowed) minus the RSS before the model was built.
- the recon branch by parts: target encoding (`ReconTarget.__call__`, pixels and VAE; the VAEs are
  random-init `diffusers.AutoencoderKL`s saved to a temp dir: weights do not change the time), the
  head's forward and forward+backward (`ReconHead`: DDPM noising + ReconDiT), and the cost of the
  hidden-state capture hook (pi0's training forward+backward with and without the hook).

Benchmarks are not tests: nothing here fails on time. Only the equivalence check can fail.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils import benchmark  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CAMERAS = ("top", "left_wrist", "right_wrist")
STATE_DIM = ACTION_DIM = 14  # ALOHA
PROMPT_TOKENS = 12  # real tokens of the prompt; the rest of tokenizer_max_length is padding
GAZE_BOX = (0.2, 0.25, 0.6, 0.75)
# Diffusers' (and Stable Diffusion's) default AutoencoderKL layout: the VAE ReconVLA uses
# (stabilityai/sd-vae-ft-ema has exactly this architecture).
SD_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
)
# The small VAE of tests/test_recon.py (same 8x downsampling, 4 latent channels).
SMALL_VAE = dict(
    block_out_channels=(8, 8, 8, 8),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=4,
)
TARGETS = {"inference_ratio": 1.02, "train_time_ratio": 1.15, "train_memory_ratio": 1.10, "h100_chunk_ms": 50.0}


# --------------------------------------------------------------------------------------------------
# Building the policies and the batch


def save_vae(directory: Path, arch: dict) -> str:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(**arch).save_pretrained(directory)
    return str(directory)


def make_config(args, recon_target: str, vae_path: str | None):
    from lerobot.configs import FeatureType, PolicyFeature

    from lerobot_policy_reconvla.configuration_reconvla import ReconVLAConfig

    features = {
        f"observation.images.{cam}": PolicyFeature(FeatureType.VISUAL, tuple(args.image_shape)) for cam in CAMERAS
    }
    features["observation.state"] = PolicyFeature(FeatureType.STATE, (STATE_DIM,))
    kwargs = dict(
        device=args.device,
        dtype=args.dtype,
        chunk_size=args.chunk_size,
        n_action_steps=args.chunk_size,
        num_inference_steps=args.num_steps,
        input_features=features,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))},
        recon_target=recon_target,
        compile_model=False,  # applied after the pi0 copy is made (see module docstring)
        push_to_hub=False,
    )
    if args.variant == "tiny":
        # configs/policy/reconvla_tiny.json's head, pi0's chunk and step count.
        kwargs.update(paligemma_variant="tiny", action_expert_variant="tiny", recon_dit_width=64,
                      recon_dit_depth=2, recon_dit_heads=4)  # fmt: skip
    else:
        kwargs.update(paligemma_variant="gemma_2b", action_expert_variant="gemma_300m")  # DiT 1024 x 3, 16 heads
    if recon_target == "pixels":
        kwargs.update(recon_image_size=32 if args.variant == "tiny" else 128)
    else:
        kwargs.update(recon_vae=vae_path, recon_image_size=128, recon_vae_latent_channels=4, recon_vae_downsample=8)
    return ReconVLAConfig(**kwargs)


def build_reconvla(args, recon_target: str, vae_path: str | None, seed: int = 0):
    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy

    torch.manual_seed(seed)
    return ReconVLAPolicy(make_config(args, recon_target, vae_path))


def to_stock_pi0_(policy):
    """Turns a ReconVLAPolicy into an object that runs only LeRobot's pi0 code (in place)."""
    from lerobot.policies.pi0.modeling_pi0 import PaliGemmaWithExpertModel, PI0Policy, PI0Pytorch

    del policy.model.recon_head
    policy.model.paligemma_with_expert.__class__ = PaliGemmaWithExpertModel
    policy.model.__class__ = PI0Pytorch
    policy.__class__ = PI0Policy
    for obj in (policy, policy.model, policy.model.paligemma_with_expert):
        assert type(obj).__module__.startswith("lerobot.policies.pi0"), type(obj)
        shadowing = {"forward", "sample_actions", "predict_action_chunk", "select_action"} & set(vars(obj))
        assert not shadowing, f"instance attributes {shadowing} would shadow pi0's methods"
    assert not any("recon_head" in name for name, _ in policy.named_parameters())
    return policy


def make_pi0_twin(recon_policy):
    return to_stock_pi0_(copy.deepcopy(recon_policy))


def compile_like_pi0_(policy) -> None:
    """What PI0Pytorch.__init__ does when config.compile_model is set, applied to a built policy."""
    model, config = policy.model, policy.config
    config.compile_model = True
    torch.set_float32_matmul_precision("high")
    model.sample_actions = torch.compile(model.sample_actions, mode=config.compile_mode)
    model.forward = torch.compile(model.forward, mode=config.compile_mode)


def make_batch(config, batch_size: int, device: str, seed: int = 0) -> dict:
    """A batch as pi0's preprocessor hands it to the policy (tokens made directly: no tokenizer needed)."""
    from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

    g = torch.Generator().manual_seed(seed)
    c, h, w = config.image_features[next(iter(config.image_features))].shape
    batch = {f"observation.images.{cam}": torch.rand(batch_size, c, h, w, generator=g) for cam in CAMERAS}
    batch["observation.state"] = torch.randn(batch_size, STATE_DIM, generator=g)
    batch["action"] = torch.randn(batch_size, config.chunk_size, ACTION_DIM, generator=g)
    batch["action_is_pad"] = torch.zeros(batch_size, config.chunk_size, dtype=torch.bool)
    length = config.tokenizer_max_length
    vocab = 512 if config.paligemma_variant == "tiny" else 257152
    batch[OBS_LANGUAGE_TOKENS] = torch.randint(2, vocab, (batch_size, length), generator=g)
    mask = torch.zeros(batch_size, length, dtype=torch.bool)
    mask[:, :PROMPT_TOKENS] = True
    batch[OBS_LANGUAGE_ATTENTION_MASK] = mask
    for cam in CAMERAS:
        batch[f"observation.gaze_box.{cam}"] = torch.tensor([GAZE_BOX] * batch_size)
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def make_optimizer(policy):
    c = policy.config
    return torch.optim.AdamW(policy.get_optim_params(), lr=c.optimizer_lr, betas=c.optimizer_betas,
                             eps=c.optimizer_eps, weight_decay=c.optimizer_weight_decay)  # fmt: skip


def train_step_fn(policy, optimizer, batch):
    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = policy.forward(batch)
        loss.backward()
        optimizer.step()

    return step


def autocast(device: str, dtype: str):
    # pi0 itself keeps selected params in bf16 (to_bfloat16_for_selected_params); no autocast is used by
    # LeRobot's training loop unless --policy.use_amp, so neither here.
    return contextlib.nullcontext()


# --------------------------------------------------------------------------------------------------
# Timing


@dataclass
class Stat:
    median: float | None  # seconds
    iqr: float | None
    runs: int = 0
    note: str = ""

    @classmethod
    def of(cls, m: benchmark.Measurement) -> Stat:
        return cls(m.median, m.iqr, len(m.times))

    def fmt(self) -> str:
        if self.median is None:
            return self.note or "n/a"
        return f"{fmt_time(self.median)} ± {fmt_time(self.iqr / 2)}"


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def interleaved(fns: dict[str, callable], label: str, args, warmup: int = 1, rounds: int | None = None) -> dict[str, Stat]:
    """Times every callable with blocked_autorange, alternating them round by round; merges the rounds."""
    for fn in fns.values():  # warm-up, excluded from every figure
        for _ in range(warmup):
            fn()
    per_name: dict[str, list[benchmark.Measurement]] = {name: [] for name in fns}
    names = list(fns)
    for round_index in range(rounds or args.rounds):
        order = names if round_index % 2 == 0 else names[::-1]  # ABBA: drift hits both alike
        for name in order:
            timer = benchmark.Timer(
                stmt="fn()", globals={"fn": fns[name]}, label=label, description=name, num_threads=args.threads
            )
            per_name[name].append(timer.blocked_autorange(min_run_time=args.min_run_time))
    out = {}
    for name, ms in per_name.items():
        (merged,) = benchmark.Measurement.merge(ms)
        out[name] = Stat.of(merged)
    return out


def oom_guard(fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except torch.OutOfMemoryError as error:
        torch.cuda.empty_cache()
        return error


# --------------------------------------------------------------------------------------------------
# Memory (one fresh subprocess per configuration)


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def memory_worker(args) -> None:
    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    import diffusers  # noqa: F401  - imports before the baseline, so they are not counted
    import lerobot.policies.pi0.modeling_pi0  # noqa: F401

    import lerobot_policy_reconvla.modeling_reconvla  # noqa: F401

    kind = args.memory_worker
    with tempfile.TemporaryDirectory() as tmp:
        vae_path = save_vae(Path(tmp) / "vae", SD_VAE if args.vae_arch == "sd" else SMALL_VAE) if kind == "reconvla-vae" else None
        base_rss = _rss_bytes()
        policy = build_reconvla(args, "vae" if kind == "reconvla-vae" else "pixels", vae_path)
        if kind == "pi0":
            to_stock_pi0_(policy)
        if args.compile_on:
            compile_like_pi0_(policy)
        policy.train()
        optimizer = make_optimizer(policy)
        batch = make_batch(policy.config, args.memory_batch_size, args.device)
        step = train_step_fn(policy, optimizer, batch)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = 0
            method = "torch.cuda.max_memory_allocated"
        else:
            method = "VmHWM - RSS before model build" if _reset_hwm() else "ru_maxrss - RSS before model build"
            base = base_rss
        try:
            for _ in range(args.memory_steps):  # the first step allocates AdamW's state and compiles
                step()
            if cuda:
                torch.cuda.synchronize()
            peak = (torch.cuda.max_memory_allocated() if cuda else _hwm_bytes()) - base
            result = {"peak_bytes": peak, "method": method}
        except torch.OutOfMemoryError:
            result = {"peak_bytes": None, "method": method, "note": "OOM"}
    print("MEMORY_RESULT " + json.dumps(result), flush=True)


def measure_memory(args, kind: str, batch_size: int, compile_on: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", kind,
           "--memory-batch-size", str(batch_size), "--variant", args.variant, "--device", args.device,
           "--dtype", args.dtype, "--threads", str(args.threads), "--chunk-size", str(args.chunk_size),
           "--num-steps", str(args.num_steps), "--vae-arch", args.vae_arch,
           "--image-shape", *map(str, args.image_shape), "--memory-steps", str(args.memory_steps)]  # fmt: skip
    if compile_on:
        cmd.append("--compile-on")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY_RESULT "):
            return json.loads(line.removeprefix("MEMORY_RESULT "))
    return {"peak_bytes": None, "method": "", "note": f"worker failed (rc {proc.returncode}): {proc.stderr[-300:]}"}


# --------------------------------------------------------------------------------------------------
# The measurements


@dataclass
class Row:
    batch_size: int
    compile: str
    what: str
    pi0: Stat | str
    recon: Stat | str
    ratio: float | None
    target: str = ""
    verdict: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    breakdown: list[tuple] = field(default_factory=list)  # (batch, compile, component, Stat, share)
    notes: list[str] = field(default_factory=list)
    memory_method: str = ""
    load: list[tuple] = field(default_factory=list)  # (when, 1-min load average)
    chunk_latency: list[tuple] = field(default_factory=list)  # (batch, compile, ReconVLA Stat, pi0 Stat)


def assert_same_chunks(recon, pi0, batch, compiled: bool) -> float:
    generator_seed = 1234
    torch.manual_seed(generator_seed)
    a = recon.predict_action_chunk(batch)
    torch.manual_seed(generator_seed)
    b = pi0.predict_action_chunk(batch)
    noise = torch.randn(a.shape[0], recon.config.chunk_size, recon.config.max_action_dim, device=a.device)
    c = recon.predict_action_chunk(batch, noise=noise)
    d = pi0.predict_action_chunk(batch, noise=noise)
    if compiled:
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(c, d)
    else:
        assert torch.equal(a, b) and torch.equal(c, d), "ReconVLA and its pi0 twin differ: the comparison is void"
    return (c - d).abs().max().item()


def ratio(recon: Stat, pi0: Stat) -> float | None:
    if isinstance(recon, Stat) and isinstance(pi0, Stat) and recon.median and pi0.median:
        return recon.median / pi0.median
    return None


def run_size(args, res: Results, batch_size: int, compile_on: bool, vae_paths: dict) -> None:
    tag = "on" if compile_on else "off"
    full_gpu = args.variant == "full" and args.device == "cuda"
    t0 = time.time()
    recon_px = build_reconvla(args, "pixels", None)
    pi0 = make_pi0_twin(recon_px)
    policies = {"pi0": pi0, "reconvla-pixels": recon_px}
    if "vae" in args.recon_targets:
        recon_vae = build_reconvla(args, "vae", vae_paths[args.vae_arch])
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
    batch = make_batch(recon_px.config, batch_size, args.device)
    print(f"[b={batch_size} compile={tag}] built in {time.time() - t0:.1f}s", flush=True)

    res.notes.append(f"batch {batch_size}, compile {tag}: modules walked by `eval()`/`train()`: pi0 "
                     f"{sum(1 for _ in pi0.modules())}, " + ", ".join(f"{n} {sum(1 for _ in p.modules())}" for n, p in policies.items() if n != "pi0"))
    res.load.append((f"b{batch_size}/{tag} start", os.getloadavg()[0]))

    # ---- equivalence (before any timing) ----
    for name in [n for n in policies if n != "pi0"]:
        diff = assert_same_chunks(policies[name], pi0, batch, compile_on)
        res.notes.append(f"batch {batch_size}, compile {tag}: {name} and pi0 action chunks identical "
                         f"(max |diff| {diff:.1e}, same noise)")  # fmt: skip
    recon = policies.get("reconvla-pixels") or policies["reconvla-vae"]

    # ---- inference ----
    def chunk_fn(p):
        return lambda: p.predict_action_chunk(batch)

    def refill_fn(p):
        def fn():
            p.reset()
            p.select_action(batch)

        return fn

    def pop_fn(p):
        # Puts one ready action back in the queue, then select_action pops it: pi0's cost of 49 of every 50
        # control steps (an append of ~0.1 µs included).
        action = torch.zeros(batch_size, ACTION_DIM, device=args.device)

        def fn():
            p._action_queue.append(action)
            p.select_action(batch)

        return fn

    for what, make in (("predict_action_chunk", chunk_fn), ("select_action, empty queue (computes a chunk)", refill_fn)):
        stats = oom_guard(interleaved, {"pi0": make(pi0), "reconvla": make(recon)}, what, args)
        if isinstance(stats, Exception):
            res.rows.append(Row(batch_size, tag, what, "OOM", "OOM", None))
            continue
        r = ratio(stats["reconvla"], stats["pi0"])
        res.rows.append(Row(batch_size, tag, what, stats["pi0"], stats["reconvla"], r,
                            f"<= {TARGETS['inference_ratio']}", verdict_ratio(r, TARGETS["inference_ratio"])))  # fmt: skip
        if what == "predict_action_chunk" and args.device == "cuda":
            res.chunk_latency.append((batch_size, tag, stats["reconvla"], stats["pi0"]))
    # Queue hits are microseconds: time them as many times as blocked_autorange likes.
    for p in (pi0, recon):
        p.reset()
    stats = interleaved({"pi0": pop_fn(pi0), "reconvla": pop_fn(recon)}, "select_action, queue hit", args)
    res.rows.append(Row(batch_size, tag, "select_action, queue hit (pops one action)*", stats["pi0"],
                        stats["reconvla"], ratio(stats["reconvla"], stats["pi0"]), "", "informative"))  # fmt: skip

    # ---- training step ----
    steps = {}
    for name, p in policies.items():
        p.train()
        steps[name] = train_step_fn(p, make_optimizer(p), batch)
    train_stats = oom_guard(interleaved, steps, "train step", args)
    for name in [n for n in policies if n != "pi0"]:
        label = f"train step ({name.split('-')[1]} target{', ' + args.vae_arch + '-VAE' if 'vae' in name else ''})"
        if isinstance(train_stats, Exception):
            res.rows.append(Row(batch_size, tag, label, "OOM", "OOM", None))
            continue
        r = ratio(train_stats[name], train_stats["pi0"])
        res.rows.append(Row(batch_size, tag, label, train_stats["pi0"], train_stats[name], r,
                            f"<= {TARGETS['train_time_ratio']} (full, GPU, bf16)",
                            verdict_ratio(r, TARGETS["train_time_ratio"]) if full_gpu else "not measurable here"))  # fmt: skip

    # ---- where the recon time goes ----
    if not args.no_breakdown and not isinstance(train_stats, Exception):
        breakdown(args, res, batch_size, tag, policies, batch, train_stats, vae_paths)

    del policies, pi0, recon, recon_px, steps
    if args.device == "cuda":
        torch.cuda.empty_cache()

    res.load.append((f"b{batch_size}/{tag} end", os.getloadavg()[0]))

    # ---- peak memory (fresh subprocess per policy) ----
    if not args.no_memory:
        mem = {kind: measure_memory(args, kind, batch_size, compile_on)
               for kind in ["pi0"] + [f"reconvla-{t}" for t in args.recon_targets]}  # fmt: skip
        res.memory_method = next((m["method"] for m in mem.values() if m.get("method")), "")
        for kind in [k for k in mem if k != "pi0"]:
            a, b = mem["pi0"].get("peak_bytes"), mem[kind].get("peak_bytes")
            r = b / a if a and b else None
            label = f"peak memory, train step ({kind.split('-')[1]} target{', ' + args.vae_arch + '-VAE' if 'vae' in kind else ''})"
            res.rows.append(Row(batch_size, tag, label, fmt_bytes(a, mem["pi0"]), fmt_bytes(b, mem[kind]), r,
                                f"<= {TARGETS['train_memory_ratio']} (full, GPU, bf16)",
                                verdict_ratio(r, TARGETS["train_memory_ratio"]) if full_gpu else "not measurable here"))  # fmt: skip


def fmt_bytes(n: int | None, info: dict) -> str:
    if n is None:
        return info.get("note", "n/a")
    return f"{n / 2**20:.0f} MiB"


def verdict_ratio(r: float | None, limit: float) -> str:
    if r is None:
        return "n/a"
    return "met" if r <= limit else f"missed by {(r - limit) * 100:.1f} points ({r:.3f} > {limit})"


def breakdown(args, res: Results, batch_size: int, tag: str, policies: dict, batch: dict, train_stats, vae_paths):
    from lerobot_policy_reconvla.modeling_reconvla import capture_prefix_hidden_states
    from lerobot_policy_reconvla.recon.target import ReconTarget, boxes_or_whole_image, load_frozen_vae

    pi0 = policies["pi0"]
    config = pi0.config
    images = [batch[f"observation.images.{cam}"] for cam in CAMERAS]
    boxes = [boxes_or_whole_image(batch[f"observation.gaze_box.{cam}"], batch_size, args.device) for cam in CAMERAS]
    grid = config.recon_token_grid
    n_targets = batch_size * len(CAMERAS)

    fns = {}
    fns["target: pixels (crop+resize, 32 px)" if args.variant == "tiny" else "target: pixels (crop+resize, 128 px)"] = (
        lambda t=ReconTarget("pixels", 32 if args.variant == "tiny" else 128, grid): t(images, boxes)
    )
    for arch, path in vae_paths.items():
        vae = load_frozen_vae(path, 4, 8).to(args.device)
        if args.dtype == "bfloat16" and args.device == "cuda":
            vae = vae.to(torch.bfloat16)
        target = ReconTarget("vae", 128, grid, vae_loader=lambda v=vae: v)
        fns[f"target: {arch}-VAE encode (crop+resize, 128 px -> 4x16x16)"] = lambda t=target: t(images, boxes)

    # Head forward / forward+backward on the real condition shape, with gradient into the condition.
    for name in [n for n in policies if n != "pi0"]:
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
        shape = f"DiT {dit.width}x{dit.depth}, {n_targets * head.timestep_repeats} seqs x {grid * grid} tokens"
        fns[f"head ({label}): forward, no grad [{shape}]"] = head_fwd
        fns[f"head ({label}): forward, with grad"] = head_fwd_train
        fns[f"head ({label}): forward + backward"] = head_fwd_bwd

    # Capture hook: pi0's training forward + backward of the action loss, with and without the hook.
    model = pi0.model
    images_pp, masks_pp = pi0._preprocess_images(batch)
    state, actions = pi0.prepare_state(batch), pi0.prepare_action(batch)
    lang, lang_mask = batch["observation.language.tokens"], batch["observation.language.attention_mask"]
    noise = torch.randn_like(actions)
    t = torch.full((batch_size,), 0.5, device=args.device)
    language_model = model.paligemma_with_expert.paligemma.model.language_model

    def core_fwd_bwd(hook: bool):
        def fn():
            model.zero_grad(set_to_none=True)
            ctx = capture_prefix_hidden_states(language_model, config.recon_layer) if hook else contextlib.nullcontext()
            with ctx:
                loss = model.forward(images_pp, masks_pp, lang, lang_mask, state, actions, noise, t).mean()
            loss.backward()

        return fn

    model.train()
    parts_rounds = max(2, args.rounds // 2) if not args.quick else 1
    hook_stats = interleaved({"pi0 core fwd+bwd, no hook": core_fwd_bwd(False),
                              "pi0 core fwd+bwd, with capture hook": core_fwd_bwd(True)}, "hook", args, rounds=parts_rounds)  # fmt: skip
    stats = interleaved(fns, "recon parts", args, rounds=parts_rounds)
    stats.update(hook_stats)
    hook_cost = hook_stats["pi0 core fwd+bwd, with capture hook"].median - hook_stats["pi0 core fwd+bwd, no hook"].median
    for name in [n for n in policies if n != "pi0"]:
        extra = train_stats[name].median - train_stats["pi0"].median
        stats[f"ReconVLA ({name.split('-')[1]}) train step - pi0 train step (whole recon overhead)"] = Stat(extra, None)
    stats["capture hook overhead (difference of the two rows above)"] = Stat(hook_cost, None)
    ref = train_stats.get("reconvla-vae", train_stats.get("reconvla-pixels"))
    for name, s in stats.items():
        share = s.median / ref.median if s.median is not None else None
        res.breakdown.append((batch_size, tag, name, s, share))


# --------------------------------------------------------------------------------------------------
# Report


def git_describe() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        return f"{rev}{' (working tree has uncommitted changes)' if dirty else ''}"
    except OSError:
        return "unknown"


def machine() -> list[str]:
    import psutil

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; RAM {psutil.virtual_memory().total / 2**30:.1f} GiB",
        f"- OS: {platform.platform()}",
    ]
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        lines.append(f"- GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB")
    else:
        lines.append("- GPU: none (the `device` machine is not lent to this task)")
    return lines


def versions() -> str:
    import diffusers
    import lerobot
    import transformers

    return (f"Python {platform.python_version()}, torch {torch.__version__}, LeRobot {lerobot.__version__}, "
            f"transformers {transformers.__version__}, diffusers {diffusers.__version__}")  # fmt: skip


def render(args, res: Results, argv: list[str], wall: float) -> str:
    full_gpu = args.variant == "full" and args.device == "cuda"
    cmd = ".venv/bin/python benchmarks/bench_vs_pi0.py " + " ".join(argv)
    out = [
        "# Benchmarks: ReconVLA against LeRobot's stock pi0",
        "",
        "Generated by `benchmarks/bench_vs_pi0.py` (see `benchmarks/README.md`); do not edit by hand.",
        "",
        "## Run",
        "",
        f"- date (UTC): {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')}; wall time {wall / 60:.1f} min",
        f"- command: `{cmd}`",
        f"- repo commit: {git_describe()}",
        *machine(),
        f"- versions: {versions()}",
        f"- 1-min load average during the run: {', '.join(f'{w} {v:.1f}' for w, v in res.load)} "
        f"(cores: {os.cpu_count()}; a load above the thread count means other processes shared the cores: "
        "interleaving spreads their effect over both policies, but it widens the IQR)",
        f"- torch threads: {args.threads} (`torch.set_num_threads` and every Timer's `num_threads`)",
        f"- variant: `{args.variant}` ({'gemma_2b + gemma_300m, DiT 1024x3' if args.variant == 'full' else 'tiny: language 256x2, expert 128x2, SigLIP 128x2, DiT 64x2'}), "
        f"dtype {args.dtype}, device {args.device}, compile: {args.compile}",
        f"- inputs: 3 cameras ({', '.join(CAMERAS)}) of {tuple(args.image_shape)} padded to 224 px by pi0, "
        f"state/action {STATE_DIM}-D, prompt {PROMPT_TOKENS} tokens padded to 48, chunk {args.chunk_size}, "
        f"{args.num_steps} denoising steps; gaze box {GAZE_BOX} on every camera",
        f"- timing: torch.utils.benchmark `Timer.blocked_autorange(min_run_time={args.min_run_time})`, "
        f"{args.rounds} rounds alternating the policies (ABBA) in one process, merged; one warm-up call "
        "per callable excluded. Figures are median ± IQR/2 over all blocks.",
        f"- memory: one fresh subprocess per policy and size, {args.memory_steps} training steps; "
        f"measure: {res.memory_method or 'n/a'}"
        + (" (resident-set high-water mark, i.e. model + gradients + AdamW state + activations + allocator slack; "
           "not comparable with GPU `max_memory_allocated` figures)" if args.device == "cpu" else ""),
        "- stock pi0: a deep copy of the ReconVLA policy with `model.recon_head` deleted and its classes set to "
        "LeRobot's `PI0Policy` / `PI0Pytorch` / `PaliGemmaWithExpertModel`, so it runs LeRobot's pi0 code "
        "unchanged on identical weights (LeRobot's `PI0Config` rejects the tiny variant). Asserted before timing: "
        "both produce identical action chunks for the same noise.",
        "",
        "## Side by side",
        "",
        "| batch | compile | measurement | stock pi0 | ReconVLA | ratio | target | verdict |",
        "| ---: | --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in res.rows:
        pi0 = r.pi0.fmt() if isinstance(r.pi0, Stat) else r.pi0
        rec = r.recon.fmt() if isinstance(r.recon, Stat) else r.recon
        out.append(f"| {r.batch_size} | {r.compile} | {r.what} | {pi0} | {rec} | "
                   f"{'' if r.ratio is None else f'{r.ratio:.3f}'} | {r.target} | {r.verdict} |")  # fmt: skip
    out += ["", "\\* a queue hit runs no model: one ready action is appended to the queue and `select_action` pops "
            "it (pi0's `self.eval()` walk over every module + `popleft`); Python overhead only.", ""]
    if res.breakdown:
        out += ["## Where the recon time goes", "",
                "Share = the row's median / the ReconVLA training step (VAE target where measured, else pixels) "
                "of the same batch size. VAEs are random-init `diffusers.AutoencoderKL` (weights do not change "
                "the time): `sd` = Stable Diffusion's layout (block_out_channels (128, 256, 512, 512), "
                "2 layers per block, 4 latent channels: the architecture of `stabilityai/sd-vae-ft-ema`, "
                "ReconVLA's default `recon_vae`), `small` = the 8-channel VAE of tests/test_recon.py.", "",
                "| batch | compile | component | median ± IQR/2 | share of ReconVLA step |",
                "| ---: | --- | --- | ---: | ---: |"]  # fmt: skip
        for b, tag, name, s, share in res.breakdown:
            val = s.fmt() if s.iqr is not None else (fmt_time(s.median) if s.median >= 0 else "-" + fmt_time(-s.median))
            out.append(f"| {b} | {tag} | {name} | {val} | {'' if share is None else f'{share * 100:.1f} %'} |")
        out.append("")
    out += ["## Targets (issue 6)", ""]
    out += targets_section(args, res, full_gpu)
    out += ["", "## Checks", ""] + [f"- {n}" for n in res.notes]
    if args.extra_notes:
        out += ["", "## Notes", "", Path(args.extra_notes).read_text().strip()]
    return "\n".join(out) + "\n"


def targets_section(args, res: Results, full_gpu: bool) -> list[str]:
    lines = []
    inf = [r for r in res.rows if r.what in ("predict_action_chunk", "select_action, empty queue (computes a chunk)") and r.ratio]
    if inf:
        worst = max(inf, key=lambda r: r.ratio)
        verdict = "met" if worst.ratio <= TARGETS["inference_ratio"] else verdict_ratio(worst.ratio, TARGETS["inference_ratio"])
        lines.append(f"- Inference ratio <= {TARGETS['inference_ratio']} ({args.variant}, {args.device}): **{verdict}** "
                     f"(worst ratio {worst.ratio:.3f}: {worst.what}, batch {worst.batch_size}, compile {worst.compile}; "
                     f"all: {', '.join(f'{r.ratio:.3f}' for r in inf)})")  # fmt: skip
    for key, word in (("train step", "train_time_ratio"), ("peak memory", "train_memory_ratio")):
        rows = [r for r in res.rows if r.what.startswith(key) and r.ratio]
        measured = ", ".join(f"{r.what.split('(')[1].rstrip(')')} b{r.batch_size}/{r.compile}: {r.ratio:.3f}" for r in rows)
        if full_gpu:
            worst = max(rows, key=lambda r: r.ratio) if rows else None
            verdict = verdict_ratio(worst.ratio, TARGETS[word]) if worst else "n/a"
            lines.append(f"- Training {key} ratio <= {TARGETS[word]} (full, GPU, bf16): **{verdict}** ({measured})")
        else:
            lines.append(f"- Training {key} ratio <= {TARGETS[word]} (full size, GPU, bf16): **not measurable here** "
                         f"(no GPU; the full model cannot train on this CPU). Indicative {args.variant}/{args.device} "
                         f"ratios, which overstate the head's share because the tiny backbone is ~1000x smaller "
                         f"than gemma_2b while the VAE keeps its full size: {measured or 'n/a'}")  # fmt: skip
    h100 = [x for x in res.chunk_latency if x[0] == 1 and x[1] == "on"]
    gpu_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    if full_gpu and h100 and "H100" in gpu_name:
        s = h100[0][2]
        verdict = "met" if s.median * 1e3 <= TARGETS["h100_chunk_ms"] else f"missed by {s.median * 1e3 - TARGETS['h100_chunk_ms']:.1f} ms"
        lines.append(f"- 3-camera chunk (10 steps) <= {TARGETS['h100_chunk_ms']:.0f} ms on an H100 with compile, batch 1: "
                     f"**{verdict}** ({s.median * 1e3:.1f} ms; stock pi0 {h100[0][3].median * 1e3:.1f} ms)")  # fmt: skip
    else:
        lines.append(f"- 3-camera chunk (10 steps) <= {TARGETS['h100_chunk_ms']:.0f} ms on an H100 with compile: "
                     "**not measurable here** (no GPU lent to this run; run the full-size command above on an H100)")
    if not full_gpu:
        lines.append("- Full size at batch 1, 8, 32 with compile off/on, bf16: **not run here** "
                     "(`--variant full --device cuda --batch-sizes 1 8 32 --compile both --dtype bfloat16`)")
    return lines


# --------------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=("tiny", "full"), default="tiny")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                   help="policy dtype; default float32 on CPU, bfloat16 on CUDA")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default: 1 2 (tiny), 1 8 32 (full)")
    p.add_argument("--compile", choices=("off", "on", "both"), default="off")
    p.add_argument("--recon-targets", nargs="+", choices=("pixels", "vae"), default=["pixels", "vae"])
    p.add_argument("--vae-arch", choices=("sd", "small"), default="sd", help="VAE of the training-step comparison")
    p.add_argument("--image-shape", type=int, nargs=3, default=[3, 224, 224], metavar=("C", "H", "W"))
    p.add_argument("--chunk-size", type=int, default=50)
    p.add_argument("--num-steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds per comparison")
    p.add_argument("--min-run-time", type=float, default=2.0, help="blocked_autorange min_run_time per round, s")
    p.add_argument("--memory-steps", type=int, default=3)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-breakdown", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke setting: batch 1, 1 round, short runs, small VAE")
    p.add_argument("--extra-notes", default=None, help="markdown file appended to the report (analysis)")
    p.add_argument("--out", default=None, help="markdown report to write (e.g. docs/benchmarks.md)")
    # internal: memory subprocess
    p.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--memory-batch-size", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--compile-on", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
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
    start = time.time()
    res = Results()
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    with tempfile.TemporaryDirectory() as tmp:
        vae_paths = {"small": save_vae(Path(tmp) / "small", SMALL_VAE)}
        if not args.quick:
            vae_paths["sd"] = save_vae(Path(tmp) / "sd", SD_VAE)
        for compile_on in compiles:
            for batch_size in args.batch_sizes:
                run_size(args, res, batch_size, compile_on, vae_paths)
    report = render(args, res, argv, time.time() - start)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
