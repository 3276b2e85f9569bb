"""Reconstruction targets: each camera's gaze crop, as frozen-VAE latents or as pixels, in token layout.

The target of camera k is the region inside the box it is given ([x0, y0, x1, y1], normalised to
[0, 1], x right, y down): its gaze box, or the whole image where it has none (the caller decides). The
crop is resized to (optionally padded to a square with mid grey first, its shape kept, as ReconVLA's
training code pads it) `image_size` px, encoded without gradient, and laid out as a `grid x grid` token
grid so that target token i lines up with the backbone's image token i: with a latent (or pixel) grid of
side `grid * p`, token i holds the `p x p` latents of grid cell i, channels ordered `(c p1 p2)`.

ReconVLA's official target: the gaze crop at `16 * grid` px (256 px for a 16 x 16 grid) through
FLUX.1's 16-channel, 8x-downsampling VAE, i.e. 32 x 32 latents, 2 x 2 per token, 64 channels per
token, normalised as `(z - shift_factor) * scaling_factor` with z sampled from the posterior. All of
that is expressible here (`image_size`, the VAE's own shift/scale, `sample_posterior`).
"""

import logging
from contextlib import nullcontext

import torch
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from einops import rearrange
from torch import Tensor
from torchvision.ops import roi_align  # torch's own vision ops: batched crop + antialiased resize

logger = logging.getLogger(__name__)

# Mid grey around a crop padded to a square: 0 in the [-1, 1] range the VAE and the DiT see. ReconVLA pads
# with its image processor's mean colour; a fixed grey keeps the target independent of any processor.
PAD_GREY = 0.5


def crop_and_resize(
    images: Tensor, boxes: Tensor, size: int, pad_to_square: bool = False, pad_value: float = PAD_GREY
) -> Tensor:
    """Crops each image to its normalised box and resizes the crop to (size, size): stretched, or first
    padded to a square with `pad_value` (centred, as ReconVLA's training code pads every target).

    Padding keeps the object's shape: a tall box or a 4:3 whole image becomes a square target with grey
    bands, not a squeezed one.

    Args:
        images: (B, C, H, W) float in [0, 1].
        boxes: (B, 4) normalised [x0, y0, x1, y1], inside [0, 1] with x0 < x1 and y0 < y1.
    Returns:
        (B, C, size, size)
    """
    batch_size, _, height, width = images.shape
    scale = torch.tensor([width, height, width, height], device=images.device, dtype=images.dtype)
    batch_index = torch.arange(batch_size, device=images.device, dtype=images.dtype)[:, None]
    if not pad_to_square:
        rois = torch.cat([batch_index, boxes.to(images.dtype) * scale], dim=1)  # (B, 5) in pixels
        # sampling_ratio=-1 adapts the number of samples per output bin to the crop size (antialiasing).
        return roi_align(
            images, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True
        )
    x0, y0, x1, y1 = (boxes.to(images.dtype) * scale).unbind(-1)  # (B,) each, in pixels
    side = torch.maximum(x1 - x0, y1 - y0)  # (B,)
    left, top = (x0 + x1 - side) / 2, (y0 + y1 - side) / 2  # the square shares the box's centre
    square = torch.stack([left, top, left + side, top + side], dim=1)  # (B, 4)
    rois = torch.cat([batch_index, square], dim=1)  # (B, 5)
    # Shifted so that samples outside the image read as the pad value, not black.
    crops = roi_align(
        images - pad_value, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True
    )  # (B, C, S, S)
    # Where each output pixel's centre falls in the image: inside the box keeps the crop, outside is padding.
    centres = (torch.arange(size, device=images.device, dtype=images.dtype) + 0.5) / size  # (S,)
    xs = left[:, None] + centres * side[:, None]  # (B, S)
    ys = top[:, None] + centres * side[:, None]  # (B, S)
    inside_x = (xs >= x0[:, None]) & (xs <= x1[:, None])
    inside_y = (ys >= y0[:, None]) & (ys <= y1[:, None])
    inside = inside_y[:, None, :, None] & inside_x[:, None, None, :]  # (B, 1, S, S)
    return torch.where(inside, crops, torch.zeros_like(crops)) + pad_value


def load_frozen_vae(
    name_or_path: str, latent_channels: int, downsample: int, subfolder: str | None = None
) -> AutoencoderKL:
    """Loads a diffusers AutoencoderKL in fp32, frozen, and checks it fits the configured target layout.

    `subfolder` reaches a VAE inside a larger repo (FLUX.1's is under `vae`).
    """
    where = f"recon_vae={name_or_path!r}" + (f" (recon_vae_subfolder={subfolder!r})" if subfolder else "")
    try:
        # fp32 whatever the stored dtype: targets are encoded once per step and must not be rounded.
        vae = AutoencoderKL.from_pretrained(name_or_path, subfolder=subfolder, torch_dtype=torch.float32)
    except Exception as error:
        raise OSError(
            f"{where} could not be loaded as a diffusers AutoencoderKL ({error}). Give a local directory "
            "holding config.json + diffusion_pytorch_model.safetensors (or a repo with them under "
            "recon_vae_subfolder), a reachable Hub repo, or use --policy.recon_target=pixels."
        ) from error
    vae_downsample = 2 ** (len(vae.config.block_out_channels) - 1)
    if vae.config.latent_channels != latent_channels or vae_downsample != downsample:
        raise ValueError(
            f"{where} has {vae.config.latent_channels} latent channels and downsamples "
            f"{vae_downsample}x, but the config says recon_vae_latent_channels={latent_channels} and "
            f"recon_vae_downsample={downsample}: set them to match the VAE"
        )
    vae.requires_grad_(False)
    vae.eval()
    return vae


@torch.compiler.assume_constant_result  # a fixed fact per device type: no graph break under torch.compile
def autocast_available(device_type: str) -> bool:
    return torch.amp.is_autocast_available(device_type)


def _without_autocast(device: torch.device):
    """Targets are computed in the VAE's own precision (fp32), whatever autocast region surrounds them."""
    return torch.autocast(device.type, enabled=False) if autocast_available(device.type) else nullcontext()


class ReconTarget:
    """Turns camera images and gaze boxes into target token grids, without gradient.

    Not an nn.Module on purpose: the frozen VAE must not enter the policy's state dict, parameters or
    optimizer, and it is loaded only when the first training target is needed (never at inference).

    Args:
        mode: "vae" or "pixels".
        image_size: side of the resized crop, px.
        grid_size: side of the token grid (matches the backbone's image-token grid).
        vae_loader: returns the frozen AutoencoderKL (called once, lazily); needed for "vae".
        vae_downsample, vae_latent_channels: the VAE's layout, known before it is loaded.
        sample_posterior: draw the latents from the VAE's posterior (ReconVLA) rather than taking its
            mode; a little target noise, different at every step.

    Shapes: image_size S, VAE downsampling f (1 for pixels), channels C (3 for pixels), grid G:
    p = S / f / G latents per token side, token_channels = C * p * p.
    """

    def __init__(
        self,
        mode: str,
        image_size: int,
        grid_size: int,
        vae_loader=None,
        vae_downsample: int = 8,
        vae_latent_channels: int = 4,
        sample_posterior: bool = True,
        pad_to_square: bool = False,
    ):
        if mode not in ("vae", "pixels"):
            raise ValueError(f"recon_target={mode!r}; expected 'vae' or 'pixels'")
        if mode == "vae" and vae_loader is None:
            raise ValueError("recon_target='vae' needs a VAE loader")
        sizes = {"recon_image_size": image_size, "recon_token_grid": grid_size}
        sizes |= {"recon_vae_downsample": vae_downsample, "recon_vae_latent_channels": vae_latent_channels}
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"{name}={value}; expected >= 1")
        self.mode = mode
        self.image_size = image_size
        self.grid_size = grid_size
        self.sample_posterior = sample_posterior
        self.pad_to_square = pad_to_square
        self._vae_loader = vae_loader
        self._vae: AutoencoderKL | None = None
        self.downsample = vae_downsample if mode == "vae" else 1
        self.channels = vae_latent_channels if mode == "vae" else 3
        unit = self.downsample * grid_size
        if image_size % unit:
            what = f"the VAE's {vae_downsample}x downsampling times " if mode == "vae" else ""
            below = image_size // unit * unit
            nearest = " or ".join(str(size) for size in sorted({max(unit, below), below + unit}))
            raise ValueError(
                f"recon_image_size={image_size} is not a multiple of {what}the {grid_size}x{grid_size} "
                f"image-token grid (= {unit}), so the {mode} target cannot be split into equal tokens: "
                f"use e.g. {nearest}"
            )
        self.patch = image_size // self.downsample // grid_size
        self.token_channels = self.channels * self.patch**2

    @property
    def vae(self) -> AutoencoderKL:
        if self._vae is None:
            vae = self._vae_loader()
            downsample = 2 ** (len(vae.config.block_out_channels) - 1)
            if (vae.config.latent_channels, downsample) != (self.channels, self.downsample):
                raise ValueError(
                    f"the loaded VAE has {vae.config.latent_channels} latent channels and downsamples "
                    f"{downsample}x, but recon_vae_latent_channels={self.channels} and "
                    f"recon_vae_downsample={self.downsample}"
                )
            self._vae = vae
        return self._vae

    # ----------------------------------------------------------------------------------------------
    # Token layout

    def grid_to_tokens(self, grid: Tensor) -> Tensor:
        """(N, C, G p, G p) latents or pixels -> (N, G G, C p p): token i holds the p x p cell i.

        >>> target = ReconTarget("pixels", image_size=4, grid_size=2)  # p = 2
        >>> grid = torch.arange(3 * 4 * 4.0).reshape(1, 3, 4, 4)
        >>> # token 1 = cell (row 0, col 1): channel 0's 2x2 values, then channel 1's, then channel 2's
        >>> target.grid_to_tokens(grid)[0, 1].tolist()
        [2.0, 3.0, 6.0, 7.0, 18.0, 19.0, 22.0, 23.0, 34.0, 35.0, 38.0, 39.0]
        """
        return rearrange(grid, "n c (h p1) (w p2) -> n (h w) (c p1 p2)", p1=self.patch, p2=self.patch)

    def tokens_to_grid(self, tokens: Tensor) -> Tensor:
        """Inverse of `grid_to_tokens`: (N, G G, C p p) -> (N, C, G p, G p)."""
        return rearrange(
            tokens, "n (h w) (c p1 p2) -> n c (h p1) (w p2)", h=self.grid_size, p1=self.patch, p2=self.patch
        )

    # ----------------------------------------------------------------------------------------------
    # VAE latents, normalised as the diffusion model sees them

    def posterior(self, crops: Tensor) -> DiagonalGaussianDistribution:
        """(N, 3, S, S) in [-1, 1] -> the VAE's posterior over (N, C, S/f, S/f) latents (its `parameters`,
        mean and log-variance stacked on channels, are what a latent cache stores)."""
        vae = self.vae
        if next(vae.parameters()).device != crops.device:
            vae.to(crops.device)
        return vae.encode(crops.to(vae.dtype)).latent_dist

    def latents(
        self, posterior: DiagonalGaussianDistribution, vae_config, generator: torch.Generator | None = None
    ) -> Tensor:
        """A posterior's latents as the diffusion model sees them, `(z - shift_factor) * scaling_factor`
        with the encoding VAE's factors (from its config)."""
        latents = posterior.sample(generator) if self.sample_posterior else posterior.mode()
        shift, scale = self._shift_and_scale(vae_config)
        return (latents.float() - shift) * scale

    def encode(self, crops: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, 3, S, S) in [-1, 1] -> (N, C, S/f, S/f) normalised latents."""
        return self.latents(self.posterior(crops), self.vae.config, generator)

    def decode(self, latents: Tensor) -> Tensor:
        """Undoes the normalisation, then decodes: (N, C, S/f, S/f) -> (N, 3, S, S), about [-1, 1]."""
        vae = self.vae
        shift, scale = self._shift_and_scale(vae.config)
        return vae.decode((latents / scale + shift).to(vae.dtype)).sample.float()

    @staticmethod
    def _shift_and_scale(vae_config) -> tuple[float, float]:
        # SD's VAEs have no shift_factor (None); FLUX.1's has one.
        return vae_config.get("shift_factor") or 0.0, vae_config["scaling_factor"]

    # ----------------------------------------------------------------------------------------------

    def crops(self, images: list[Tensor], boxes: list[Tensor], size: int | None = None) -> Tensor:
        """K cameras' gaze crops, batch-major: K x (B, 3, H_k, W_k) in [0, 1] and K x (B, 4) boxes to crop to
        -> ((B K), 3, size, size) in [-1, 1], as both the VAE and the DiT expect (size: image_size)."""
        with _without_autocast(images[0].device):
            crops = torch.stack(
                [
                    crop_and_resize(img.float(), box, size or self.image_size, self.pad_to_square)
                    for img, box in zip(images, boxes, strict=True)
                ],
                dim=1,
            )  # (B, K, 3, S, S)
            return rearrange(crops, "b k c h w -> (b k) c h w") * 2.0 - 1.0

    @torch.no_grad()
    def __call__(
        self, images: list[Tensor], boxes: list[Tensor], generator: torch.Generator | None = None
    ) -> Tensor:
        """
        Args:
            images: K tensors (B, 3, H_k, W_k) in [0, 1] (LeRobot's layout; sizes may differ per camera).
            boxes: K tensors (B, 4), each a box to crop to (`crop_and_resize`).
            generator: for the posterior sample (VAE targets with `sample_posterior`).
        Returns:
            (B * K, grid * grid, token_channels) target tokens, batch-major ('(b k)'), fp32.
        """
        with _without_autocast(images[0].device):
            crops = self.crops(images, boxes)  # ((B K), 3, S, S)
            grid = self.encode(crops, generator) if self.mode == "vae" else crops  # (BK, C, G p, G p)
            return self.grid_to_tokens(grid)

    @torch.no_grad()
    def tokens_from_posterior(
        self, parameters: Tensor, vae_config: dict, generator: torch.Generator | None = None
    ) -> Tensor:  # ((B K), T, C)
        """Target tokens from stored posterior parameters (a latent cache), without running the VAE: the
        same draw as `__call__` makes from the same posterior and generator state.

        Args:
            parameters: ((B K), 2 C, S/f, S/f) the posterior's mean and log-variance, batch-major.
            vae_config: the encoding VAE's config (its shift and scaling factors).
        """
        if self.mode != "vae":
            raise ValueError("cached posteriors are VAE targets; recon_target='pixels' needs no cache")
        with _without_autocast(parameters.device):
            posterior = DiagonalGaussianDistribution(parameters.float())
            return self.grid_to_tokens(self.latents(posterior, vae_config, generator))

    @torch.no_grad()
    def tokens_to_images(self, tokens: Tensor) -> Tensor:
        """Inverse of the token layout, decoded to images in [0, 1]: (N, T, C) -> (N, 3, S, S)."""
        with _without_autocast(tokens.device):
            grid = self.tokens_to_grid(tokens.float())
            if self.mode == "vae":
                grid = self.decode(grid)
            return ((grid + 1.0) / 2.0).clamp(0, 1)
