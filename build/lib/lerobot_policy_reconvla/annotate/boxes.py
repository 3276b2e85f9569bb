"""Boxes for every frame from detections at some: stages, the detection schedule, filling, padding, IoU.

Time: the detector runs every ``--stride`` frames (and on the first and last frame of every stage);
boxes between two detections are interpolated linearly; after a miss the last box is kept for
``--max_gap`` frames, then the absent marker is written. Each kept box is grown by ``--pad`` (fraction of
its size) on every side.
"""

from __future__ import annotations

import numpy as np

from ..gaze_box import ABSENT_BOX, is_present
from .config import HIT_IOU
from .detector import Detection


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


def evaluate_boxes(predicted: np.ndarray, truth: np.ndarray, hit_iou: float = HIT_IOU) -> dict:
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
