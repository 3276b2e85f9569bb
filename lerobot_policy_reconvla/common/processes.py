"""Processes the tools start: workers that end with the process that started them, however that one ends,
and logged stage commands (the demo's and the experiments').

A simulation or frame-decoding worker blocked on its pipe outlives a parent killed with SIGKILL (the
OOM killer, a pre-empted job) and holds its memory for good. Each worker calls ``die_with_parent`` first
thing: on Linux the kernel then kills it the moment its parent dies (``PR_SET_PDEATHSIG``), which no
state of the worker can delay; elsewhere a daemon thread polls the parent's pid.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_SECONDS = 1.0


def die_with_parent(parent_pid: int) -> None:
    """End this process when `parent_pid` (the process that started it) ends.

    Call it in the worker, with the parent's pid captured by the parent: if the parent died before the
    request was in place, this process has already been handed to another parent and ends now. On Linux the
    signal fires when the parent *thread* that started the worker exits, so start workers from a thread that
    lives as long as they should (the main thread, here).
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)  # no cleanup to run: the worker's results had nowhere left to go


class CommandFailed(RuntimeError):
    """A stage's command exited non-zero; the message ends with the last lines of its log."""


def offline_environment() -> dict[str, str]:
    """This process's environment for a stage's command: no Hub access, MuJoCo on EGL unless set otherwise."""
    return dict(os.environ, HF_HUB_OFFLINE="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))


def run_logged(
    command: list[str], log_path: Path, *, label: str, append: bool = False, env: dict[str, str] | None = None
) -> str:
    """Runs `command` with its output (stdout and stderr) in `log_path`, after what is there with `append`;
    returns this run's output, or raises CommandFailed naming `label` with the log's last 40 lines.

    `env`: variables set for this command on top of :func:`offline_environment`.
    """
    offset = log_path.stat().st_size if append and log_path.exists() else 0
    with open(log_path, "a" if append else "w") as log:
        environment = offline_environment() | (env or {})
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=environment)
    with open(log_path) as log:
        log.seek(offset)
        output = log.read()
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-40:])
        raise CommandFailed(
            f"[{label}] failed (exit {result.returncode}): {shlex.join(command)}\n"
            f"last lines of {log_path}:\n{tail}"
        )
    return output
