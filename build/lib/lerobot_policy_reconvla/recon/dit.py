# Built from diffusers' transformer blocks and modelled on its DiT/PixArt models
# (diffusers/models/transformers/), Copyright The HuggingFace Team, under the Apache License 2.0.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in the LICENSE file at the repository root.
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.

"""ReconDiT: the diffusion transformer that denoises gaze-region tokens, conditioned per token.

ReconVLA's denoiser (`denoiser_vit3x`) is a DiT whose adaLN condition differs for every token: token i
of camera k is conditioned on the backbone's hidden state at image position i of camera k (plus the
diffusion timestep). diffusers' `DiTTransformer2DModel` only takes one global condition, so this
model is assembled from diffusers' own blocks (`Attention`, `FeedForward`, `Timesteps`,
`TimestepEmbedding`, `get_2d_sincos_pos_embed`) with a per-token adaLN-Zero.

As ReconVLA's official head:
- condition c_i = emb(t) + Linear(SiLU(LayerNorm(h_i))), the LayerNorm without affine parameters, so
  any backbone layer (normed or not) reaches the head at the same scale;
- DiT's init: xavier-uniform linears with zero biases, N(0, 0.02) for the condition and timestep
  projections, and zeros for every adaLN modulation *and* the output projection, so the head's first
  prediction is exactly zero and no gradient reaches the backbone before the head has learnt something.

Knows nothing of pi0: it sees token grids and condition vectors only.
"""

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_2d_sincos_pos_embed
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN modulation; every argument is (N, T, D) here since the condition is per token.

    >>> modulate(torch.ones(1, 2, 3), torch.zeros(1, 2, 3), torch.ones(1, 2, 3)).flatten().tolist()
    [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    """
    return x * (1 + scale) + shift


class ReconDiTBlock(nn.Module):
    """Pre-norm transformer block whose norms are modulated per token; gates start at zero (identity)."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(query_dim=width, heads=num_heads, dim_head=width // num_heads, bias=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(width, mult=mlp_ratio, activation_fn="gelu-approximate")
        # shift/scale/gate for attention and for the MLP, from the per-token condition.
        self.ada_ln = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        # x, cond: (N, T, D)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.ada_ln(cond).chunk(6, dim=-1)
        x = x + gate_a * self.attn(modulate(self.norm1(x), shift_a, scale_a))
        x = x + gate_m * self.ff(modulate(self.norm2(x), shift_m, scale_m))
        return x


class ReconDiT(ModelMixin, ConfigMixin):
    """Predicts the noise added to a grid of target tokens, conditioned per token.

    Args:
        in_channels: channels of one target token (VAE latent channels x p x p, or 3 x p x p for pixels).
        cond_dim: width of the conditioning hidden states (the backbone's width).
        grid_size: side of the token grid (16 for PaliGemma at 224 px); fixes the 2D sin-cos positions.
        width, depth, num_heads: transformer size (ReconVLA: 1024, 3, 16).
        language_dim: width of an optional pooled language embedding added to every condition (not in
            ReconVLA's head).
    """

    # Each block is recomputed in backward after `enable_gradient_checkpointing()`.
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int,
        cond_dim: int,
        grid_size: int = 16,
        width: int = 1024,
        depth: int = 3,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        language_dim: int | None = None,
    ):
        super().__init__()
        sizes = {"in_channels": in_channels, "cond_dim": cond_dim, "grid_size": grid_size}
        sizes |= {"recon_dit_depth": depth, "recon_dit_heads": num_heads}
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"ReconDiT: {name}={value}; expected >= 1")
        # 2D sin-cos positions split the width in four (sin/cos of rows and of columns).
        if width < 4 or width % 4 or width % num_heads:
            raise ValueError(
                f"recon_dit_width={width} must be a positive multiple of 4 and of recon_dit_heads={num_heads}"
            )
        self.input_proj = nn.Linear(in_channels, width)
        # Fixed (not learned) positions, as in DiT: a buffer so it follows .to() but is not trained.
        # base_size=grid_size: integer grid coordinates at any grid size, as ReconVLA's own table.
        pos = get_2d_sincos_pos_embed(
            width, grid_size, base_size=grid_size, output_type="pt"
        ).float()  # (T, D)
        self.register_buffer("pos_embed", pos[None], persistent=False)  # (1, T, D)
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, width)
        # Parameter-free LayerNorm + SiLU before each projection into the condition (ReconVLA's `ln_pre`
        # and `z_embedder`).
        self.cond_norm = nn.LayerNorm(cond_dim, elementwise_affine=False)
        self.cond_proj = nn.Linear(cond_dim, width)
        if language_dim:
            self.language_norm = nn.LayerNorm(language_dim, elementwise_affine=False)
            self.language_proj = nn.Linear(language_dim, width)
        else:
            self.language_norm = self.language_proj = None
        self.blocks = nn.ModuleList(ReconDiTBlock(width, num_heads, mlp_ratio) for _ in range(depth))
        self.gradient_checkpointing = False
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_ln_out = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.output_proj = nn.Linear(width, in_channels)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # DiT's init, as ReconVLA uses it.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # timm's attention (ReconVLA's) holds q, k, v in one (3D, D) linear: draw them as that one matrix.
        for block in self.blocks:
            attn = block.attn
            fused = torch.empty(3 * attn.inner_dim, attn.query_dim, device=attn.to_q.weight.device)
            nn.init.xavier_uniform_(fused)
            for projection, weight in zip((attn.to_q, attn.to_k, attn.to_v), fused.chunk(3), strict=True):
                projection.weight.copy_(weight)
        for linear in (
            self.cond_proj,
            self.language_proj,
            self.time_embed.linear_1,
            self.time_embed.linear_2,
        ):
            if linear is not None:
                nn.init.normal_(linear.weight, std=0.02)
        # adaLN-Zero: every modulation starts at zero, so each block starts as the identity; with the
        # output projection at zero too, the first prediction is exactly zero and the backbone gets no
        # gradient from the head until the head itself has moved.
        for linear in (*(block.ada_ln[-1] for block in self.blocks), self.ada_ln_out[-1], self.output_proj):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def project_condition(self, cond_tokens: Tensor, language_embedding: Tensor | None = None) -> Tensor:
        """Per-token condition without the timestep: Linear(SiLU(LayerNorm(h_i))) (+ the same for language).

        Args:
            cond_tokens: (N, T, cond_dim) backbone hidden states.
            language_embedding: (N, language_dim) pooled prompt embedding, if configured.
        Returns:
            (N, T, width)
        """
        cond = self.cond_proj(F.silu(self.cond_norm(cond_tokens)))  # (N, T, D)
        if self.language_proj is not None:
            if language_embedding is None:
                raise ValueError("ReconDiT was built with language_dim but got no language_embedding")
            cond = cond + self.language_proj(F.silu(self.language_norm(language_embedding)))[:, None]
        return cond

    def forward(
        self,
        noisy_tokens: Tensor,
        timesteps: Tensor,
        cond_tokens: Tensor,
        language_embedding: Tensor | None = None,
        cond_repeats: int = 1,
    ) -> Tensor:
        """
        Args:
            noisy_tokens: (N, T, C) noisy target tokens x_t.
            timesteps: (N,) integer diffusion steps.
            cond_tokens: (N / cond_repeats, T, cond_dim) backbone hidden states, one per target token.
            language_embedding: (N / cond_repeats, language_dim) pooled prompt embedding, if configured.
            cond_repeats: how many consecutive rows of `noisy_tokens` share one condition (several noise
                levels of one target): the condition is projected once, then repeated.
        Returns:
            (N, T, C) predicted noise.
        """
        # 1. Embed tokens at fixed positions.
        x = self.input_proj(noisy_tokens) + self.pos_embed.to(noisy_tokens.dtype)  # (N, T, D)

        # 2. Per-token condition: c_i = emb(t) + Linear(SiLU(LayerNorm(h_i))) (+ language).
        t_emb = self.time_embed(self.time_proj(timesteps).to(x.dtype))  # (N, D)
        cond = self.project_condition(cond_tokens, language_embedding)  # (N / R, T, D)
        cond = cond.repeat_interleave(cond_repeats, dim=0) + t_emb[:, None]  # (N, T, D)

        # 3. Transformer blocks; under checkpointing only each block's input is kept for backward.
        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, x, cond)
            else:
                x = block(x, cond)

        # 4. Modulated output projection.
        shift, scale = self.ada_ln_out(cond).chunk(2, dim=-1)
        return self.output_proj(modulate(self.norm_out(x), shift, scale))  # (N, T, C)
