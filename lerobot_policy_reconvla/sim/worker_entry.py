"""An episode worker process: ``python -P worker_entry.py <pipe fd> <parent pid>``, started by ``episodes``.

Importing any ``lerobot_policy_reconvla.*`` module first runs the package's ``__init__``, which registers the
plugin with LeRobot and so imports torch and LeRobot: about 15 s of a worker's start-up for modules it never
uses (it needs MuJoCo, gym-aloha and numpy: about 1.5 s). Run as a script, this file puts its own package in
``sys.modules`` unexecuted (its ``__path__`` set, so its submodules import as usual: the same copy the parent
runs, wherever that is), then hands over to ``episodes.run_worker``.
"""

import importlib.util
import sys
from multiprocessing.connection import Connection
from pathlib import Path

if __name__ == "__main__":
    package_dir = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        package_dir.name, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
    )
    sys.modules[package_dir.name] = importlib.util.module_from_spec(spec)  # not executed: nothing registered
    from lerobot_policy_reconvla.sim.episodes import run_worker

    pipe_fd, parent_pid = map(int, sys.argv[1:3])
    run_worker(Connection(pipe_fd), parent_pid)
