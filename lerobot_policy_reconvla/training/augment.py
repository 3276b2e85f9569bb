"""Random shift of camera images with their gaze boxes moved along (training only).

DrQ's regulariser for learning from few pixel demonstrations: each image is padded by `pad` pixels
(edge pixels repeated) and cropped back to its size at a random offset, so the scene moves by up to
`pad` pixels in each direction. A gaze box must frame the same object afterwards, so it moves by the
same offset (clipped to the image); an absent box stays absent, and a box pushed wholly out of view
becomes absent.

    images, boxes = random_shift(images, boxes, pad=4)   # K x (B, C, H, W), K x (B, 4) or None

LeRobot's own `--dataset.image_transforms` cannot do this: they see an image, never its box.
"""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from ..gaze_box import ABSENT_BOX, is_present


def shift_images(images: Tensor, offsets: Tensor, pad: int) -> Tensor:
    """(B, C, H, W) images moved by `offsets` (B, 2) = (dx, dy) whole pixels in [-pad, pad]; the pixels
    that enter at the border repeat the edge.

    >>> image = torch.arange(4.0).reshape(1, 1, 1, 4)                       # one row: 0 1 2 3
    >>> shift_images(image, torch.tensor([[1, 0]]), pad=1)[0, 0, 0].tolist()  # scene moves right
    [0.0, 0.0, 1.0, 2.0]
    """
    batch, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")  # (B, C, H + 2p, W + 2p)
    # Output pixel (y, x) reads padded pixel (y + pad - dy, x + pad - dx).
    rows = torch.arange(height, device=images.device) + (pad - offsets[:, 1:2])  # (B, H)
    cols = torch.arange(width, device=images.device) + (pad - offsets[:, 0:1])  # (B, W)
    samples = torch.arange(batch, device=images.device)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[samples, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return shifted.permute(0, 3, 1, 2).contiguous()


def shift_boxes(boxes: Tensor, offsets: Tensor, height: int, width: int) -> Tensor:
    """(B, 4) normalised [x0, y0, x1, y1] boxes moved by `offsets` (B, 2) pixels of an image of
    `height` x `width`, clipped to the image. Absent boxes, and boxes moved wholly out of view, are
    (or become) the absent marker.

    >>> shift_boxes(torch.tensor([[0.5, 0.5, 0.75, 1.0]]), torch.tensor([[2, -2]]), height=8, width=8)
    tensor([[0.7500, 0.2500, 1.0000, 0.7500]])
    """
    scale = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    moved = boxes + offsets.to(boxes.dtype).repeat(1, 2) / scale  # (B, 4)
    moved = moved.clamp(0.0, 1.0)
    visible = (moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1]) & is_present(boxes)  # (B,)
    absent = torch.as_tensor(ABSENT_BOX, dtype=boxes.dtype, device=boxes.device)
    return torch.where(visible[:, None], moved, absent)


def random_shift(
    images: list[Tensor], boxes: list[Tensor | None], pad: int, generator: torch.Generator | None = None
) -> tuple[list[Tensor], list[Tensor | None]]:
    """Each camera's images shifted by their own random whole-pixel offsets in [-pad, pad], and that
    camera's boxes (None: the dataset has none) by the same offsets.

    Args:
        images: K x (B, C, H, W) one tensor per camera.
        boxes: K x (B, 4) normalised boxes, or None, aligned with `images`.
    """
    if pad < 0:
        raise ValueError(f"pad={pad}: expected a number of pixels >= 0")
    if pad == 0:
        return images, boxes
    shifted_images, shifted_boxes = [], []
    for image, box in zip(images, boxes, strict=True):
        offsets = torch.randint(-pad, pad + 1, (image.shape[0], 2), generator=generator)  # (B, 2) = (dx, dy)
        offsets = offsets.to(image.device)
        shifted_images.append(shift_images(image, offsets, pad))
        shifted_boxes.append(None if box is None else shift_boxes(box, offsets, *image.shape[-2:]))
    return shifted_images, shifted_boxes
