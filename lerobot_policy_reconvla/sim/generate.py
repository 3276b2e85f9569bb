"""Scripted three-camera ALOHA demonstrations -> a LeRobotDataset v3 with gaze boxes.

    MUJOCO_GL=egl reconvla-generate --task=insertion --num_episodes=50 \
        --root=data/aloha_sim_insertion_3cam --repo_id=local/aloha_sim_insertion_3cam \
        [--cameras='[top,left_wrist,right_wrist]'] [--image_size='[224,224]'] [--images=true] \
        [--keep_failed=true] [--workers=N] [--scene_seed=S] [--action_noise=STD]

(or ``python -m lerobot_policy_reconvla.sim.generate ...``)

Per episode: the scripted policy is rolled out in the mocap scene (``sim.scripted``), checked by a
physics-only replay, and (if successful, or with ``--keep_failed=true``) replayed again in
``AlohaMultiCamEnv`` with rendering, one dataset frame per step:

    observation.images.<cam>    (H, W, 3) uint8 RGB (video by default, PNG images with --images=true)
    observation.state           (14,) float32   joint positions before the action
    action                      (14,) float32   joint targets
    observation.gaze_box.<cam>  (4,) float32    [x0, y0, x1, y1] in [0, 1], [-1]*4 when out of view
    task                        the episode's task string ("Insert the peg into the socket.",
                                "Pick up the green cube.", ...)

Tasks: ``insertion`` and ``transfer_cube`` (bimanual, 400 steps), ``lift`` and ``lift_named`` (right
arm, 150 steps; ``lift_named`` places three cubes and names one per episode). Gaze boxes are the task
objects' (``lift_named``: the named cube's), widened to at least ``--gaze_min_size`` of the image's
short side (default 0.25, ``sim.gaze.DEFAULT_GAZE_MIN_SIZE``; 0 keeps them tight).

``--scene_seed=S`` places every episode as seed S does (many demonstrations of one scene), and
``--action_noise=STD`` perturbs the arms while recording the script's targets (``sim.episodes``,
DART): each episode's own seed draws its perturbation, so the demonstrations of one scene differ and
show the way back to the script's path. A perturbed episode that fails is not kept.

Episodes are simulated and rendered by ``--workers`` processes (default: the cores available) and
written by this one in seed order (``sim.episodes``), so the dataset is the one a single process
writes for the same seeds. A worker that dies loses only the episode it was simulating: the run names
its seed, records it under ``lost_seeds`` in the sidecar and goes on.

``--num_episodes`` is the number of episodes the dataset should hold. Seeds run from ``--seed``
upwards, one per attempt; ``meta/scripted_generation.json`` records each saved episode's seed.
Every saved episode is committed at once (``sim.recovery``): after SIGINT / SIGTERM the dataset loads
with every finished episode, and after a kill that cannot be caught (SIGKILL, the OOM killer) the next
run rolls back the unfinished episode and generates its seed again. Running again into the same root
resumes (same task, cameras, size, storage), continuing after the last seed tried; anything else there
is refused with the reason.
"""

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from lerobot.configs import parser

from ..common.cli import OutOfSpace, UsageError, check_image_size, out_of_space, run_entry_point
from ..common.durable import ResumeRefused, signals_deferred
from ..embodiment.aloha import JOINT_NAMES
from ..gaze_box import gaze_box_feature, gaze_box_key
from .constants import (
    DEFAULT_CAMERAS,
    FPS,
    check_cameras,
    check_task,
    default_episode_length,
    task_instructions,
)
from .episodes import default_workers
from .gaze import DEFAULT_GAZE_MIN_SIZE
from .recovery import (
    SIDECAR,
    GenerationLedger,
    commit_episode,
    create_committed,
    recover,
    remove_empty_scratch,
    write_sidecar,
)

PROG = "reconvla-generate"


@dataclass
class GenerateConfig:
    # One of insertion, transfer_cube, lift, lift_named, lift_pair.
    task: str
    # Episodes the dataset should hold (a rerun into the same root continues towards this number).
    num_episodes: int
    # Dataset directory.
    root: Path
    # Repo id recorded in the dataset, e.g. local/aloha_sim_insertion_3cam.
    repo_id: str
    # Cameras to record, any of top, angle, vis, left_wrist, right_wrist.
    cameras: list[str] = field(default_factory=lambda: list(DEFAULT_CAMERAS))
    # Image height and width (one value: square).
    image_size: list[int] = field(default_factory=lambda: [224, 224])
    # First seed (object placement, as gym-aloha); one seed per attempt from here on.
    seed: int = 0
    # Also save episodes the script failed.
    keep_failed: bool = False
    # Store PNG images instead of MP4 videos.
    images: bool = False
    # Steps per episode (default: the task's, 400 for the bimanual tasks, 150 for the lifts).
    episode_length: int | None = None
    # Render shadows; false is ~3x faster (evaluate with --env.shadows=false to match).
    shadows: bool = True
    # Smallest gaze-box side as a fraction of the image's short side (0: tight boxes).
    gaze_min_size: float = DEFAULT_GAZE_MIN_SIZE
    # Place every episode as this seed does (several demonstrations of one scene).
    scene_seed: int | None = None
    # Std (rad) of a smooth perturbation of the arms' executed targets; the recorded action stays the
    # script's, so the data shows recoveries (0: exact replays).
    action_noise: float = 0.0
    # Give up after this many seeds (default: 3 x num_episodes).
    max_attempts: int | None = None
    # Processes simulating and rendering episodes in parallel (default: the cores available; 1: in this
    # process).
    workers: int | None = None

    def check(self) -> None:
        """Raises UsageError naming the first flag whose value cannot work; fills the defaults that depend on
        others."""
        try:
            check_task(self.task)
            self.cameras = check_cameras(self.cameras)
        except ValueError as error:
            raise UsageError(str(error)) from None
        if len(self.image_size) == 1:
            self.image_size = self.image_size * 2
        check_image_size(self.image_size)
        if self.num_episodes <= 0:
            raise UsageError(f"--num_episodes must be positive, got {self.num_episodes}")
        if self.workers is None:
            self.workers = default_workers()
        if self.workers <= 0:
            raise UsageError(f"--workers must be positive, got {self.workers}")
        if self.action_noise < 0:
            raise UsageError(f"--action_noise is a standard deviation in rad (>= 0), got {self.action_noise}")
        if not 0 <= self.gaze_min_size <= 1:
            raise UsageError(
                f"--gaze_min_size is a fraction of the image's short side in [0, 1], got {self.gaze_min_size}"
            )
        self.root = Path(self.root)
        self.episode_length = self.episode_length or default_episode_length(self.task)


def dataset_features(cameras, image_size, use_videos: bool) -> dict:
    """LeRobot feature spec of the generated datasets (also what the policy side can expect)."""
    h, w = image_size
    features = {}
    for cam in cameras:
        features[f"observation.images.{cam}"] = {
            "dtype": "video" if use_videos else "image",
            "shape": (h, w, 3),
            "names": ["height", "width", "channels"],
        }
    features["observation.state"] = {"dtype": "float32", "shape": (14,), "names": list(JOINT_NAMES)}
    features["action"] = {"dtype": "float32", "shape": (14,), "names": list(JOINT_NAMES)}
    for cam in cameras:
        features[gaze_box_key(cam)] = gaze_box_feature()
    return features


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def _check_compatible(meta, features: dict, task: str) -> None:
    """Refuse to resume into a dataset written with other settings (names the first difference)."""
    existing = meta.features
    for key, spec in features.items():
        if key not in existing:
            raise ResumeRefused(
                f"refusing to resume: {key!r} is not in the existing dataset (has {sorted(existing)})"
            )
        have = existing[key]
        if have["dtype"] != spec["dtype"] or tuple(have["shape"]) != tuple(spec["shape"]):
            raise ResumeRefused(
                f"refusing to resume: {key!r} is {have['dtype']} {tuple(have['shape'])} in the existing "
                f"dataset, this run asks for {spec['dtype']} {tuple(spec['shape'])}"
            )
    extra = [k for k in existing if k.startswith("observation.") and k not in features]
    if extra:
        raise ResumeRefused(
            f"refusing to resume: the existing dataset also has {extra}; pass the same --cameras"
        )
    tasks = set(meta.tasks.index) if meta.tasks is not None else set()
    if not tasks <= set(task_instructions(task)):
        raise ResumeRefused(
            f"refusing to resume: the existing dataset's tasks are {sorted(tasks)}, not {task!r}'s"
        )
    if meta.fps != FPS:
        raise ResumeRefused(f"refusing to resume: existing fps {meta.fps} != {FPS}")


def _image_writer_threads(cfg: GenerateConfig) -> int:
    return 2 * len(cfg.cameras)


def open_dataset(cfg: GenerateConfig, features: dict):
    """(dataset, ledger): a new dataset, or the one at --root rolled back to its last commit and reopened
    for appending."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = cfg.root
    requested = GenerationLedger(
        task=cfg.task,
        cameras=list(cfg.cameras),
        shadows=cfg.shadows,
        gaze_min_size=cfg.gaze_min_size,
        scene_seed=cfg.scene_seed,
        action_noise=cfg.action_noise,
        next_seed=cfg.seed,
    )
    ledger = GenerationLedger.read(root)
    if ledger is not None:
        removed = recover(root, ledger)
        if removed:
            print(
                f"{root}: an interrupted run left an unfinished episode; removed its {len(removed)} file(s), "
                f"seed {ledger.next_seed} will be generated again",
                file=sys.stderr,
            )
    if (root / "meta" / "info.json").exists():
        meta = _load_local_metadata(cfg.repo_id, root)
        _check_compatible(meta, features, cfg.task)
        if ledger is None:
            raise ResumeRefused(
                f"refusing to resume: {root} holds a LeRobot dataset not written by this generator "
                f"({SIDECAR} is missing)"
            )
        asked = requested.settings()
        for name, before in ledger.settings().items():
            now = asked[name]
            if before != now:
                raise ResumeRefused(
                    f"refusing to resume: {root} was generated with --{name}={before}, "
                    f"this run asks for --{name}={now}"
                )
        dataset = LeRobotDataset.resume(
            cfg.repo_id, root=root, image_writer_threads=_image_writer_threads(cfg)
        )
        return dataset, ledger
    if root.exists() and any(root.iterdir()):
        raise ResumeRefused(
            f"refusing to write: {root} exists, is not empty and holds no LeRobot dataset (meta/info.json)"
        )

    def create(path: Path):
        return LeRobotDataset.create(
            repo_id=cfg.repo_id,
            fps=FPS,
            features=features,
            root=path,
            robot_type="aloha",
            use_videos=not cfg.images,
            image_writer_threads=_image_writer_threads(cfg),
        )

    return create_committed(root, create, requested, _image_writer_threads(cfg)), requested


def _load_local_metadata(repo_id: str, root: Path):
    """LeRobot's metadata of a local root, or one line saying what is missing (LeRobot would go to the
    Hub)."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
    from lerobot.datasets.io_utils import load_info

    info = load_info(root)
    missing = [] if info.total_tasks == 0 else [p for p in ["meta/tasks.parquet"] if not (root / p).exists()]
    if info.total_episodes > 0 and not any((root / "meta" / "episodes").glob("*/*.parquet")):
        missing.append("meta/episodes/")
    if missing:
        raise ResumeRefused(
            f"cannot resume {root}: {info.total_episodes} episode(s) in meta/info.json but {missing} missing "
            f"(a run killed before its episodes were committed); move {root} away and run the command again"
        )
    return LeRobotDatasetMetadata(repo_id, root=root)


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def generate_dataset(cfg: GenerateConfig) -> int:
    """Generates (or resumes) the dataset; returns 0 when it holds --num_episodes, 1 when --max_attempts ran
    out first, 130 when stopped by SIGINT / SIGTERM (every finished episode kept). Raises UsageError or
    ResumeRefused before any work."""
    cfg.check()
    from tqdm import tqdm

    from .episodes import EpisodeSpec, EpisodeWorkers, LostEpisode

    features = dataset_features(cfg.cameras, cfg.image_size, use_videos=not cfg.images)
    dataset, ledger = open_dataset(cfg, features)
    start_count = dataset.meta.total_episodes
    max_attempts = cfg.max_attempts or 3 * cfg.num_episodes
    spec = EpisodeSpec(
        cfg.task,
        tuple(cfg.cameras),
        tuple(cfg.image_size),
        cfg.episode_length,
        cfg.keep_failed,
        cfg.gaze_min_size,
        cfg.shadows,
        cfg.scene_seed,
        cfg.action_noise,
    )

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    attempts = successes = frames = 0
    started = time.perf_counter()
    bar = tqdm(total=cfg.num_episodes, initial=start_count, desc=f"{cfg.task} episodes", unit="ep")
    stopped_by = None
    disk_full: OSError | None = None
    # Episodes are simulated by `--workers` processes and written here, one at a time, in seed order.
    workers = EpisodeWorkers(spec, cfg.workers, first_seed=ledger.next_seed)
    try:
        while dataset.meta.total_episodes < cfg.num_episodes and attempts < max_attempts:
            seed = ledger.next_seed
            result = workers.next_episode()
            assert result.seed == seed, (result.seed, seed)
            attempts += 1
            if isinstance(result, LostEpisode):
                bar.write(f"{result}; going on with seed {seed + 1}", file=sys.stderr)
            successes += getattr(result, "scripted_ok", False)
            if getattr(result, "frames", None) is not None:
                for frame in result.frames:
                    dataset.add_frame(frame)
                with signals_deferred():  # saved and committed as one step (sim.recovery)
                    # Cameras encoded here, one after another (each encoder is multithreaded), not in
                    # LeRobot's process pool: forked pool children would inherit the deferred handlers
                    # (immune to SIGTERM) and the workers' pipes, and outlive a SIGKILL of this process.
                    dataset.save_episode(parallel_encoding=False)
                    ledger.record_episode(
                        dataset.meta.total_episodes - 1, seed, result.success, result.instruction
                    )
                    dataset = commit_episode(dataset, ledger, _image_writer_threads(cfg))
                frames += len(result.frames)
                bar.update(1)
            else:
                ledger.skip_seed(seed, lost=isinstance(result, LostEpisode))
                write_sidecar(cfg.root, ledger)
            elapsed = time.perf_counter() - started
            bar.set_postfix(seed=seed, success=f"{successes}/{attempts}", fps=f"{frames / elapsed:.1f}")
    except _Stop as stop:
        stopped_by = str(stop)
    except KeyboardInterrupt:
        stopped_by = "SIGINT"
    except Exception as error:
        disk_full = out_of_space(error)
        if disk_full is None:
            raise
    finally:
        workers.close()  # episodes still being simulated are dropped
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # Ignore further signals while finalizing: a second Ctrl-C must not leave parquet footers unwritten.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if dataset.has_pending_frames():
            dataset.clear_episode_buffer()  # the unfinished episode is dropped, never half-saved
        try:
            dataset.finalize()
        except Exception as error:
            disk_full = disk_full or out_of_space(error)  # the write that failed is retried here
            if disk_full is None:
                raise
        remove_empty_scratch(cfg.root)  # LeRobot's empty per-camera frame directories
        bar.close()
        signal.signal(signal.SIGINT, previous[signal.SIGINT])
        signal.signal(signal.SIGTERM, previous[signal.SIGTERM])
    if disk_full is not None:
        raise _no_space(cfg.root, disk_full)

    elapsed = time.perf_counter() - started
    total = dataset.meta.total_episodes
    if start_count >= cfg.num_episodes:
        print(
            f"{cfg.root}: already holds {total} episodes (--num_episodes={cfg.num_episodes}); nothing to do"
        )
        return 0
    print(
        f"{cfg.root}: {total} episodes ({total - start_count} new); scripted success {successes}/{attempts} "
        f"({100 * successes / max(attempts, 1):.0f}%); {frames} frames in {elapsed:.1f} s "
        f"= {frames / max(elapsed, 1e-9):.2f} frames/s" + (f"; stopped by {stopped_by}" if stopped_by else "")
    )
    if stopped_by:
        return 130
    if total < cfg.num_episodes:
        print(f"gave up after {attempts} attempts (--max_attempts); rerun to continue", file=sys.stderr)
        return 1
    return 0


def _no_space(root: Path, error: OSError) -> OutOfSpace:
    """Rolls `root` back to its last commit now (removing the unfinished episode's files frees space, and the
    dataset loads at once), and says what was kept."""
    ledger = GenerationLedger.read(root)
    try:
        if ledger is not None:
            recover(root, ledger)
        state = "rolled back to its last commit"
    except OSError:
        state = "rolled back by the next run"  # even the rollback could not write: the next run does it
    kept = len(ledger.episodes) if ledger is not None else 0
    return OutOfSpace(
        f"no space left writing {root} ({error.strerror or error}); the dataset is {state}, its {kept} "
        "committed episode(s) kept: free some space and run the same command again to go on"
    )


@parser.wrap()
def generate_command(cfg: GenerateConfig) -> int:
    return generate_dataset(cfg)


def main(argv: list[str] | None = None) -> int:
    """``reconvla-generate``: exit status 0 done, 1 out of attempts, 2 refused (one line), 130 stopped."""
    return run_entry_point(generate_command, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(main())
