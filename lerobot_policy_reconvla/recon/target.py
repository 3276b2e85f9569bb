"""Reconstruction targets: each camera's gaze crop, as frozen-VAE latents or as pixels, in token layout.

The target of camera k is the region inside its gaze box ([x0, y0, x1, y1], normalised to [0, 1],
x right, y down), or the whole image where no valid box is given. The crop is resized to
`image_size` px, encoded without gradient, and laid out as a `grid x grid` token grid so that target
token i lines up with the backbone's image token i.
"""

import logging

import torch
from diffusers import AutoencoderKL
from einops import rearrange
from torch import Tensor
from torchvision.ops import roi_align  # torch's own vision ops: batched crop + antialiased resize

logger = logging.getLogger(__name__)

WHOLE_IMAGE_BOX = (0.0, 0.0, 1.0, 1.0)


def valid_box_mask(boxes: Tensor) -> Tensor:
    """True where a box is usable: finite, inside [0, 1], with positive width and height.

    Absent boxes (the sim writes [-1, -1, -1, -1] when the object is out of view) are invalid.

    >>> valid_box_mask(torch.tensor([[0.1, 0.2, 0.5, 0.6], [-1.0, -1.0, -1.0, -1.0], [0.5, 0.5, 0.5, 0.9]])).tolist()
    [True, False, False]
    """
    x0, y0, x1, y1 = boxes.unbind(-1)
    inside = (boxes >= 0).all(-1) & (boxes <= 1).all(-1)
    return torch.isfinite(boxes).all(-1) & inside & (x1 > x0) & (y1 > y0)


def boxes_or_whole_image(boxes: Tensor | None, batch_size: int, device: torch.device) -> Tensor:
    """(B, 4) boxes with every invalid or missing box replaced by the whole image."""
    whole = torch.tensor(WHOLE_IMAGE_BOX, device=device).expand(batch_size, 4)
    if boxes is None:
        return whole
    boxes = boxes.to(device=device, dtype=torch.float32).reshape(batch_size, 4)
    return torch.where(valid_box_mask(boxes)[:, None], boxes, whole)


def crop_and_resize(images: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Crops each image to its normalised box and resizes the crop to (size, size).

    Args:
        images: (B, C, H, W) float.
        boxes: (B, 4) normalised [x0, y0, x1, y1].
    Returns:
        (B, C, size, size)
    """
    batch_size, _, height, width = images.shape
    scale = torch.tensor([width, height, width, height], device=images.device, dtype=images.dtype)
    batch_index = torch.arange(batch_size, device=images.device, dtype=images.dtype)[:, None]
    rois = torch.cat([batch_index, boxes.to(images.dtype) * scale], dim=1)  # (B, 5) in pixels
    # sampling_ratio=-1 adapts the number of samples per output bin to the crop size (antialiasing).
    return roi_align(images, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def load_frozen_vae(name_or_path: str, latent_channels: int, downsample: int) -> AutoencoderKL:
    """Loads a diffusers AutoencoderKL, frozen, and checks it fits the configured target layout."""
    try:
        vae = AutoencoderKL.from_pretrained(name_or_path)
    except Exception as error:  # noqa: BLE001 - re-raised with the field to fix
        raise OSError(
            f"recon_vae={name_or_path!r} could not be loaded as a diffusers AutoencoderKL ({error}). "
            "Give a local directory holding config.json + diffusion_pytorch_model.safetensors, a reachable "
            "Hub repo, or use --policy.recon_target=pixels."
        ) from error
    vae_downsample = 2 ** (len(vae.config.block_out_channels) - 1)
    if vae.config.latent_channels != latent_channels or vae_downsample != downsample:
        raise ValueError(
            f"recon_vae={name_or_path!r} has {vae.config.latent_channels} latent channels and downsamples "
            f"{vae_downsample}x, but the config says recon_vae_latent_channels={latent_channels} and "
            f"recon_vae_downsample={downsample}: set them to match the VAE"
        )
    vae.requires_grad_(False)
    vae.eval()
    return vae


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
    """

    def __init__(
        self,
        mode: str,
        image_size: int,
        grid_size: int,
        vae_loader=None,
        vae_downsample: int = 8,
        vae_latent_channels: int = 4,
    ):
        if mode not in ("vae", "pixels"):
            raise ValueError(f"recon_target={mode!r}; expected 'vae' or 'pixels'")
        if mode == "vae" and vae_loader is None:
            raise ValueError("recon_target='vae' needs a VAE loader")
        self.mode = mode
        self.image_size = image_size
        self.grid_size = grid_size
        self._vae_loader = vae_loader
        self._vae: AutoencoderKL | None = None
        if mode == "vae":
            target_side, channels = image_size // vae_downsample, vae_latent_channels
            if image_size % vae_downsample:
                raise ValueError(
                    f"recon_image_size={image_size} is not a multiple of the VAE's downsampling {vae_downsample}"
                )
        else:
            target_side, channels = image_size, 3
        if target_side % grid_size:
            raise ValueError(
                f"the {mode} target is {target_side}x{target_side}, not a multiple of the {grid_size}x{grid_size} "
                "image-token grid: change recon_image_size"
            )
        self.patch = target_side // grid_size
        self.token_channels = channels * self.patch**2

    @property
    def vae(self) -> AutoencoderKL:
        if self._vae is None:
            self._vae = self._vae_loader()
        return self._vae

    @torch.no_grad()
    def __call__(self, images: list[Tensor], boxes: list[Tensor]) -> Tensor:
        """
        Args:
            images: K tensors (B, 3, H_k, W_k) in [0, 1] (LeRobot's image layout; sizes may differ per camera).
            boxes: K tensors (B, 4), already resolved (see `boxes_or_whole_image`).
        Returns:
            (B * K, grid * grid, token_channels) target tokens, batch-major ('(b k)').
        """
        crops = torch.stack(
            [crop_and_resize(img.float(), box, self.image_size) for img, box in zip(images, boxes, strict=True)],
            dim=1,
        )  # (B, K, 3, S, S)
        crops = rearrange(crops, "b k c h w -> (b k) c h w") * 2.0 - 1.0  # [-1, 1], as both VAE and DiT expect
        if self.mode == "vae":
            vae = self.vae
            if next(vae.parameters()).device != crops.device:
                vae.to(crops.device)
            latents = vae.encode(crops.to(vae.dtype)).latent_dist.mode() * vae.config.scaling_factor
            grid_input = latents.float()  # (BK, C_lat, S/8, S/8)
        else:
            grid_input = crops  # (BK, 3, S, S)
        return rearrange(grid_input, "n c (h p1) (w p2) -> n (h w) (p1 p2 c)", p1=self.patch, p2=self.patch)

    def tokens_to_images(self, tokens: Tensor) -> Tensor:
        """Inverse of the token layout, decoded to images in [0, 1]: (N, T, C) -> (N, 3, S, S)."""
        grid = rearrange(
            tokens, "n (h w) (p1 p2 c) -> n c (h p1) (w p2)", h=self.grid_size, p1=self.patch, p2=self.patch
        )
        if self.mode == "vae":
            vae = self.vae
            grid = vae.decode(grid.to(vae.dtype) / vae.config.scaling_factor).sample.float()
        return ((grid + 1.0) / 2.0).clamp(0, 1)
