"""An episode worker process: ``python -m lerobot_policy_reconvla.sim.worker_entry <pipe fd> <parent pid>``,
started by ``episodes``; it hands over to ``episodes.run_worker``.

A module of its own, so that the episodes it sends are instances of ``episodes``' classes, which the parent
unpickles as its own (run as ``__main__``, ``episodes`` would define them a second time).
"""

import sys
from multiprocessing.connection import Connection

from .episodes import run_worker

if __name__ == "__main__":
    pipe_fd, parent_pid = map(int, sys.argv[1:3])
    run_worker(Connection(pipe_fd), parent_pid)
