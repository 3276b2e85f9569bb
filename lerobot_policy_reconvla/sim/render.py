"""Rendering several cameras of a MuJoCo scene every step, without a fixed cost per call.

    from lerobot_policy_reconvla.sim.render import MultiCameraRenderer

    renderer = MultiCameraRenderer(physics, ["top", "left_wrist"], image_size=(224, 224))
    images = renderer.render()          # {"top": (224, 224, 3) uint8, ...}, each a fresh C-contiguous array

Where a ``physics.render`` call's time goes on a CPU (MuJoCo rasterised by Mesa's llvmpipe; see
``docs/sim.md`` and ``benchmarks/bench_sim_throughput.py``): building the scene and camera objects is
about 2 % of it; almost all of it is OpenGL work inside ``mjr_render`` / ``mjr_readPixels``, and most of
that does not depend on the image size, because gym-aloha's one shadow-casting light makes MuJoCo
render a 4096 x 4096 shadow map plus an extra lighting pass over the arms' ~30k triangles for every
camera, every step. So this renderer:

- keeps one dm_control :class:`~dm_control.mujoco.Camera` per camera (its scene and pixel buffer)
  instead of building and freeing them on every call;
- renders shadows from a smaller map (``shadow_map_size``, default 1024) over a tighter frustum
  (``shadow_clip``, default 0.5 of the scene extent, which still covers the table and both arms), so
  each shadow texel covers about as much of the table as before: images stay within a few grey levels
  of gym-aloha's at shadow edges only (tested; figures in ``docs/sim.md``);
- leaves everything else as gym-aloha renders it (lights, 4x multisampling, camera poses and fovy),
  and ``shadow_map_size=None`` keeps gym-aloha's own shadow map for pixel-identical images.

``shadows=False`` removes the shadow passes altogether (about 3x faster again), which changes what the
images show (no shadows): use it for data and evaluation alike, never for one side only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

os.environ.setdefault("MUJOCO_GL", "egl")  # headless CPU rendering; must precede dm_control's import

import mujoco
import numpy as np
from dm_control.mujoco.engine import Camera

DEFAULT_SHADOW_MAP_SIZE = 1024
DEFAULT_SHADOW_CLIP = 0.5


class MultiCameraRenderer:
    """Persistent cameras of one ``dm_control`` physics, rendered together at one image size.

    Args:
        physics: the ``dm_control.mujoco.Physics`` to render (its state at each ``render`` call).
        cameras: camera names of the model.
        image_size: (height, width) of every image.
        shadow_map_size: side of the shadow map in pixels; None keeps the model's (gym-aloha: 4096).
        shadow_clip: half-size of the shadow frustum as a fraction of the scene extent; None keeps the
            model's (1.0).
        shadows: False renders without shadows (faster; the images no longer show them).

    The shadow settings are model settings read when the physics' OpenGL context is created, so they
    must be set before anything renders that physics; a physics that has rendered already keeps its
    settings and asking for others raises ``ValueError``.
    """

    def __init__(
        self,
        physics,
        cameras: Sequence[str],
        image_size: Sequence[int],
        shadow_map_size: int | None = DEFAULT_SHADOW_MAP_SIZE,
        shadow_clip: float | None = DEFAULT_SHADOW_CLIP,
        shadows: bool = True,
    ):
        height, width = (int(v) for v in image_size)
        if height <= 0 or width <= 0:
            raise ValueError(
                f"image_size must be (height, width) with positive values, got {tuple(image_size)}"
            )
        if shadow_map_size is not None and shadow_map_size <= 0:
            raise ValueError(f"shadow_map_size must be positive or None, got {shadow_map_size}")
        if shadow_clip is not None and shadow_clip <= 0:
            raise ValueError(f"shadow_clip must be positive or None, got {shadow_clip}")
        self.physics = physics
        self.image_size = (height, width)
        self._configure_model(shadow_map_size, shadow_clip, (height, width))
        self._cameras = {
            name: Camera(physics, height=height, width=width, camera_id=name) for name in cameras
        }
        self._flags = {} if shadows else {mujoco.mjtRndFlag.mjRND_SHADOW: False}

    def _configure_model(self, shadow_map_size, shadow_clip, image_size) -> None:
        """Set the model's render settings, then create (or check) the physics' rendering context."""
        model, (height, width) = self.physics.model, image_size
        before = (
            model.vis.quality.shadowsize,
            model.vis.map.shadowclip,
            model.vis.global_.offwidth,
            model.vis.global_.offheight,
        )
        if shadow_map_size is not None:
            model.vis.quality.shadowsize = shadow_map_size
        if shadow_clip is not None:
            model.vis.map.shadowclip = shadow_clip
        # The offscreen buffer only has to hold the largest image asked for (gym-aloha's is 640 x 480).
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        context = self.physics.contexts.mujoco.ptr  # created here from the settings above, unless it exists
        have = {
            "shadow_map_size": (context.shadowSize, model.vis.quality.shadowsize),
            "shadow_clip": (context.shadowClip, model.vis.map.shadowclip * model.stat.extent),
            "image width": (context.offWidth, model.vis.global_.offwidth),
            "image height": (context.offHeight, model.vis.global_.offheight),
        }
        stale = {k: v for k, v in have.items() if not np.isclose(*v, rtol=1e-5)}
        if stale:  # leave the model as the context it rendered with describes it
            (
                model.vis.quality.shadowsize,
                model.vis.map.shadowclip,
                model.vis.global_.offwidth,
                model.vis.global_.offheight,
            ) = before
            raise ValueError(
                f"this physics rendered before with other settings ({', '.join(stale)}): build the "
                "MultiCameraRenderer before anything else renders it"
            )

    @property
    def cameras(self) -> list[str]:
        return list(self._cameras)

    def render(self, cameras: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """{camera: (H, W, 3) uint8} of the physics' current state, for `cameras` (default: all)."""
        # Camera.render returns a flipped view of the camera's own buffer, overwritten by its next
        # render: copy it (which also makes it C-contiguous, as torch.from_numpy needs).
        names = self.cameras if cameras is None else cameras
        return {
            name: np.ascontiguousarray(self._cameras[name].render(render_flag_overrides=self._flags))
            for name in names
        }
