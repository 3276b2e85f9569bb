"""Zero-shot object detectors: the best box per image for that image's phrase."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .config import TEXT_THRESHOLD, AnnotateError

SUPPORTED_MODEL_TYPES = ("grounding-dino", "owlv2", "owlvit")


@dataclass
class Detection:
    box: np.ndarray  # (4,) [x0, y0, x1, y1] normalised to [0, 1]
    score: float


class Detector(Protocol):
    """What the annotator needs of a detector: the best box per image for that image's phrase."""

    name: str

    def detect(self, images: Sequence[np.ndarray], phrases: Sequence[str]) -> list[Detection | None]:
        """images: (H, W, 3) uint8 RGB each; phrases: one per image. None where nothing passes the
        threshold."""
        ...


def resolve_device(device: str | None, dtype: str) -> tuple[str, torch.dtype]:
    """The device (cuda when available) and autocast dtype ("auto": bfloat16 on cuda, float32 elsewhere)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        return device, torch.bfloat16 if device.startswith("cuda") else torch.float32
    return device, getattr(torch, dtype)


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
        text_threshold: float = TEXT_THRESHOLD,
    ) -> ZeroShotDetector:
        from transformers import AutoConfig, AutoModelForZeroShotObjectDetection, AutoProcessor

        hint = (
            f"pass --detector_model a local directory holding the model and its processor "
            f"(e.g. `hf download {name_or_path} --local-dir DIR` on a machine with Hub access)"
        )
        try:
            config = AutoConfig.from_pretrained(name_or_path)
        except (OSError, ValueError) as error:
            raise AnnotateError(
                f"--detector_model {name_or_path!r} cannot be loaded ({error}); {hint}"
            ) from error
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise AnnotateError(
                f"--detector_model {name_or_path!r} is a {config.model_type!r} model; expected a zero-shot "
                f"object detector of type {list(SUPPORTED_MODEL_TYPES)}"
            )
        try:
            model = AutoModelForZeroShotObjectDetection.from_pretrained(name_or_path, dtype=torch.float32)
            processor = AutoProcessor.from_pretrained(name_or_path)
        except (OSError, ValueError) as error:
            raise AnnotateError(
                f"--detector_model {name_or_path!r} cannot be loaded ({error}); {hint}"
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
                outputs,
                inputs["input_ids"],
                threshold=self.box_threshold,
                text_threshold=self.text_threshold,
                target_sizes=sizes,
            )
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
