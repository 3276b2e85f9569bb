"""Gaze boxes for a LeRobotDataset that has none, from a zero-shot object detector (`reconvla-annotate`).

Reads a dataset (Hub repo id, or a local ``--root``) and writes a NEW dataset at ``--new_root`` (the source
is never touched) with one ``observation.gaze_box.<cam>`` float32 (4,) feature per camera:
``[x0, y0, x1, y1]`` normalised to [0, 1], ``[-1, -1, -1, -1]`` where the object is not seen (the convention
of the policy and the simulator). Frames are decoded by LeRobot's own dataset reader; the new features are
written with LeRobot's ``dataset_tools.add_features``, which copies the source's data files and videos
unchanged.

Modules, each importing only those above it:
    config    AnnotateConfig (the flags and every default), AnnotateError, the detector families
    detector  Detection, the Detector protocol, ZeroShotDetector (transformers)
    boxes     gripper stages, detection schedule, filling between detections, padding, IoU, evaluation
    plan      the objects file, the checks that need the dataset, a Plan per episode
    preview   the contact sheet
    run       annotate(): detect, fill, write ``<new_root>.partial`` and publish it, report
    cli       the command line (draccus), main()
"""

from .boxes import detection_frames, evaluate_boxes, fill_boxes, gripper_stages, pad_boxes, paired_iou
from .cli import main
from .config import DETECTORS, AnnotateConfig, AnnotateError
from .detector import Detection, Detector, ZeroShotDetector
from .preview import write_preview
from .run import annotate

__all__ = [
    "DETECTORS",
    "AnnotateConfig",
    "AnnotateError",
    "Detection",
    "Detector",
    "ZeroShotDetector",
    "annotate",
    "detection_frames",
    "evaluate_boxes",
    "fill_boxes",
    "gripper_stages",
    "main",
    "pad_boxes",
    "paired_iou",
    "write_preview",
]
