"""`reconvla-annotate`: the command line, in LeRobot's style (draccus through ``parser.wrap()``).

    reconvla-annotate --repo_id=lerobot/aloha_static_cups_open --object="cup" \
        --new_root=data/aloha_static_cups_open_gaze --preview=cups_preview.png

The earlier argparse spellings (``--repo-id``, ``--output-root``, ``--cameras top left_wrist``, ...) are still
accepted for one release, with a deprecation message.
"""

import logging
import sys
import time
from collections.abc import Sequence

from lerobot.configs import parser

from ..common.cli import OldFlag, run_entry_point
from ..common.durable import staging_path
from .config import AnnotateConfig, AnnotateError
from .run import annotate

PROG = "reconvla-annotate"

# Every dashed argparse spelling of the earlier command line, and the field that replaces it.
OLD_FLAGS = {
    "--repo-id": OldFlag("repo_id"),
    "--output-root": OldFlag("new_root"),
    "--output-repo-id": OldFlag("new_repo_id"),
    "--cameras": OldFlag("cameras", "list"),
    "--gripper-key": OldFlag("gripper_key"),
    "--gripper-names": OldFlag("gripper_names", "list"),
    "--gripper-threshold": OldFlag("gripper_threshold"),
    "--gripper-closed-above": OldFlag("gripper_closed_above", "true"),
    "--detector-model": OldFlag("detector_model"),
    "--batch-size": OldFlag("batch_size"),
    "--num-workers": OldFlag("num_workers"),
    "--box-threshold": OldFlag("box_threshold"),
    "--text-threshold": OldFlag("text_threshold"),
    "--max-gap": OldFlag("max_gap"),
    "--preview-frames": OldFlag("preview_frames"),
    "--evaluate-against": OldFlag("evaluate_against"),
    "--hit-iou": OldFlag("hit_iou"),
}


@parser.wrap()
def annotate_command(cfg: AnnotateConfig) -> dict:
    """Runs `annotate` on the parsed config; on Ctrl-C says where the finished episodes are kept."""
    started = time.perf_counter()
    try:
        report = annotate(cfg)
    except KeyboardInterrupt:
        if cfg.new_root is not None:
            staging = staging_path(cfg.new_root)
            print(
                f"\ninterrupted: nothing was written to {cfg.new_root}; finished episodes are kept in "
                f"{staging}. Run the same command again to resume, or delete {staging} to start over.",
                file=sys.stderr,
            )
        raise
    print(f"done in {time.perf_counter() - started:.0f} s" + (f": {cfg.new_root}" if cfg.new_root else ""))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 done, 2 bad input or a refused resume (one line on stderr), 130 interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_entry_point(
        annotate_command, argv, prog=PROG, old_flags=OLD_FLAGS, refusals=(AnnotateError,)
    )
