"""A contact sheet of sampled frames with their boxes drawn, to look at before training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..gaze_box import is_present
from .plan import IMAGE_PREFIX, to_hwc_uint8


def write_preview(
    path: Path, dataset, cameras, boxes, num_frames: int, truth=None, tile_width: int = 256
) -> Path:
    """Contact sheet: one row per camera, `num_frames` frames spread over the dataset, boxes drawn.

    Detected box in green (with its frame index), true box in white when given.
    """
    from PIL import Image, ImageDraw

    indices = (
        np.linspace(0, dataset.num_frames - 1, num=min(num_frames, dataset.num_frames)).round().astype(int)
    )
    items = [dataset[int(i)] for i in indices]
    first = to_hwc_uint8(items[0][IMAGE_PREFIX + cameras[0]])
    tile_height = round(tile_width * first.shape[0] / first.shape[1])
    label_height = 16
    sheet = Image.new(
        "RGB", (tile_width * len(indices), (tile_height + label_height) * len(cameras)), "black"
    )
    draw = ImageDraw.Draw(sheet)
    for row, cam in enumerate(cameras):
        for col, (index, item) in enumerate(zip(indices, items, strict=True)):
            x, y = col * tile_width, row * (tile_height + label_height)
            tile = Image.fromarray(to_hwc_uint8(item[IMAGE_PREFIX + cam])).resize((tile_width, tile_height))
            sheet.paste(tile, (x, y + label_height))
            scale = np.array([tile_width, tile_height, tile_width, tile_height])
            for source, colour in ((truth, "white"), (boxes, "lime")):
                if source is not None and is_present(source[cam][index][None])[0]:
                    x0, y0, x1, y1 = source[cam][index] * scale
                    draw.rectangle(
                        [x + x0, y + label_height + y0, x + x1, y + label_height + y1],
                        outline=colour,
                        width=2,
                    )
            state = "" if is_present(boxes[cam][index][None])[0] else " (no box)"
            draw.text((x + 2, y + 2), f"{cam} #{index}{state}", fill="white")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
