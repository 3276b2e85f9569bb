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

Knows nothing of pi0: it sees token grids and condition vectors only.
"""

import torch  # noqa: F401 - used by the docstring examples (doctest)
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
        in_channels: channels of one target token (VAE latent channels x patch area, or 3 x patch area).
        cond_dim: width of the conditioning hidden states (the backbone's width).
        grid_size: side of the token grid (16 for PaliGemma at 224 px); fixes the 2D sin-cos positions.
        width, depth, num_heads: transformer size (ReconVLA: 1024, 3, 16).
        language_dim: width of an optional pooled language embedding added to every condition.
    """

    _supports_gradient_checkpointing = False

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
        self.input_proj = nn.Linear(in_channels, width)
        # Fixed (not learned) positions, as in DiT: a buffer so it follows .to() but is not trained.
        pos = get_2d_sincos_pos_embed(width, grid_size, output_type="pt").float()  # (T, D)
        self.register_buffer("pos_embed", pos[None], persistent=False)  # (1, T, D)
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, width)
        self.cond_proj = nn.Linear(cond_dim, width)
        self.language_proj = nn.Linear(language_dim, width) if language_dim else None
        self.blocks = nn.ModuleList(ReconDiTBlock(width, num_heads, mlp_ratio) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_ln_out = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.output_proj = nn.Linear(width, in_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        # adaLN-Zero (DiT): every modulation starts at zero, so each block starts as the identity and
        # the head's first updates cannot disturb the backbone it reads from.
        for block in self.blocks:
            nn.init.zeros_(block.ada_ln[-1].weight)
            nn.init.zeros_(block.ada_ln[-1].bias)
        nn.init.zeros_(self.ada_ln_out[-1].weight)
        nn.init.zeros_(self.ada_ln_out[-1].bias)

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

        # 2. Per-token condition: c_i = emb(t) + proj(h_i) (+ proj(language)).
        t_emb = self.time_embed(self.time_proj(timesteps).to(x.dtype))  # (N, D)
        cond = self.cond_proj(cond_tokens)  # (N / R, T, D)
        if self.language_proj is not None:
            if language_embedding is None:
                raise ValueError("ReconDiT was built with language_dim but got no language_embedding")
            cond = cond + self.language_proj(language_embedding)[:, None]
        cond = cond.repeat_interleave(cond_repeats, dim=0) + t_emb[:, None]  # (N, T, D)

        # 3. Transformer blocks.
        for block in self.blocks:
            x = block(x, cond)

        # 4. Modulated output projection.
        shift, scale = self.ada_ln_out(cond).chunk(2, dim=-1)
        return self.output_proj(modulate(self.norm_out(x), shift, scale))  # (N, T, C)
