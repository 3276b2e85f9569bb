"""Training memory of LeRobot's pi0 and ReconVLA per GPU, computed from the models on the meta device.

Nothing is allocated and no weights are needed: both policies are built with `torch.device("meta")`,
so every parameter has its real shape, dtype and trainability (pi0's bf16 cast keeps the vision tower
and norms in fp32; ReconVLA's head is fp32 and computes in `--recon-head-dtype`, fp32 by default), and one
forward + backward runs on meta tensors.

Per setup (full fine-tune or LoRA; AdamW or 8-bit AdamW; gradient checkpointing on or off):

- weights: every parameter, at its dtype (under LoRA also the frozen base);
- gradients: every parameter that receives one in the meta backward, at its dtype (parameters that
  take no part in the loss, such as PaliGemma's text head, get none, as on a GPU);
- optimizer state, for the same parameters: torch AdamW keeps two moments at the parameter's dtype;
  bitsandbytes' 8-bit AdamW keeps two uint8 moments plus an fp32 absmax per 256 elements for tensors
  of >= 4096 elements and two fp32 moments for smaller ones;
- DDP: one more gradient-sized copy per GPU (its all-reduce buckets; accelerate's default
  `gradient_as_bucket_view=False`), listed apart;
- activations: the storages autograd saves for backward (`saved_tensors_hooks`, parameters excluded,
  each storage counted once) at batch 1 and 4; the slope is the per-sample cost, the rest a per-step
  constant. With gradient checkpointing pi0 keeps only each decoder layer's inputs (held outside
  autograd's saved tensors, added as layers x (prefix x width + suffix x expert width) x 2 bytes), the
  head only each DiT block's input and the shared condition (added as recorded in the forward), and
  backward recomputes one layer or block at a time (added: the larger of what checkpointing removes per
  pi0 layer and per DiT block).

Not counted: the frozen VAE (no gradient; its weights are listed on their own), the CUDA context and
allocator workspace (cuBLAS, attention, fragmentation: keep ~10 % headroom), and the transient
gradient buffers of backward. So the figures are lower bounds of `torch.cuda.max_memory_allocated`,
which this script does not measure (see docs/training.md for the command that does).

    python benchmarks/memory_estimate.py --out docs/memory_estimate.md
"""

import argparse
import contextlib
import dataclasses
import platform
import sys
import time
from pathlib import Path

import torch
from lerobot.configs import FeatureType, PolicyFeature
from lerobot.configs.default import PeftConfig
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.policies.pi0.modeling_pi0 import PI0Policy

from lerobot_policy_reconvla.configuration_reconvla import ReconVLAConfig
from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy, make_recon_target

GIB = 2**30
CAMERAS = ("top", "left_wrist", "right_wrist")
ACTION_DIM = 14  # ALOHA
BNB_MIN_8BIT_SIZE, BNB_BLOCK = 4096, 256
# The SD VAE (`stabilityai/sd-vae-ft-ema`, ReconVLA's default recon_vae): frozen, fp32.
SD_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
)


@dataclasses.dataclass(frozen=True)
class Setup:
    name: str
    lora: bool
    optimizer: str  # "adamw" | "adamw_8bit"
    checkpointing: bool


SETUPS = (
    Setup("full fine-tune, AdamW", lora=False, optimizer="adamw", checkpointing=False),
    Setup("full fine-tune, AdamW, grad. checkpointing", lora=False, optimizer="adamw", checkpointing=True),
    Setup(
        "full fine-tune, 8-bit AdamW, grad. checkpointing",
        lora=False,
        optimizer="adamw_8bit",
        checkpointing=True,
    ),
    Setup(
        "LoRA r=16, 8-bit AdamW, grad. checkpointing", lora=True, optimizer="adamw_8bit", checkpointing=True
    ),
    Setup("LoRA r=16, AdamW", lora=True, optimizer="adamw", checkpointing=False),
)


def features(image_side: int) -> tuple[dict, dict]:
    inputs = {
        f"observation.images.{cam}": PolicyFeature(FeatureType.VISUAL, (3, image_side, image_side))
        for cam in CAMERAS
    }
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (ACTION_DIM,))
    return inputs, {"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))}


def build(kind: str, setup: Setup, variant: str, expert_variant: str, head_dtype: str = "float32"):
    """The policy on the meta device, trainable as `setup` says (LoRA through LeRobot's own
    wrap_with_peft)."""
    inputs, outputs = features(224)
    common = dict(
        paligemma_variant=variant,
        action_expert_variant=expert_variant,
        dtype="bfloat16",
        device="cpu",
        gradient_checkpointing=setup.checkpointing,
        input_features=inputs,
        output_features=outputs,
    )
    if kind == "pi0":
        config = PI0Config(**common)
    else:
        # `pixels` at 16 px has the VAE target's token grid (16 x 16) and nearly its channels (3 vs 4),
        # so the head's activations are the VAE setup's; the VAE itself runs without grad.
        config = ReconVLAConfig(
            **common, recon_target="pixels", recon_image_size=16, recon_head_dtype=head_dtype
        )
    # Set after validation (LeRobot's configs accept real devices only); pi0 moves its model there.
    config.device = "meta"
    if setup.lora:
        # LeRobot refuses LoRA from scratch; the path is never read here.
        config.pretrained_path = Path("lerobot/pi0_base")
    with torch.device("meta"):
        policy = (PI0Policy if kind == "pi0" else ReconVLAPolicy)(config)
        if setup.lora:
            policy = policy.wrap_with_peft(peft_cli_overrides=dataclasses.asdict(PeftConfig()))
    policy.train()
    return policy


def state_bytes(policy, setup: Setup, element_sizes: dict[int, int], ddp: bool) -> dict[str, int]:
    """After a meta backward: gradients and optimizer state exist only for parameters that got a
    gradient (optimizers create state lazily; e.g. PaliGemma's unused text head gets none).
    element_sizes: bytes per element of each parameter (by id) as the policy holds it for training."""
    weights = grads = optimizer = 0
    for param in policy.parameters():
        size = param.numel() * element_sizes[id(param)]
        weights += size
        if param.grad is None:
            continue
        grads += size
        if setup.optimizer == "adamw":
            optimizer += 2 * size
        elif param.numel() >= BNB_MIN_8BIT_SIZE:
            optimizer += 2 * param.numel() + 2 * 4 * -(-param.numel() // BNB_BLOCK)
        else:
            optimizer += 2 * 4 * param.numel()
    return {"weights": weights, "grads": grads, "optimizer": optimizer, "ddp_buckets": grads if ddp else 0}


def core_inputs(batch: int, config, recon: bool) -> tuple[list, dict]:
    side = config.image_resolution[0]
    images = [torch.zeros(batch, 3, side, side, device="meta") for _ in CAMERAS]
    args = [
        images,
        [torch.ones(batch, dtype=torch.bool, device="meta") for _ in CAMERAS],
        torch.zeros(batch, config.tokenizer_max_length, dtype=torch.long, device="meta"),
        torch.ones(batch, config.tokenizer_max_length, dtype=torch.bool, device="meta"),
        torch.zeros(batch, config.max_state_dim, device="meta"),
        torch.zeros(batch, config.chunk_size, config.max_action_dim, device="meta"),
        torch.zeros(batch, config.chunk_size, config.max_action_dim, device="meta"),  # noise
        torch.full((batch,), 0.5, device="meta"),  # time
    ]
    kwargs = {}
    if recon:
        # The targets are computed before the core model's forward, without gradient: only their tokens enter.
        grid, channels = config.recon_token_grid, make_recon_target(config).token_channels
        kwargs["recon_targets"] = torch.zeros(batch * len(CAMERAS), grid * grid, channels, device="meta")
    return args, kwargs


def saved_activation_bytes(policy, batch: int) -> int:
    """Bytes of the distinct storages autograd saves during one forward (parameters excluded)."""
    core = policy.get_base_model().model if hasattr(policy, "get_base_model") else policy.model
    params = {p.untyped_storage()._cdata for p in policy.parameters()}
    storages: dict[int, int] = {}
    keep_alive = []  # storage ids stay unique while their tensors live

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage._cdata not in params:
            storages[storage._cdata] = storage.nbytes()
            keep_alive.append(tensor)
        return tensor

    recon = hasattr(core, "recon_head")
    if recon:
        # The head computes in `recon_head_dtype`: fp32 (the default) as its weights are, or bf16 under
        # autocast, which has no meta device: emulate that with bf16 head weights (weights and optimizer
        # state were counted before).
        core.recon_head.to(core.recon_head.compute_dtype)
    args, kwargs = core_inputs(batch, core.config, recon=recon)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast_off_on_meta():
        out = core(*args, **kwargs)
    action_losses, recon_losses = out if isinstance(out, tuple) else (out, None)
    loss = action_losses.float().mean() + (recon_losses.float().mean() if recon_losses is not None else 0)
    loss.backward()  # meta: no arithmetic, but every parameter that trains gets a .grad
    return sum(storages.values())


def activation_bytes(policy, batch: int) -> int:
    """Activations held at the start of backward, plus, under gradient checkpointing, the inputs kept for
    each checkpointed pi0 layer and DiT block, and the larger of one pi0 layer's or one DiT block's
    recomputed activations (live while that layer runs backward)."""
    core = policy.get_base_model().model if hasattr(policy, "get_base_model") else policy.model
    if not core.gradient_checkpointing_enabled:
        return saved_activation_bytes(policy, batch)
    dit = core.recon_head.dit if hasattr(core, "recon_head") else None
    with dit_block_inputs(dit) as dit_inputs:
        saved = saved_activation_bytes(policy, batch)
    recompute = []
    if dit is not None:
        dit.disable_gradient_checkpointing()
        dit_off = saved_activation_bytes(policy, batch)
        recompute.append((dit_off - saved) // len(dit.blocks))  # what checkpointing drops, per block
        saved_pi0_on = dit_off
    else:
        saved_pi0_on = saved
    core.gradient_checkpointing_disable()
    removed = saved_activation_bytes(policy, batch) - saved_pi0_on  # what checkpointing drops, all layers
    core.gradient_checkpointing_enable()
    num_layers = core.paligemma_with_expert.paligemma.config.text_config.num_hidden_layers
    recompute.append(removed // num_layers)
    return saved + checkpointed_layer_inputs(core, batch) + sum(dit_inputs.values()) + max(recompute)


@contextlib.contextmanager
def dit_block_inputs(dit):
    """{storage: bytes} of the inputs of the DiT's blocks in the forward run inside: what checkpointing
    keeps of the head (each block's input, and the condition they share)."""
    seen: dict[int, int] = {}
    keep_alive = []

    def record(_module, args):
        for tensor in args:
            seen[tensor.untyped_storage()._cdata] = tensor.untyped_storage().nbytes()
            keep_alive.append(tensor)

    handles = [block.register_forward_pre_hook(record) for block in dit.blocks] if dit is not None else []
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def autocast_off_on_meta():
    """`torch.autocast("meta", ...)` raises even when disabled; make it a no-op while measuring."""
    original = torch.autocast

    def autocast(device_type, *args, **kwargs):
        return contextlib.nullcontext() if device_type == "meta" else original(device_type, *args, **kwargs)

    torch.autocast = autocast
    try:
        yield
    finally:
        torch.autocast = original


def checkpointed_layer_inputs(core, batch: int) -> int:
    """Layer inputs pi0 keeps per checkpointed decoder layer: the prefix and suffix streams, bf16."""
    config = core.config
    paligemma = core.paligemma_with_expert.paligemma.config.text_config
    expert = core.paligemma_with_expert.gemma_expert.config
    image_tokens = len(CAMERAS) * (config.image_resolution[0] // 14) ** 2
    prefix = image_tokens + config.tokenizer_max_length
    suffix = 1 + config.chunk_size  # state token + action tokens
    per_layer = prefix * paligemma.hidden_size + suffix * expert.hidden_size
    return batch * paligemma.num_hidden_layers * per_layer * 2


def vae_weight_bytes() -> int:
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        vae = AutoencoderKL(**SD_VAE)
    return sum(p.numel() * 4 for p in vae.parameters())


def gib(value: float) -> str:
    return f"{value / GIB:.1f}"


def max_batch(fixed: float, per_sample: float, budget_gib: float, headroom: float = 0.9) -> str:
    room = budget_gib * GIB * headroom - fixed
    return str(int(room // per_sample)) if room >= per_sample else "0 (does not fit)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # pi0 hard-codes PaliGemma's 2048-wide image projection, so gemma_2b is its only backbone width.
    parser.add_argument("--variant", default="gemma_2b", choices=["gemma_2b"])
    parser.add_argument("--expert-variant", default="gemma_300m", choices=["gemma_2b", "gemma_300m"])
    parser.add_argument(
        "--recon-head-dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="the precision the head computes in (the policy's recon_head_dtype)",
    )
    parser.add_argument("--out", type=Path, help="write the markdown report here (default: stdout)")
    parser.add_argument(
        "--setups",
        type=int,
        nargs="+",
        default=list(range(len(SETUPS))),
        help="indices into: " + "; ".join(f"{i}: {setup.name}" for i, setup in enumerate(SETUPS)),
    )
    args = parser.parse_args(argv)
    started = time.time()

    rows = []
    for setup in (SETUPS[index] for index in args.setups):
        for kind in ("pi0", "reconvla"):
            policy = build(kind, setup, args.variant, args.expert_variant, args.recon_head_dtype)
            trainable = sum(p.numel() for p in policy.parameters() if p.requires_grad)
            element_sizes = {
                id(p): p.element_size() for p in policy.parameters()
            }  # before any cast of the head
            b1, b4 = (activation_bytes(policy, batch) for batch in (1, 4))
            per_sample = (b4 - b1) / 3
            per_step = max(b1 - per_sample, 0)
            state = state_bytes(policy, setup, element_sizes, ddp=False)
            fixed = sum(state.values()) + per_step
            rows.append((setup, kind, state, per_sample, fixed, trainable))
            del policy

    lines = [
        "# Training memory per GPU: pi0 and ReconVLA, computed on the meta device",
        "",
        "Generated by `benchmarks/memory_estimate.py`; do not edit by hand. These are estimates from "
        "the models'",
        "parameters and the tensors autograd saves, not GPU measurements "
        "(`torch.cuda.max_memory_allocated`).",
        "",
        f"- command: `python benchmarks/memory_estimate.py --variant {args.variant} "
        f"--expert-variant {args.expert_variant} --recon-head-dtype {args.recon_head_dtype}"
        f"{'' if len(args.setups) == len(SETUPS) else ' --setups ' + ' '.join(map(str, args.setups))}"
        f"{' --out ' + str(args.out) if args.out else ''}`",
        f"- model: PaliGemma `{args.variant}` + expert `{args.expert_variant}`, bf16 "
        f"(pi0's cast: vision tower "
        f"and norms fp32), ReconVLA head at full size (DiT 1024 x 3, fp32 weights, computing in "
        f"{args.recon_head_dtype}); 3 cameras "
        "at 224 px, prompt 48 tokens, chunk 50",
        "- LoRA: LeRobot's `--peft.*` defaults (r=16) on each policy's default targets "
        "(ReconVLA: PaliGemma attention + pi0's targets, the DiT fully trained as modules_to_save)",
        f"- frozen SD VAE (ReconVLA's `recon_target=vae` default, fp32, not in the table): "
        f"{gib(vae_weight_bytes())} GiB of weights",
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}; "
        f"{time.time() - started:.0f} s",
        "",
        "GiB per GPU. fixed = weights + gradients + optimizer state + per-step activations; DDP adds one "
        "gradient-sized copy per GPU (column `+DDP`). Largest batch per GPU = floor((0.9 x card - fixed) / "
        "per sample).",
        "",
        "| setup | policy | trainable params | weights | grads | optimizer | activations / sample "
        "| fixed | +DDP "
        "| batch @ 24 GiB | batch @ 80 GiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for setup, kind, state, per_sample, fixed, trainable in rows:
        lines.append(
            f"| {setup.name} | {kind} | {trainable / 1e6:,.0f} M | {gib(state['weights'])} "
            f"| {gib(state['grads'])} "
            f"| {gib(state['optimizer'])} | {gib(per_sample)} | {gib(fixed)} | {gib(state['grads'])} "
            f"| {max_batch(fixed, per_sample, 24)} | {max_batch(fixed, per_sample, 80)} |"
        )
    lines.append("")
    ratios = []
    for index in range(0, len(rows), 2):
        (setup, _, _, pi0_sample, pi0_fixed, _), (_, _, _, recon_sample, recon_fixed, _) = rows[
            index : index + 2
        ]
        for batch in (1, 8):
            ratio = (recon_fixed + batch * recon_sample) / (pi0_fixed + batch * pi0_sample)
            ratios.append(f"{setup.name}, batch {batch}: {ratio:.3f}")
    lines += ["ReconVLA / pi0, estimated (fixed + batch x per sample):", "", *[f"- {r}" for r in ratios], ""]
    report = "\n".join(lines)
    if args.out:
        args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
