"""The gaze-box convention, defined once for the generator, the annotator, the policy and the tools.

    gaze_box_key("top")          # "observation.gaze_box.top": one (4,) float32 feature per camera
    camera_of("observation.gaze_box.top")                 # "top"
    BOX_NAMES                    # ("x0", "y0", "x1", "y1"): normalised to [0, 1], x right, y down
    ABSENT_BOX                   # [-1, -1, -1, -1]: the camera does not see the object
    gaze_box_feature()           # the LeRobot feature spec of one camera's box
    is_absent(boxes)             # (..., 4) numpy or torch -> (...) bool: exactly the absent marker
    is_present(boxes)            # its negation
    is_valid(boxes)              # inside [0, 1] with x0 < x1 and y0 < y1: a box a target can be cropped to
    is_malformed(boxes)          # neither valid nor absent (pixel coordinates, swapped corners, NaN)
    batch_gaze_boxes(batch, cameras, said) # a batch's boxes, checked, as one (B, K, 4) tensor
    whole_image_if_absent(boxes)           # the box each target is cropped to

Gaze boxes are training targets, never policy inputs: the policy's processors pass them through and
its config drops them from `input_features`. Only this module reads them out of a batch (`batch_gaze_boxes`).
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)

OBS_GAZE_BOX = "observation.gaze_box"
BOX_NAMES = ("x0", "y0", "x1", "y1")
ABSENT_VALUE = -1.0
ABSENT_BOX = np.full(4, ABSENT_VALUE, dtype=np.float32)
WHOLE_IMAGE_BOX = (0.0, 0.0, 1.0, 1.0)
# A batch where more than this share of a camera's boxes is malformed stops training: the dataset is wrong,
# not a few frames of it.
MALFORMED_LIMIT = 0.5


def gaze_box_key(camera: str) -> str:
    return f"{OBS_GAZE_BOX}.{camera}"


def is_gaze_box_key(key: str) -> bool:
    return key.startswith(f"{OBS_GAZE_BOX}.")


def camera_of(key: str) -> str:
    """The camera of a gaze-box key; ValueError naming the key for anything else."""
    if not is_gaze_box_key(key):
        raise ValueError(f"{key!r} is not a gaze-box key ({OBS_GAZE_BOX}.<camera>)")
    return key.removeprefix(f"{OBS_GAZE_BOX}.")


def gaze_box_feature() -> dict:
    """LeRobot's feature spec of one camera's box (a new dict each call: LeRobot may edit it)."""
    return {"dtype": "float32", "shape": (4,), "names": list(BOX_NAMES)}


# The predicates take (..., 4) numpy arrays or torch tensors alike and return (...) bools.


def is_absent(boxes):
    """True for exactly the absent marker [-1, -1, -1, -1]; a box with other negatives is malformed."""
    return (boxes == ABSENT_VALUE).all(-1)


def is_present(boxes):
    return ~is_absent(boxes)


def is_valid(boxes):
    """True where a target can be cropped to the box: inside [0, 1] (so finite), positive width and height.

    >>> is_valid(np.array([[0.1, 0.2, 0.5, 0.6], [-1.0, -1.0, -1.0, -1.0], [0.5, 0.5, 0.5, 0.9]])).tolist()
    [True, False, False]
    """
    inside = (boxes >= 0).all(-1) & (boxes <= 1).all(-1)  # False for NaN as well
    return inside & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])


def is_malformed(boxes):
    """True where a box is neither valid nor absent: pixel coordinates, swapped corners, NaN.

    >>> is_malformed(np.array([[0.1, 0.2, 0.5, 0.6], [-1.0, -1.0, -1.0, -1.0], [30.0, 20, 70, 60]])).tolist()
    [False, False, True]
    """
    return ~is_valid(boxes) & ~is_absent(boxes)


def check_gaze_box_stats(dataset_stats: dict | None) -> None:
    """Refuses, before anything is built, a dataset whose gaze boxes are not normalised on average (pixel
    coordinates, the usual mistake with detector output): its meta/stats.json mean lies outside [-1, 1]."""
    for key, stats in (dataset_stats or {}).items():
        if not is_gaze_box_key(key) or "mean" not in stats:
            continue
        mean = np.asarray(stats["mean"], dtype=np.float32)
        if not np.isfinite(mean).all() or (np.abs(mean) > 1).any():
            high = np.asarray(stats.get("max", mean), dtype=np.float32).tolist()
            raise ValueError(
                f"{key}: the dataset's boxes average {mean.tolist()} (max {high}), expected [x0, y0, x1, y1] "
                "normalised to [0, 1] (or [-1, -1, -1, -1] when absent). Pixel coordinates? Divide x0, x1 by "
                "the image width and y0, y1 by its height."
            )


def batch_gaze_boxes(batch: dict, cameras: list[str], said: set[str]):
    """The batch's gaze boxes of `cameras`, checked, as one (B, K, 4) float32 tensor on the images' device:
    each camera's box where it is valid, the absent marker where the object is out of view, where the box
    is malformed, or where the batch has no box for the camera.

    Refused, naming the keys and the fix: boxes for cameras the policy does not have while some of its
    cameras have none (a `--rename_map` that renamed the images but not their boxes), a box that is not
    (B, 4), and a batch where most of a camera's boxes are malformed. Said once per key (`said` records
    what was said, and is updated): a camera without boxes, a few malformed boxes.

    Args:
        batch: LeRobot's flat batch, with `observation.images.<camera>` (B, C, H, W) for every camera.
        cameras: the policy's camera names, in its order (`ReconVLAConfig.camera_names`).
    """
    import torch  # here, not at the top: the simulation's workers import this module and never need torch

    _check_boxes_follow_cameras(batch, cameras)
    reference = batch[f"observation.images.{cameras[0]}"]
    absent = torch.as_tensor(ABSENT_BOX, device=reference.device).expand(reference.shape[0], 4)
    stacked = []
    for camera in cameras:
        key = gaze_box_key(camera)
        box = batch.get(key)
        if box is None:
            missing = (
                f"No {key} in the batch: camera {camera!r} reconstructs its whole image (ReconVLA's "
                "ablation: a gaze crop trains a better backbone than the whole image)."
            )
            _say_once(said, f"{key} missing", missing)
            stacked.append(absent)
            continue
        if box.ndim == 1 and reference.shape[0] == 1:
            # One dataset frame: LeRobot's batch-dimension step adds it to images and state, not to boxes.
            box = box[None]
        if tuple(box.shape) != tuple(absent.shape):
            raise ValueError(
                f"{key} has shape {tuple(box.shape)}, expected {tuple(absent.shape)}: [x0, y0, x1, y1] each"
            )
        box = box.detach().to(device=reference.device, dtype=torch.float32)
        bad = is_malformed(box)  # (B,)
        if bad.any():
            message = (
                f"{key}: {int(bad.sum())} of {len(bad)} boxes in this batch are malformed, e.g. "
                f"{box[bad][:3].tolist()}; expected [x0, y0, x1, y1] normalised to [0, 1] with x0 < x1 and "
                "y0 < y1, or [-1, -1, -1, -1] for an object out of view. Pixel coordinates? Divide x0, x1 by "
                "the image width and y0, y1 by its height."
            )
            share = bad.float().mean().item()
            if share > MALFORMED_LIMIT:
                raise ValueError(message)
            message += f" Those frames reconstruct the whole image ({share:.0%} of this batch)."
            _say_once(said, f"{key} malformed", message)
        stacked.append(torch.where(is_valid(box)[:, None], box, absent))
    return torch.stack(stacked, dim=1)


def whole_image_if_absent(boxes):
    """(..., 4) torch boxes, valid or absent -> the boxes targets are cropped to: whole image if absent."""
    whole = boxes.new_tensor(WHOLE_IMAGE_BOX).expand_as(boxes)
    return whole.where(is_absent(boxes)[..., None], boxes)


def _check_boxes_follow_cameras(batch: dict, cameras: list[str]) -> None:
    """`--rename_map` renames the keys it names and no others: cameras renamed without their gaze-box keys
    would silently reconstruct whole images. Say which keys to add instead."""
    with_box = {camera_of(key) for key in batch if is_gaze_box_key(key)}
    stray = sorted(with_box - set(cameras))
    without_box = [camera for camera in cameras if camera not in with_box]
    if stray and without_box:
        raise ValueError(
            f"The batch has gaze boxes for camera(s) {stray}, which this policy does not have, and none for "
            f"its camera(s) {without_box}. Cameras renamed with --rename_map keep their gaze-box keys' old "
            f"names: add the gaze-box keys to the map too, e.g. "
            f'"{gaze_box_key(stray[0])}": "{gaze_box_key(without_box[0])}" next to '
            f'"observation.images.{stray[0]}": "observation.images.{without_box[0]}".'
        )


def _say_once(said: set[str], what: str, message: str) -> None:
    if what not in said:
        said.add(what)
        logger.warning(message)
