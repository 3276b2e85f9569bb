"""Gaze boxes for a LeRobotDataset that has none, from a zero-shot object detector.

    reconvla-annotate --repo-id lerobot/aloha_static_cups_open --object "cup" \
        --output-root data/aloha_static_cups_open_gaze --preview cups_preview.png

Reads a dataset (Hub repo id, or a local ``--root``) and writes a NEW dataset (the source is never
touched) with one ``observation.gaze_box.<cam>`` float32 (4,) feature per camera: ``[x0, y0, x1, y1]``
normalised to [0, 1], ``[-1, -1, -1, -1]`` where the object is not seen (the convention of the policy and
the simulator). Frames are decoded by LeRobot's own dataset reader (video or image datasets); the new
features are written with LeRobot's ``dataset_tools.add_features``, which copies the data files and
videos of the source unchanged.

What to look for: ``--object PHRASE`` for every frame, or ``--objects FILE``, a JSON object mapping each
task string of the dataset to a phrase or to two phrases. With two ("pick X, place it on Y"), the gaze
is on the first object until the gripper closes (the state's gripper joints cross
``--gripper-threshold``) and on the second after that, as ReconVLA's annotation picks the gazed object
by task stage and gripper state.

Time: the detector runs every ``--stride`` frames (and on the first and last frame of every stage);
boxes between two detections are interpolated linearly; after a miss the last box is kept for
``--max-gap`` frames, then the absent marker is written. Of the detector's boxes the best-scoring one
above ``--box-threshold`` is kept, grown by ``--pad`` (fraction of its size) on every side.

Crash safety: all work happens in ``<output-root>.partial``; detections are saved there episode by
episode, and the finished dataset is renamed to ``--output-root`` only once it is complete, so an
interrupted run never leaves a dataset that loads as if complete. Rerunning the same command resumes
from the saved episodes.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from .gaze_box import ABSENT_BOX, OBS_GAZE_BOX, gaze_box_feature, gaze_box_key, is_present
from .common.processes import die_with_parent

logger = logging.getLogger(__name__)

IMAGE_PREFIX = "observation.images."
ANNOTATION_META = "meta/gaze_annotation.json"
STAGING_SUFFIX = ".partial"

# Detector families and their default checkpoints / score thresholds (the values their model cards use).
DETECTORS = {
    "grounding-dino": {"model": "IDEA-Research/grounding-dino-tiny", "box_threshold": 0.35},
    "owlv2": {"model": "google/owlv2-base-patch16-ensemble", "box_threshold": 0.1},
}
SUPPORTED_MODEL_TYPES = ("grounding-dino", "owlv2", "owlvit")


class AnnotateError(ValueError):
    """Bad input, reported before any work starts."""


# --------------------------------------------------------------------------------------------------
# Detectors
# --------------------------------------------------------------------------------------------------


@dataclass
class Detection:
    box: np.ndarray  # (4,) [x0, y0, x1, y1] normalised to [0, 1]
    score: float


class Detector(Protocol):
    """What the annotator needs of a detector: the best box per image for that image's phrase."""

    name: str

    def detect(self, images: Sequence[np.ndarray], phrases: Sequence[str]) -> list[Detection | None]:
        """images: (H, W, 3) uint8 RGB each; phrases: one per image. None where nothing passes the threshold."""
        ...


class ZeroShotDetector:
    """transformers' zero-shot object detection (Grounding DINO, OWLv2, OWL-ViT) behind `Detector`."""

    def __init__(
        self,
        model,
        processor,
        box_threshold: float,
        text_threshold: float,
        device: str,
        name: str,
        autocast_dtype: torch.dtype = torch.float32,
    ):
        self.model = model.eval()
        self.processor = processor
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.device = device
        self.name = name
        self.model_type = model.config.model_type
        # Weights stay float32 and lower precision comes from autocast: Grounding DINO's forward builds
        # float32 tensors internally, so a model cast to bfloat16 fails with a dtype mismatch.
        self.autocast_dtype = autocast_dtype

    @classmethod
    def load(
        cls,
        name_or_path: str,
        device: str,
        dtype: torch.dtype,
        box_threshold: float,
        text_threshold: float = 0.25,
    ) -> ZeroShotDetector:
        from transformers import AutoConfig, AutoModelForZeroShotObjectDetection, AutoProcessor

        hint = (
            f"pass --detector-model a local directory holding the model and its processor "
            f"(e.g. `hf download {name_or_path} --local-dir DIR` on a machine with Hub access)"
        )
        try:
            config = AutoConfig.from_pretrained(name_or_path)
        except (OSError, ValueError) as error:
            raise AnnotateError(
                f"--detector-model {name_or_path!r} cannot be loaded ({error}); {hint}"
            ) from error
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise AnnotateError(
                f"--detector-model {name_or_path!r} is a {config.model_type!r} model; expected a zero-shot "
                f"object detector of type {list(SUPPORTED_MODEL_TYPES)}"
            )
        try:
            model = AutoModelForZeroShotObjectDetection.from_pretrained(name_or_path, dtype=torch.float32)
            processor = AutoProcessor.from_pretrained(name_or_path)
        except (OSError, ValueError) as error:
            raise AnnotateError(
                f"--detector-model {name_or_path!r} cannot be loaded ({error}); {hint}"
            ) from error
        return cls(model.to(device), processor, box_threshold, text_threshold, device, name_or_path, dtype)

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray], phrases: Sequence[str]) -> list[Detection | None]:
        # One phrase per image; Grounding DINO's processor lowercases and ends it with "." itself.
        # Frames of one batch may ask for different phrases (two-stage tasks): Grounding DINO tokenizes the
        # batch in one call and must pad to the longest; OWL processors pad every query to a fixed length.
        padding = {"padding": True} if self.model_type == "grounding-dino" else {}
        inputs = self.processor(
            images=list(images), text=[[p] for p in phrases], return_tensors="pt", **padding
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        device_type = torch.device(self.device).type
        with torch.autocast(
            device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype != torch.float32
        ):
            outputs = self.model(**inputs)
        sizes = [image.shape[:2] for image in images]  # (H, W): OWLv2 boxes refer to its padded square
        if self.model_type == "grounding-dino":
            results = self.processor.post_process_grounded_object_detection(
                outputs, inputs["input_ids"], threshold=self.box_threshold,
                text_threshold=self.text_threshold, target_sizes=sizes,
            )  # fmt: skip
        else:
            results = self.processor.post_process_grounded_object_detection(
                outputs, threshold=self.box_threshold, target_sizes=sizes
            )
        detections = []
        for result, (height, width) in zip(results, sizes, strict=True):
            scores = result["scores"].float().cpu().numpy()  # (Q,) above the threshold
            pixels = np.clip(
                result["boxes"].float().cpu().numpy(), 0, [width, height, width, height]
            )  # (Q, 4)
            # A box less than a pixel wide or high once clipped to the image is not a gaze region.
            size_ok = (pixels[:, 2] - pixels[:, 0] >= 1) & (pixels[:, 3] - pixels[:, 1] >= 1)
            scores = np.where(size_ok, scores, -np.inf)
            boxes = pixels / np.array([width, height, width, height])  # (Q, 4) normalised
            if scores.size == 0 or not np.isfinite(scores.max()):
                detections.append(None)
                continue
            best = int(scores.argmax())
            detections.append(Detection(boxes[best].astype(np.float32), float(scores[best])))
        return detections


# --------------------------------------------------------------------------------------------------
# Pure helpers: stages, detection schedule, filling, padding, IoU
# --------------------------------------------------------------------------------------------------


def gripper_stages(gripper: np.ndarray, threshold: float, closed_below: bool = True) -> np.ndarray:
    """Stage per frame: 0 until a gripper closes after having been open, 1 from then on.

    gripper: (T, G) gripper joint values of one episode. A gripper that starts closed must open first,
    so an episode starting with closed grippers does not switch at frame 0.

    >>> gripper_stages(np.array([[0.9], [0.8], [0.2], [0.9]]), threshold=0.5).tolist()
    [0, 0, 1, 1]
    >>> gripper_stages(np.array([[0.1], [0.9], [0.1]]), threshold=0.5).tolist()
    [0, 0, 1]
    """
    closed = gripper < threshold if closed_below else gripper > threshold  # (T, G)
    was_open = np.maximum.accumulate(~closed, axis=0)  # (T, G): open at this frame or before
    closes = (closed & np.roll(was_open, 1, axis=0)).any(axis=1)  # (T,)
    closes[0] = False
    stages = np.zeros(len(gripper), dtype=np.int64)
    if closes.any():
        stages[int(np.argmax(closes)) :] = 1
    return stages


def detection_frames(segment_ids: np.ndarray, stride: int) -> np.ndarray:
    """Frames the detector runs on: every `stride` frames from each segment's start, plus its last frame.

    segment_ids: (T,) id of the prompt segment of each frame (a new id where the gazed object changes).

    >>> detection_frames(np.array([0, 0, 0, 0, 0, 0, 1, 1, 1]), stride=4).tolist()
    [0, 4, 5, 6, 8]
    """
    frames = []
    starts = np.flatnonzero(np.r_[True, segment_ids[1:] != segment_ids[:-1]])
    ends = np.r_[starts[1:], len(segment_ids)]
    for start, end in zip(starts, ends, strict=True):
        frames.extend(range(start, end, stride))
        frames.append(end - 1)
    return np.unique(frames)


def fill_boxes(
    num_frames: int,
    detected: dict[int, Detection | None],
    segment_ids: np.ndarray,
    max_gap: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (T, 4) and scores (T,) for every frame from the detections at some frames.

    Between two consecutive detection frames that both found the object the box is interpolated
    linearly. Otherwise a frame keeps the last found box if it lies at most `max_gap` frames after it,
    else gets the absent marker. Nothing crosses a segment boundary (another object is gazed there).
    Scores are the detector's at detection frames, interpolated like the boxes, NaN where absent.

    >>> hit = lambda x: Detection(np.array([x, 0, x + 0.1, 0.1], np.float32), 0.9)
    >>> boxes, _ = fill_boxes(5, {0: hit(0.0), 2: hit(0.2), 4: None}, np.zeros(5), max_gap=2)
    >>> boxes[:, 0].astype(float).round(2).tolist()
    [0.0, 0.1, 0.2, 0.2, 0.2]
    >>> fill_boxes(5, {0: hit(0.0), 2: hit(0.2), 4: None}, np.zeros(5), max_gap=1)[0][4].tolist()
    [-1.0, -1.0, -1.0, -1.0]
    """
    boxes = np.tile(ABSENT_BOX, (num_frames, 1))  # (T, 4)
    scores = np.full(num_frames, np.nan, dtype=np.float32)  # (T,)
    frames = sorted(detected)
    for index, frame in enumerate(frames):
        found = detected[frame]
        if found is None:
            continue
        boxes[frame], scores[frame] = found.box, found.score
        following = frames[index + 1] if index + 1 < len(frames) else None
        if (
            following is not None
            and detected[following] is not None
            and segment_ids[following] == segment_ids[frame]
        ):
            w = (np.arange(frame + 1, following) - frame) / (following - frame)  # (n,)
            boxes[frame + 1 : following] = (1 - w[:, None]) * found.box + w[:, None] * detected[following].box
            scores[frame + 1 : following] = (1 - w) * found.score + w * detected[following].score
            continue
        # Misses follow: hold the box for max_gap frames, up to the next hit and within the segment.
        t = frame + 1
        while t < num_frames and t - frame <= max_gap and segment_ids[t] == segment_ids[frame]:
            if detected.get(t) is not None:
                break
            boxes[t], scores[t] = found.box, found.score
            t += 1
    return boxes, scores


def pad_boxes(boxes: np.ndarray, pad: float) -> np.ndarray:
    """Grow present boxes (N, 4) by `pad` x their width/height on every side, clipped to the image.

    >>> pad_boxes(np.array([[0.2, 0.2, 0.4, 0.6], [-1, -1, -1, -1]]), 0.5).astype(float).round(2).tolist()
    [[0.1, 0.0, 0.5, 0.8], [-1.0, -1.0, -1.0, -1.0]]
    """
    present = is_present(boxes)
    size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)  # (N, 4) = [w, h, w, h]
    grown = np.clip(boxes + pad * size * np.array([-1, -1, 1, 1]), 0.0, 1.0)
    return np.where(present[:, None], grown, boxes).astype(np.float32)


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a[i] with b[i], boxes (N, 4) as [x0, y0, x1, y1]; 0 where either is absent.

    >>> paired_iou(np.array([[0, 0, 0.5, 0.5]]), np.array([[0.25, 0, 0.75, 0.5]])).round(3).tolist()
    [0.333]
    """
    top_left = np.maximum(a[:, :2], b[:, :2])
    bottom_right = np.minimum(a[:, 2:], b[:, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=1)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    union = area_a + area_b - intersection
    iou = np.divide(intersection, union, out=np.zeros_like(intersection, dtype=np.float64), where=union > 0)
    return np.where(is_present(a) & is_present(b), iou, 0.0)


def evaluate_boxes(predicted: np.ndarray, truth: np.ndarray, hit_iou: float = 0.5) -> dict:
    """Quality of predicted boxes (N, 4) against true ones, over the frames where the truth has a box.

    mean_iou: mean IoU (a missing prediction counts 0); hit_rate: fraction with IoU >= hit_iou;
    false_positive_rate: fraction of the frames without a true box that got one.
    """
    has_truth = is_present(truth)
    iou = paired_iou(predicted, truth)[has_truth]
    false_positives = is_present(predicted)[~has_truth]
    return {
        "frames_with_true_box": int(has_truth.sum()),
        "mean_iou": float(iou.mean()) if iou.size else float("nan"),
        "hit_rate": float((iou >= hit_iou).mean()) if iou.size else float("nan"),
        "false_positive_rate": float(false_positives.mean()) if false_positives.size else 0.0,
    }


# --------------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------------


def load_objects(path: Path) -> dict[str, list[str]]:
    """`--objects` JSON: {task string: phrase | [phrase] | [first phrase, second phrase]}."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise AnnotateError(f"--objects {path}: no such file") from error
    except json.JSONDecodeError as error:
        raise AnnotateError(f"--objects {path} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise AnnotateError(
            f"--objects {path} must hold a JSON object {{task: phrase(s)}}, got {type(raw).__name__}"
        )
    objects = {}
    for task, phrases in raw.items():
        phrases = [phrases] if isinstance(phrases, str) else phrases
        if not (
            isinstance(phrases, list)
            and 1 <= len(phrases) <= 2
            and all(isinstance(p, str) and p.strip() for p in phrases)
        ):
            raise AnnotateError(
                f"--objects {path}: task {task!r} maps to {phrases!r}; expected a phrase or a list of one or "
                "two phrases (the object before and after the gripper closes)"
            )
        objects[task] = [p.strip() for p in phrases]
    return objects


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


@dataclass
class AnnotateConfig:
    repo_id: str
    root: Path | None = None
    output_root: Path | None = None
    output_repo_id: str | None = None
    cameras: list[str] | None = None
    object: str | None = None
    objects: Path | None = None
    detector: str = "grounding-dino"
    detector_model: str | None = None
    device: str | None = None
    dtype: str = "auto"
    batch_size: int = 8
    num_workers: int = 0
    box_threshold: float | None = None
    text_threshold: float = 0.25
    stride: int = 5
    max_gap: int = 10
    pad: float = 0.0
    gripper_key: str = "observation.state"
    gripper_names: list[str] = field(default_factory=lambda: ["left_gripper", "right_gripper"])
    gripper_threshold: float = 0.5
    gripper_closed_above: bool = False
    preview: Path | None = None
    preview_frames: int = 6
    evaluate_against: str | None = None
    hit_iou: float = 0.5

    def __post_init__(self):
        self.root = Path(self.root) if self.root is not None else None
        self.output_root = Path(self.output_root) if self.output_root is not None else None
        if self.detector not in DETECTORS:
            raise AnnotateError(f"--detector {self.detector!r}: expected one of {list(DETECTORS)}")
        if self.detector_model is None:
            self.detector_model = DETECTORS[self.detector]["model"]
        if self.box_threshold is None:
            self.box_threshold = DETECTORS[self.detector]["box_threshold"]
        if self.output_repo_id is None:
            self.output_repo_id = f"{self.repo_id}_gaze"
        for name, value, low in (
            ("stride", self.stride, 1),
            ("max_gap", self.max_gap, 0),
            ("batch_size", self.batch_size, 1),
        ):
            if value < low:
                raise AnnotateError(f"--{name.replace('_', '-')} {value}: expected an integer >= {low}")
        if self.pad < 0:
            raise AnnotateError(f"--pad {self.pad}: expected a fraction >= 0")
        if (self.object is None) == (self.objects is None):
            raise AnnotateError("give exactly one of --object PHRASE or --objects FILE")
        if self.output_root is None and self.evaluate_against is None:
            raise AnnotateError(
                "--output-root is required (only --evaluate-against runs without writing a dataset)"
            )

    def detection_settings(self) -> dict:
        """What the saved detections depend on: a resumed run must match these."""
        keys = ("repo_id", "cameras", "object", "detector_model", "box_threshold", "text_threshold", "stride",
                "gripper_key", "gripper_names", "gripper_threshold", "gripper_closed_above")  # fmt: skip
        settings = {k: getattr(self, k) for k in keys}
        settings["objects"] = load_objects(self.objects) if self.objects else None
        return json.loads(json.dumps(settings, default=str))


@dataclass
class Plan:
    """Per episode: which frame gets which phrase, and where the detector runs."""

    episode: int
    indices: np.ndarray  # (T,) dataset indices of the episode's frames
    phrases: list[str]  # (T,) the phrase of each frame
    segment_ids: np.ndarray  # (T,) changes where the phrase changes
    detect_at: np.ndarray  # frame offsets (within the episode) the detector runs on


def load_source(config: AnnotateConfig):
    from lerobot.datasets import LeRobotDataset

    try:
        return LeRobotDataset(config.repo_id, root=config.root, return_uint8=True)
    except Exception as error:  # the reader raises many kinds (FileNotFoundError, hub errors, ...)
        where = f"root {config.root}" if config.root else "the Hub (or its local cache)"
        raise AnnotateError(f"dataset {config.repo_id!r} cannot be loaded from {where}: {error}") from error


def check_inputs(config: AnnotateConfig, dataset) -> tuple[list[str], dict[str, list[str]]]:
    """Every check that needs the dataset, before any work. Returns the cameras and phrases per task."""
    available = [key.removeprefix(IMAGE_PREFIX) for key in dataset.meta.camera_keys]
    cameras = config.cameras or available
    unknown = [cam for cam in cameras if cam not in available]
    if unknown:
        raise AnnotateError(f"--cameras: unknown camera(s) {unknown}; the dataset has {available}")
    config.cameras = list(cameras)

    tasks = list(dataset.meta.tasks.index)
    if config.object is not None:
        phrases = {task: [config.object] for task in tasks}
    else:
        phrases = load_objects(config.objects)
        missing = [task for task in tasks if task not in phrases]
        if missing:
            raise AnnotateError(
                f"--objects {config.objects} has no phrase for task(s) {missing}. The dataset's task strings are:\n"
                + "\n".join(f"  {json.dumps(task)}" for task in tasks)
            )

    if any(len(p) == 2 for p in phrases.values()):
        feature = dataset.meta.features.get(config.gripper_key)
        names = _flat_names(feature["names"]) if feature else []
        missing = [name for name in config.gripper_names if name not in names]
        if feature is None or missing:
            raise AnnotateError(
                "--objects gives two objects for a task, which needs the gripper signal to switch between them, "
                f"but {config.gripper_key!r} has no joint(s) {missing or config.gripper_names} "
                f"(names: {names or 'feature absent'}); set --gripper-key / --gripper-names"
            )

    gaze_keys = [gaze_box_key(cam) for cam in cameras]
    if config.output_root is not None:
        existing = [key for key in gaze_keys if key in dataset.meta.features]
        if existing:
            raise AnnotateError(
                f"the source already has {existing}; evaluate a detector on it with --evaluate-against "
                f"{OBS_GAZE_BOX} and no --output-root, or remove those features first (lerobot-edit-dataset)"
            )
        if config.output_root.exists():
            raise AnnotateError(
                f"--output-root {config.output_root} already exists; choose a new directory (the source and "
                "earlier outputs are never overwritten)"
            )
    if config.evaluate_against is not None:
        missing = [f"{config.evaluate_against}.{cam}" for cam in cameras
                   if f"{config.evaluate_against}.{cam}" not in dataset.meta.features]  # fmt: skip
        if missing:
            raise AnnotateError(f"--evaluate-against {config.evaluate_against}: the dataset has no {missing}")
    return config.cameras, phrases


def _flat_names(names) -> list[str]:
    if isinstance(names, dict):  # some datasets: {"motors": [...]}
        return [n for group in names.values() for n in group]
    return list(names or [])


def make_plans(config: AnnotateConfig, dataset, phrases_per_task: dict[str, list[str]]) -> list[Plan]:
    columns = ["index", "episode_index", "task_index"]
    need_gripper = any(len(p) == 2 for p in phrases_per_task.values())
    if need_gripper:
        columns.append(config.gripper_key)
    table = dataset.select_columns(columns).with_format("numpy")[:]
    task_names = {
        int(i): task
        for task, i in zip(dataset.meta.tasks.index, dataset.meta.tasks["task_index"], strict=True)
    }
    if need_gripper:
        names = _flat_names(dataset.meta.features[config.gripper_key]["names"])
        gripper_columns = [names.index(name) for name in config.gripper_names]
    plans = []
    for episode in np.unique(table["episode_index"]):
        rows = np.flatnonzero(table["episode_index"] == episode)
        tasks = [task_names[int(i)] for i in table["task_index"][rows]]
        if need_gripper:
            gripper = np.stack(table[config.gripper_key][rows])[:, gripper_columns]  # (T, G)
            stages = gripper_stages(
                gripper, config.gripper_threshold, closed_below=not config.gripper_closed_above
            )
        else:
            stages = np.zeros(len(rows), dtype=np.int64)
        phrases = [phrases_per_task[task][min(stage, len(phrases_per_task[task]) - 1)]
                   for task, stage in zip(tasks, stages, strict=True)]  # fmt: skip
        segment_ids = np.cumsum(np.r_[0, [a != b for a, b in zip(phrases[1:], phrases[:-1], strict=True)]])
        plans.append(
            Plan(
                int(episode),
                table["index"][rows],
                phrases,
                segment_ids,
                detection_frames(segment_ids, config.stride),
            )
        )
    return plans


def _to_hwc_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) uint8 (video) or float in [0, 1] (image datasets) -> (H, W, 3) uint8."""
    if image.is_floating_point():
        image = (image * 255).round().clamp(0, 255).to(torch.uint8)
    return image.permute(1, 2, 0).numpy()


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
        Subset(dataset, plan.indices[frames].tolist()), batch_size=config.batch_size,
        num_workers=config.num_workers, collate_fn=list,
        worker_init_fn=functools.partial(_decoding_worker_init, os.getpid()),
    )  # fmt: skip
    start = 0
    for items in loader:
        phrases = [plan.phrases[f] for f in frames[start : start + len(items)]]
        for k, cam in enumerate(cameras):
            images = [_to_hwc_uint8(item[IMAGE_PREFIX + cam]) for item in items]
            for i, found in enumerate(detector.detect(images, phrases)):
                if found is not None:
                    boxes[start + i, k], scores[start + i, k] = found.box, found.score
        start += len(items)
        progress.update(len(items))
    return {"frames": frames, "boxes": boxes, "scores": scores}


def _resolve_device(config: AnnotateConfig) -> tuple[str, torch.dtype]:
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if config.dtype == "auto":
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    else:
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[config.dtype]
    return device, dtype


def _prepare_staging(staging: Path, settings: dict) -> int:
    """Create or reuse the staging directory; returns how many episodes were already detected."""
    run_file = staging / "run.json"
    if staging.exists():
        saved = json.loads(run_file.read_text()) if run_file.exists() else None
        if saved != settings:
            changed = sorted(k for k in settings if saved is None or saved.get(k) != settings[k])
            raise AnnotateError(
                f"{staging} holds an interrupted run with other settings (differs in {changed}); rerun with the "
                f"same options to resume it, or delete {staging} to start over"
            )
        done = len(list((staging / "detections").glob("episode_*.npz")))
        logger.info("Resuming the interrupted run in %s: %d episode(s) already detected", staging, done)
        return done
    (staging / "detections").mkdir(parents=True)
    run_file.write_text(json.dumps(settings, indent=2))
    return 0


def annotate(config: AnnotateConfig, detector: Detector | None = None) -> dict:
    """Annotate (and/or evaluate); returns the report written to meta/gaze_annotation.json."""
    dataset = load_source(config)
    cameras, phrases_per_task = check_inputs(config, dataset)
    if config.objects and config.object is None:
        logger.info("Objects per task: %s", phrases_per_task)
    plans = make_plans(config, dataset, phrases_per_task)

    if detector is None:
        device, dtype = _resolve_device(config)
        detector = ZeroShotDetector.load(
            config.detector_model, device, dtype, config.box_threshold, config.text_threshold
        )

    temporary = None
    if config.output_root is not None:
        staging = config.output_root.with_name(config.output_root.name + STAGING_SUFFIX)
    else:  # evaluation only: nothing to resume
        temporary = tempfile.TemporaryDirectory(prefix="reconvla-annotate-")
        staging = Path(temporary.name) / "run"
    try:
        _prepare_staging(staging, config.detection_settings() | {"detector_name": detector.name})
        detections = _detect_all(plans, dataset, detector, cameras, config, staging)
        boxes, scores = _fill_all(plans, detections, cameras, config, dataset.num_frames)
        report = _report(config, detector, cameras, phrases_per_task, boxes, scores, dataset)
        if config.evaluate_against is not None:
            report["evaluation"] = _evaluate(config, dataset, cameras, boxes)
        if config.preview is not None:
            write_preview(config.preview, dataset, cameras, boxes, config.preview_frames,
                          truth=_truth(config, dataset, cameras) if config.evaluate_against else None)  # fmt: skip
            report["preview"] = str(config.preview)
        if config.output_root is not None:
            _write_dataset(config, dataset, cameras, boxes, report, staging)
            shutil.rmtree(staging)
    finally:
        if temporary is not None:
            temporary.cleanup()
    print_report(report)
    return report


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
    add_features(dataset, features, output_dir=target, repo_id=config.output_repo_id)
    # add_features copies the source's stats only; give the new features theirs, as recording would.
    stats = load_stats(target) or {}
    for key, (values, _) in features.items():
        stats[key] = get_feature_stats(values, axis=0, keepdims=False) | {"count": np.array([len(values)])}
    write_stats(stats, target)
    (target / ANNOTATION_META).write_text(json.dumps(report, indent=2))
    # The rename is the commit point: before it nothing exists at --output-root.
    target.rename(config.output_root)


def print_report(report: dict) -> None:
    print(f"gaze boxes by {report['model']} ({report['frames']} frames, {report['episodes']} episodes):")
    for cam, stats in report["cameras"].items():
        line = f"  {cam:<16} box in {stats['frames_with_box']:6.1%} of frames, mean score {stats['mean_score']:.3f}"
        if "evaluation" in report:
            ev = report["evaluation"][cam]
            line += f" | vs truth: mean IoU {ev['mean_iou']:.3f}, hit rate {ev['hit_rate']:.1%} (IoU >= {ev['hit_iou']})"
        print(line)


# --------------------------------------------------------------------------------------------------
# Preview
# --------------------------------------------------------------------------------------------------


def write_preview(
    path: Path, dataset, cameras, boxes, num_frames: int, truth=None, tile_width: int = 256
) -> Path:
    """Contact sheet: one row per camera, `num_frames` frames spread over the dataset, boxes drawn.

    Detected box in green (with its frame index), true box in white when given.
    """
    from PIL import Image, ImageDraw

    indices = (
        np.linspace(0, dataset.num_frames - 1, num=min(num_frames, dataset.num_frames)).round().astype(int)
    )
    items = [dataset[int(i)] for i in indices]
    first = _to_hwc_uint8(items[0][IMAGE_PREFIX + cameras[0]])
    tile_height = round(tile_width * first.shape[0] / first.shape[1])
    label_height = 16
    sheet = Image.new(
        "RGB", (tile_width * len(indices), (tile_height + label_height) * len(cameras)), "black"
    )
    draw = ImageDraw.Draw(sheet)
    for row, cam in enumerate(cameras):
        for col, (index, item) in enumerate(zip(indices, items, strict=True)):
            x, y = col * tile_width, row * (tile_height + label_height)
            tile = Image.fromarray(_to_hwc_uint8(item[IMAGE_PREFIX + cam])).resize((tile_width, tile_height))
            sheet.paste(tile, (x, y + label_height))
            scale = np.array([tile_width, tile_height, tile_width, tile_height])
            for source, colour in ((truth, "white"), (boxes, "lime")):
                if source is not None and is_present(source[cam][index][None])[0]:
                    x0, y0, x1, y1 = source[cam][index] * scale
                    draw.rectangle(
                        [x + x0, y + label_height + y0, x + x1, y + label_height + y1],
                        outline=colour,
                        width=2,
                    )
            state = "" if is_present(boxes[cam][index][None])[0] else " (no box)"
            draw.text((x + 2, y + 2), f"{cam} #{index}{state}", fill="white")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def parse_args(argv=None) -> AnnotateConfig:
    p = argparse.ArgumentParser(
        prog="reconvla-annotate",
        description="Write a copy of a LeRobotDataset with observation.gaze_box.<cam> from a zero-shot detector.",
    )
    src = p.add_argument_group("dataset")
    src.add_argument(
        "--repo-id", required=True, help="source dataset (Hub repo id, or the id of a local --root)"
    )
    src.add_argument("--root", type=Path, help="local directory of the source dataset")
    src.add_argument("--output-root", type=Path, help="directory of the new dataset (must not exist)")
    src.add_argument("--output-repo-id", help="repo id of the new dataset (default: <repo-id>_gaze)")
    src.add_argument("--cameras", nargs="+", help="cameras to annotate (default: all)")
    what = p.add_argument_group("what to look for")
    what.add_argument("--object", help='phrase looked for in every frame, e.g. "red cube"')
    what.add_argument(
        "--objects", type=Path, help='JSON {task: "phrase" | ["first object", "second object"]}'
    )
    what.add_argument("--gripper-key", default="observation.state", help="feature holding the gripper joints")
    what.add_argument("--gripper-names", nargs="+", default=["left_gripper", "right_gripper"],
                      help="gripper joints in that feature's names (any of them closing switches the stage)")  # fmt: skip
    what.add_argument(
        "--gripper-threshold", type=float, default=0.5, help="gripper value separating open and closed"
    )
    what.add_argument("--gripper-closed-above", action="store_true", help="closed means above the threshold")
    det = p.add_argument_group("detector")
    det.add_argument("--detector", default="grounding-dino", choices=list(DETECTORS))
    det.add_argument(
        "--detector-model", help="Hub id or local directory (default: the family's standard model)"
    )
    det.add_argument("--device", help="cuda when available, else cpu")
    det.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                     help="autocast dtype; auto: bfloat16 on cuda, float32 on cpu")  # fmt: skip
    det.add_argument("--batch-size", type=int, default=8, help="frames per detector call")
    det.add_argument("--num-workers", type=int, default=0, help="frame-decoding workers")
    det.add_argument(
        "--box-threshold", type=float, help="minimum score (default 0.35 Grounding DINO, 0.1 OWLv2)"
    )
    det.add_argument(
        "--text-threshold", type=float, default=0.25, help="Grounding DINO's text score threshold"
    )
    tim = p.add_argument_group("time")
    tim.add_argument("--stride", type=int, default=5, help="detect every N frames, interpolate between")
    tim.add_argument("--max-gap", type=int, default=10, help="frames the last box is kept through misses")
    tim.add_argument(
        "--pad", type=float, default=0.0, help="margin around each box, fraction of its size per side"
    )
    out = p.add_argument_group("checking")
    out.add_argument(
        "--preview", type=Path, help="write a contact-sheet PNG of sampled frames with their boxes"
    )
    out.add_argument("--preview-frames", type=int, default=6, help="frames per camera in the preview")
    out.add_argument("--evaluate-against", help=f"prefix of true boxes in the source, e.g. {OBS_GAZE_BOX}")
    out.add_argument("--hit-iou", type=float, default=0.5, help="IoU counted as a hit by --evaluate-against")
    args = p.parse_args(argv)
    try:
        return AnnotateConfig(**{k: v for k, v in vars(args).items()})
    except AnnotateError as error:
        p.error(str(error))


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = parse_args(argv)
    started = time.perf_counter()
    try:
        annotate(config)
    except AnnotateError as error:
        print(f"reconvla-annotate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if config.output_root is not None:
            staging = config.output_root.with_name(config.output_root.name + STAGING_SUFFIX)
            print(
                f"\ninterrupted: nothing was written to {config.output_root}; finished episodes are kept in "
                f"{staging}. Run the same command again to resume, or delete {staging} to start over.",
                file=sys.stderr,
            )
        return 130
    print(
        f"done in {time.perf_counter() - started:.0f} s"
        + (f": {config.output_root}" if config.output_root else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
