"""The run: detect, fill, evaluate, preview, write the new dataset, report.

Crash safety: all work happens in ``<new_root>.partial``; detections are saved there episode by episode,
and the finished dataset is renamed to ``--new_root`` only once it is complete, so an interrupted run never
leaves a dataset that loads as if complete. Rerunning with the same detection settings resumes from the
saved episodes; with others it is refused (`ResumeRefused`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..common.durable import publish, read_json, refuse_other_settings, staging_path, write_json_atomically
from ..common.processes import die_with_parent
from ..gaze_box import ABSENT_BOX, gaze_box_feature, gaze_box_key, is_present
from .boxes import evaluate_boxes, fill_boxes, pad_boxes
from .config import AnnotateConfig
from .detector import Detection, Detector, ZeroShotDetector, resolve_device
from .plan import IMAGE_PREFIX, Plan, check_inputs, load_objects, load_source, make_plans, to_hwc_uint8
from .preview import write_preview

logger = logging.getLogger(__name__)

ANNOTATION_META = "meta/gaze_annotation.json"
RUN_FILE = "run.json"  # in the staging directory: the detection settings the saved episodes were made with
# What the saved detections depend on: a resumed run must repeat these (--max_gap, --pad and the preview
# apply after detection and may change).
DETECTION_SETTINGS = (
    "repo_id",
    "cameras",
    "object",
    "detector_model",
    "box_threshold",
    "text_threshold",
    "stride",
    "gripper_key",
    "gripper_names",
    "gripper_threshold",
    "gripper_closed_above",
)


def detection_settings(config: AnnotateConfig) -> dict:
    """The config's `DETECTION_SETTINGS` and the objects file's content, as JSON values."""
    settings = {name: getattr(config, name) for name in DETECTION_SETTINGS}
    settings["objects"] = load_objects(config.objects) if config.objects else None
    return json.loads(json.dumps(settings, default=str))


def annotate(config: AnnotateConfig, detector: Detector | None = None) -> dict:
    """Annotate (and/or evaluate); returns the report written to meta/gaze_annotation.json.

    Raises AnnotateError on bad input (before any work) and ResumeRefused when ``<new_root>.partial`` holds
    an interrupted run with other detection settings.
    """
    dataset = load_source(config)
    cameras, phrases_per_task = check_inputs(config, dataset)
    if config.objects and config.object is None:
        logger.info("Objects per task: %s", phrases_per_task)
    plans = make_plans(config, dataset, phrases_per_task)

    if detector is None:
        device, dtype = resolve_device(config.device, config.dtype)
        detector = ZeroShotDetector.load(
            config.detector_model, device, dtype, config.box_threshold, config.text_threshold
        )

    temporary = None
    if config.new_root is not None:
        staging = staging_path(config.new_root)
    else:  # evaluation only: nothing to resume
        temporary = tempfile.TemporaryDirectory(prefix="reconvla-annotate-")
        staging = Path(temporary.name) / "run"
    try:
        prepare_staging(staging, detection_settings(config) | {"detector_name": detector.name})
        detections = _detect_all(plans, dataset, detector, cameras, config, staging)
        boxes, scores = _fill_all(plans, detections, cameras, config, dataset.num_frames)
        report = _report(config, detector, cameras, phrases_per_task, boxes, scores, dataset)
        if config.evaluate_against is not None:
            report["evaluation"] = _evaluate(config, dataset, cameras, boxes)
        if config.preview is not None:
            write_preview(
                config.preview,
                dataset,
                cameras,
                boxes,
                config.preview_frames,
                truth=_truth(config, dataset, cameras) if config.evaluate_against else None,
            )
            report["preview"] = str(config.preview)
        if config.new_root is not None:
            _write_dataset(config, dataset, cameras, boxes, report, staging)
            shutil.rmtree(staging)
    finally:
        if temporary is not None:
            temporary.cleanup()
    print_report(report)
    return report


def prepare_staging(staging: Path, settings: dict) -> int:
    """Create or reuse the staging directory; returns how many episodes were already detected."""
    if staging.exists():
        refuse_other_settings(
            read_json(staging / RUN_FILE),
            settings,
            what=f"{staging} holds an interrupted run with other settings",
            remedy=f"rerun with the same options to resume it, or delete {staging} to start over",
        )
        for unfinished in (staging / "detections").glob("*.tmp.npz"):
            unfinished.unlink()  # an episode file killed mid-write: that episode is detected again
        done = len(list((staging / "detections").glob("episode_*.npz")))
        logger.info("Resuming the interrupted run in %s: %d episode(s) already detected", staging, done)
        return done
    (staging / "detections").mkdir(parents=True)
    write_json_atomically(staging / RUN_FILE, settings)
    return 0


def _decoding_worker_init(parent_pid: int, worker_id: int) -> None:
    # torch's own watchdog notices a dead parent only at its next poll; the kernel kills at once.
    die_with_parent(parent_pid)


def detect_episode(
    plan: Plan, dataset, detector: Detector, cameras: list[str], config: AnnotateConfig, progress
) -> dict:
    """Run the detector on the plan's frames; arrays to save for this episode."""
    from torch.utils.data import DataLoader, Subset

    frames = plan.detect_at
    boxes = np.tile(ABSENT_BOX, (len(frames), len(cameras), 1))  # (N, K, 4)
    scores = np.full((len(frames), len(cameras)), np.nan, dtype=np.float32)  # (N, K)
    loader = DataLoader(
        Subset(dataset, plan.indices[frames].tolist()),
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        collate_fn=list,
        worker_init_fn=functools.partial(_decoding_worker_init, os.getpid()),
    )
    start = 0
    for items in loader:
        phrases = [plan.phrases[f] for f in frames[start : start + len(items)]]
        for k, cam in enumerate(cameras):
            images = [to_hwc_uint8(item[IMAGE_PREFIX + cam]) for item in items]
            for i, found in enumerate(detector.detect(images, phrases)):
                if found is not None:
                    boxes[start + i, k], scores[start + i, k] = found.box, found.score
        start += len(items)
        progress.update(len(items))
    return {"frames": frames, "boxes": boxes, "scores": scores}


def _detect_all(plans, dataset, detector, cameras, config, staging: Path) -> dict[int, dict]:
    detections = {}
    todo = []
    for plan in plans:
        path = staging / "detections" / f"episode_{plan.episode:06d}.npz"
        if path.exists():
            detections[plan.episode] = dict(np.load(path))
        else:
            todo.append(plan)
    total = sum(len(plan.detect_at) for plan in todo)
    with tqdm(total=total, unit="frame", desc="detecting", disable=total == 0) as progress:
        for n, plan in enumerate(todo):
            progress.set_postfix_str(f"episode {n + 1}/{len(todo)}")
            found = detect_episode(plan, dataset, detector, cameras, config, progress)
            path = staging / "detections" / f"episode_{plan.episode:06d}.npz"
            # Written under a temporary name and renamed: a crash never leaves a truncated episode file.
            np.savez(path.with_suffix(".tmp.npz"), **found)
            path.with_suffix(".tmp.npz").rename(path)
            detections[plan.episode] = found
    return detections


def _fill_all(plans, detections, cameras, config, num_frames) -> tuple[dict, dict]:
    """Per camera: boxes (N, 4) and scores (N,) in dataset index order."""
    boxes = {cam: np.tile(ABSENT_BOX, (num_frames, 1)) for cam in cameras}
    scores = {cam: np.full(num_frames, np.nan, dtype=np.float32) for cam in cameras}
    for plan in plans:
        found = detections[plan.episode]
        for k, cam in enumerate(cameras):
            detected = {
                int(f): Detection(b, float(s)) if not math.isnan(s) else None
                for f, b, s in zip(found["frames"], found["boxes"][:, k], found["scores"][:, k], strict=True)
            }
            cam_boxes, cam_scores = fill_boxes(len(plan.indices), detected, plan.segment_ids, config.max_gap)
            boxes[cam][plan.indices] = pad_boxes(cam_boxes, config.pad)
            scores[cam][plan.indices] = cam_scores
    return boxes, scores


def _report(config, detector, cameras, phrases_per_task, boxes, scores, dataset) -> dict:
    per_camera = {}
    for cam in cameras:
        present = is_present(boxes[cam])
        per_camera[cam] = {
            "frames_with_box": float(present.mean()),
            "mean_score": float(np.nanmean(scores[cam])) if present.any() else float("nan"),
        }
    return {
        "source": {"repo_id": config.repo_id, "root": str(config.root) if config.root else None},
        "detector": getattr(detector, "model_type", type(detector).__name__),
        "model": detector.name,
        "prompts": phrases_per_task,
        "box_threshold": config.box_threshold,
        "text_threshold": config.text_threshold,
        "stride": config.stride,
        "max_gap": config.max_gap,
        "pad": config.pad,
        "gripper": {
            "key": config.gripper_key,
            "names": config.gripper_names,
            "threshold": config.gripper_threshold,
            "closed": "above" if config.gripper_closed_above else "below",
        },
        "frames": int(dataset.num_frames),
        "episodes": int(dataset.num_episodes),
        "cameras": per_camera,
    }


def _truth(config, dataset, cameras) -> dict[str, np.ndarray]:
    keys = [f"{config.evaluate_against}.{cam}" for cam in cameras]
    table = dataset.select_columns(keys).with_format("numpy")[:]
    return {cam: np.stack(table[key]).astype(np.float32) for cam, key in zip(cameras, keys, strict=True)}


def _evaluate(config, dataset, cameras, boxes) -> dict:
    truth = _truth(config, dataset, cameras)
    return {
        cam: evaluate_boxes(boxes[cam], truth[cam], config.hit_iou) | {"hit_iou": config.hit_iou}
        for cam in cameras
    }


def _write_dataset(config, dataset, cameras, boxes, report, staging: Path) -> None:
    from lerobot.datasets.compute_stats import get_feature_stats
    from lerobot.datasets.dataset_tools import add_features
    from lerobot.datasets.io_utils import load_stats, write_stats

    features = {gaze_box_key(cam): (boxes[cam], gaze_box_feature()) for cam in cameras}
    target = staging / "dataset"
    if target.exists():  # left by a crash while writing: the detections are safe, write again
        shutil.rmtree(target)
    add_features(dataset, features, output_dir=target, repo_id=config.new_repo_id)
    # add_features copies the source's stats only; give the new features theirs, as recording would.
    stats = load_stats(target) or {}
    for key, (values, _) in features.items():
        stats[key] = get_feature_stats(values, axis=0, keepdims=False) | {"count": np.array([len(values)])}
    write_stats(stats, target)
    (target / ANNOTATION_META).write_text(json.dumps(report, indent=2))
    # The rename is the commit point: before it nothing exists at --new_root.
    publish(target, config.new_root)


def print_report(report: dict) -> None:
    print(f"gaze boxes by {report['model']} ({report['frames']} frames, {report['episodes']} episodes):")
    for cam, stats in report["cameras"].items():
        line = (
            f"  {cam:<16} box in {stats['frames_with_box']:6.1%} of frames, "
            f"mean score {stats['mean_score']:.3f}"
        )
        if "evaluation" in report:
            ev = report["evaluation"][cam]
            line += (
                f" | vs truth: mean IoU {ev['mean_iou']:.3f}, hit rate {ev['hit_rate']:.1%} "
                f"(IoU >= {ev['hit_iou']})"
            )
        print(line)
