"""The gaze-box convention, defined once for the generator, the annotator, the policy and the tools.

    gaze_box_key("top")          # "observation.gaze_box.top": one (4,) float32 feature per camera
    camera_of("observation.gaze_box.top")                 # "top"
    BOX_NAMES                    # ("x0", "y0", "x1", "y1"): normalised to [0, 1], x right, y down
    ABSENT_BOX                   # [-1, -1, -1, -1]: the camera does not see the object
    gaze_box_feature()           # the LeRobot feature spec of one camera's box
    is_present(boxes)            # (..., 4) numpy or torch -> (...) bool: False for the absent marker

Gaze boxes are training targets, never policy inputs: the policy's processors pass them through and
its config drops them from `input_features`. A box that is neither usable nor absent (pixel
coordinates, swapped corners) is refused by the policy (`recon.target.malformed_box_mask`).
"""

import numpy as np

OBS_GAZE_BOX = "observation.gaze_box"
BOX_NAMES = ("x0", "y0", "x1", "y1")
ABSENT_BOX = np.full(4, -1.0, dtype=np.float32)


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
    """LeRobot's feature spec of one camera's box (a new dict each call: LeRobot may edit what it is given)."""
    return {"dtype": "float32", "shape": (4,), "names": list(BOX_NAMES)}


def is_present(boxes):
    """(..., 4) -> (...) bool: False for the absent marker (any negative coordinate). numpy or torch."""
    return (boxes >= 0).all(-1)
