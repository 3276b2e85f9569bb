"""Grounding measures of the evidence experiment: does the policy act on the cube the instruction names?

Scenes with several cubes on the table (``lift_named``: red, green, blue; ``lift_pair``: red, green),
probed at their first frame, the decision point: the arm is still in its start pose, so only the
instruction says which cube to go for. Every scene is evaluated with every cube named in turn, so
whatever favours one place of the table over another cancels out.

    from lerobot_policy_reconvla.experiments.grounding import attention_ratio, instruction_swap, probe_scenes

    scenes = probe_scenes("lift_named", seeds=range(100, 120), chunk=policy.config.chunk_size)
    attention_ratio(policy, preprocessor, scenes)["mean"]            # chance 1.0
    instruction_swap(policy, preprocessor, postprocessor, scenes)     # {"heads_to_named": ..., ...}

- `attention_ratio`: the action expert's attention (its action queries, summed over heads, averaged
  over the Euler steps) on the named cube's image tokens over that on an equal-area window around a
  distractor cube, per expert layer. Read from pi0's own forward through forward hooks on the expert's
  attention modules, which (eager attention) return their weights. `attention_ratio_control` reads
  synthetic masses (on the named cube, on the others, uniform) through the same `ratio_from_mass`: what
  the ratio can reach on the same scenes.
- `instruction_swap`: the chunk predicted under each instruction, compared with the scripted
  demonstration's first actions toward each cube; the closest script is the cube the policy went for.
- `named_object_features`: per camera, pooled prefix readings of the image tokens (the values the action
  expert reads, by default) for a probe of the named cube's position (`metrics.probe_errors`).
"""

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

os.environ.setdefault("MUJOCO_GL", "egl")  # headless CPU rendering; must precede dm_control's import

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from ..gaze_box import is_present
from ..sim.constants import DEFAULT_CAMERAS, naming_instruction
from .metrics import box_centres

DEFAULT_IMAGE_SIZE = (96, 128)
DEFAULT_CHUNK = 50  # pi0's chunk_size: how many scripted actions each scene keeps per cube


@dataclasses.dataclass
class ProbeScene:
    """One scene at its first frame, with everything both measures need for each cube named."""

    task: str
    seed: int
    cubes: tuple[str, ...]  # colours in the scene's order (sim.tasks.scene_cubes)
    named: str  # the cube the seed's own episode names (the measures name every cube in turn)
    images: dict[str, Tensor]  # {camera: (3, H, W) float32 in [0, 1]}, as LeRobot's dataset frames
    state: Tensor  # (14,) float32 observation.state (joint positions, grippers normalised)
    boxes: dict[str, dict[str, np.ndarray]]  # {colour: {camera: (4,) tight normalised box, or [-1] * 4}}
    instructions: dict[str, str]  # {colour: the task string naming it}
    scripted: dict[str, Tensor]  # {colour: (chunk, 14) float32 the demonstration's first actions toward it}


def probe_scenes(
    task: str,
    seeds: Iterable[int],
    image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
    cameras: Sequence[str] = DEFAULT_CAMERAS,
    chunk: int = DEFAULT_CHUNK,
    shadows: bool = True,
) -> list[ProbeScene]:
    """The first frame of each seed's scene of `task` (a task with two or more cubes), with each cube's
    tight gaze box per camera and, per cube, its instruction and the scripted chunk that lifts it.

    `image_size`, `cameras` and `shadows` must be those of the policy's training data.
    """
    from ..sim.env import AlohaMultiCamEnv
    from ..sim.gaze import gaze_box, object_geom_ids
    from ..sim.scripted import scripted_episode_for_scene
    from ..sim.tasks import CUBE_BODIES, scene_cubes, scene_for_seed

    cubes = scene_cubes(task)
    if len(cubes) < 2:
        raise ValueError(f"task {task!r} has {len(cubes)} cube(s): grounding needs a scene with two or more")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    image_size = (int(image_size[0]), int(image_size[1]))
    # One env (its physics and persistent cameras) for every seed: only the first frame is rendered.
    env = AlohaMultiCamEnv(
        task=task, cameras=cameras, image_size=image_size, gaze_boxes=False, shadows=shadows
    )
    geoms = {colour: object_geom_ids(env.physics, [CUBE_BODIES[colour]]) for colour in cubes}
    scenes = []
    for seed in seeds:
        scene = scene_for_seed(task, int(seed))
        obs, _ = env.reset(options={"scene": scene})
        images = {
            cam: torch.from_numpy(obs["pixels"][cam]).permute(2, 0, 1).float() / 255.0  # (3, H, W)
            for cam in cameras
        }
        boxes = {
            colour: {cam: gaze_box(env.physics, cam, geoms[colour], image_size) for cam in cameras}
            for colour in cubes
        }
        instructions = {colour: naming_instruction(task, colour) for colour in cubes}
        scripted = {}
        for colour in cubes:
            # The same placement, this cube named: the script's waypoints are timed, so the first `chunk`
            # actions of a `chunk`-step rollout are those of the full episode.
            named_scene = dataclasses.replace(
                scene, target=colour, instruction=instructions[colour], gaze_bodies=(CUBE_BODIES[colour],)
            )
            actions = scripted_episode_for_scene(named_scene, int(seed), episode_length=chunk).actions
            scripted[colour] = torch.from_numpy(actions[:chunk]).float()  # (chunk, 14)
        scenes.append(
            ProbeScene(
                task=task,
                seed=int(seed),
                cubes=cubes,
                named=scene.target,
                images=images,
                state=torch.from_numpy(obs["agent_pos"].astype(np.float32)),  # (14,) as the dataset stores it
                boxes=boxes,
                instructions=instructions,
                scripted=scripted,
            )
        )
    env.close()
    return scenes


# --- where a box of the camera image lands among pi0's image tokens ---------------------------------


def token_box(
    box: np.ndarray, image_size: Sequence[int], resolution: Sequence[int], patch: int
) -> np.ndarray:
    """(4,) [x0, y0, x1, y1] of a normalised box of an (H, W) camera image, in token cells of pi0's input.

    pi0 (``resize_with_pad_torch``) scales the image to fit `resolution` keeping its aspect ratio and pads
    it evenly with black; SigLIP then cuts `patch` x `patch` pixel tokens from the top-left corner.

    >>> token_box(np.array([0.0, 0.0, 1.0, 1.0]), (96, 128), (112, 112), 14)   # 112 x 84 px, 14 px bands
    array([0., 1., 8., 7.])
    """
    height, width = int(image_size[0]), int(image_size[1])
    res_h, res_w = int(resolution[0]), int(resolution[1])
    if (height, width) == (res_h, res_w):  # pi0 leaves it as it is
        resized_h, resized_w, pad_y, pad_x = height, width, 0, 0
    else:  # resize_with_pad_torch's own arithmetic, so the sizes round as its do
        ratio = max(width / res_w, height / res_h)
        resized_h, resized_w = int(height / ratio), int(width / ratio)
        pad_y, pad_x = (res_h - resized_h) // 2, (res_w - resized_w) // 2
    box = np.asarray(box, dtype=np.float64)
    xs = (pad_x + box[[0, 2]] * resized_w) / patch
    ys = (pad_y + box[[1, 3]] * resized_h) / patch
    return np.array([xs[0], ys[0], xs[1], ys[1]])


def _cells_spanned(lo: float, hi: float) -> int:
    return max(math.ceil(hi) - math.floor(lo), 1)


def _window_start(lo: float, hi: float, size: int, grid: int) -> int:
    """First cell of a `size`-cell window centred on [lo, hi], shifted (not clipped) into the grid."""
    start = math.floor((lo + hi) / 2 - size / 2 + 0.5)
    return min(max(start, 0), grid - size)


def equal_area_windows(
    a: np.ndarray, b: np.ndarray, grid: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(rows, cols) slices of two windows with the same number of cells, centred on token boxes `a` and `b`.

    Each side is the larger of the two boxes' extents in cells (at least one, at most the grid); a window
    near the border is shifted back into the grid rather than clipped, so both keep the same area.
    """
    width = min(max(_cells_spanned(a[0], a[2]), _cells_spanned(b[0], b[2])), grid)
    height = min(max(_cells_spanned(a[1], a[3]), _cells_spanned(b[1], b[3])), grid)
    windows = []
    for box in (a, b):
        col, row = _window_start(box[0], box[2], width, grid), _window_start(box[1], box[3], height, grid)
        windows.append((slice(row, row + height), slice(col, col + width)))
    return windows[0], windows[1]


def windows_overlap(a: np.ndarray, b: np.ndarray, grid: int) -> bool:
    """Whether the equal-area windows of token boxes `a` and `b` share a cell (their masses then overlap)."""
    (rows_a, cols_a), (rows_b, cols_b) = equal_area_windows(a, b, grid)
    return max(rows_a.start, rows_b.start) < min(rows_a.stop, rows_b.stop) and max(
        cols_a.start, cols_b.start
    ) < min(cols_a.stop, cols_b.stop)


def scene_token_boxes(
    scene: ProbeScene, cameras: Sequence[str], config
) -> dict[str, list[np.ndarray | None]]:
    """{colour: one token box per camera (`token_box`), None where the camera does not see the cube}."""
    return {
        colour: [
            token_box(
                scene.boxes[colour][cam],
                scene.images[cam].shape[1:],
                config.image_resolution,
                config.vision_patch_size,
            )
            if is_present(scene.boxes[colour][cam])
            else None
            for cam in cameras
        ]
        for colour in scene.cubes
    }


def named_and_distractor_mass(
    mass: Tensor, token_boxes: dict[str, list[np.ndarray | None]], named: str, grid: int
) -> tuple[Tensor, Tensor, int]:
    """Attention on the named cube and on a distractor cube, per layer and camera.

    mass: (L, K, grid, grid) attention on each camera's image tokens; token_boxes: {colour: K token boxes,
    None where the camera does not see the cube}. Per camera, each other cube seen there is a distractor:
    it and the named cube each get a window of equal area (`equal_area_windows`), and the masses in those
    windows are averaged over the distractors. A camera missing the named cube, or every distractor,
    adds nothing. Returns named (L, K), distractor (L, K) and the number of cameras that counted.
    """
    layers, cameras = mass.shape[:2]
    named_mass = torch.zeros(layers, cameras, dtype=torch.float64)
    distractor_mass = torch.zeros(layers, cameras, dtype=torch.float64)
    counted = 0
    for k in range(cameras):
        target = token_boxes[named][k]
        others = [
            boxes[k] for colour, boxes in token_boxes.items() if colour != named and boxes[k] is not None
        ]
        if target is None or not others:
            continue
        counted += 1
        for other in others:
            (rows_n, cols_n), (rows_d, cols_d) = equal_area_windows(target, other, grid)
            named_mass[:, k] += mass[:, k, rows_n, cols_n].sum((-2, -1)).double() / len(others)
            distractor_mass[:, k] += mass[:, k, rows_d, cols_d].sum((-2, -1)).double() / len(others)
    return named_mass, distractor_mass, counted


# --- running the policy on probe scenes ---------------------------------------------------------------


def policy_cameras(policy, scenes: Sequence[ProbeScene]) -> list[str]:
    """The policy's cameras in its prefix order, checked against what the scenes rendered."""
    return config_cameras(policy.config, scenes)


def config_cameras(config, scenes: Sequence[ProbeScene]) -> list[str]:
    """`policy_cameras` from the policy's config alone."""
    cameras = config.camera_names
    for scene in scenes[:1]:
        missing = [cam for cam in cameras if cam not in scene.images]
        if missing:
            raise ValueError(
                f"the policy reads camera(s) {missing}; the probe scenes rendered {list(scene.images)}"
            )
        for cam in cameras:
            expected = tuple(config.image_features[f"observation.images.{cam}"].shape)
            if tuple(scene.images[cam].shape) != expected:
                raise ValueError(
                    f"{cam}: the probe scenes are {tuple(scene.images[cam].shape)}, the policy's images "
                    f"{expected}: render them at the training data's image_size"
                )
    return cameras


def raw_batch(scene: ProbeScene, cameras: Sequence[str]) -> dict:
    """One row per cube named, as LeRobot's dataloader delivers frames (before the preprocessor)."""
    rows = len(scene.cubes)
    batch = {
        f"observation.images.{cam}": scene.images[cam][None].expand(rows, -1, -1, -1).clone()
        for cam in cameras
    }  # each (rows, 3, H, W)
    batch["observation.state"] = scene.state[None].expand(rows, -1).clone()  # (rows, 14)
    batch["task"] = [scene.instructions[colour] for colour in scene.cubes]
    return batch


def scene_noise(config, count: int, noise_seed: int) -> Tensor:
    """(count, chunk, max_action_dim) flow-matching starts, one per scene: the same for every policy of
    this chunk size and every instruction of a scene, so only the instruction (or the weights) differs."""
    generator = torch.Generator().manual_seed(noise_seed)
    return torch.randn(count, config.chunk_size, config.max_action_dim, generator=generator)


def predict_chunks(policy, preprocessor, scene: ProbeScene, cameras: Sequence[str], noise: Tensor) -> Tensor:
    """(rows, chunk, A) normalised chunks of `scene`, one per instruction, all from `noise` (chunk, D)."""
    batch = preprocessor(raw_batch(scene, cameras))
    state = batch["observation.state"]
    rows_noise = noise[None].expand(len(scene.cubes), -1, -1).to(device=state.device, dtype=torch.float32)
    return policy.predict_action_chunk(batch, noise=rows_noise.contiguous())


def camera_grids(mass: Tensor, cameras: int, grid: int) -> Tensor:
    """(L, B, kv) attention over pi0's keys -> (B, L, K, grid, grid) on each camera's image tokens.

    The prefix starts with the cameras' tokens, camera after camera, each grid row-major as SigLIP's patch
    embedding flattens it; the language tokens (and, in the expert, the suffix) follow.
    """
    return rearrange(
        mass[..., : cameras * grid * grid], "l b (k r c) -> b l k r c", k=cameras, r=grid, c=grid
    )


def expert_attention_modules(policy) -> list[torch.nn.Module]:
    return [layer.self_attn for layer in policy.model.paligemma_with_expert.gemma_expert.model.layers]


@contextmanager
def capture_expert_attention(policy, chunk: int):
    """Collects, per expert layer and call (one call per Euler step), the attention of the suffix's action
    queries over every key (prefix cache + suffix), summed over heads and queries: (B, kv) each.

    Forward hooks on the expert's attention modules, removed on exit whatever happens: pi0's code is not
    touched. pi0's `denoise_step` sets the expert to eager attention, which returns its weights.
    """
    modules = expert_attention_modules(policy)
    captured: list[list[Tensor]] = [[] for _ in modules]

    def keep(layer: int):
        def hook(_module, _args, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise RuntimeError(
                    "the action expert's attention returned no weights (not eager attention?): "
                    "attention_ratio cannot read them"
                )
            # (B, heads, q, kv): the last `chunk` queries are the action tokens (the first is the state's)
            captured[layer].append(weights[:, :, -chunk:, :].float().sum((1, 2)).cpu())  # (B, kv)

        return hook

    handles = [module.register_forward_hook(keep(i)) for i, module in enumerate(modules)]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def attention_ratio(policy, preprocessor, scenes: Sequence[ProbeScene], noise_seed: int = 0) -> dict:
    """The action expert's attention on the named cube's image tokens over that on a distractor's.

    For every scene and every cube named in turn, the action queries' attention (summed over heads and
    the chunk's action tokens, averaged over the Euler steps) is captured during pi0's own
    `predict_action_chunk`; `ratio_from_mass` turns it into the ratio, the same function that reads the
    synthetic masses of `attention_ratio_control`. Returns `ratio_from_mass`'s dict.
    """
    policy.eval()
    config = policy.config
    cameras = policy_cameras(policy, scenes)
    noise = scene_noise(config, len(scenes), noise_seed)
    masses = []
    for scene, scene_noise_ in zip(scenes, noise, strict=True):
        with capture_expert_attention(policy, config.chunk_size) as captured:
            predict_chunks(policy, preprocessor, scene, cameras, scene_noise_)
        if any(len(calls) == 0 for calls in captured):
            raise RuntimeError("an expert layer's attention was never captured during predict_action_chunk")
        # (L, rows, kv): each layer's calls are the Euler steps
        masses.append(torch.stack([torch.stack(calls).mean(0) for calls in captured]))
    return ratio_from_mass(config, cameras, scenes, masses)


def ratio_from_mass(
    config, cameras: Sequence[str], scenes: Sequence[ProbeScene], masses: Sequence[Tensor]
) -> dict:
    """The attention ratio of per-scene attention masses: the named cube's window over a distractor's.

    masses: per scene, (L, rows, kv) attention over pi0's keys, row `i` naming `scene.cubes[i]`; the first
    K * grid * grid keys are the cameras' image tokens (`camera_grids`), any after them (language, suffix)
    count only toward `image_share`. Per camera, the mass is summed over an equal-area window of image
    tokens around each cube's tight box (`named_and_distractor_mass`); the ratio is the named sum over the
    distractor sum, over all scenes, instructions and cameras. Chance level is 1.0.

    Returns {"per_layer": [L ratios], "mean": mean of per_layer, "per_camera": {camera: ratio, all layers
    pooled}, "named_mass": [L], "distractor_mass": [L] (window masses, summed over terms), "image_share":
    [L] the fraction of the mass on image tokens at all, "terms": (scene, instruction, camera) triples
    counted, "overlap": the fraction of cube pairs (per scene and camera) whose windows share cells (a cube
    in the top camera is a fraction of a token wide: neighbours can share a token, which pulls the ratio
    toward 1), "chance": 1.0}.
    """
    grid = config.recon_token_grid
    image_tokens = len(cameras) * grid * grid  # the prefix starts with each camera's grid (camera_grids)
    depth = masses[0].shape[0]
    named_total = torch.zeros(depth, len(cameras), dtype=torch.float64)
    distractor_total = torch.zeros(depth, len(cameras), dtype=torch.float64)
    image_mass = torch.zeros(depth, dtype=torch.float64)  # on any image token, for image_share
    all_mass = torch.zeros(depth, dtype=torch.float64)
    terms, pairs, overlapping = 0, 0, 0
    for scene, mass in zip(scenes, masses, strict=True):  # mass: (L, rows, kv)
        image_mass += mass[..., :image_tokens].sum((1, 2)).double()
        all_mass += mass.sum((1, 2)).double()
        per_camera = camera_grids(mass, len(cameras), grid)  # (rows, L, K, grid, grid)
        token_boxes = scene_token_boxes(scene, cameras, config)
        for boxes in zip(*token_boxes.values(), strict=True):  # each camera: every pair of cubes seen
            seen = [box for box in boxes if box is not None]
            for i, a in enumerate(seen):
                for b in seen[i + 1 :]:
                    pairs += 1
                    overlapping += windows_overlap(a, b, grid)
        for row, named in enumerate(scene.cubes):  # row `row` of the batch names cube `named`
            named_mass, distractor_mass, counted = named_and_distractor_mass(
                per_camera[row], token_boxes, named, grid
            )
            named_total += named_mass
            distractor_total += distractor_mass
            terms += counted
    per_layer = (named_total.sum(1) / distractor_total.sum(1)).tolist()
    return {
        "per_layer": per_layer,
        "mean": float(np.mean(per_layer)),
        "per_camera": dict(
            zip(cameras, (named_total.sum(0) / distractor_total.sum(0)).tolist(), strict=True)
        ),
        "named_mass": named_total.sum(1).tolist(),
        "distractor_mass": distractor_total.sum(1).tolist(),
        "image_share": (image_mass / all_mass).tolist(),
        "terms": terms,
        "overlap": overlapping / max(pairs, 1),
        "chance": 1.0,
    }


# --- the ratio's control: synthetic masses through ratio_from_mass --------------------------------------

CONTROL_PEAK = 0.5  # the oracle's share of each camera's mass on the named cube's centre token


def centre_cell(box: np.ndarray, grid: int) -> tuple[int, int]:
    """(row, col) of the token cell holding the centre of token box `box` [x0, y0, x1, y1].

    It always lies in the box's `equal_area_windows` window, whatever the other box: the window is centred
    on the box, at least one cell wide, and shifted into the grid rather than clipped.
    """
    col = min(max(math.floor((box[0] + box[2]) / 2), 0), grid - 1)
    row = min(max(math.floor((box[1] + box[3]) / 2), 0), grid - 1)
    return row, col


def control_mass(
    scene: ProbeScene, cameras: Sequence[str], config, attend: str, peak: float = CONTROL_PEAK
) -> Tensor:
    """(1, rows, K * grid * grid) a synthetic attention mass over one scene's image tokens, as
    `ratio_from_mass` reads it (one layer; row `i` names `scene.cubes[i]`).

    attend: "named": per camera, `peak` on the named cube's centre token (`centre_cell`) and the rest spread
    evenly over the camera's tokens (uniform where the camera does not see it); "distractors": the same,
    `peak` split evenly over the centre tokens of the other cubes the camera sees; "uniform": every image
    token the same, whatever is named.
    """
    if attend not in ("named", "distractors", "uniform"):
        raise ValueError(f"attend must be 'named', 'distractors' or 'uniform', got {attend!r}")
    if not 0.0 <= peak <= 1.0:
        raise ValueError(f"peak must be in [0, 1], got {peak}")
    grid = config.recon_token_grid
    token_boxes = scene_token_boxes(scene, cameras, config)
    mass = torch.full((len(scene.cubes), len(cameras), grid, grid), 1.0 / grid**2, dtype=torch.float64)
    for row, named in enumerate(scene.cubes):
        for k in range(len(cameras)):
            if attend == "named":
                targets = [token_boxes[named][k]]
            elif attend == "distractors":
                targets = [boxes[k] for colour, boxes in token_boxes.items() if colour != named]
            else:
                targets = []
            targets = [box for box in targets if box is not None]
            if not targets:
                continue  # nothing to attend to in this camera: it stays uniform
            mass[row, k] *= 1.0 - peak
            for box in targets:
                mass[(row, k, *centre_cell(box, grid))] += peak / len(targets)
    return rearrange(mass, "b k r c -> 1 b (k r c)")  # (1, rows, kv), the layout camera_grids reads


def attention_ratio_control(
    config, scenes: Sequence[ProbeScene], peak: float = CONTROL_PEAK
) -> dict[str, dict]:
    """What `ratio_from_mass` (the attention ratio's own reading) gives for synthetic masses on the same
    scenes: a positive control, so a reading near 1.0 can be told from a measure that cannot move.

    Returns {"oracle": a mass with `peak` of each camera's attention on the named cube's centre token,
    "distractors": the same on the other cubes' (below 1), "uniform": every token alike (exactly 1: the
    two windows of a term have the same area), "peak": peak}, each a `ratio_from_mass` dict of one layer.

    The oracle's floor: every term's named window holds the peak, a distractor's window holds it only if
    it shares cells with the named window, and the uniform rest puts the same mass in both windows. With
    F the share of (term, distractor) pairs whose windows overlap (the dict's "overlap" when every camera
    counted sees the same number of cubes), the oracle reads at least 1 / (1 - peak * (1 - F)): 2 at
    peak 0.5 with no overlap, 1.5 with a third of the pairs overlapping; above it by the uniform rest's
    share of the windows.
    """
    cameras = config_cameras(config, scenes)  # no forward pass: the policy's config is all it reads
    readings: dict[str, dict] = {}
    for attend, name in (("named", "oracle"), ("distractors", "distractors"), ("uniform", "uniform")):
        masses = [control_mass(scene, cameras, config, attend, peak) for scene in scenes]
        readings[name] = ratio_from_mass(config, cameras, scenes, masses)
    return {**readings, "peak": peak}


@torch.no_grad()
def instruction_swap(
    policy, preprocessor, postprocessor, scenes: Sequence[ProbeScene], noise_seed: int = 0
) -> dict:
    """Whether the predicted chunk follows the instruction: each cube named in turn, same images and noise.

    The chunk (dataset units, after the postprocessor) is compared by mean absolute error, over its first
    min(chunk_size, scripted length) actions, with each cube's scripted chunk; the closest is the cube
    "chosen".

    Returns {"heads_to_named": fraction of (scene, instruction) pairs choosing the named cube,
    "retargets": fraction of scenes where every instruction's chosen cube is the named one, "mean_shift":
    mean over scenes of the MAE between chunks predicted under different instructions (0: the instruction
    is ignored), "named_error": mean MAE to the named cube's script, "chance_heads_to_named": 1/n,
    "chance_retargets": (1/n)^n (chosen independently at random per instruction; a policy that ignores
    the instruction scores 0), "choices": per scene, the cube chosen under each cube named (scene
    order), "cubes": n, "compared_steps": actions compared, "scenes": count}.
    """
    policy.eval()
    cameras = policy_cameras(policy, scenes)
    noise = scene_noise(policy.config, len(scenes), noise_seed)
    hits, retargets, shifts, named_errors, choices, steps = 0, 0, [], [], [], 0
    for scene, scene_noise_ in zip(scenes, noise, strict=True):
        predicted = (
            postprocessor(predict_chunks(policy, preprocessor, scene, cameras, scene_noise_)).float().cpu()
        )
        scripts = torch.stack([scene.scripted[colour] for colour in scene.cubes])  # (n, chunk_s, A)
        steps = min(predicted.shape[1], scripts.shape[1])
        predicted, scripts = predicted[:, :steps], scripts[:, :steps]
        errors = (predicted[:, None] - scripts[None]).abs().mean((-2, -1))  # (instruction, script)
        chosen = errors.argmin(1)  # (n,)
        follows = chosen == torch.arange(len(scene.cubes))
        hits += int(follows.sum())
        retargets += int(follows.all())
        named_errors.append(errors.diagonal().mean().item())
        pairs = torch.triu_indices(len(scene.cubes), len(scene.cubes), offset=1)  # (2, n (n - 1) / 2)
        shifts.append((predicted[pairs[0]] - predicted[pairs[1]]).abs().mean().item())
        choices.append([scene.cubes[i] for i in chosen.tolist()])
    cubes = len(scenes[0].cubes)
    return {
        "heads_to_named": hits / (len(scenes) * cubes),
        "retargets": retargets / len(scenes),
        "mean_shift": float(np.mean(shifts)),
        "named_error": float(np.mean(named_errors)),
        "chance_heads_to_named": 1 / cubes,
        "chance_retargets": (1 / cubes) ** cubes,
        "choices": choices,
        "cubes": cubes,
        "compared_steps": steps,
        "scenes": len(scenes),
    }


FEATURE_SOURCES = ("values", "keys", "hidden")  # what named_object_features reads; see there


@contextmanager
def capture_prefix_projection(policy, source: str, layer: int):
    """Collects the output of the PaliGemma language model's `k_proj` ("keys") or `v_proj` ("values") at
    decoder layer `layer`: (B, L_prefix, kv_heads * head_dim), one tensor per call.

    Those are what the action expert reads from the prefix at that layer (pi0 caches them once, before the
    Euler steps, and the expert never calls the PaliGemma side's projections), so the action loss trains
    them. Keys are taken before the rotary embedding: the rotation is fixed per position, and pooled
    rotated keys would carry the layout of the image. A forward hook, removed on exit whatever happens.
    """
    if source not in ("keys", "values"):
        raise ValueError(f"source must be 'keys' or 'values', got {source!r}")
    language_model = policy.model.paligemma_with_expert.paligemma.model.language_model
    attention = language_model.layers[layer].self_attn
    module = attention.k_proj if source == "keys" else attention.v_proj
    captured: list[Tensor] = []
    handle = module.register_forward_hook(lambda _module, _args, output: captured.append(output))
    try:
        yield captured
    finally:
        handle.remove()


@torch.no_grad()
def named_object_features(
    policy, preprocessor, scenes: Sequence[ProbeScene], source: str = "values", layer: int | None = None
) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
    """What a probe of the *named* cube's position reads: per camera, a prefix reading of that camera's
    image tokens averaged over all of them (N, D), one row per scene and cube named; the named cube's box
    centre in that camera (N, 2), NaN where it is out of view; the scene of every row (N,).

    source: "values" (default) or "keys": what the action expert reads from the prefix at decoder layer
    `layer` (default the last; `capture_prefix_projection`), D = kv_heads * head_dim. The action loss
    trains these, so the probe does not favour an arm by where it reads. "hidden": the visual hidden
    states the reconstruction head reads (`config.recon_layer`, after the final norm at the last layer;
    `layer` must be None), D = the width. pi0 discards the prefix's output states, so at the last layer
    only the head trains them: this reading favours the reconstruction arms. The committed report
    (docs/evidence.md) read "hidden", and `experiments.evidence` still asks for it, so that report stays
    reproducible.

    Pooled over the whole camera, the tokens keep no layout of their own, and the same image appears once
    per cube named: the position is readable only if the image tokens took in which cube the instruction
    names (pi0's prefix attends both ways between image and language tokens; at layer 0 the keys and
    values come before any attention and cannot). The tuple is what `metrics.probe_errors` fits and scores.
    """
    from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

    if source not in FEATURE_SOURCES:
        raise ValueError(f"source must be one of {FEATURE_SOURCES}, got {source!r}")
    if source == "hidden" and layer is not None:
        raise ValueError("source 'hidden' reads the head's layer (config.recon_layer): leave layer as None")
    policy.eval()
    cameras = policy_cameras(policy, scenes)
    image_tokens = len(cameras) * policy.config.recon_token_grid**2  # each camera's grid first in the prefix
    features: dict[str, list[Tensor]] = {cam: [] for cam in cameras}
    centres: dict[str, list[Tensor]] = {cam: [] for cam in cameras}
    groups = []
    for index, scene in enumerate(scenes):
        batch = preprocessor(raw_batch(scene, cameras))
        images, img_masks = policy._preprocess_images(batch)  # pi0's own resize/pad, as in training
        prefix_args = (
            images,
            img_masks,
            batch[OBS_LANGUAGE_TOKENS],
            batch[OBS_LANGUAGE_ATTENTION_MASK],
            len(cameras),
        )
        if source == "hidden":
            cond, _ = policy.model.prefix_recon_condition(*prefix_args)  # ((rows K), T, D)
            tokens = rearrange(cond, "(b k) t d -> b k t d", k=len(cameras))
        else:
            # The same prefix-only forward (pi0 builds its KV cache with it); its output is not needed.
            with capture_prefix_projection(policy, source, -1 if layer is None else layer) as captured:
                policy.model.prefix_recon_condition(*prefix_args)
            if len(captured) != 1:
                raise RuntimeError(
                    f"expected one {source} projection per prefix forward, got {len(captured)}"
                )
            tokens = rearrange(
                captured[0][:, :image_tokens], "b (k t) d -> b k t d", k=len(cameras)
            )  # (rows, K, T, kv_heads * head_dim)
        pooled = tokens.float().mean(2).cpu()  # (rows, K, D)
        for k, cam in enumerate(cameras):
            features[cam].append(pooled[:, k])
            boxes = torch.as_tensor(
                np.stack([scene.boxes[colour][cam] for colour in scene.cubes])
            )  # (rows, 4)
            centres[cam].append(box_centres(boxes, is_present(boxes)).float())
        groups.append(torch.full((len(scene.cubes),), index))
    return (
        {cam: torch.cat(rows) for cam, rows in features.items()},
        {cam: torch.cat(rows) for cam, rows in centres.items()},
        torch.cat(groups),
    )
