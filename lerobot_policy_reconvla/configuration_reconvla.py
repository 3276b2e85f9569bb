# Builds on LeRobot's pi0 configuration (lerobot/policies/pi0/configuration_pi0.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""Configuration of ReconVLA: a base VLA's config plus the training-only reconstruction head.

`ReconSettings` holds the `recon_*` fields and every check of them, once for both bases; `ReconVLAConfig`
(`--policy.type=reconvla`) puts them on pi0's config, `ReconVLAPi05Config` (configuration_reconvla_pi05.py,
`--policy.type=reconvla_pi05`) on pi05's. Every base field keeps its meaning (see LeRobot's `PI0Config` /
`PI05Config`); the `recon_*` fields configure the diffusion head that reconstructs each camera's gaze region
from the backbone's visual hidden states (ReconVLA, AAAI 2026, https://arxiv.org/abs/2508.10333).
"""

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

from .gaze_box import is_gaze_box_key
from .training.optim import PRESET_OPTIMIZER_TYPES, optimizer_preset

# Backbone variants: pi0's two plus `tiny`, pi0's architecture at a few M parameters (besides the
# vocabulary) so CPU tests run the real model. gemma_* are built by pi0's own constructors; `tiny` takes
# its sizes from the tables below (tiny.py builds it; the checks in this file read them).
TINY = "tiny"
BACKBONE_VARIANTS = ("gemma_300m", "gemma_2b", TINY)
# transformers' GemmaConfig fields, for the language model and the action expert alike. pi0's joint
# attention reshape assumes 8 heads and one head_dim on both experts.
TINY_LANGUAGE = {
    "hidden_size": 256,
    "num_hidden_layers": 2,
    "intermediate_size": 1024,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "head_dim": 32,
}
# transformers' SiglipVisionConfig fields; pi0 hard-codes SigLIP so400m for gemma_*.
TINY_VISION = {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 512,
    "patch_size": 14,
}
TINY_VOCAB_SIZE = 512  # >= the shipped tiny tokenizer (checked by a test)
RECON_TARGETS = ("vae", "pixels")
BASE_DTYPES = ("bfloat16", "float32")  # pi0's and pi05's
RECON_HEAD_DTYPES = ("float32", "bfloat16")
PALIGEMMA_TOKENIZER = "google/paligemma-3b-pt-224"  # pi0's processor hard-codes the same one
# The tokenizer shipped for the tiny variant: a name, not a path, so saved processors stay portable.
TINY_TOKENIZER = "lerobot_policy_reconvla/tiny_tokenizer"
TINY_TOKENIZER_DIR = Path(__file__).parent / "assets" / "tiny_tokenizer"


def camera_name(image_key: str) -> str:
    """observation.images.<name> -> <name>."""
    return image_key.removeprefix(f"{OBS_IMAGES}.")


@cache
def _paligemma_patch_size() -> int:
    from transformers import PaliGemmaConfig  # imported on first use: the plugin registers without it

    return PaliGemmaConfig().vision_config.patch_size


def vision_patch_size(paligemma_variant: str) -> int:
    """SigLIP's patch size: transformers' PaliGemma default (which pi0 keeps) or TINY_VISION."""
    if paligemma_variant == TINY:
        return TINY_VISION["patch_size"]
    return _paligemma_patch_size()


@dataclass
class ReconSettings:
    """The recon fields and checks, shared by ReconVLA on every base: listed before the base's config class
    (`class ReconVLAConfig(ReconSettings, PI0Config)`), so its `__post_init__` and `validate_features` run
    around the base's own. A subclass names its base (`base_type`, the checkpoint type whose weights it
    loads with a fresh head) and that base's Gemma size table (`base_gemma_config`)."""

    base_type: ClassVar[str]

    # Tokenizer of the prompt. None: PaliGemma's for gemma_* variants, the shipped one for `tiny`.
    # Any local directory or Hub repo of a Hugging Face tokenizer works.
    tokenizer_name: str | None = None
    # Cameras the policy looks at, by name (observation.images.<name>), in prefix order. None: every
    # camera of the dataset / env. Lets a 4-camera static ALOHA dataset train on any three.
    cameras: list[str] | None = None

    # --- Reconstruction head (training only; never built into the inference graph) ---
    # Defaults: ReconVLA's head and loss with a VAE anyone can download. Where the official
    # (OpenHelix-Team/ReconVLA) differs, the comment says so; configs/policy/reconvla_paper.json sets
    # the official head, target, frozen SigLIP and optimizer values (not its schedule: see docs/design.md).
    #
    # loss = L_action + recon_weight * L_recon (official: `loss = loss + vm_loss`, i.e. 1.0).
    recon_weight: float = 1.0
    # Which backbone layer's hidden states at image positions condition the head. Python indexing
    # over the language-model layers: -1 (default, as the official) is the last one, after the final norm.
    recon_layer: int = -1
    # `vae`: reconstruct latents of a frozen diffusers AutoencoderKL (official); `pixels`: reconstruct
    # the patchified gaze crop itself (no VAE to load; the tiny preset uses it).
    recon_target: str = "vae"
    # Local path or Hub repo of a diffusers AutoencoderKL (frozen, not saved with the checkpoint,
    # loaded at the first training step only). Default: the VAE of DiT / Stable Diffusion (4 latent
    # channels, no licence to accept). The official uses FLUX.1-dev's 16-channel VAE, from an ungated copy.
    recon_vae: str | None = "stabilityai/sd-vae-ft-ema"
    # Folder of `recon_vae` that holds the VAE, for VAEs inside a pipeline repo (FLUX.1's: `vae`).
    recon_vae_subfolder: str | None = None
    # Layout of that VAE, known without loading it (so inference never touches it); checked at load.
    recon_vae_latent_channels: int = 4
    recon_vae_downsample: int = 8
    # Targets are sampled from the VAE's posterior (official) rather than taken at its mode. Latents
    # are normalised with the VAE's own `(z - shift_factor) * scaling_factor` either way.
    recon_vae_sample_posterior: bool = True
    # Side (px) the gaze crop is resized to before encoding; it must split into the image-token grid
    # (16 x 16 at 224 px): recon_image_size / recon_vae_downsample / 16 = p gives p x p latents per
    # token. Default 128 px: one 4-channel latent per token. Official: 256 px through a 16-channel VAE,
    # 2 x 2 latents = 64 channels per token (sixteen times the target per token, four times the VAE cost).
    recon_image_size: int = 128
    # Pad each gaze crop (and the whole-image fallback) to a square with mid grey before resizing, as the
    # official pads every target, instead of stretching it. Off by default: the tiny preset's results
    # (docs/results.md) and the closed-loop tests were measured with stretched crops; the paper preset
    # sets it.
    recon_pad_to_square: bool = False
    # ReconDiT size; full size as the official `denoiser_vit3x`: depth 3, width 1024, 16 heads.
    recon_dit_depth: int = 3
    recon_dit_width: int = 1024
    recon_dit_heads: int = 16
    # Timesteps drawn per sample and camera (the official repeats each target 4 times).
    recon_timestep_repeats: int = 4
    # DDPM training steps (cosine schedule, eps-prediction), as the official.
    recon_num_train_timesteps: int = 1000
    # Add a pooled embedding of the prompt's hidden states to every token's condition. Not in the
    # official head, and a shortcut: the head may read the object from the prompt instead of learning
    # to find it in the visual tokens (a warning says so when training starts).
    recon_condition_on_language: bool = False
    # Precision the head computes in: float32 (official), or bfloat16 (autocast over fp32 weights:
    # less activation memory and time, at the cost of bf16 rounding in the head's loss).
    recon_head_dtype: str = "float32"
    # Learning-rate multiplier of the head's parameter group (the head starts from scratch).
    recon_lr_scale: float = 1.0
    # Every this many training steps, log the first sample's input with its gaze box, target crop and
    # sampled reconstruction (50 DDPM steps) per camera to wandb, under train/reconstruction/<camera>
    # (with --wandb.enable=true; main process only). 0: off, and nothing is sampled.
    recon_log_images_freq: int = 0
    # A latent cache built by `reconvla-cache-latents` (its directory): training reads each frame's VAE
    # posterior from it instead of running the VAE on the gaze crops. Checked against the settings above and,
    # every step, against the batch's boxes and crops (a changed dataset or an augmentation is refused).
    recon_latent_cache: str | None = None
    # Training only: each camera image is padded by this many pixels (edge pixels repeated) and cropped back
    # at a random offset, its gaze box moved with it (DrQ's random shift, training/augment.py). 0: off.
    image_shift_pixels: int = 0
    # Optimizer of the training preset: pi0's `adamw`, or `adamw_8bit` (bitsandbytes, the `bnb` extra;
    # same hyperparameters and parameter groups, moments in 8 bits). See optim.py.
    optimizer_type: str = "adamw"
    # Not a recon field, but it decides where L_recon goes (pi0's `freeze_vision_encoder`, default
    # False): the official freezes SigLIP, so the reconstruction trains the projector and the language
    # layers only; pi0's default lets it reach SigLIP too. `train_expert_only=true` freezes the whole
    # VLM, leaving the head nothing to shape but itself (warned when training starts).

    def __post_init__(self):
        try:
            self._check_settings()
        except ValueError as refusal:
            # draccus, which parses lerobot-train's flags, replaces a ValueError raised while building the
            # config by "Couldn't instantiate class ReconVLAConfig using the given arguments": log the reason,
            # so a command line shows which setting is refused and why.
            logging.getLogger(__name__).error("policy config refused: %s", refusal)
            raise

    def _check_settings(self) -> None:
        """Every check of the settings, around the base's post-init; raises ValueError naming the field."""
        for field_name in ("paligemma_variant", "action_expert_variant"):
            if getattr(self, field_name) not in BACKBONE_VARIANTS:
                raise ValueError(
                    f"{field_name}={getattr(self, field_name)!r} is not a known variant; expected one of "
                    f"{BACKBONE_VARIANTS}"
                )
        if self.paligemma_variant == "gemma_300m":
            # pi0 and pi05 accept it, then fail at the first forward: they project SigLIP to 2048.
            raise ValueError(
                f"paligemma_variant='gemma_300m' cannot run: {self.base_type} projects the vision tower to "
                "2048 channels, the width of gemma_2b; use paligemma_variant='gemma_2b' (or 'tiny' for CPU "
                "tests)"
            )
        if (self.paligemma_variant == TINY) != (self.action_expert_variant == TINY):
            raise ValueError(
                "paligemma_variant and action_expert_variant must both be 'tiny' or both be gemma_*; got "
                f"{self.paligemma_variant!r} and {self.action_expert_variant!r} (their head dims must match)"
            )
        self._base_post_init()
        if self.image_resolution[0] != self.image_resolution[1]:
            raise ValueError(f"image_resolution={self.image_resolution}; PaliGemma expects a square image")
        if self.recon_target not in RECON_TARGETS:
            raise ValueError(f"recon_target={self.recon_target!r}; expected one of {RECON_TARGETS}")
        if self.recon_target == "vae" and not self.recon_vae:
            raise ValueError(
                "recon_target='vae' needs recon_vae (a path or Hub repo of a diffusers AutoencoderKL)"
            )
        if self.recon_weight < 0:
            raise ValueError(f"recon_weight={self.recon_weight}; expected >= 0 (0 disables the head's loss)")
        if self.recon_timestep_repeats < 1:
            raise ValueError(f"recon_timestep_repeats={self.recon_timestep_repeats}; expected >= 1")
        if self.recon_dit_depth < 1 or self.recon_dit_width < 1:
            raise ValueError(
                f"recon_dit_depth={self.recon_dit_depth}, recon_dit_width={self.recon_dit_width}; "
                "expected >= 1"
            )
        if self.recon_dit_width % self.recon_dit_heads != 0:
            raise ValueError(
                f"recon_dit_width={self.recon_dit_width} must be divisible by "
                f"recon_dit_heads={self.recon_dit_heads}"
            )
        if self.recon_latent_cache is not None and self.recon_target != "vae":
            raise ValueError(
                f"recon_latent_cache={self.recon_latent_cache!r} holds VAE posteriors, but recon_target="
                f"{self.recon_target!r}: pixel targets need no cache (drop --policy.recon_latent_cache)"
            )
        if self.image_shift_pixels < 0:
            raise ValueError(f"image_shift_pixels={self.image_shift_pixels}; expected >= 0 (0 is off)")
        if self.image_shift_pixels > 0 and self.recon_latent_cache is not None:
            raise ValueError(
                f"image_shift_pixels={self.image_shift_pixels} with "
                f"recon_latent_cache={self.recon_latent_cache!r}: "
                "the cache holds the targets of the stored frames, not of shifted ones; drop one of them"
            )
        if self.recon_log_images_freq < 0:
            raise ValueError(f"recon_log_images_freq={self.recon_log_images_freq}; expected >= 0 (0 is off)")
        if self.recon_lr_scale <= 0:
            raise ValueError(f"recon_lr_scale={self.recon_lr_scale}; expected > 0")
        if self.optimizer_type not in PRESET_OPTIMIZER_TYPES:
            raise ValueError(
                f"optimizer_type={self.optimizer_type!r}; expected one of {PRESET_OPTIMIZER_TYPES}"
            )
        if self.recon_head_dtype not in RECON_HEAD_DTYPES:
            raise ValueError(
                f"recon_head_dtype={self.recon_head_dtype!r}; expected one of {RECON_HEAD_DTYPES}"
            )
        for field_name in ("recon_vae_latent_channels", "recon_vae_downsample", "recon_image_size"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"{field_name}={getattr(self, field_name)}; expected >= 1")
        grid = self.recon_token_grid
        if grid < 1:
            raise ValueError(
                f"image_resolution={self.image_resolution}; expected at least the vision patch size "
                f"({self.vision_patch_size} px) per side"
            )
        grid_reason = (
            f"the image-token grid ({grid} = image_resolution {self.image_resolution[0]} // patch "
            f"{self.vision_patch_size})"
        )
        if self.recon_image_size % grid != 0:
            raise ValueError(f"recon_image_size={self.recon_image_size} must be a multiple of {grid_reason}")
        if self.recon_target == "vae" and self.recon_image_size % (grid * self.recon_vae_downsample) != 0:
            raise ValueError(
                f"recon_image_size={self.recon_image_size} must be a multiple of recon_vae_downsample="
                f"{self.recon_vae_downsample} x {grid_reason} = {grid * self.recon_vae_downsample}, so that "
                "every image token gets the same p x p latents"
            )
        depth = self.language_depth
        if not -depth <= self.recon_layer < depth:
            raise ValueError(
                f"recon_layer={self.recon_layer} is outside the {depth} layers of "
                f"{self.paligemma_variant!r}; expected an index in [{-depth}, {depth - 1}]"
            )

    def _base_post_init(self) -> None:
        """The base's post-init (LeRobot's device and AMP set-up, then the base's checks), `tiny` included.

        PI0Config.__post_init__ (and PI05Config's alike) runs LeRobot's post-init and then refuses every
        variant but its two, with no step in between to override. So the base's other checks (n_action_steps,
        dtype) are made here for every variant, and for `tiny` LeRobot's post-init runs without the base's.
        """
        if self.n_action_steps > self.chunk_size:
            raise ValueError(
                f"n_action_steps={self.n_action_steps} cannot be greater than chunk_size={self.chunk_size}: "
                "a policy cannot execute more actions than it predicts"
            )
        if self.dtype not in BASE_DTYPES:
            raise ValueError(f"dtype={self.dtype!r}; expected one of {BASE_DTYPES}")
        if self.paligemma_variant == TINY:
            PreTrainedConfig.__post_init__(self)
        else:
            super().__post_init__()

    def _select_cameras(self) -> None:
        available = [camera_name(key) for key in self.input_features if key.startswith(f"{OBS_IMAGES}.")]
        unknown = [name for name in self.cameras if name not in available]
        if unknown or not self.cameras:
            raise ValueError(
                f"cameras={self.cameras}: {unknown or 'no camera'} not among the input cameras {available}; "
                "set --policy.cameras to names the dataset or env provides"
            )
        others = {k: v for k, v in self.input_features.items() if not k.startswith(f"{OBS_IMAGES}.")}
        chosen = {key: self.input_features[key] for key in (f"{OBS_IMAGES}.{name}" for name in self.cameras)}
        self.input_features = {**chosen, **others}

    def get_optimizer_preset(self):
        return optimizer_preset(self.optimizer_type, super().get_optimizer_preset())

    @property
    def language_depth(self) -> int:
        """Layers of the PaliGemma language model: the base's table (get_gemma_config) or TINY_LANGUAGE."""
        if self.paligemma_variant == TINY:
            return TINY_LANGUAGE["num_hidden_layers"]
        return self.base_gemma_config(self.paligemma_variant).depth

    @staticmethod
    def base_gemma_config(variant: str):
        """The base's Gemma sizes of `variant` (its modeling module's `get_gemma_config`)."""
        raise NotImplementedError

    @property
    def vision_patch_size(self) -> int:
        return vision_patch_size(self.paligemma_variant)

    @property
    def recon_token_grid(self) -> int:
        """Side of each camera's image-token grid: 224 px / patch 14 = 16 -> 256 tokens."""
        return self.image_resolution[0] // self.vision_patch_size

    @property
    def resolved_tokenizer_name(self) -> str:
        if self.tokenizer_name is not None:
            return self.tokenizer_name
        return TINY_TOKENIZER if self.paligemma_variant == TINY else PALIGEMMA_TOKENIZER

    @property
    def camera_keys(self) -> list[str]:
        """Real cameras the batch must hold (the base's `empty_camera_*` placeholders excluded)."""
        return [key for key in self.image_features if not key.startswith(f"{OBS_IMAGES}.empty_camera_")]

    @property
    def camera_names(self) -> list[str]:
        """`camera_keys` by name (`observation.images.<name>`): the names of gaze boxes, caches and logs."""
        return [camera_name(key) for key in self.camera_keys]

    def validate_features(self) -> None:
        # Gaze boxes are training targets, not policy inputs: keep them out of input_features so they
        # are neither normalised nor required at inference (the dataset still delivers them).
        for key in [key for key in self.input_features if is_gaze_box_key(key)]:
            del self.input_features[key]
        if self.cameras is not None:
            self._select_cameras()
        super().validate_features()
        for key, limit_name in ((OBS_STATE, "max_state_dim"), (ACTION, "max_action_dim")):
            features = self.input_features if key == OBS_STATE else self.output_features
            limit = getattr(self, limit_name)
            if key in features and features[key].shape[0] > limit:
                raise ValueError(
                    f"{key} has {features[key].shape[0]} dimensions but {limit_name}={limit}; "
                    f"raise --policy.{limit_name} to at least {features[key].shape[0]}"
                )
        if not self.camera_keys:
            raise ValueError(
                "ReconVLA needs at least one camera: no observation.images.* feature among the inputs "
                f"{sorted(self.input_features)}"
            )


@PreTrainedConfig.register_subclass("reconvla")
@dataclass
class ReconVLAConfig(ReconSettings, PI0Config):
    """pi0 + ReconVLA's reconstruction head (`--policy.type=reconvla`)."""

    base_type: ClassVar[str] = "pi0"

    @staticmethod
    def base_gemma_config(variant: str):
        # Imported here: it imports transformers, which the plugin's registration does without.
        from lerobot.policies.pi0.modeling_pi0 import get_gemma_config

        return get_gemma_config(variant)
