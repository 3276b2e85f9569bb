"""What to look for in which frame: the objects file, the checks that need the dataset, and a plan per
episode.

``--object PHRASE`` is looked for in every frame; ``--objects FILE``, a JSON object, maps each task string
of the dataset to a phrase or to two phrases. With two ("pick X, place it on Y"), the gaze is on the first
object until the gripper closes (the state's gripper joints cross ``--gripper_threshold``) and on the
second after that, as ReconVLA's annotation picks the gazed object by task stage and gripper state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..gaze_box import OBS_GAZE_BOX, gaze_box_key
from .boxes import detection_frames, gripper_stages
from .config import AnnotateConfig, AnnotateError

IMAGE_PREFIX = "observation.images."


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
                f"--objects {config.objects} has no phrase for task(s) {missing}. "
                "The dataset's task strings are:\n" + "\n".join(f"  {json.dumps(task)}" for task in tasks)
            )

    if any(len(p) == 2 for p in phrases.values()):
        feature = dataset.meta.features.get(config.gripper_key)
        names = _flat_names(feature["names"]) if feature else []
        missing = [name for name in config.gripper_names if name not in names]
        if feature is None or missing:
            raise AnnotateError(
                "--objects gives two objects for a task, which needs the gripper signal to switch between "
                f"them, but {config.gripper_key!r} has no joint(s) {missing or config.gripper_names} "
                f"(names: {names or 'feature absent'}); set --gripper_key / --gripper_names"
            )

    gaze_keys = [gaze_box_key(cam) for cam in cameras]
    if config.new_root is not None:
        existing = [key for key in gaze_keys if key in dataset.meta.features]
        if existing:
            raise AnnotateError(
                f"the source already has {existing}; evaluate a detector on it with --evaluate_against "
                f"{OBS_GAZE_BOX} and no --new_root, or remove those features first (lerobot-edit-dataset)"
            )
        if config.new_root.exists():
            raise AnnotateError(
                f"--new_root {config.new_root} already exists; choose a new directory (the source and "
                "earlier outputs are never overwritten)"
            )
    if config.evaluate_against is not None:
        missing = [
            f"{config.evaluate_against}.{cam}"
            for cam in cameras
            if f"{config.evaluate_against}.{cam}" not in dataset.meta.features
        ]
        if missing:
            raise AnnotateError(f"--evaluate_against {config.evaluate_against}: the dataset has no {missing}")
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
        phrases = [
            phrases_per_task[task][min(stage, len(phrases_per_task[task]) - 1)]
            for task, stage in zip(tasks, stages, strict=True)
        ]
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


def to_hwc_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) uint8 (video) or float in [0, 1] (image datasets) -> (H, W, 3) uint8."""
    if image.is_floating_point():
        image = (image * 255).round().clamp(0, 255).to(torch.uint8)
    return image.permute(1, 2, 0).numpy()
