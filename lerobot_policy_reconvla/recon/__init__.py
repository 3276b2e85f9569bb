"""The reconstruction branch (training only). Imports torch, diffusers and einops only: no pi0 here.

ReconVLA's official head, expressed with diffusers: `ReconTarget` (gaze crop -> normalised VAE latents,
p x p per token), `ReconDiT` (per-token adaLN-Zero DiT), `ReconHead` (DDPM eps loss, fp32 by default).
"""

from .dit import ReconDiT
from .head import HEAD_DTYPES, ReconHead, make_train_scheduler
from .target import ReconTarget, crop_and_resize, load_frozen_vae

__all__ = [
    "HEAD_DTYPES",
    "ReconDiT",
    "ReconHead",
    "ReconTarget",
    "crop_and_resize",
    "load_frozen_vae",
    "make_train_scheduler",
]
