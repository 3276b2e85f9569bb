"""Scripted three-camera ALOHA demonstrations -> a LeRobotDataset v3 with gaze boxes.

    MUJOCO_GL=egl python -m lerobot_policy_reconvla.sim.generate --task insertion --num-episodes 50 \
        --root data/aloha_sim_insertion_3cam --repo-id local/aloha_sim_insertion_3cam \
        [--cameras top left_wrist right_wrist] [--image-size 224 224] [--images] [--keep-failed] [--workers N] \
        [--scene-seed S] [--action-noise STD]

Per episode: the scripted policy is rolled out in the mocap scene (``sim.scripted``), checked by a
physics-only replay, and (if successful, or with ``--keep-failed``) replayed again in
``AlohaMultiCamEnv`` with rendering, one dataset frame per step:

    observation.images.<cam>    (H, W, 3) uint8 RGB (video by default, PNG images with --images)
    observation.state           (14,) float32   joint positions before the action
    action                      (14,) float32   joint targets
    observation.gaze_box.<cam>  (4,) float32    [x0, y0, x1, y1] in [0, 1], [-1]*4 when out of view
    task                        the episode's task string ("Insert the peg into the socket.",
                                "Pick up the green cube.", ...)

Tasks: ``insertion`` and ``transfer_cube`` (bimanual, 400 steps), ``lift`` and ``lift_named`` (right
arm, 150 steps; ``lift_named`` places three cubes and names one per episode). Gaze boxes are the task
objects' (``lift_named``: the named cube's), widened to at least ``--gaze-min-size`` of the image's
short side (default 0.25, ``sim.gaze.DEFAULT_GAZE_MIN_SIZE``; 0 keeps them tight).

``--scene-seed S`` places every episode as seed S does (many demonstrations of one scene), and
``--action-noise STD`` perturbs the arms while recording the script's targets (``sim.episodes``,
DART): each episode's own seed draws its perturbation, so the demonstrations of one scene differ and
show the way back to the script's path. A perturbed episode that fails is not kept.

Episodes are simulated and rendered by ``--workers`` processes (default: the cores available) and
written by this one in seed order (``sim.episodes``), so the dataset is the one a single process
writes for the same seeds. A worker that dies loses only the episode it was simulating: the run names
its seed, records it under ``lost_seeds`` in the sidecar and goes on.

``--num-episodes`` is the number of episodes the dataset should hold. Seeds run from ``--seed``
upwards, one per attempt; ``meta/scripted_generation.json`` records each saved episode's seed.
Every saved episode is committed at once (``sim.recovery``): after SIGINT / SIGTERM the dataset loads
with every finished episode, and after a kill that cannot be caught (SIGKILL, the OOM killer) the next
run rolls back the unfinished episode and generates its seed again. Running again into the same root
resumes (same task, cameras, size, storage), continuing after the last seed tried; anything else there
is refused with the reason.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from ..embodiment.aloha import JOINT_NAMES
from ..gaze_box import gaze_box_feature, gaze_box_key
from .constants import DEFAULT_CAMERAS, FPS, SCENE_CAMERAS, TASKS
from .constants import check_cameras, check_task, default_episode_length, task_instructions
from .episodes import default_workers
from .gaze import DEFAULT_GAZE_MIN_SIZE
from .recovery import SIDECAR, commit_episode, create_committed, read_sidecar, recover, signals_deferred
from .recovery import write_sidecar


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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lerobot_policy_reconvla.sim.generate", description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True, help=f"one of {list(TASKS)}")
    p.add_argument("--num-episodes", type=int, required=True, help="episodes the dataset should hold")
    p.add_argument("--root", type=Path, required=True, help="dataset directory")
    p.add_argument("--repo-id", required=True, help="e.g. local/aloha_sim_insertion_3cam")
    p.add_argument("--cameras", nargs="+", default=list(DEFAULT_CAMERAS), help=f"any of {list(SCENE_CAMERAS)}")
    p.add_argument("--image-size", type=int, nargs="+", default=[224, 224], help="H W (or one value for square)")
    p.add_argument("--seed", type=int, default=0, help="first seed (object placement, as gym-aloha)")
    p.add_argument("--keep-failed", action="store_true", help="also save episodes the script failed")
    p.add_argument("--images", action="store_true", help="store PNG images instead of MP4 videos")
    p.add_argument("--episode-length", type=int, default=None,
                   help="steps per episode (default: the task's, 400 for the bimanual tasks, 150 for the lifts)")
    p.add_argument("--no-shadows", dest="shadows", action="store_false",
                   help="render without shadows (~3x faster; evaluate with --env.shadows=false to match)")
    p.add_argument("--gaze-min-size", type=float, default=DEFAULT_GAZE_MIN_SIZE,
                   help="smallest gaze-box side as a fraction of the image's short side (0: tight boxes)")
    p.add_argument("--scene-seed", type=int, default=None,
                   help="place every episode as this seed does (several demonstrations of one scene)")
    p.add_argument("--action-noise", type=float, default=0.0,
                   help="std (rad) of a smooth perturbation of the arms' executed targets; the recorded action "
                        "stays the script's, so the data shows recoveries (default 0: exact replays)")
    p.add_argument("--max-attempts", type=int, default=None, help="give up after this many seeds (3 x episodes)")
    p.add_argument("--workers", type=int, default=default_workers(),
                   help="processes simulating and rendering episodes in parallel (default: the cores available)")
    args = p.parse_args(argv)
    try:
        check_task(args.task)
        args.cameras = check_cameras(args.cameras)
    except ValueError as error:
        p.error(str(error))
    if len(args.image_size) == 1:
        args.image_size = args.image_size * 2
    if len(args.image_size) != 2 or min(args.image_size) <= 0:
        p.error(f"--image-size takes H W (positive), got {args.image_size}")
    if args.num_episodes <= 0:
        p.error("--num-episodes must be positive")
    if args.workers <= 0:
        p.error(f"--workers must be positive, got {args.workers}")
    if args.action_noise < 0:
        p.error(f"--action-noise is a standard deviation in rad (>= 0), got {args.action_noise}")
    if not 0 <= args.gaze_min_size <= 1:
        p.error(f"--gaze-min-size is a fraction of the image's short side in [0, 1], got {args.gaze_min_size}")
    args.episode_length = args.episode_length or default_episode_length(args.task)
    return args


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def _check_compatible(meta, features: dict, task: str) -> None:
    """Refuse to resume into a dataset written with other settings (names the first difference)."""
    existing = meta.features
    for key, spec in features.items():
        if key not in existing:
            raise SystemExit(f"refusing to resume: {key!r} is not in the existing dataset (has {sorted(existing)})")
        have = existing[key]
        if have["dtype"] != spec["dtype"] or tuple(have["shape"]) != tuple(spec["shape"]):
            raise SystemExit(
                f"refusing to resume: {key!r} is {have['dtype']} {tuple(have['shape'])} in the existing dataset, "
                f"this run asks for {spec['dtype']} {tuple(spec['shape'])}"
            )
    extra = [k for k in existing if k.startswith("observation.") and k not in features]
    if extra:
        raise SystemExit(f"refusing to resume: the existing dataset also has {extra}; pass the same --cameras")
    tasks = set(meta.tasks.index) if meta.tasks is not None else set()
    if not tasks <= set(task_instructions(task)):
        raise SystemExit(f"refusing to resume: the existing dataset's tasks are {sorted(tasks)}, not {task!r}'s")
    if meta.fps != FPS:
        raise SystemExit(f"refusing to resume: existing fps {meta.fps} != {FPS}")


# Settings a resumed run must repeat, each with what a sidecar written before it existed was made with.
_RESUME_SETTINGS = {"gaze_min_size": 0.0, "scene_seed": None, "action_noise": 0.0}


def open_dataset(args, features: dict):
    """(dataset, sidecar state, reopen): a new dataset, or the one at --root rolled back to its last commit
    and reopened for appending. `reopen(root)` resumes writing after a commit."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root: Path = args.root
    writer_kwargs = {"image_writer_threads": 2 * len(args.cameras)}

    def reopen(path: Path):
        return LeRobotDataset.resume(args.repo_id, root=path, **writer_kwargs)

    state = read_sidecar(root)
    if state is not None:
        removed = recover(root, state)
        if removed:
            print(f"{root}: an interrupted run left an unfinished episode; removed its {len(removed)} file(s), "
                  f"seed {state['next_seed']} will be generated again", file=sys.stderr)
    if (root / "meta" / "info.json").exists():
        meta = _load_local_metadata(args.repo_id, root)
        _check_compatible(meta, features, args.task)
        if state is None:
            raise SystemExit(
                f"refusing to resume: {root} holds a LeRobot dataset not written by this generator ({SIDECAR} is missing)"
            )
        if state.get("task") != args.task:
            raise SystemExit(f"refusing to resume: {root} was generated for task {state.get('task')!r}")
        if state.get("shadows", True) != args.shadows:
            raise SystemExit(f"refusing to resume: {root} was rendered with shadows={state.get('shadows', True)}, "
                             f"this run asks for shadows={args.shadows} (--no-shadows)")
        for name, neutral in _RESUME_SETTINGS.items():
            before, now = state.get(name, neutral), getattr(args, name)
            flag = "--" + name.replace("_", "-")
            if before != now:
                raise SystemExit(f"refusing to resume: {root} was generated with {flag} {before}, this run asks for {now}")
        return reopen(root), state, reopen
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"refusing to write: {root} exists, is not empty and holds no LeRobot dataset (meta/info.json)")

    def create(path: Path):
        return LeRobotDataset.create(repo_id=args.repo_id, fps=FPS, features=features, root=path, robot_type="aloha",
                                     use_videos=not args.images, **writer_kwargs)

    state = {"task": args.task, "cameras": args.cameras, "gaze_min_size": args.gaze_min_size, "shadows": args.shadows,
             "scene_seed": args.scene_seed, "action_noise": args.action_noise, "next_seed": args.seed, "episodes": []}
    return create_committed(root, create, state, reopen), state, reopen


def _load_local_metadata(repo_id: str, root: Path):
    """LeRobot's metadata of a local root, or one line saying what is missing (LeRobot would go to the Hub)."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
    from lerobot.datasets.io_utils import load_info

    info = load_info(root)
    missing = [] if info.total_tasks == 0 else [p for p in ["meta/tasks.parquet"] if not (root / p).exists()]
    if info.total_episodes > 0 and not any((root / "meta" / "episodes").glob("*/*.parquet")):
        missing.append("meta/episodes/")
    if missing:
        raise SystemExit(
            f"cannot resume {root}: {info.total_episodes} episode(s) in meta/info.json but {missing} missing "
            f"(a run killed before its episodes were committed); move {root} away and run the command again"
        )
    return LeRobotDatasetMetadata(repo_id, root=root)


def main(argv=None) -> int:
    args = parse_args(argv)
    from tqdm import tqdm

    from .episodes import EpisodeSpec, EpisodeWorkers, LostEpisode

    features = dataset_features(args.cameras, args.image_size, use_videos=not args.images)
    dataset, state, reopen = open_dataset(args, features)
    start_count = dataset.meta.total_episodes
    max_attempts = args.max_attempts or 3 * args.num_episodes
    spec = EpisodeSpec(args.task, tuple(args.cameras), tuple(args.image_size), args.episode_length, args.keep_failed,
                       args.gaze_min_size, args.shadows, args.scene_seed, args.action_noise)

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    attempts = successes = frames = 0
    started = time.perf_counter()
    bar = tqdm(total=args.num_episodes, initial=start_count, desc=f"{args.task} episodes", unit="ep")
    stopped_by = None
    # Episodes are simulated by `--workers` processes and written here, one at a time, in seed order.
    workers = EpisodeWorkers(spec, args.workers, first_seed=state["next_seed"])
    try:
        while dataset.meta.total_episodes < args.num_episodes and attempts < max_attempts:
            seed = state["next_seed"]
            result = workers.next_episode()
            assert result.seed == seed, (result.seed, seed)
            attempts += 1
            if isinstance(result, LostEpisode):
                bar.write(f"{result}; going on with seed {seed + 1}", file=sys.stderr)
                state.setdefault("lost_seeds", []).append(seed)
            successes += getattr(result, "scripted_ok", False)
            if getattr(result, "frames", None) is not None:
                for frame in result.frames:
                    dataset.add_frame(frame)
                with signals_deferred():  # saved and committed as one step (sim.recovery)
                    # Cameras encoded here, one after another (each encoder is multithreaded), not in
                    # LeRobot's process pool: forked pool children would inherit the deferred handlers
                    # (immune to SIGTERM) and the workers' pipes, and outlive a SIGKILL of this process.
                    dataset.save_episode(parallel_encoding=False)
                    state["episodes"].append({"episode_index": dataset.meta.total_episodes - 1, "seed": seed,
                                              "success": result.success, "task": result.instruction})
                    state["next_seed"] = seed + 1
                    dataset = commit_episode(dataset, state, reopen)
                frames += len(result.frames)
                bar.update(1)
            else:
                state["next_seed"] = seed + 1
                write_sidecar(args.root, state)
            elapsed = time.perf_counter() - started
            bar.set_postfix(seed=seed, success=f"{successes}/{attempts}", fps=f"{frames / elapsed:.1f}")
    except _Stop as stop:
        stopped_by = str(stop)
    except KeyboardInterrupt:
        stopped_by = "SIGINT"
    finally:
        workers.close()  # episodes still being simulated are dropped
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # Ignore further signals while finalizing: a second Ctrl-C must not leave parquet footers unwritten.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if dataset.has_pending_frames():
            dataset.clear_episode_buffer()  # the unfinished episode is dropped, never half-saved
        dataset.finalize()
        bar.close()
        signal.signal(signal.SIGINT, previous[signal.SIGINT])
        signal.signal(signal.SIGTERM, previous[signal.SIGTERM])

    elapsed = time.perf_counter() - started
    total = dataset.meta.total_episodes
    print(
        f"{args.root}: {total} episodes ({total - start_count} new); scripted success {successes}/{attempts} "
        f"({100 * successes / max(attempts, 1):.0f}%); {frames} frames in {elapsed:.1f} s "
        f"= {frames / max(elapsed, 1e-9):.2f} frames/s" + (f"; stopped by {stopped_by}" if stopped_by else "")
    )
    if stopped_by:
        return 130
    if total < args.num_episodes:
        print(f"gave up after {attempts} attempts (--max-attempts); rerun to continue", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
