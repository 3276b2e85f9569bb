"""Look at what the reconstruction head sees: one PNG per camera for a dataset frame.

Each PNG shows, left to right: the camera image with its gaze box drawn, the target (the gaze crop
the head must reconstruct), and the head's reconstruction sampled from the policy's own visual tokens
with ancestral DDPM sampling (50 steps by default).

    reconvla-visualize \\
        --policy.path=outputs/train/.../checkpoints/last/pretrained_model \\
        --dataset.repo_id=local/aloha_sim_insertion_3cam --dataset.root=data/insertion \\
        --frame_index=0 --output_dir=outputs/reconstructions

(or ``python -m lerobot_policy_reconvla.tools.visualize ...``)
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from lerobot.configs import parser
from lerobot.datasets import LeRobotDataset
from lerobot.policies.factory import make_pre_post_processors

from ..common.cli import UsageError, run_entry_point
from ..loading import IncompleteCheckpointError, reconvla_policy_class
from ..recon.pictures import first_sample_pictures
from ..recon_branch import ReconPolicyMixin

PROG = "reconvla-visualize"


@dataclass
class SavedPolicy:
    # A saved ReconVLA policy: its pretrained_model directory.
    path: str


@dataclass
class DatasetSource:
    # The dataset's repo id, e.g. local/aloha_sim_insertion_3cam.
    repo_id: str
    # Local dataset root (default: LeRobot's cache).
    root: Path | None = None


@dataclass
class VisualizeConfig:
    """Writes the reconstruction pictures (image with gaze box, target, reconstruction) of one frame."""

    policy: SavedPolicy
    dataset: DatasetSource
    # The dataset frame to show (its index in the dataset).
    frame_index: int = 0
    # Directory the PNGs are written to, one per camera.
    output_dir: Path = Path("outputs/reconstructions")
    # DDPM sampling steps for the reconstruction.
    steps: int = 50
    # Seed of the sampling noise.
    seed: int = 0

    def check(self) -> None:
        """Raises UsageError naming the first flag whose value cannot work."""
        if self.frame_index < 0:
            raise UsageError(f"--frame_index must be at least 0, got {self.frame_index}")
        if self.steps < 1:
            raise UsageError(f"--steps must be at least 1, got {self.steps}")


def write_reconstructions(
    policy: ReconPolicyMixin,
    batch: dict,
    out_dir: Path,
    num_inference_steps: int = 50,
    seed: int = 0,
    prefix: str = "",
) -> list[Path]:
    """Writes one PNG per camera for the first sample of a preprocessed batch; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for camera, picture in first_sample_pictures(policy, batch, num_inference_steps, seed).items():
        path = out_dir / f"{prefix}{camera}.png"
        picture.save(path)
        paths.append(path)
    return paths


def visualize_frame(cfg: VisualizeConfig) -> list[Path]:
    """The pictures of `cfg.frame_index` under `cfg.output_dir`; returns their paths.

    Raises UsageError (one line naming the file or the flag) for a damaged or missing checkpoint and for a
    frame outside the dataset, before anything is written.
    """
    cfg.check()
    try:
        policy = reconvla_policy_class(cfg.policy.path).from_pretrained(cfg.policy.path)
    except (FileNotFoundError, IncompleteCheckpointError) as error:
        raise UsageError(str(error)) from None  # names the file; a traceback would add nothing
    preprocessor, _ = make_pre_post_processors(policy.config, pretrained_path=cfg.policy.path)
    dataset = LeRobotDataset(cfg.dataset.repo_id, root=cfg.dataset.root)
    if cfg.frame_index >= len(dataset):
        raise UsageError(f"--frame_index={cfg.frame_index} is outside the dataset's {len(dataset)} frames")
    batch = preprocessor(dataset[cfg.frame_index])
    return write_reconstructions(policy, batch, cfg.output_dir, cfg.steps, cfg.seed)


@parser.wrap()
def visualize_command(cfg: VisualizeConfig) -> int:
    logging.basicConfig(level=logging.INFO)
    for path in visualize_frame(cfg):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``reconvla-visualize``: exit status 0, or 2 with one line for a damaged checkpoint or a bad flag."""
    return run_entry_point(visualize_command, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(main())
