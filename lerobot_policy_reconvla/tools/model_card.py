"""ReconVLA's model card (README.md) for a saved checkpoint, written into it and pushed to the Hub.

    reconvla-model-card --checkpoint=outputs/train/<run>/checkpoints/last/pretrained_model \\
        [--push_to=<hf_user>/<policy_repo_id>]

(or ``python -m lerobot_policy_reconvla.tools.model_card ...``)

LeRobot 0.6.1 pushes this card itself (its ``push_model_to_hub`` asks the policy for it). LeRobot's next
release renders one template for every policy, with no hook for a plugin: there, run this after
``lerobot-train --policy.push_to_hub=true`` to replace the generic card with ReconVLA's (method, base model,
reconstruction settings, gaze boxes per camera, evaluation commands).
"""

from dataclasses import dataclass
from pathlib import Path

from lerobot.configs import parser

from ..common.cli import run_entry_point
from ..deploy.model_card import card_of_checkpoint

PROG = "reconvla-model-card"


@dataclass
class ModelCardCommandConfig:
    """Writes ReconVLA's model card (README.md) into a saved policy's directory, and pushes it to the Hub."""

    # A saved ReconVLA policy: a checkpoint's pretrained_model directory.
    checkpoint: Path
    # Hub model repo to upload the card to as README.md (default: only written into --checkpoint).
    push_to: str | None = None


@parser.wrap()
def model_card_command(cfg: ModelCardCommandConfig) -> int:
    card = card_of_checkpoint(cfg.checkpoint)
    path = Path(cfg.checkpoint) / "README.md"
    card.save(path)
    print(f"model card: {path}")
    if cfg.push_to:
        card.push_to_hub(cfg.push_to)
        print(f"pushed to {cfg.push_to} as README.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``reconvla-model-card``: exit status 0 written (and pushed), 2 refused in one line."""
    return run_entry_point(model_card_command, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(main())
