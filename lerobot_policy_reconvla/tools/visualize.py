"""Look at what the reconstruction head sees: one PNG per camera for a dataset frame.

Each PNG shows, left to right: the camera image with its gaze box drawn, the target (the gaze crop
the head must reconstruct), and the head's reconstruction sampled from the policy's own visual tokens
with ancestral DDPM sampling (50 steps by default).

    python -m lerobot_policy_reconvla.tools.visualize \\
        --policy-path outputs/train/.../checkpoints/last/pretrained_model \\
        --dataset-repo-id local/aloha_sim_insertion_3cam --dataset-root data/insertion \\
        --frame-index 0 --out-dir outputs/reconstructions
"""

import argparse
import logging
from pathlib import Path

from lerobot.datasets import LeRobotDataset
from lerobot.policies.factory import make_pre_post_processors

from ..loading import IncompleteCheckpointError
from ..modeling_reconvla import ReconVLAPolicy
from ..recon.pictures import first_sample_pictures


def write_reconstructions(
    policy: ReconVLAPolicy, batch: dict, out_dir: Path, num_inference_steps: int = 50, seed: int = 0, prefix: str = ""
) -> list[Path]:
    """Writes one PNG per camera for the first sample of a preprocessed batch; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for camera, picture in first_sample_pictures(policy, batch, num_inference_steps, seed).items():
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
