"""Look at what the reconstruction head sees: one PNG per camera for a dataset frame.

Each PNG shows, left to right: the camera image with its gaze box drawn, the target (the gaze crop
the head must reconstruct), and the head's reconstruction sampled from the policy's own visual tokens
with ancestral DDPM sampling (50 steps by default).

    python -m lerobot_policy_reconvla.visualize \\
        --policy-path outputs/train/.../checkpoints/last/pretrained_model \\
        --dataset-repo-id local/aloha_sim_insertion_3cam --dataset-root data/insertion \\
        --frame-index 0 --out-dir outputs/reconstructions
"""

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from lerobot.datasets import LeRobotDataset
from lerobot.policies.factory import make_pre_post_processors

from .checkpoint_files import IncompleteCheckpointError
from .modeling_reconvla import ReconVLAPolicy

PANEL = 256  # px, height of every panel in the picture


def _to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] -> PIL RGB."""
    array = (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def reconstruction_picture(image: torch.Tensor, box: torch.Tensor, target: torch.Tensor, recon: torch.Tensor) -> Image.Image:
    """Input with its gaze box | target crop | reconstruction, side by side, titled."""
    source = _to_pil(image)
    scale = PANEL / source.height
    source = source.resize((round(source.width * scale), PANEL))
    x0, y0, x1, y1 = (box.cpu() * torch.tensor([source.width, PANEL, source.width, PANEL])).tolist()
    ImageDraw.Draw(source).rectangle([x0, y0, x1, y1], outline=(255, 220, 0), width=3)
    panels = [
        ("input + gaze box", source),
        ("target (gaze crop)", _to_pil(target).resize((PANEL, PANEL), Image.NEAREST)),
        ("reconstruction", _to_pil(recon).resize((PANEL, PANEL), Image.NEAREST)),
    ]
    title = 18
    canvas = Image.new("RGB", (sum(p.width for _, p in panels) + 8 * (len(panels) - 1), PANEL + title), "white")
    x = 0
    draw = ImageDraw.Draw(canvas)
    for name, panel in panels:
        canvas.paste(panel, (x, title))
        draw.text((x + 4, 3), name, fill=(0, 0, 0))
        x += panel.width + 8
    return canvas


def write_reconstructions(
    policy: ReconVLAPolicy, batch: dict, out_dir: Path, num_inference_steps: int = 50, seed: int = 0, prefix: str = ""
) -> list[Path]:
    """Writes one PNG per camera for the first sample of a preprocessed batch; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator(device=batch[policy.config.camera_keys[0]].device).manual_seed(seed)
    per_camera = policy.reconstruct(batch, num_inference_steps=num_inference_steps, generator=generator)
    paths = []
    for camera, parts in per_camera.items():
        picture = reconstruction_picture(parts["image"][0], parts["box"][0], parts["target"][0], parts["reconstruction"][0])
        path = out_dir / f"{prefix}{camera}.png"
        picture.save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy-path", required=True, help="a saved ReconVLA policy (pretrained_model dir)")
    parser.add_argument("--dataset-repo-id", required=True)
    parser.add_argument("--dataset-root", default=None, help="local dataset root (default: LeRobot's cache)")
    parser.add_argument("--frame-index", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/reconstructions"))
    parser.add_argument("--steps", type=int, default=50, help="DDPM sampling steps for the reconstruction")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    try:
        policy = ReconVLAPolicy.from_pretrained(args.policy_path)
    except (FileNotFoundError, IncompleteCheckpointError) as error:
        raise SystemExit(str(error)) from None  # one line naming the file, no traceback
    preprocessor, _ = make_pre_post_processors(policy.config, pretrained_path=args.policy_path)
    dataset = LeRobotDataset(args.dataset_repo_id, root=args.dataset_root)
    if not 0 <= args.frame_index < len(dataset):
        raise SystemExit(f"--frame-index {args.frame_index} is outside the dataset's {len(dataset)} frames")
    batch = preprocessor(dataset[args.frame_index])
    paths = write_reconstructions(policy, batch, args.out_dir, args.steps, args.seed)
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
