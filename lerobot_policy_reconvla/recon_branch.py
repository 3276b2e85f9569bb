# Builds on LeRobot's pi0 and pi05 (lerobot/policies/pi0/modeling_pi0.py, .../pi05/modeling_pi05.py),
# Copyright 2025 Physical Intelligence and The HuggingFace Inc. team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""The recon branch, written once for every base: what ReconVLA adds to a PaliGemma-based flow-matching VLA.

`ReconCoreMixin` goes before the base's core model (`PI0Pytorch`, `PI05Pytorch`): it builds the head, runs
the base's training forward unchanged while a forward hook keeps the prefix hidden states of layer
`recon_layer`, and feeds the image positions of those states to `ReconDiT`, which must denoise the
(VAE-encoded) gaze crop of every camera. `ReconPolicyMixin` goes before the base's policy (`PI0Policy`,
`PI05Policy`): the loss fusion, the gaze boxes and their shift, the targets (or the latent cache), the
optimizer groups, LoRA targets, the model card and checked loading. At inference nothing of the head runs:
`select_action` / `predict_action_chunk` are the base's.

What stays with each base is one class attribute per class (`base_core`, `core_class`) and the one method
whose inputs differ: `_base_model_inputs` (pi0 passes the state to its core; pi05 has it in the prompt).
pi0 and pi05 build their prefix (images, then the prompt) and their PaliGemma the same way, which is what
the branch reads.
"""

import builtins
import logging
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import ClassVar

import torch
from einops import rearrange
from lerobot.configs import PreTrainedConfig
from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d
from lerobot.policies.pretrained import PreTrainedPolicy, T
from lerobot.utils.constants import ACTION, OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS
from lerobot.utils.import_utils import require_package
from safetensors.torch import load_file
from torch import Tensor, nn

from .configuration_reconvla import ReconSettings
from .gaze_box import batch_gaze_boxes, check_gaze_box_stats, is_gaze_box_key, whole_image_if_absent
from .loading import (
    SAFETENSORS_FILE,
    check_safetensors_file,
    checkpoint_config_fields,
    load_checked,
    parse_policy_config,
    resolve_file,
)
from .recon.dit import ReconDiT
from .recon.head import ReconHead, make_train_scheduler
from .recon.pictures import log_to_active_wandb_run
from .recon.target import ReconTarget, load_frozen_vae
from .tiny import init_base_core
from .training.augment import random_shift
from .training.latent_cache_reader import LatentCache, LatentCacheError, crop_signature
from .training.video_check import check_video_files

logger = logging.getLogger(__name__)

RECON_HEAD_PREFIX = "model.recon_head."


GIB = 2**30


def cuda_memory_metrics(device: torch.device) -> dict[str, float]:
    """{'gpu_mem_alloc_gb', 'gpu_mem_fwd_peak_gb'} in GiB on a CUDA device; {} on any other device.

    LeRobot's `lerobot-train` resets CUDA's peak-memory counter at the start of every step and logs the
    whole step's peak as `mem_gb`. The policy adds, from the end of its forward pass, what is allocated
    there (weights, gradients still held, optimizer state, the activations saved for backward) and the
    forward pass's own peak: the two numbers that tell a user whether a larger batch would fit. The
    training loop logs every float of the policy's output dict, so these need no change to LeRobot.
    """
    if device.type != "cuda":
        return {}
    return {
        "gpu_mem_alloc_gb": torch.cuda.memory_allocated(device) / GIB,
        "gpu_mem_fwd_peak_gb": torch.cuda.max_memory_allocated(device) / GIB,
    }


@contextmanager
def capture_prefix_hidden_states(language_model: nn.Module, layer: int):
    """Collects the prefix (PaliGemma-stream) hidden states leaving decoder layer `layer`.

    The bases' joint forward calls each layer's norms as modules, so forward hooks see the residual stream
    without touching their code: the output of layer i is the input of layer i+1's `input_layernorm`,
    and the last layer's output is taken after the final norm (as `hidden_states[-1]` in transformers).
    Hooks exist only inside this context: inference never builds the recon branch.

    Yields a list that holds one (B, L_prefix, D) tensor after the forward.
    """
    depth = len(language_model.layers)
    layer = layer % depth
    captured: list[Tensor] = []
    if layer == depth - 1:
        handle = language_model.norm.register_forward_hook(lambda _m, _args, out: captured.append(out[0]))
    else:
        handle = language_model.layers[layer + 1].input_layernorm.register_forward_pre_hook(
            lambda _m, args: captured.append(args[0])
        )
    try:
        yield captured
    finally:
        handle.remove()


def make_recon_target(config: ReconSettings) -> ReconTarget:
    """The policy's target encoder (the VAE is loaded when first needed)."""
    vae_loader = partial(
        load_frozen_vae,
        config.recon_vae,
        config.recon_vae_latent_channels,
        config.recon_vae_downsample,
        subfolder=config.recon_vae_subfolder,
    )
    return ReconTarget(
        mode=config.recon_target,
        image_size=config.recon_image_size,
        grid_size=config.recon_token_grid,
        vae_loader=vae_loader if config.recon_target == "vae" else None,
        vae_downsample=config.recon_vae_downsample,
        vae_latent_channels=config.recon_vae_latent_channels,
        sample_posterior=config.recon_vae_sample_posterior,
        pad_to_square=config.recon_pad_to_square,
    )


class ReconCoreMixin(nn.Module):
    """The base's core model + `recon_head` (a ReconDiT), saved under `model.` like every base weight.

    Listed before the base's core class; `base_core` names it.
    """

    base_core: ClassVar[type[nn.Module]]

    def __init__(self, config: ReconSettings, rtc_processor=None):
        # The base's constructor (tiny.py: for the `tiny` variant too).
        init_base_core(self, self.base_core, config, rtc_processor)
        language_width = self.paligemma_with_expert.paligemma.config.text_config.hidden_size
        target = make_recon_target(config)
        dit = ReconDiT(
            in_channels=target.token_channels,
            cond_dim=language_width,
            grid_size=config.recon_token_grid,
            width=config.recon_dit_width,
            depth=config.recon_dit_depth,
            num_heads=config.recon_dit_heads,
            language_dim=language_width if config.recon_condition_on_language else None,
        )
        self.recon_head = ReconHead(
            dit,
            target,
            make_train_scheduler(config.recon_num_train_timesteps),
            config.recon_timestep_repeats,
            compute_dtype=config.recon_head_dtype,
        )

    def gradient_checkpointing_enable(self):
        """The base's layers, and the head's DiT blocks too (`--policy.gradient_checkpointing=true`)."""
        super().gradient_checkpointing_enable()
        self.recon_head.dit.enable_gradient_checkpointing()

    def gradient_checkpointing_disable(self):
        super().gradient_checkpointing_disable()
        self.recon_head.dit.disable_gradient_checkpointing()

    def forward(
        self,
        *base_inputs,
        recon_targets: Tensor | None = None,
        recon_noise: Tensor | None = None,
        recon_timesteps: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """The base's training forward plus the reconstruction loss.

        Args:
            base_inputs: the base core's forward inputs, unchanged: (images, img_masks, lang_tokens,
                lang_masks, state, actions, noise, time) for pi0, the same without `state` for pi05. Images
                in [-1, 1], the real cameras first; actions and noise (B, chunk, A_max); time (B,).
            recon_targets: ((B K), T, C) target tokens of the K real cameras, batch-major, in the order of
                `images` (`ReconPolicyMixin.recon_targets`: computed without gradient, outside this forward,
                so that a compiled forward never holds the frozen VAE); None skips the recon branch.
            recon_noise, recon_timesteps: fix the head's DDPM randomness (tests).
        Returns:
            action losses (B, chunk, max_action_dim) and the per-sample recon loss (B,) or None.
        """
        if recon_targets is None:
            return super().forward(*base_inputs), None

        images, lang_masks = base_inputs[0], base_inputs[3]  # both bases: images, masks, tokens, masks, ...
        language_model = self.paligemma_with_expert.paligemma.model.language_model
        with capture_prefix_hidden_states(language_model, self.config.recon_layer) as captured:
            action_losses = super().forward(*base_inputs)
        if len(captured) != 1:
            raise RuntimeError(f"expected one prefix hidden-state capture per forward, got {len(captured)}")
        prefix_hidden = captured[0]  # (B, num_image_slots * T + L_lang, D)

        num_cameras = recon_targets.shape[0] // images[0].shape[0]
        cond_tokens, language_embedding = self._recon_condition(prefix_hidden, lang_masks, num_cameras)
        # The head computes in recon_head_dtype (fp32 as the official, whatever the backbone's dtype);
        # its loss is reduced in fp32.
        recon_losses = self.recon_head(
            cond_tokens, recon_targets, num_cameras, language_embedding, recon_noise, recon_timesteps
        )
        return action_losses, recon_losses

    def _recon_condition(
        self, prefix_hidden: Tensor, lang_masks: Tensor, num_cameras: int
    ) -> tuple[Tensor, Tensor | None]:
        """Splits the prefix hidden states into the head's per-camera condition (and pooled prompt).

        prefix_hidden: (B, num_image_slots * T + L_lang, D) -> ((B K), T, D) and (B, D) or None.
        """
        tokens_per_camera = self.config.recon_token_grid**2
        # Real cameras come first in the base's prefix (missing/empty cameras are appended after them).
        image_hidden = prefix_hidden[:, : num_cameras * tokens_per_camera]
        cond_tokens = rearrange(image_hidden, "b (k t) d -> (b k) t d", k=num_cameras)  # ((B K), T, D)
        if not self.config.recon_condition_on_language:
            return cond_tokens, None
        lang_hidden = prefix_hidden[:, -lang_masks.shape[1] :]  # (B, L_lang, D)
        weights = lang_masks.to(lang_hidden.dtype)[..., None]  # (B, L_lang, 1)
        language_embedding = (lang_hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, D)
        return cond_tokens, language_embedding

    @torch.no_grad()
    def prefix_recon_condition(
        self,
        images: list[Tensor],
        img_masks: list[Tensor],
        lang_tokens: Tensor,
        lang_masks: Tensor,
        num_cameras: int,
    ) -> tuple[Tensor, Tensor | None]:
        """The head's condition from a prefix-only forward (as at inference: no action tokens needed).

        The prefix never attends to the action tokens, so its hidden states equal the training forward's.
        """
        prefix_embs, prefix_pad_masks, prefix_att_masks = self.embed_prefix(
            images, img_masks, lang_tokens, lang_masks
        )
        att_2d = prepare_attention_masks_4d(make_att_2d_masks(prefix_pad_masks, prefix_att_masks))
        position_ids = torch.cumsum(prefix_pad_masks, dim=1) - 1
        language_model = self.paligemma_with_expert.paligemma.model.language_model
        with capture_prefix_hidden_states(language_model, self.config.recon_layer) as captured:
            self.paligemma_with_expert.forward(
                attention_mask=att_2d,
                position_ids=position_ids,
                past_key_values=None,
                inputs_embeds=[prefix_embs, None],
                use_cache=False,
            )
        return self._recon_condition(captured[0], lang_masks, num_cameras)


# Said once when a training batch has gaze boxes.
GAZE_BOXES_AND_IMAGE_TRANSFORMS = (
    "The batch has gaze boxes: LeRobot's --dataset.image_transforms transform each image without its box, "
    "so they must leave every pixel in place (photometric transforms such as ColorJitter or "
    "SharpnessJitter). A transform that moves pixels (RandomAffine, in LeRobot's default set, crops, flips, "
    "rotations) makes the reconstruction target miss the object. The policy cannot see these transforms to "
    "check them. For a geometric augmentation use --policy.image_shift_pixels, which moves each box with "
    "its image."
)

# Seeds the noise and timesteps of a held-out loss (eval mode), so evaluations are comparable.
EVAL_NOISE_SEED = 0


class ReconPolicyMixin:
    """The base's policy + ReconVLA's reconstruction loss; inference is the base's (the head is never called).

    Listed before the base's policy class; `core_class` names the core model it builds (a ReconCoreMixin).
    """

    core_class: ClassVar[type[nn.Module]]
    # FSDP2's wrap units where LeRobot shards (its next release; 0.6.1 does not read it). Only modules whose
    # own forward runs: the bases' joint layers call their attention projections and norms directly, never
    # the decoder layer's forward, so a GemmaDecoderLayer unit would never be gathered (docs/training.md).
    _fsdp_wrap_modules: ClassVar[list[str]] = ["SiglipEncoderLayer", "GemmaMLP", "ReconDiTBlock"]

    def __init__(self, config: ReconSettings, **kwargs):
        check_gaze_box_stats(kwargs.get("dataset_stats"))  # lerobot-train passes meta/stats.json
        check_video_files(kwargs.get("dataset_meta"))  # and the dataset's metadata: its videos decode
        if kwargs.get("dataset_meta") is not None and config.push_to_hub:
            from .deploy.model_card import lerobot_asks_the_policy_for_its_card

            if not lerobot_asks_the_policy_for_its_card():
                logger.warning(
                    "This LeRobot pushes its own generic model card (no policy hook): after the push, run "
                    "reconvla-model-card --checkpoint=<output_dir>/checkpoints/last/pretrained_model "
                    "--push_to=%s for ReconVLA's (method, base model, recon settings, gaze boxes)",
                    config.repo_id,
                )
        # The base policy's construction statements (PI0Policy.__init__ and PI05Policy.__init__ are the same
        # ones), with ReconVLA's core model in the base's place.
        require_package("transformers", extra="pi")
        PreTrainedPolicy.__init__(self, config)
        config.validate_features()
        self.config = config
        self.init_rtc_processor()
        self.model = self.core_class(config, rtc_processor=self.rtc_processor)
        if config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.model.to(config.device)
        self.reset()
        self._said_about_gaze_boxes: set[str] = set()  # what batch_gaze_boxes has warned about
        self._checked_training_setup = False
        self._training_steps = 0  # training forwards so far: the step of logged reconstructions
        self._latent_cache: LatentCache | None = None  # opened at the first training step that needs it

    def _base_model_inputs(
        self,
        batch: dict[str, Tensor],
        images: list[Tensor],
        img_masks: list[Tensor],
        lang_tokens: Tensor,
        lang_masks: Tensor,
        actions: Tensor,
    ) -> tuple:
        """The base core's forward inputs before its noise and time (see `ReconCoreMixin.forward`)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------------
    # Input checks (before any compute, with the field and what was expected)

    def _check_cameras(self, batch: dict[str, Tensor]) -> None:
        missing = [key for key in self.config.camera_keys if key not in batch]
        if missing:
            raise KeyError(
                f"batch lacks camera(s) {missing}; the policy was configured with cameras "
                f"{self.config.camera_keys}. Map differently named cameras with --rename_map."
            )
        for key in self.config.camera_keys:
            expected = tuple(self.config.image_features[key].shape)
            got = tuple(batch[key].shape[1:])
            if got != expected:
                raise ValueError(
                    f"{key} has shape {got} per sample, expected {expected} (C, H, W) as in the policy's "
                    "input_features"
                )

    def _preprocess_images(self, batch: dict[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        self._check_cameras(batch)
        return super()._preprocess_images(batch)

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor]) -> Tensor:
        # The base's select_action calls self.eval() on every call, which walks every module (the idle recon
        # head's too); a queued action needs none of that.
        if self._action_queue and not self.training and not self._rtc_enabled():
            return self._action_queue.popleft()
        return super().select_action(batch)

    def _warn_about_training_setup_once(self, batch: dict[str, Tensor]) -> None:
        """Settings that train without error but not as ReconVLA means, said once when training starts."""
        if self._checked_training_setup:
            return
        self._checked_training_setup = True
        if any(is_gaze_box_key(key) for key in batch):
            # LeRobot gives a policy no view of the dataset's transforms: this can be said, not checked.
            logger.warning(GAZE_BOXES_AND_IMAGE_TRANSFORMS)
        if self.config.train_expert_only:
            logger.warning(
                "train_expert_only=true with recon_weight=%s: the whole VLM is frozen, so the reconstruction "
                "loss trains only the recon head and never reaches the backbone it is meant to shape. Set "
                "--policy.recon_weight=0 to skip the head, or --policy.train_expert_only=false.",
                self.config.recon_weight,
            )
        if self.config.recon_condition_on_language:
            logger.warning(
                "recon_condition_on_language=true: the recon head also sees a pooled embedding of the "
                "prompt, which ReconVLA's head does not; it may then read the target from the prompt instead "
                "of making the visual tokens carry it."
            )

    def gaze_boxes(self, batch: dict[str, Tensor]) -> Tensor:
        """The batch's gaze boxes, checked, as (B, K, 4) in camera order: valid boxes or the absent marker."""
        return batch_gaze_boxes(batch, self.config.camera_names, self._said_about_gaze_boxes)

    # ----------------------------------------------------------------------------------------------
    # Training

    def forward(
        self,
        batch: dict[str, Tensor],
        reduction: str = "mean",
        noise: Tensor | None = None,
        time: Tensor | None = None,
        recon_noise: Tensor | None = None,
        recon_timesteps: Tensor | None = None,
    ) -> tuple[Tensor, dict]:
        """loss = L_action + recon_weight * L_recon.

        Returns the loss (scalar, or (B,) with reduction="none") and {"action_loss", "recon_loss",
        "loss"} as floats. Steps marked in `action_is_pad` (past an episode's end) do not count.

        In eval mode (lerobot-train's held-out `eval_loss`, `--dataset.eval_split` with `--eval_steps`) the
        noise and timesteps not given are drawn from a fixed seed, so a batch scores the same at every
        evaluation and `eval_loss` moves only when the weights do; the global RNG is left as it was.
        """
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction={reduction!r}; expected 'mean' or 'none'")
        if self.training:
            self._training_steps += 1
            every = self.config.recon_log_images_freq
            if every and self._training_steps % every == 0:
                log_to_active_wandb_run(self, batch, self._training_steps)
            return self._loss(batch, reduction, noise, time, recon_noise, recon_timesteps)
        device = next(self.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(EVAL_NOISE_SEED)
            return self._loss(batch, reduction, noise, time, recon_noise, recon_timesteps)

    def _loss(
        self,
        batch: dict[str, Tensor],
        reduction: str,
        noise: Tensor | None,
        time: Tensor | None,
        recon_noise: Tensor | None,
        recon_timesteps: Tensor | None,
    ) -> tuple[Tensor, dict]:
        boxes = None
        if self.config.recon_weight > 0:
            self._warn_about_training_setup_once(batch)
            boxes = self.gaze_boxes(batch)  # (B, K, 4), checked before a shift could hide a malformed box
        if self.training and self.config.image_shift_pixels > 0:
            batch, boxes = self._shifted(batch, boxes)
        images, img_masks = self._preprocess_images(batch)
        lang_tokens, lang_masks = batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK]
        actions = self.prepare_action(batch)
        recon_targets = None if boxes is None else self.recon_targets(batch, boxes)  # ((B K), T, C)

        if noise is None:
            noise = self.model.sample_noise(actions.shape, actions.device)  # (B, chunk, A_max)
        if time is None:
            time = self.model.sample_time(actions.shape[0], actions.device)  # (B,)
        action_losses, recon_losses = self.model(
            *self._base_model_inputs(batch, images, img_masks, lang_tokens, lang_masks, actions),
            noise,
            time,
            recon_targets=recon_targets,
            recon_noise=recon_noise,
            recon_timesteps=recon_timesteps,
        )

        action_dim = self.config.output_features[ACTION].shape[0]
        action_losses = action_losses[:, :, :action_dim]  # (B, chunk, A)
        valid = torch.ones(action_losses.shape[:2], device=action_losses.device)
        if "action_is_pad" in batch:
            valid = (~batch["action_is_pad"].to(action_losses.device)).float()  # (B, chunk)
        per_sample_action = (action_losses.mean(-1) * valid).sum(1) / valid.sum(1).clamp(min=1.0)  # (B,)
        if recon_losses is None:
            recon_losses = torch.zeros_like(per_sample_action)
        per_sample = per_sample_action + self.config.recon_weight * recon_losses  # (B,)

        loss_dict = {
            "action_loss": per_sample_action.mean().item(),
            "recon_loss": recon_losses.mean().item(),
        }
        loss_dict.update(cuda_memory_metrics(per_sample.device))  # GiB, CUDA only
        if reduction == "none":
            loss_dict["loss"] = per_sample.mean().item()
            return per_sample, loss_dict
        # Average the action loss over valid steps of the whole batch, as the base averages over all steps.
        action_loss = (action_losses.mean(-1) * valid).sum() / valid.sum().clamp(min=1.0)
        loss = action_loss + self.config.recon_weight * recon_losses.mean()
        loss_dict["action_loss"] = action_loss.item()
        loss_dict["loss"] = loss.item()
        return loss, loss_dict

    def _shifted(
        self, batch: dict[str, Tensor], boxes: Tensor | None
    ) -> tuple[dict[str, Tensor], Tensor | None]:
        """The batch with every camera randomly shifted, and its (B, K, 4) gaze boxes moved along
        (`image_shift_pixels`, training/augment.py)."""
        keys = self.config.camera_keys
        per_camera = [None] * len(keys) if boxes is None else list(boxes.unbind(1))  # K x (B, 4)
        images, per_camera = random_shift(
            [batch[key] for key in keys], per_camera, self.config.image_shift_pixels
        )
        shifted = {**batch, **dict(zip(keys, images, strict=True))}
        return shifted, None if boxes is None else torch.stack(per_camera, dim=1)

    @torch.no_grad()
    def recon_targets(self, batch: dict[str, Tensor], boxes: Tensor) -> Tensor:
        """The head's targets for a batch: each camera's gaze crop through the frozen VAE (or as pixels), or
        the stored posteriors of `recon_latent_cache`, sampled the same way.

        Computed here, outside the core model's forward: under `compile_model=true` that forward is compiled,
        and dynamo can neither load the VAE lazily nor draw its posterior sample with symbolic shapes.

        Args:
            boxes: (B, K, 4) the batch's gaze boxes (`gaze_boxes`); the whole image where absent.
        Returns:
            ((B K), T, C) fp32 target tokens, batch-major.
        """
        images = [batch[key] for key in self.config.camera_keys]  # K x (B, 3, H_k, W_k) in [0, 1]
        crop_boxes = list(whole_image_if_absent(boxes).unbind(1))  # K x (B, 4)
        target = self.model.recon_head.target
        if not self.config.recon_latent_cache:
            return target(images, crop_boxes)
        cameras = self.config.camera_names
        if self._latent_cache is None:
            cache = LatentCache(self.config.recon_latent_cache)
            cache.check_fits(self.config, cameras)
            self._latent_cache = cache
        if "index" not in batch:
            raise LatentCacheError(
                "recon_latent_cache needs each frame's dataset `index` in the batch (LeRobotDataset "
                "provides it)"
            )
        signature = crop_signature(target, images, crop_boxes)
        parameters = self._latent_cache.posteriors(batch["index"], cameras, crop_boxes, signature)
        return target.tokens_from_posterior(parameters, self._latent_cache.vae_config)

    @torch.no_grad()
    def reconstruct(
        self,
        batch: dict[str, Tensor],
        num_inference_steps: int = 50,
        generator: torch.Generator | None = None,
    ) -> dict[str, dict[str, Tensor]]:
        """What the head makes of the policy's visual tokens, per camera (for looking, not training).

        Returns {camera: {"image": (B, 3, H, W), "box": (B, 4), "target": (B, 3, S, S),
        "reconstruction": (B, 3, S, S)}}, images in [0, 1]; reconstructions are sampled with
        `num_inference_steps` ancestral DDPM steps of the head's schedule.
        """
        images, img_masks = self._preprocess_images(batch)
        lang_tokens, lang_masks = batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK]
        camera_images = [batch[key] for key in self.config.camera_keys]
        crop_boxes = list(whole_image_if_absent(self.gaze_boxes(batch)).unbind(1))  # K x (B, 4)
        num_cameras = len(camera_images)
        cond_tokens, language_embedding = self.model.prefix_recon_condition(
            images, img_masks, lang_tokens, lang_masks, num_cameras
        )
        if language_embedding is not None:
            language_embedding = language_embedding.repeat_interleave(num_cameras, dim=0)  # ((B K), D)
        head = self.model.recon_head
        target = head.target
        sampled = head.sample(cond_tokens, num_inference_steps, language_embedding, generator)
        reconstructions = rearrange(
            target.tokens_to_images(sampled), "(b k) c h w -> k b c h w", k=num_cameras
        )
        targets = rearrange(
            target.tokens_to_images(target(camera_images, crop_boxes)),
            "(b k) c h w -> k b c h w",
            k=num_cameras,
        )
        return {
            camera: {
                "image": image,
                "box": box,
                "target": targets[k],
                "reconstruction": reconstructions[k],
            }
            for k, (camera, image, box) in enumerate(
                zip(self.config.camera_names, camera_images, crop_boxes, strict=True)
            )
        }

    def get_optim_params(self) -> list[dict]:
        """Two groups: the backbone at the configured lr, the recon head at lr * recon_lr_scale."""
        backbone, head = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (head if ".recon_head." in f".{name}" else backbone).append(param)
        trainable = [p for p in self.parameters() if p.requires_grad]
        grouped = {id(p) for p in backbone} | {id(p) for p in head}
        if len(grouped) != len(backbone) + len(head) or grouped != {id(p) for p in trainable}:
            raise RuntimeError(
                "optimizer parameter groups do not cover every trainable parameter exactly once"
            )
        groups = [{"params": backbone}]
        if head:
            groups.append({"params": head, "lr": self.config.optimizer_lr * self.config.recon_lr_scale})
        return groups

    def _get_default_peft_targets(self) -> dict[str, any]:
        """LoRA on PaliGemma's attention projections and the base's own targets (its expert's attention and
        projections); the DiT trains in full."""
        base_targets = super()._get_default_peft_targets()["target_modules"]
        paligemma_attention = r".*\.paligemma\..*\.language_model\..*\.self_attn\.(q|k|v|o)_proj"
        return {
            "target_modules": rf"({paligemma_attention}|{base_targets})",
            # A full trainable copy of the head, saved with the adapter.
            "modules_to_save": ["recon_head.dit"],
        }

    def generate_model_card(self, dataset_repo_id, model_type, license, tags, cfg=None, dataset_meta=None):
        """ReconVLA's Hub card (base model, recon settings, gaze boxes, eval commands): `model_card.py`."""
        from .deploy.model_card import reconvla_model_card

        return reconvla_model_card(
            self.config, dataset_repo_id, license, tags, cfg=cfg, dataset_meta=dataset_meta
        )

    # ----------------------------------------------------------------------------------------------
    # Loading

    @classmethod
    def from_pretrained(
        cls: builtins.type[T],
        pretrained_name_or_path: str | Path,
        *,
        config: PreTrainedConfig | None = None,
        force_download: bool = False,
        resume_download: bool | None = None,
        proxies: dict | None = None,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        **kwargs,
    ) -> T:
        """Loads a checkpoint of this policy type exactly, or one of its base (`pi0` for `reconvla`, `pi05`
        for `reconvla_pi05`) with a fresh recon head.

        A base checkpoint must supply every base weight; only `model.recon_head.*`
        may be missing, and it starts fresh (logged). Any other missing, unexpected or misshapen key is
        an error: this never returns a silently random model (so there is no `strict` switch).
        `pretrained_name_or_path` is a local directory or a Hub repo id ("owner/name").
        """
        hub_kwargs = dict(
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            proxies=proxies,
            token=token,
            local_files_only=local_files_only,
        )
        config_class = cls.config_class
        from_base = config_class.base_type
        source_type, source_fields = checkpoint_config_fields(
            pretrained_name_or_path, (config_class.get_choice_name(config_class), from_base), **hub_kwargs
        )
        if config is None:
            config = parse_policy_config(config_class, source_fields)
        if not isinstance(config, config_class):
            raise TypeError(f"config is a {type(config).__name__}, expected {config_class.__name__}")

        # Checked before the model is built: a truncated or missing file fails in one line naming it.
        model_file = check_safetensors_file(
            resolve_file(pretrained_name_or_path, SAFETENSORS_FILE, **hub_kwargs)
        )
        policy = cls(config, **kwargs)
        state_dict = load_file(model_file)
        if source_type == from_base:
            state_dict = policy._fix_pytorch_state_dict_keys(state_dict, config)  # the base's own key fixes
            state_dict = {k if k.startswith("model.") else f"model.{k}": v for k, v in state_dict.items()}
        load_checked(
            policy,
            state_dict,
            pretrained_name_or_path,
            fresh_prefix=RECON_HEAD_PREFIX if source_type == from_base else None,
        )
        policy.to(config.device)
        policy.eval()
        return policy
