"""Gaze boxes: where the task's objects appear in a camera image, from the simulator's poses alone.

    from lerobot_policy_reconvla.sim.gaze import gaze_box, object_geom_ids

    geoms = object_geom_ids(physics, ["box"])  # the transfer cube's geoms (sim.tasks.TASK_SPECS)
    gaze_box(physics, "top", geoms, image_size=(224, 224))  # (4,) float32 [x0, y0, x1, y1] in [0, 1]

The box is the axis-aligned image box of the given geoms (transfer cube: the cube; insertion: the
union of the peg and the socket, so one box per camera). Each geom's local bounding box is clipped
against the camera's near plane and its corners projected with the camera's pose and fovy; the box is
clipped to the image. It is "absent" (:data:`ABSENT_BOX`, ``[-1, -1, -1, -1]``) when nothing of the
objects lies inside the camera's view frustum. Occlusion (e.g. by a gripper) is not considered. No
rendering is involved: the tests check it against MuJoCo's segmentation render.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..gaze_box import ABSENT_BOX, is_absent

# Smallest side of a gaze box, as a fraction of the image's short side: a tight box around a 4 cm cube
# is a few pixels in the top camera, and a crop of it alone shows a blob of colour; at a quarter of the
# short side the crop keeps the object's surroundings (gripper, neighbouring cubes) and its identity.
DEFAULT_GAZE_MIN_SIZE = 0.25

# The 12 edges of a box, as pairs of corner indices; corner i has signs from the bits of i.
_CORNER_SIGNS = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], dtype=np.float64) * 2 - 1
_EDGES = [(i, i | (1 << b)) for i in range(8) for b in range(3) if not i & (1 << b)]


def object_geom_ids(physics, bodies: Sequence[str]) -> np.ndarray:
    body_ids = [physics.model.name2id(name, "body") for name in bodies]
    return np.flatnonzero(np.isin(physics.model.geom_bodyid, body_ids))


def _geom_corners_world(physics, geom_ids: np.ndarray) -> np.ndarray:
    """(G, 8, 3) world corners of each geom's local bounding box (exact for box geoms)."""
    aabb = physics.model.geom_aabb[geom_ids]  # (G, 6): local centre (3), half-sizes (3)
    local = aabb[:, None, :3] + _CORNER_SIGNS[None] * aabb[:, None, 3:]  # (G, 8, 3)
    xmat = physics.data.geom_xmat[geom_ids].reshape(-1, 3, 3)  # (G, 3, 3)
    return np.einsum("gij,gkj->gki", xmat, local) + physics.data.geom_xpos[geom_ids][:, None]


def widen_box(box: np.ndarray, image_size: tuple[int, int], min_size: float) -> np.ndarray:
    """Grow `box` (normalised [x0, y0, x1, y1]) about its centre so each side spans at least
    ``min_size`` x the image's short side, shifted (not clipped) to stay inside the image.

    >>> widen_box(np.array([0.5, 0.5, 0.52, 0.52]), (96, 128), 0.25)   # 2.6 x 1.9 px -> 24 x 24 px
    array([0.41625, 0.385  , 0.60375, 0.635  ], dtype=float32)
    """
    if min_size <= 0 or is_absent(box):  # nothing asked, or absent
        return box
    height, width = image_size
    side = min_size * min(height, width)  # pixels
    out = np.asarray(box, dtype=np.float64).copy()
    for lo, hi, extent in ((0, 2, width), (1, 3, height)):
        span = max(out[hi] - out[lo], min(side / extent, 1.0))
        centre = np.clip((out[lo] + out[hi]) / 2, span / 2, 1 - span / 2)
        out[lo], out[hi] = centre - span / 2, centre + span / 2
    return out.astype(np.float32)


def gaze_box(
    physics, camera: str, geom_ids: np.ndarray, image_size: tuple[int, int], min_size: float = 0.0
) -> np.ndarray:
    """Normalised [x0, y0, x1, y1] (x right, y down) of the geoms seen by `camera`, or ABSENT_BOX.

    ``min_size``: see :func:`widen_box` (0: the tight box).

    Pinhole model as MuJoCo renders it: camera frame columns of ``cam_xmat`` (x right, y up, looking
    along -z), vertical field of view ``cam_fovy``, square pixels, near plane ``znear * extent``.
    """
    height, width = image_size
    cam_id = physics.model.name2id(camera, "camera")
    cam_pos = physics.data.cam_xpos[cam_id]
    cam_rot = physics.data.cam_xmat[cam_id].reshape(3, 3)  # columns: camera axes in world
    focal = 0.5 * height / np.tan(np.deg2rad(physics.model.cam_fovy[cam_id]) / 2)  # pixels
    near = physics.model.vis.map.znear * physics.model.stat.extent

    corners = _geom_corners_world(physics, geom_ids)  # (G, 8, 3)
    cam_pts = (corners - cam_pos) @ cam_rot  # (G, 8, 3) in camera frame
    depth = -cam_pts[..., 2]  # (G, 8), positive in front
    points = [cam_pts[depth > near]]
    # Edges crossing the near plane: keep their crossing point so boxes partly behind the camera clip right.
    for a, b in _EDGES:
        da, db = depth[:, a], depth[:, b]
        crossing = (da > near) != (db > near)
        if crossing.any():
            t = ((near - da[crossing]) / (db[crossing] - da[crossing]))[:, None]
            points.append(cam_pts[crossing, a] + t * (cam_pts[crossing, b] - cam_pts[crossing, a]))
    points = np.concatenate(points)  # (P, 3)
    if len(points) == 0:
        return ABSENT_BOX.copy()
    d = -points[:, 2]
    u = (0.5 * width + focal * points[:, 0] / d) / width  # (P,) normalised, x right
    v = (0.5 * height - focal * points[:, 1] / d) / height  # (P,) normalised, y down
    x0, x1, y0, y1 = u.min(), u.max(), v.min(), v.max()
    if x1 <= 0 or x0 >= 1 or y1 <= 0 or y0 >= 1:  # entirely outside the image
        return ABSENT_BOX.copy()
    return widen_box(np.clip([x0, y0, x1, y1], 0.0, 1.0).astype(np.float32), image_size, min_size)
