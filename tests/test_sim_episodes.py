"""Episodes simulated in worker processes: the results of one process, in seed order; a dead worker
loses its seed only."""

import os
import signal
from dataclasses import replace

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from lerobot_policy_reconvla.sim.episodes import EpisodeSpec, EpisodeWorkers, LostEpisode, SimulatedEpisode

# Short episodes cannot succeed, so keep_failed; tiny images keep the workers quick.
SPEC = EpisodeSpec(
    task="transfer_cube",
    cameras=("top", "left_wrist"),
    image_size=(16, 24),
    episode_length=8,
    keep_failed=True,
)


def take(workers: EpisodeWorkers, count: int) -> list:
    return [workers.next_episode() for _ in range(count)]


def assert_same_episode(a: SimulatedEpisode, b: SimulatedEpisode) -> None:
    assert (a.seed, a.scripted_ok, a.success, len(a.frames)) == (
        b.seed,
        b.scripted_ok,
        b.success,
        len(b.frames),
    )
    for fa, fb in zip(a.frames, b.frames, strict=True):
        assert fa.keys() == fb.keys()
        for key in fa:
            np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)


def test_two_workers_deliver_one_process_results_in_seed_order():
    with EpisodeWorkers(SPEC, workers=1, first_seed=3) as one:
        expected = take(one, count=4)
    with EpisodeWorkers(SPEC, workers=2, first_seed=3) as two:
        got = take(two, count=4)
        assert len(two.in_progress) <= 2
    assert [r.seed for r in got] == [3, 4, 5, 6]
    for a, b in zip(got, expected, strict=True):
        assert_same_episode(a, b)
    assert got[0].frames[0]["observation.images.top"].shape == (16, 24, 3)


def test_a_killed_worker_loses_only_its_seed():
    # Longer episodes, so the kill lands while the victim is still simulating.
    with EpisodeWorkers(replace(SPEC, episode_length=60), workers=2, first_seed=0) as workers:
        delivered = [workers.next_episode()]
        # Idle workers get their next seed before a result is handed over, so one is busy now. The victim is
        # the seed given last, just started (seed 1 started with seed 0: its result may be in the pipe
        # already).
        assert workers.in_progress, "no worker was given a seed before the result was delivered"
        victim, pid = max(workers.in_progress.items())
        os.kill(pid, signal.SIGKILL)
        rest = take(workers, count=victim - delivered[-1].seed + 2)
    by_seed = {r.seed: r for r in delivered + rest}
    assert sorted(by_seed) == list(range(len(by_seed)))  # every seed, in order, none skipped
    lost = by_seed[victim]
    assert isinstance(lost, LostEpisode) and lost.exitcode == -signal.SIGKILL
    assert str(lost) == f"the worker simulating seed {victim} died (signal 9); that episode is lost"
    after = [r for seed, r in by_seed.items() if seed > victim]
    assert after and all(
        isinstance(r, SimulatedEpisode) and r.frames for r in after
    )  # a new worker took over


def test_a_worker_that_fails_loses_only_its_seed():
    # Seed -1 makes gym-aloha's pose sampler raise inside the worker, which exits with code 1.
    with EpisodeWorkers(SPEC, workers=2, first_seed=-1) as workers:
        results = take(workers, count=3)
    assert [r.seed for r in results] == [-1, 0, 1]
    assert isinstance(results[0], LostEpisode) and results[0].exitcode == 1
    assert all(isinstance(r, SimulatedEpisode) for r in results[1:])


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        EpisodeWorkers(SPEC, workers=0)
