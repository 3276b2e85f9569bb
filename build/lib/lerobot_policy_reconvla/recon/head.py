"""The reconstruction head: DDPM noise on the gaze-region targets, ReconDiT predicts it (training only)."""

from contextlib import nullcontext

import torch
from diffusers import DDPMScheduler
from einops import rearrange, repeat
from torch import Tensor, nn

from .dit import ReconDiT
from .target import ReconTarget, autocast_available


def make_train_scheduler(num_train_timesteps: int) -> DDPMScheduler:
    """ReconVLA's schedule: DDPM, cosine (squaredcos_cap_v2), eps-prediction."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        clip_sample=False,
    )


HEAD_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class ReconHead(nn.Module):
    """L_recon = MSE(eps_hat, eps) on every camera's gaze-region tokens.

    Only the DiT is a submodule (it is trained and saved); the scheduler is a fixed schedule and the
    target encoder holds a frozen VAE that must stay out of the checkpoint.

    Args:
        compute_dtype: precision the DiT computes in, "float32" (ReconVLA: the head runs in fp32, whatever
            autocast region surrounds it) or "bfloat16" (autocast: fp32 parameters, bf16 matmuls; less
            activation memory). Targets, noise and the loss stay fp32 either way.
    """

    def __init__(
        self,
        dit: ReconDiT,
        target: ReconTarget,
        scheduler: DDPMScheduler,
        timestep_repeats: int,
        compute_dtype: str | torch.dtype = "float32",
    ):
        super().__init__()
        if isinstance(compute_dtype, torch.dtype):
            compute_dtype = str(compute_dtype).removeprefix("torch.")
        if compute_dtype not in HEAD_DTYPES:
            raise ValueError(f"recon_head_dtype={compute_dtype!r}; expected one of {sorted(HEAD_DTYPES)}")
        if timestep_repeats < 1:
            raise ValueError(f"recon_timestep_repeats={timestep_repeats}; expected >= 1")
        self.dit = dit
        self.target = target
        self.scheduler = scheduler
        self.timestep_repeats = timestep_repeats
        self.compute_dtype = HEAD_DTYPES[compute_dtype]

    def _precision(self, device: torch.device):
        """The DiT's autocast region: off for fp32 (also inside a caller's bf16 region), bf16 otherwise."""
        if not autocast_available(device.type):
            return nullcontext()
        if self.compute_dtype == torch.float32:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=self.compute_dtype)

    def forward(
        self,
        cond_tokens: Tensor,
        target_tokens: Tensor,
        num_cameras: int,
        language_embedding: Tensor | None = None,
        noise: Tensor | None = None,
        timesteps: Tensor | None = None,
    ) -> Tensor:
        """
        Args:
            cond_tokens: ((B K), T, D) backbone hidden states at each camera's image positions.
            target_tokens: ((B K), T, C) clean targets x_0 (no gradient).
            language_embedding: (B, D) pooled prompt hidden states, if the DiT takes one.
            noise: ((B K R), T, C), timesteps: ((B K R),) to fix the randomness (tests); drawn if None.
        Returns:
            (B,) per-sample loss, averaged over cameras, repeats, tokens and channels.
        """
        repeats = self.timestep_repeats
        dtype = self.dit_dtype
        x0 = repeat(target_tokens, "n t c -> (n r) t c", r=repeats)  # ((B K R), T, C)
        if language_embedding is not None:
            language_embedding = repeat(language_embedding.to(dtype), "b d -> (b k) d", k=num_cameras)
        if noise is None:
            noise = torch.randn_like(x0)
        if timesteps is None:
            timesteps = torch.randint(
                0, self.scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device
            )
        x0, noise = x0.float(), noise.float()  # the DDPM arithmetic and the loss in fp32
        noisy = self.scheduler.add_noise(x0, noise, timesteps)  # ((B K R), T, C)
        # R noise levels per target (ReconVLA repeats each sample 4x): cheap extra signal, since the
        # backbone forward is shared; the DiT projects each condition once and repeats it.
        with self._precision(noisy.device):
            eps_hat = self.dit(
                noisy.to(dtype), timesteps, cond_tokens.to(dtype), language_embedding, cond_repeats=repeats
            )
        per_target = (eps_hat.float() - noise).pow(2).mean(dim=(1, 2))  # ((B K R),)
        return rearrange(per_target, "(b k r) -> b (k r)", k=num_cameras, r=repeats).mean(dim=1)

    @property
    def dit_dtype(self) -> torch.dtype:
        # From a parameter: under peft the DiT is wrapped (modules_to_save) and has no `.dtype`.
        return next(self.dit.parameters()).dtype

    @torch.no_grad()
    def sample(
        self,
        cond_tokens: Tensor,
        num_inference_steps: int = 50,
        language_embedding: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Reconstructs target tokens from the condition by ancestral DDPM sampling on a shortened schedule
        (for looking, not training). Pixel targets are clipped to their [-1, 1] range on the way.

        Returns ((B K), T, C) tokens; `self.target.tokens_to_images` turns them into pictures.
        """
        scheduler = DDPMScheduler.from_config(self.scheduler.config, clip_sample=self.target.mode == "pixels")
        scheduler.set_timesteps(num_inference_steps)
        n, t = cond_tokens.shape[:2]
        dtype = self.dit_dtype
        cond = cond_tokens.to(dtype)
        x = torch.randn(
            (n, t, self.target.token_channels), generator=generator, device=cond.device, dtype=dtype
        )
        if language_embedding is not None:
            language_embedding = language_embedding.to(dtype)
        for step in scheduler.timesteps:
            timesteps = torch.full((n,), int(step), device=cond.device, dtype=torch.long)
            with self._precision(cond.device):
                eps = self.dit(x, timesteps, cond, language_embedding)
            x = scheduler.step(eps.to(dtype), step, x, generator=generator).prev_sample
        return x
