"""`reconvla-annotate`: the command line, in LeRobot's style (draccus through ``parser.wrap()``).

    reconvla-annotate --repo_id=lerobot/aloha_static_cups_open --object="cup" \
        --new_root=data/aloha_static_cups_open_gaze --preview=cups_preview.png
"""

import logging
import sys
import time
from collections.abc import Sequence

from lerobot.configs import parser

from ..common.cli import run_entry_point
from ..common.durable import staging_path
from .config import AnnotateConfig, AnnotateError
from .run import annotate

PROG = "reconvla-annotate"


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
    return run_entry_point(annotate_command, argv, prog=PROG, refusals=(AnnotateError,))
