"""Scripted episodes simulated and rendered in parallel processes, delivered in seed order.

    spec = EpisodeSpec(task="insertion", cameras=["top"], image_size=(224, 224))
    with EpisodeWorkers(spec, workers=2, first_seed=0) as workers:
        while ...:
            result = workers.next_episode()   # seeds 0, 1, 2, ... in order, whatever finishes first
            if isinstance(result, LostEpisode): ...       # its worker died: that seed only is lost
            elif result.frames is not None: ...           # (T,) dataset frames of a kept episode

One episode = ``sim.scripted``: the scripted demonstration (mocap rollout), its physics-only replay
(success check), and, when it is kept (successful, or ``keep_failed``), its replay in
``AlohaMultiCamEnv`` with rendering: one dataset frame per step. ``simulate_episode`` is that work for
one seed; ``workers=1`` runs it in this process, more run it in worker processes (one rendering env
each), at most ``workers`` seeds ahead of the oldest undelivered one, so memory stays bounded
(about ``2 x workers`` episodes of frames) and the results, hence a dataset written from them in
order, are those of a single-process run. A worker that dies (killed, out of memory) costs the
episode it was simulating: it is delivered as a :class:`LostEpisode` naming the seed and exit code,
and a new worker takes over. Workers ignore SIGINT: Ctrl-C reaches the caller, which closes them; a
caller killed outright takes them with it (``processes.die_with_parent``).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import wait
from typing import Self

import numpy as np

from ..common.processes import die_with_parent
from ..embodiment.aloha import GRIPPER_INDICES
from ..gaze_box import gaze_box_key
from .gaze import DEFAULT_GAZE_MIN_SIZE

WORKER_MODULE = f"{__package__}.worker_entry"


@dataclass(frozen=True)
class EpisodeSpec:
    """What every episode of a run shares."""

    task: str
    cameras: Sequence[str]
    image_size: tuple[int, int]
    episode_length: int | None = None  # None: the task's
    keep_failed: bool = False
    gaze_min_size: float = DEFAULT_GAZE_MIN_SIZE  # fraction of the image's short side (sim.gaze.widen_box)
    shadows: bool = True  # False renders ~3x faster; evaluate with --env.shadows=false then
    scene_seed: int | None = None  # place every episode as this seed does (None: each episode's own seed)
    action_noise: float = 0.0  # std (rad) of the perturbation added to the arms' executed targets


@dataclass
class SimulatedEpisode:
    seed: int
    scripted_ok: bool  # the physics-only replay reached gym-aloha's success
    # Dataset frames (observation.state, action, observation.images.<cam>, observation.gaze_box.<cam>,
    # task) when the episode is kept, else None (not rendered).
    frames: list[dict] | None = field(default=None, repr=False)
    success: bool = False  # the rendered replay reached success
    instruction: str = ""  # the episode's task string


@dataclass
class LostEpisode:
    seed: int
    exitcode: int | None  # of the worker that died simulating it (negative: killed by that signal)

    def __str__(self) -> str:
        how = (
            f"signal {-self.exitcode}"
            if self.exitcode and self.exitcode < 0
            else f"exit code {self.exitcode}"
        )
        return f"the worker simulating seed {self.seed} died ({how}); that episode is lost"


def make_env(spec: EpisodeSpec):
    from .env import AlohaMultiCamEnv

    return AlohaMultiCamEnv(
        task=spec.task,
        cameras=spec.cameras,
        image_size=spec.image_size,
        episode_length=spec.episode_length,
        gaze_min_size=spec.gaze_min_size,
        shadows=spec.shadows,
    )


def arm_perturbation(seed: int, steps: int, std: float, correlation_steps: float = 20.0) -> np.ndarray:
    """(steps, 14) smooth noise for the arm joints (grippers 0): a stationary Ornstein-Uhlenbeck process of
    standard deviation `std` rad whose correlation decays over `correlation_steps`, seeded by `seed`.

    Smooth, because the arms' position control filters out per-step jitter: a drift that lasts tens of
    steps moves the arm off the script's path, which is the state a policy must learn to recover from."""
    noise = np.zeros((steps, 14))
    if std == 0:
        return noise
    rng = np.random.default_rng(seed)
    decay = np.exp(-1.0 / correlation_steps)
    arms = [i for i in range(14) if i not in GRIPPER_INDICES]
    noise[0, arms] = rng.normal(0.0, std, len(arms))
    for t in range(1, steps):
        noise[t, arms] = decay * noise[t - 1, arms] + np.sqrt(1 - decay**2) * rng.normal(0.0, std, len(arms))
    return noise


def simulate_episode(spec: EpisodeSpec, seed: int, env) -> SimulatedEpisode:
    """Script, check and (if kept) render the episode of `seed` in `env` (an ``AlohaMultiCamEnv``).

    With ``spec.action_noise``, the env executes the script's targets plus :func:`arm_perturbation`
    while the frame records the script's target as ``action`` (DART, Laskey et al. 2017): the
    demonstrations then show the way back to the script's path from where the perturbation led. Such an
    episode is kept only if it still succeeds (or with ``keep_failed``)."""
    from .scripted import replay, scripted_episode

    episode = scripted_episode(
        spec.task, seed if spec.scene_seed is None else spec.scene_seed, spec.episode_length
    )
    scripted_ok = replay(episode).success  # physics only: skip rendering what won't be kept
    if not (scripted_ok or spec.keep_failed):
        return SimulatedEpisode(seed, scripted_ok, instruction=episode.scene.instruction)
    task_string = episode.scene.instruction
    obs, info = env.reset(seed=seed, options={"scene": episode.scene})
    executed = episode.actions + arm_perturbation(seed, len(episode.actions), spec.action_noise)  # (T, 14)
    frames, success = [], False
    for action, command in zip(episode.actions, executed, strict=True):
        frame = {
            "observation.state": obs["agent_pos"].astype(np.float32),  # (14,)
            "action": action.astype(np.float32),  # (14,)
            "task": task_string,
        }
        for cam, image in obs["pixels"].items():
            frame[f"observation.images.{cam}"] = image  # (H, W, 3) uint8
            frame[gaze_box_key(cam)] = info["gaze_boxes"][cam]  # (4,)
        frames.append(frame)
        obs, _, _, _, info = env.step(command)
        success |= info["is_success"]
    if spec.action_noise and not (success or spec.keep_failed):
        return SimulatedEpisode(seed, False, instruction=task_string)  # the perturbation spoilt it: not kept
    return SimulatedEpisode(seed, scripted_ok, frames, bool(success), task_string)


def run_worker(conn, parent_pid: int) -> None:
    """A worker process (``worker_entry``): the spec, one rendering env, then seeds in, episodes out,
    until None or EOF."""
    die_with_parent(parent_pid)  # a parent killed with SIGKILL cannot close us
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the run; it closes us
    spec = EpisodeSpec(**conn.recv())
    env = make_env(spec)
    while True:
        try:
            seed = conn.recv()
        except (EOFError, ConnectionError):  # the parent is gone (closed, or killed: reset by peer)
            return
        if seed is None:
            return
        episode = simulate_episode(spec, seed, env)
        try:
            conn.send(episode)
        except ConnectionError:  # the parent died while we simulated (broken pipe)
            return


class _Worker:
    """A fresh interpreter running ``worker_entry`` (no GL context or threads inherited), joined to this
    process by a pipe. Its imports run the package root, which registers the plugin with LeRobot and so
    imports LeRobot and torch: about 13 s of CPU and 0.5 GB of memory more than the simulation needs
    (docs/design.md). A plain command rather than a multiprocessing child: a spawned child re-runs the
    caller's main module, and spawning keeps multiprocessing's resource tracker alive with the caller."""

    def __init__(self, spec: EpisodeSpec):
        self.conn, child = Pipe()
        # stdin closed: a worker never reads the terminal; its output goes where the caller's goes.
        self.process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(child.fileno()), str(os.getpid())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        child.close()  # only the worker holds its end: its death shows here as EOF
        self.conn.send(dataclasses.asdict(spec))
        self.seed: int | None = None  # the seed it is simulating


class EpisodeWorkers:
    """``workers`` processes simulating episodes; use as a context manager (closing stops them)."""

    def __init__(self, spec: EpisodeSpec, workers: int, first_seed: int = 0):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.spec, self.num_workers = spec, workers
        self._workers: list[_Worker] = []
        self._env = None  # workers=1: the in-process env
        self._results = self._episodes(first_seed)

    def next_episode(self) -> SimulatedEpisode | LostEpisode:
        """The result of the next seed (first_seed, first_seed + 1, ...), waiting for it if needed."""
        return next(self._results)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker now; episodes in progress are dropped."""
        for worker in self._workers:
            if worker.process.poll() is None:
                worker.process.terminate()
        for worker in self._workers:
            worker.process.wait()
            worker.conn.close()
        self._workers = []

    @property
    def in_progress(self) -> dict[int, int]:
        """{seed: worker pid} of the episodes being simulated right now (empty with workers=1)."""
        return {w.seed: w.process.pid for w in self._workers if w.seed is not None}

    def _replace(self, dead: _Worker) -> _Worker:
        dead.process.wait()
        dead.conn.close()
        return _Worker(self.spec)

    def _episodes(self, first_seed: int) -> Iterator[SimulatedEpisode | LostEpisode]:
        """Results for seeds first_seed, first_seed + 1, ... in that order, without end."""
        if self.num_workers == 1:
            self._env = self._env or make_env(self.spec)
            seed = first_seed
            while True:
                yield simulate_episode(self.spec, seed, self._env)
                seed += 1
        self._workers = [_Worker(self.spec) for _ in range(self.num_workers)]
        done: dict[int, SimulatedEpisode | LostEpisode] = {}
        next_seed = next_result = first_seed
        while True:
            next_seed = self._dispatch(next_seed, window_end=next_result + self.num_workers)
            busy = {w.conn: w for w in self._workers if w.seed is not None}
            for conn in wait(list(busy)):
                worker = busy[conn]
                try:
                    done[worker.seed] = conn.recv()
                    worker.seed = None
                except (EOFError, ConnectionResetError):  # died mid-episode: that seed is lost
                    self._workers[self._workers.index(worker)] = self._replace(worker)
                    done[worker.seed] = LostEpisode(worker.seed, worker.process.returncode)  # < 0: a signal
            while next_result in done:
                result = done.pop(next_result)
                next_result += 1
                # Refill before handing the result over: the workers simulate while the caller writes it.
                next_seed = self._dispatch(next_seed, window_end=next_result + self.num_workers)
                yield result

    def _dispatch(self, next_seed: int, window_end: int) -> int:
        """Give every idle worker the next seed below `window_end` (so at most num_workers seeds run
        ahead of the oldest undelivered one); returns the next seed not yet given out."""
        for i, worker in enumerate(self._workers):
            if worker.seed is None and next_seed < window_end:
                try:
                    worker.conn.send(next_seed)
                except (BrokenPipeError, ConnectionResetError):  # died while idle: nothing lost
                    worker = self._workers[i] = self._replace(worker)
                    worker.conn.send(next_seed)
                worker.seed, next_seed = next_seed, next_seed + 1
        return next_seed


def default_workers() -> int:
    """The cores this process may run on (respects taskset / container CPU sets)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
