"""Building the pair: a ReconVLA policy and a stock twin on identical weights, their batch and optimizer.

One pair per base (`BASES`): `reconvla` against LeRobot's pi0, `reconvla_pi05` against LeRobot's pi05.
LeRobot 0.6.1's `PI0Config` and `PI05Config` reject the `tiny` variant and their cores hard-code the SigLIP
so400m tower, so a stock `PI0Policy` / `PI05Policy` cannot be *constructed* at tiny size. `make_stock_twin`
therefore deep-copies a ReconVLA policy, deletes `model.recon_head` from the copy and sets the copy's
classes to LeRobot's own policy, core model and `PaliGemmaWithExpertModel` of the base (`PI0Policy`,
`PI0Pytorch` or `PI05Policy`, `PI05Pytorch`). Every method the copy runs is then LeRobot's unmodified code
(checked: none of the three classes is a ReconVLA class any more, and no instance attribute shadows
`forward` / `sample_actions`), on bit-identical weights; `assert_same_chunks` proves it before any timing.
`compile_like_pi0_` is applied *after* the copy, to both, exactly as `PI0Pytorch.__init__` and
`PI05Pytorch.__init__` do it (`torch.compile` of the bound `sample_actions` and `forward`): compiling before
the copy would leave the copy's compiled methods bound to the original.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import NamedTuple

import torch

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
# The quick setting's VAE: the same layout narrowed to 8 channels (same 8x downsampling, 4 latent channels).
SMALL_VAE = dict(SD_VAE, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4)


class Base(NamedTuple):
    """Where a base's classes live, as "module:Class" (imported on use: LeRobot's policies take seconds)."""

    config: str  # ReconVLA's config on this base
    policy: str  # ReconVLA's policy on this base
    stock: tuple[str, str, str]  # LeRobot's policy, core model and PaliGemma + expert


BASES = {
    "pi0": Base(
        "lerobot_policy_reconvla.configuration_reconvla:ReconVLAConfig",
        "lerobot_policy_reconvla.modeling_reconvla:ReconVLAPolicy",
        tuple(
            f"lerobot.policies.pi0.modeling_pi0:{name}"
            for name in ("PI0Policy", "PI0Pytorch", "PaliGemmaWithExpertModel")
        ),
    ),
    "pi05": Base(
        "lerobot_policy_reconvla.configuration_reconvla_pi05:ReconVLAPi05Config",
        "lerobot_policy_reconvla.modeling_reconvla_pi05:ReconVLAPi05Policy",
        tuple(
            f"lerobot.policies.pi05.modeling_pi05:{name}"
            for name in ("PI05Policy", "PI05Pytorch", "PaliGemmaWithExpertModel")
        ),
    ),
}


def load_class(where: str) -> type:
    module, name = where.split(":")
    return getattr(importlib.import_module(module), name)


def import_base(base: str) -> None:
    """Imports every module of the base's pair (the memory worker does it before its baseline)."""
    for where in (BASES[base].config, BASES[base].policy, *BASES[base].stock):
        load_class(where)


def save_vae(directory: Path, arch: dict) -> str:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(**arch).save_pretrained(directory)
    return str(directory)


def make_config(args, recon_target: str, vae_path: str | None, base: str = "pi0"):
    from lerobot.configs import FeatureType, PolicyFeature

    features = {
        f"observation.images.{cam}": PolicyFeature(FeatureType.VISUAL, tuple(args.image_shape))
        for cam in CAMERAS
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
        recon_head_dtype=args.recon_head_dtype,
        compile_model=False,  # applied after the stock copy is made (see module docstring)
        compile_mode=args.compile_mode,
        push_to_hub=False,
    )
    if args.variant == "tiny":
        # configs/policy/reconvla_tiny.json's head, pi0's chunk and step count.
        kwargs.update(
            paligemma_variant="tiny",
            action_expert_variant="tiny",
            recon_dit_width=64,
            recon_dit_depth=2,
            recon_dit_heads=4,
        )
    else:
        kwargs.update(
            paligemma_variant="gemma_2b", action_expert_variant="gemma_300m"
        )  # DiT 1024 x 3, 16 heads
    if recon_target == "pixels":
        kwargs.update(recon_image_size=32 if args.variant == "tiny" else 128)
    else:
        kwargs.update(
            recon_vae=vae_path, recon_image_size=128, recon_vae_latent_channels=4, recon_vae_downsample=8
        )
    return load_class(BASES[base].config)(**kwargs)


def build_reconvla(args, recon_target: str, vae_path: str | None, seed: int = 0, base: str = "pi0"):
    torch.manual_seed(seed)
    return load_class(BASES[base].policy)(make_config(args, recon_target, vae_path, base))


def to_stock_(policy):
    """Turns a ReconVLA policy into an object that runs only LeRobot's code of its base (in place)."""
    base = policy.config.base_type
    stock_policy, stock_core, stock_backbone = map(load_class, BASES[base].stock)
    del policy.model.recon_head
    policy.model.paligemma_with_expert.__class__ = stock_backbone
    policy.model.__class__ = stock_core
    policy.__class__ = stock_policy
    for obj in (policy, policy.model, policy.model.paligemma_with_expert):
        assert type(obj).__module__ == stock_policy.__module__, type(obj)
        shadowing = {"forward", "sample_actions", "predict_action_chunk", "select_action"} & set(vars(obj))
        assert not shadowing, f"instance attributes {shadowing} would shadow {base}'s methods"
    assert not any("recon_head" in name for name, _ in policy.named_parameters())
    return policy


def make_stock_twin(recon_policy):
    return to_stock_(copy.deepcopy(recon_policy))


def compile_like_pi0_(policy) -> None:
    """What PI0Pytorch.__init__ (and PI05Pytorch.__init__) does when config.compile_model is set, applied to a
    built policy."""
    model, config = policy.model, policy.config
    config.compile_model = True
    torch.set_float32_matmul_precision("high")
    model.sample_actions = torch.compile(model.sample_actions, mode=config.compile_mode)
    model.forward = torch.compile(model.forward, mode=config.compile_mode)


def make_batch(config, batch_size: int, device: str, seed: int = 0) -> dict:
    """A batch as pi0's preprocessor hands it to the policy (tokens made directly: no tokenizer needed).

    pi05 takes the same batch: its core ignores `observation.state` (its processor writes the state into the
    prompt, which is given here as token ids)."""
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
    return torch.optim.AdamW(
        policy.get_optim_params(),
        lr=c.optimizer_lr,
        betas=c.optimizer_betas,
        eps=c.optimizer_eps,
        weight_decay=c.optimizer_weight_decay,
    )


def train_step_fn(policy, optimizer, batch):
    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = policy.forward(batch)
        loss.backward()
        optimizer.step()

    return step


def assert_same_chunks(recon, stock, batch, compiled: bool) -> float:
    generator_seed = 1234
    torch.manual_seed(generator_seed)
    a = recon.predict_action_chunk(batch)
    torch.manual_seed(generator_seed)
    b = stock.predict_action_chunk(batch)
    noise = torch.randn(a.shape[0], recon.config.chunk_size, recon.config.max_action_dim, device=a.device)
    c = recon.predict_action_chunk(batch, noise=noise)
    d = stock.predict_action_chunk(batch, noise=noise)
    if compiled:
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(c, d)
    else:
        assert torch.equal(a, b) and torch.equal(c, d), (
            f"ReconVLA and its {recon.config.base_type} twin differ: the comparison is void"
        )
    return (c - d).abs().max().item()
