"""Worker processes that end with the process that started them, however that one ends.

A simulation or frame-decoding worker blocked on its pipe outlives a parent killed with SIGKILL (the
OOM killer, a pre-empted job) and holds its memory for good. Each worker calls ``die_with_parent`` first
thing: on Linux the kernel then kills it the moment its parent dies (``PR_SET_PDEATHSIG``), which no
state of the worker can delay; elsewhere a daemon thread polls the parent's pid.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

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
