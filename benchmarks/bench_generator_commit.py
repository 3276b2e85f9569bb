"""Cost of committing one episode in the scripted-demo generator (sim.recovery): finalize, snapshot,
atomic sidecar, LeRobotDataset.resume. Rendering is left out: 400-frame episodes of a 14-D state only.

    .venv/bin/python benchmarks/bench_generator_commit.py --episodes 30
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from datasets.utils.logging import disable_progress_bar
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from lerobot_policy_reconvla.sim.recovery import commit_episode, create_committed

FEATURES = {"observation.state": {"dtype": "float32", "shape": (14,), "names": None}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--frames", type=int, default=400)
    args = parser.parse_args()
    disable_progress_bar()

    root = Path(tempfile.mkdtemp()) / "dataset"
    state = {"episodes": [], "next_seed": 0}

    def reopen(path):
        return LeRobotDataset.resume("local/bench", root=path)

    def create(path):
        return LeRobotDataset.create("local/bench", fps=50, features=FEATURES, root=path, use_videos=False)

    dataset = create_committed(root, create, state, reopen)
    seconds = []
    for episode in range(args.episodes):
        for _ in range(args.frames):
            dataset.add_frame({"observation.state": np.zeros(14, np.float32), "task": "bench"})
        dataset.save_episode()
        state["episodes"].append({"seed": episode})
        started = time.perf_counter()
        dataset = commit_episode(dataset, state, reopen)
        seconds.append(time.perf_counter() - started)
    dataset.finalize()
    for n in sorted({1, 10, args.episodes}):
        print(f"commit after episode {n}: {seconds[n - 1]:.2f} s")


if __name__ == "__main__":
    main()
