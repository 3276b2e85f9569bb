"""The reconstruction branch (training only). Imports torch, diffusers and einops only: no pi0 here."""

from .dit import ReconDiT
from .head import ReconHead, make_train_scheduler
from .target import ReconTarget, boxes_or_whole_image, crop_and_resize, load_frozen_vae

__all__ = [
    "ReconDiT",
    "ReconHead",
    "ReconTarget",
    "boxes_or_whole_image",
    "crop_and_resize",
    "load_frozen_vae",
    "make_train_scheduler",
]
