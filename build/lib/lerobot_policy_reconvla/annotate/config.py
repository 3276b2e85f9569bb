"""What `reconvla-annotate` can be told, every default in one place, and the checks that need no dataset.

The fields of `AnnotateConfig` are the command's flags (draccus: ``--field=value``); the comment above each
is its ``--help`` text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Detector families and their default checkpoints / score thresholds (the values their model cards use).
DETECTORS = {
    "grounding-dino": {"model": "IDEA-Research/grounding-dino-tiny", "box_threshold": 0.35},
    "owlv2": {"model": "google/owlv2-base-patch16-ensemble", "box_threshold": 0.1},
}
TEXT_THRESHOLD = 0.25  # Grounding DINO's text-token threshold, as its model card
HIT_IOU = 0.5  # IoU with the true box that counts as a hit
DTYPES = ("auto", "float32", "bfloat16", "float16")


class AnnotateError(ValueError):
    """Bad input, reported before any work starts."""


@dataclass
class AnnotateConfig:
    # Source dataset: Hub repo id, or the id of a local --root
    repo_id: str
    # Local directory of the source dataset
    root: Path | None = None
    # Directory of the new dataset (must not exist)
    new_root: Path | None = None
    # Repo id of the new dataset; unset: <repo_id>_gaze
    new_repo_id: str | None = None
    # Cameras to annotate, e.g. '[top,left_wrist]'; unset: all
    cameras: list[str] | None = None
    # Phrase looked for in every frame, e.g. "red cube"
    object: str | None = None
    # JSON file {task: "phrase" | ["first object", "second object"]}
    objects: Path | None = None
    # Detector family: grounding-dino or owlv2
    detector: str = "grounding-dino"
    # Hub id or local directory; unset: the family's standard model
    detector_model: str | None = None
    # Torch device; unset: cuda when available, else cpu
    device: str | None = None
    # Autocast dtype: auto (bfloat16 on cuda, float32 on cpu), float32, bfloat16 or float16
    dtype: str = "auto"
    # Frames per detector call
    batch_size: int = 8
    # Frame-decoding workers
    num_workers: int = 0
    # Minimum detector score; unset: the detector family's
    box_threshold: float | None = None
    # Grounding DINO's text score threshold
    text_threshold: float = TEXT_THRESHOLD
    # Detect every N frames, interpolate between
    stride: int = 5
    # Frames the last box is kept through misses
    max_gap: int = 10
    # Margin around each box, fraction of its size per side
    pad: float = 0.0
    # Feature holding the gripper joints
    gripper_key: str = "observation.state"
    # Gripper joints in that feature's names (any of them closing switches the stage)
    gripper_names: list[str] = field(default_factory=lambda: ["left_gripper", "right_gripper"])
    # Gripper value separating open and closed
    gripper_threshold: float = 0.5
    # Closed means above the threshold, not below it
    gripper_closed_above: bool = False
    # Write a contact-sheet PNG of sampled frames with their boxes
    preview: Path | None = None
    # Frames per camera in the preview
    preview_frames: int = 6
    # Prefix of true boxes in the source, e.g. observation.gaze_box
    evaluate_against: str | None = None
    # IoU counted as a hit by --evaluate_against
    hit_iou: float = HIT_IOU

    def __post_init__(self):
        self.root = Path(self.root) if self.root is not None else None
        self.new_root = Path(self.new_root) if self.new_root is not None else None
        if self.detector not in DETECTORS:
            raise AnnotateError(f"--detector {self.detector!r}: expected one of {list(DETECTORS)}")
        if self.dtype not in DTYPES:
            raise AnnotateError(f"--dtype {self.dtype!r}: expected one of {list(DTYPES)}")
        if self.detector_model is None:
            self.detector_model = DETECTORS[self.detector]["model"]
        if self.box_threshold is None:
            self.box_threshold = DETECTORS[self.detector]["box_threshold"]
        if self.new_repo_id is None:
            self.new_repo_id = f"{self.repo_id}_gaze"
        for name, value, low in (
            ("stride", self.stride, 1),
            ("max_gap", self.max_gap, 0),
            ("batch_size", self.batch_size, 1),
        ):
            if value < low:
                raise AnnotateError(f"--{name} {value}: expected an integer >= {low}")
        if self.pad < 0:
            raise AnnotateError(f"--pad {self.pad}: expected a fraction >= 0")
        if (self.object is None) == (self.objects is None):
            raise AnnotateError("give exactly one of --object PHRASE or --objects FILE")
        if self.new_root is None and self.evaluate_against is None:
            raise AnnotateError(
                "--new_root is required (only --evaluate_against runs without writing a dataset)"
            )
