# Builds on LeRobot's pi0 configuration (lerobot/policies/pi0/configuration_pi0.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""Configuration of ReconVLA: pi0's config plus the training-only reconstruction head.

Every pi0 field keeps its meaning (see `lerobot.policies.pi0.configuration_pi0.PI0Config`); the
`recon_*` fields configure the diffusion head that reconstructs each camera's gaze region from the
backbone's visual hidden states (ReconVLA, AAAI 2026, https://arxiv.org/abs/2508.10333).
"""

from dataclasses import dataclass
from pathlib import Path

from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

from .optim import PRESET_OPTIMIZER_TYPES, optimizer_preset

# Backbone variants: pi0's two plus `tiny` (a few M parameters besides the vocabulary), built by the
# same code path (see modeling_reconvla.BACKBONE_VARIANTS) so CPU tests run the real model.
BACKBONE_VARIANTS = ("gemma_300m", "gemma_2b", "tiny")
RECON_TARGETS = ("vae", "pixels")
PALIGEMMA_TOKENIZER = "google/paligemma-3b-pt-224"  # pi0's processor hard-codes the same one
# The tokenizer shipped for the tiny variant: a name, not a path, so saved processors stay portable.
TINY_TOKENIZER = "lerobot_policy_reconvla/tiny_tokenizer"
TINY_TOKENIZER_DIR = Path(__file__).parent / "assets" / "tiny_tokenizer"
# Training-only batch keys: [x0, y0, x1, y1] of the gaze region, normalised to [0, 1].
OBS_GAZE_BOX = "observation.gaze_box"


@PreTrainedConfig.register_subclass("reconvla")
@dataclass
class ReconVLAConfig(PI0Config):
    # Tokenizer of the prompt. None: PaliGemma's for gemma_* variants, the shipped one for `tiny`.
    # Any local directory or Hub repo of a Hugging Face tokenizer works.
    tokenizer_name: str | None = None
    # Cameras the policy looks at, by name (observation.images.<name>), in prefix order. None: every
    # camera of the dataset / env. Lets a 4-camera static ALOHA dataset train on any three.
    cameras: list[str] | None = None

    # --- Reconstruction head (training only; never built into the inference graph) ---
    # loss = L_action + recon_weight * L_recon (ReconVLA: `loss = loss + vm_loss`, i.e. 1.0).
    recon_weight: float = 1.0
    # Which backbone layer's hidden states at image positions condition the head. Python indexing
    # over the language-model layers: -1 (default) is the last one, taken after the final norm.
    recon_layer: int = -1
    # `vae`: reconstruct latents of a frozen diffusers AutoencoderKL (ReconVLA); `pixels`: reconstruct
    # the patchified gaze crop itself (no VAE to load; the tiny preset uses it).
    recon_target: str = "vae"
    # Local path or Hub repo of a diffusers AutoencoderKL (frozen, not saved with the checkpoint,
    # loaded at the first training step only). The VAE of DiT / Stable Diffusion by default.
    recon_vae: str | None = "stabilityai/sd-vae-ft-ema"
    # Layout of that VAE, known without loading it (so inference never touches it); checked at load.
    recon_vae_latent_channels: int = 4
    recon_vae_downsample: int = 8
    # Side (px) the gaze crop is resized to before encoding. 128 px through an 8x VAE gives a 16x16
    # latent grid, one latent per PaliGemma image token at 224 px.
    recon_image_size: int = 128
    # ReconDiT size; full size as ReconVLA's `denoiser_vit3x`: depth 3, width 1024, 16 heads.
    recon_dit_depth: int = 3
    recon_dit_width: int = 1024
    recon_dit_heads: int = 16
    # Timesteps drawn per sample and camera (ReconVLA repeats each target 4 times).
    recon_timestep_repeats: int = 4
    # DDPM training steps (cosine schedule, eps-prediction).
    recon_num_train_timesteps: int = 1000
    # Add a pooled embedding of the prompt's hidden states to every token's condition.
    recon_condition_on_language: bool = False
    # Learning-rate multiplier of the head's parameter group (the head starts from scratch).
    recon_lr_scale: float = 1.0
    # Optimizer of the training preset: pi0's `adamw`, or `adamw_8bit` (bitsandbytes, the `bnb` extra;
    # same hyperparameters and parameter groups, moments in 8 bits). See optim.py.
    optimizer_type: str = "adamw"

    def __post_init__(self):
        # PI0Config.__post_init__ rejects the `tiny` variant, so run the base checks and pi0's own
        # checks here, widened to our variants.
        PreTrainedConfig.__post_init__(self)
        if self.n_action_steps > self.chunk_size:
            raise ValueError(
                f"n_action_steps ({self.n_action_steps}) cannot be greater than chunk_size ({self.chunk_size})"
            )
        for field_name in ("paligemma_variant", "action_expert_variant"):
            if getattr(self, field_name) not in BACKBONE_VARIANTS:
                raise ValueError(
                    f"{field_name}={getattr(self, field_name)!r} is not a known variant; expected one of "
                    f"{BACKBONE_VARIANTS}"
                )
        if (self.paligemma_variant == "tiny") != (self.action_expert_variant == "tiny"):
            raise ValueError(
                "paligemma_variant and action_expert_variant must both be 'tiny' or both be gemma_*; got "
                f"{self.paligemma_variant!r} and {self.action_expert_variant!r} (their head dims must match)"
            )
        if self.dtype not in ("bfloat16", "float32"):
            raise ValueError(f"dtype={self.dtype!r}; expected 'bfloat16' or 'float32'")
        if self.image_resolution[0] != self.image_resolution[1]:
            raise ValueError(f"image_resolution={self.image_resolution}; PaliGemma expects a square image")
        if self.recon_target not in RECON_TARGETS:
            raise ValueError(f"recon_target={self.recon_target!r}; expected one of {RECON_TARGETS}")
        if self.recon_target == "vae" and not self.recon_vae:
            raise ValueError("recon_target='vae' needs recon_vae (a path or Hub repo of a diffusers AutoencoderKL)")
        if self.recon_weight < 0:
            raise ValueError(f"recon_weight={self.recon_weight}; expected >= 0 (0 disables the head's loss)")
        if self.recon_timestep_repeats < 1:
            raise ValueError(f"recon_timestep_repeats={self.recon_timestep_repeats}; expected >= 1")
        if self.recon_dit_depth < 1 or self.recon_dit_width < 1:
            raise ValueError(
                f"recon_dit_depth={self.recon_dit_depth}, recon_dit_width={self.recon_dit_width}; expected >= 1"
            )
        if self.recon_dit_width % self.recon_dit_heads != 0:
            raise ValueError(
                f"recon_dit_width={self.recon_dit_width} must be divisible by recon_dit_heads={self.recon_dit_heads}"
            )
        if self.recon_lr_scale <= 0:
            raise ValueError(f"recon_lr_scale={self.recon_lr_scale}; expected > 0")
        if self.optimizer_type not in PRESET_OPTIMIZER_TYPES:
            raise ValueError(f"optimizer_type={self.optimizer_type!r}; expected one of {PRESET_OPTIMIZER_TYPES}")
        if self.recon_image_size % self.recon_token_grid != 0:
            raise ValueError(
                f"recon_image_size={self.recon_image_size} must be a multiple of the image-token grid "
                f"({self.recon_token_grid} = image_resolution {self.image_resolution[0]} // patch 14)"
            )
        depth = 2 if self.paligemma_variant == "tiny" else 18
        if not -depth <= self.recon_layer < depth:
            raise ValueError(
                f"recon_layer={self.recon_layer} is outside the {depth} layers of {self.paligemma_variant!r}; "
                f"expected an index in [{-depth}, {depth - 1}]"
            )

    def _select_cameras(self) -> None:
        available = [key.removeprefix(f"{OBS_IMAGES}.") for key in self.input_features if key.startswith(f"{OBS_IMAGES}.")]
        unknown = [name for name in self.cameras if name not in available]
        if unknown or not self.cameras:
            raise ValueError(
                f"cameras={self.cameras}: {unknown or 'no camera'} not among the input cameras {available}; "
                "set --policy.cameras to names the dataset or env provides"
            )
        others = {k: v for k, v in self.input_features.items() if not k.startswith(f"{OBS_IMAGES}.")}
        chosen = {f"{OBS_IMAGES}.{name}": self.input_features[f"{OBS_IMAGES}.{name}"] for name in self.cameras}
        self.input_features = {**chosen, **others}

    def get_optimizer_preset(self):
        return optimizer_preset(self.optimizer_type, super().get_optimizer_preset())

    @property
    def recon_token_grid(self) -> int:
        """Side of each camera's image-token grid: 224 px / patch 14 = 16 -> 256 tokens."""
        return self.image_resolution[0] // 14

    @property
    def resolved_tokenizer_name(self) -> str:
        if self.tokenizer_name is not None:
            return self.tokenizer_name
        return TINY_TOKENIZER if self.paligemma_variant == "tiny" else PALIGEMMA_TOKENIZER

    @property
    def camera_keys(self) -> list[str]:
        """Real cameras the batch must hold (pi0's `empty_camera_*` placeholders excluded)."""
        return [key for key in self.image_features if not key.startswith(f"{OBS_IMAGES}.empty_camera_")]

    def validate_features(self) -> None:
        # Gaze boxes are training targets, not policy inputs: keep them out of input_features so they
        # are neither normalised nor required at inference (the dataset still delivers them).
        for key in [key for key in self.input_features if key.startswith(f"{OBS_GAZE_BOX}.")]:
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
