"""Pictures of what the head makes of the policy's visual tokens: input with its gaze box | target crop |
reconstruction, per camera. Written to PNG files by `visualize`, logged to wandb during training.
"""

import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

PANEL = 256  # px, height of every panel in the picture
WANDB_KEY = "train/reconstruction"  # beside LeRobot's own train/* metrics


def _to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] -> PIL RGB."""
    array = (image.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def reconstruction_picture(
    image: torch.Tensor, box: torch.Tensor, target: torch.Tensor, recon: torch.Tensor
) -> Image.Image:
    """Input with its gaze box | target crop | reconstruction, side by side, titled."""
    source = _to_pil(image)
    scale = PANEL / source.height
    source = source.resize((round(source.width * scale), PANEL))
    x0, y0, x1, y1 = (box.float().cpu() * torch.tensor([source.width, PANEL, source.width, PANEL])).tolist()
    ImageDraw.Draw(source).rectangle([x0, y0, x1, y1], outline=(255, 220, 0), width=3)
    panels = [
        ("input + gaze box", source),
        ("target (gaze crop)", _to_pil(target).resize((PANEL, PANEL), Image.NEAREST)),
        ("reconstruction", _to_pil(recon).resize((PANEL, PANEL), Image.NEAREST)),
    ]
    title = 18
    canvas = Image.new(
        "RGB", (sum(p.width for _, p in panels) + 8 * (len(panels) - 1), PANEL + title), "white"
    )
    x = 0
    draw = ImageDraw.Draw(canvas)
    for name, panel in panels:
        canvas.paste(panel, (x, title))
        draw.text((x + 4, 3), name, fill=(0, 0, 0))
        x += panel.width + 8
    return canvas


def first_sample_pictures(
    policy, batch: dict, num_inference_steps: int = 50, seed: int = 0
) -> dict[str, Image.Image]:
    """{camera: picture} for the first sample of a preprocessed batch."""
    device = batch[policy.config.camera_keys[0]].device
    batch_size = batch[policy.config.camera_keys[0]].shape[0]

    def first_only(value):  # the first sample: a training batch is sampled once, not B times
        batched = isinstance(value, list) or (isinstance(value, torch.Tensor) and value.ndim > 0)
        return value[:1] if batched and len(value) == batch_size else value

    first = {key: first_only(value) for key, value in batch.items()}
    generator = torch.Generator(device=device).manual_seed(seed)
    per_camera = policy.reconstruct(first, num_inference_steps=num_inference_steps, generator=generator)
    return {
        camera: reconstruction_picture(
            parts["image"][0], parts["box"][0], parts["target"][0], parts["reconstruction"][0]
        )
        for camera, parts in per_camera.items()
    }


def log_to_active_wandb_run(policy, batch: dict, step: int) -> bool:
    """Logs the first sample's pictures to the wandb run of this process, if there is one; returns whether
    it did. lerobot-train starts the run (`--wandb.enable=true`) on the main process only, so other ranks
    and runs without wandb skip the sampling altogether."""
    wandb = sys.modules.get("wandb")  # imported by LeRobot's logger when wandb is on; never imported here
    if wandb is None or wandb.run is None:
        return False
    pictures = first_sample_pictures(policy, batch)
    images = {f"{WANDB_KEY}/{camera}": wandb.Image(picture) for camera, picture in pictures.items()}
    # wandb's step only increases; after a resume this policy's own count starts again from zero.
    wandb.run.log(images, step=max(step, wandb.run.step))
    return True
