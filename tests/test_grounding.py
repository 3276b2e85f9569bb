"""Grounding measures (experiments.grounding) on real lift_named scenes and the tiny untrained policy."""

import dataclasses
import math
import re

import numpy as np
import pytest
import torch
from lerobot.policies.common.vla_utils import resize_with_pad_torch

from lerobot_policy_reconvla.experiments.grounding import (
    attention_ratio,
    camera_grids,
    capture_expert_attention,
    equal_area_windows,
    expert_attention_modules,
    instruction_swap,
    named_and_distractor_mass,
    policy_cameras,
    predict_chunks,
    probe_scenes,
    token_box,
    windows_overlap,
)
from tests.fixtures.tiny_policy import CAMERAS, CHUNK, IMAGE_RESOLUTION, IMAGE_SHAPE, TOKEN_GRID, tiny_config

TASK = "lift_named"
SEEDS = (0, 1)
IMAGE_SIZE = IMAGE_SHAPE[1:]  # (96, 128)
PATCH = IMAGE_RESOLUTION[0] // TOKEN_GRID  # 14


@pytest.fixture(scope="module")
def scenes():
    return probe_scenes(TASK, SEEDS, image_size=IMAGE_SIZE, cameras=CAMERAS, chunk=CHUNK)


@pytest.fixture(scope="module")
def tiny():
    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors

    torch.manual_seed(0)
    config = tiny_config(num_inference_steps=2)  # two Euler steps: the per-step average still averages
    policy = ReconVLAPolicy(config)
    preprocessor, postprocessor = make_reconvla_pre_post_processors(
        config
    )  # no stats: identity normalisation
    return policy, preprocessor, postprocessor


# --- token mapping (no sim, no policy) ----------------------------------------------------------------


@pytest.mark.parametrize("image_size", [(96, 128), (128, 96), (112, 112), (60, 200)])
def test_token_box_lands_where_pi0s_resize_and_pad_puts_the_pixels(image_size):
    height, width = image_size
    y0, y1, x0, x1 = height // 4, height // 2, width // 2, (7 * width) // 8
    image = torch.zeros(1, height, width, 3)  # channels last, as pi0 resizes it
    image[:, y0:y1, x0:x1] = 1.0
    resized = resize_with_pad_torch(image, *IMAGE_RESOLUTION)[0, ..., 0]  # (112, 112)
    rows, cols = torch.nonzero(resized > 0.5, as_tuple=True)
    seen = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)  # pixel box

    box = np.array([x0 / width, y0 / height, x1 / width, y1 / height])
    mapped = token_box(box, image_size, IMAGE_RESOLUTION, PATCH) * PATCH  # back to pixels of pi0's input
    np.testing.assert_allclose(mapped, seen, atol=1.5)  # bilinear edges blur by about a pixel


def test_token_box_of_the_test_layout_skips_the_padding_bands():
    # 96 x 128 -> 84 x 112 px, padded by 14 px (one token row) above and below.
    np.testing.assert_allclose(
        token_box(np.array([0.0, 0.0, 1.0, 1.0]), (96, 128), (112, 112), 14), [0, 1, 8, 7]
    )
    np.testing.assert_allclose(
        token_box(np.array([0.5, 0.5, 0.75, 1.0]), (96, 128), (112, 112), 14), [4, 4, 6, 7]
    )
    # Already at the resolution: no resize, no padding.
    np.testing.assert_allclose(
        token_box(np.array([0.25, 0.5, 0.5, 1.0]), (112, 112), (112, 112), 14), [2, 4, 4, 8]
    )


def test_camera_grids_read_the_prefix_camera_by_camera_row_major():
    cameras, grid, language = 3, 4, 5
    keys = torch.arange(cameras * grid * grid + language, dtype=torch.float32)  # each key's own index
    mass = keys.expand(2, 1, -1)  # (L, B, kv)
    grids = camera_grids(mass, cameras, grid)  # (B, L, K, grid, grid)
    assert grids.shape == (1, 2, cameras, grid, grid)
    assert grids[0, 1, 2, 1, 3] == 2 * grid * grid + 1 * grid + 3  # camera 2, row 1, column 3
    assert grids.max() == cameras * grid * grid - 1  # no language token among them


def test_equal_area_windows_centre_on_each_box_and_stay_in_the_grid():
    small, large = np.array([1.2, 1.2, 1.8, 1.8]), np.array([4.5, 2.0, 7.5, 4.0])  # 1 x 1 and 4 x 2 cells
    (rows_a, cols_a), (rows_b, cols_b) = equal_area_windows(small, large, grid=8)
    assert (rows_a.stop - rows_a.start, cols_a.stop - cols_a.start) == (2, 4)
    assert (rows_b.stop - rows_b.start, cols_b.stop - cols_b.start) == (2, 4)
    assert (rows_b, cols_b) == (slice(2, 4), slice(4, 8))  # the large box's own cells
    assert (rows_a, cols_a) == (slice(1, 3), slice(0, 4))  # centred on 1.5, shifted off the left border
    # A box in the last cell: the window is pushed back inside, not cut.
    (rows_c, cols_c), _ = equal_area_windows(np.array([7.4, 7.4, 7.6, 7.6]), large, grid=8)
    assert (rows_c, cols_c) == (slice(6, 8), slice(4, 8))
    assert not windows_overlap(small, large, grid=8)
    # One cell and two cells side by side: two-cell windows, the first one reaching into the second's.
    assert windows_overlap(np.array([1.2, 1.2, 1.8, 1.8]), np.array([2.1, 1.2, 3.9, 1.8]), grid=8)


def test_named_and_distractor_mass_is_even_for_uniform_attention_and_follows_a_peak():
    grid, cameras = 8, 2
    boxes = {
        "red": [np.array([1.2, 1.2, 1.8, 1.8]), np.array([0.2, 0.2, 0.8, 0.8])],
        "green": [np.array([5.2, 5.2, 5.8, 5.8]), None],  # the second camera does not see green
        "blue": [np.array([1.2, 5.2, 1.8, 5.8]), np.array([6.2, 6.2, 6.8, 6.8])],
    }
    uniform = torch.ones(3, cameras, grid, grid)  # (L, K, grid, grid)
    named, distractor, counted = named_and_distractor_mass(uniform, boxes, "red", grid)
    torch.testing.assert_close(named, distractor)  # equal areas: chance is exactly 1
    assert counted == 2
    named, distractor, counted = named_and_distractor_mass(uniform, boxes, "green", grid)
    assert counted == 1 and named[:, 1].abs().sum() == 0 and distractor[:, 1].abs().sum() == 0

    peak = torch.zeros(3, cameras, grid, grid)
    peak[:, 0, 1, 1] = 1.0  # all attention on red's cell in camera 0
    named, distractor, _ = named_and_distractor_mass(peak, boxes, "red", grid)
    assert named[:, 0].tolist() == [1.0] * 3 and distractor.sum() == 0
    named, distractor, _ = named_and_distractor_mass(peak, boxes, "green", grid)
    assert named.sum() == 0 and distractor[:, 0].tolist() == [0.5] * 3  # red is one of two distractors


# --- probe scenes (sim only) --------------------------------------------------------------------------


def test_probe_scenes_hold_the_first_frame_boxes_and_each_cubes_script(scenes):
    from lerobot_policy_reconvla.sim.gaze import gaze_box, object_geom_ids
    from lerobot_policy_reconvla.sim.scripted import scripted_episode
    from lerobot_policy_reconvla.sim.tasks import CUBE_BODIES, make_task_environment, scene_for_seed

    env = make_task_environment(TASK)
    assert [scene.seed for scene in scenes] == list(SEEDS)
    for scene in scenes:
        seed_scene = scene_for_seed(TASK, scene.seed)
        assert scene.cubes == ("red", "green", "blue") and scene.named == seed_scene.target
        assert scene.instructions[scene.named] == seed_scene.instruction
        assert len(set(scene.instructions.values())) == 3
        for cam in CAMERAS:
            image = scene.images[cam]
            assert image.shape == IMAGE_SHAPE and image.dtype == torch.float32
            assert image.min() >= 0.0 and image.max() <= 1.0 and image.std() > 0.01

        seed_scene.apply(env)
        ts = env.reset()
        np.testing.assert_allclose(scene.state.numpy(), ts.observation["qpos"], atol=1e-6)  # the start pose
        for colour in scene.cubes:
            geoms = object_geom_ids(env.physics, [CUBE_BODIES[colour]])
            for cam in CAMERAS:
                expected = gaze_box(env.physics, cam, geoms, IMAGE_SIZE)  # tight: no minimum size
                np.testing.assert_allclose(scene.boxes[colour][cam], expected, atol=1e-6)
        assert (scene.boxes[scene.named]["top"] >= 0).all()  # the top camera sees every cube

        # The seed's own episode is the named cube's script; the other cubes' scripts move elsewhere.
        own = scripted_episode(TASK, scene.seed).actions[:CHUNK]
        np.testing.assert_allclose(scene.scripted[scene.named].numpy(), own, atol=1e-5)
        for colour in scene.cubes:
            assert scene.scripted[colour].shape == (CHUNK, 14)
            if colour != scene.named:
                assert (scene.scripted[colour] - scene.scripted[scene.named]).abs().max() > 1e-3
    # Different seeds, different placements.
    assert not np.allclose(scenes[0].boxes["red"]["top"], scenes[1].boxes["red"]["top"])


# --- attention of the action expert -------------------------------------------------------------------


def test_hooks_capture_the_action_queries_softmax_at_every_euler_step_and_are_removed(scenes, tiny):
    policy, preprocessor, _ = tiny
    modules = expert_attention_modules(policy)
    heads = modules[0].config.num_attention_heads
    cameras = policy_cameras(policy, scenes)
    with capture_expert_attention(policy, CHUNK) as captured:
        predict_chunks(
            policy, preprocessor, scenes[0], cameras, torch.zeros(CHUNK, policy.config.max_action_dim)
        )
    prefix = len(CAMERAS) * TOKEN_GRID**2 + policy.config.tokenizer_max_length
    assert len(captured) == len(modules)
    for calls in captured:
        assert len(calls) == policy.config.num_inference_steps
        for mass in calls:
            assert mass.shape == (3, prefix + 1 + CHUNK)  # (rows, kv): cache + [state, actions]
            # Each action query's weights over all keys sum to 1, per head.
            torch.testing.assert_close(mass.sum(-1), torch.full((3,), float(heads * CHUNK)))
    assert all(not module._forward_hooks for module in modules)

    with pytest.raises(KeyError), capture_expert_attention(policy, CHUNK):
        raise KeyError("anything")
    assert all(not module._forward_hooks for module in modules)


def test_attention_ratio_of_the_untrained_policy(scenes, tiny):
    policy, preprocessor, _ = tiny
    result = attention_ratio(policy, preprocessor, scenes, noise_seed=0)
    depth = len(expert_attention_modules(policy))
    assert len(result["per_layer"]) == depth
    for key in ("per_layer", "named_mass", "distractor_mass", "image_share"):
        assert len(result[key]) == depth and all(math.isfinite(v) and v > 0 for v in result[key]), key
    assert result["mean"] == pytest.approx(float(np.mean(result["per_layer"])))
    assert all(v < 1 for v in result["image_share"])
    assert math.isfinite(result["per_camera"]["top"])  # the top camera sees every cube
    # Every scene, every cube named, at least the top camera.
    assert result["terms"] >= len(scenes) * 3
    assert result["chance"] == 1.0 and 0.0 <= result["overlap"] <= 1.0
    assert all(not module._forward_hooks for module in expert_attention_modules(policy))


# --- instruction swap ---------------------------------------------------------------------------------


def test_instruction_swap_of_the_untrained_policy(scenes, tiny):
    policy, preprocessor, postprocessor = tiny
    result = instruction_swap(policy, preprocessor, postprocessor, scenes, noise_seed=0)
    assert result["scenes"] == 2 and result["cubes"] == 3 and result["compared_steps"] == CHUNK
    assert result["chance_heads_to_named"] == pytest.approx(1 / 3)
    assert result["chance_retargets"] == pytest.approx(1 / 27)
    assert 0.0 <= result["heads_to_named"] <= 1.0 and 0.0 <= result["retargets"] <= 1.0
    assert result["mean_shift"] > 0  # the prompt reaches the action tokens, trained or not
    assert math.isfinite(result["named_error"]) and result["named_error"] > 0
    assert [len(choice) for choice in result["choices"]] == [3, 3]


def test_instruction_swap_of_a_blind_policy_scores_chance(scenes, tiny):
    # Every instruction of a scene the same string: the policy cannot tell the rows apart.
    policy, preprocessor, postprocessor = tiny
    blind = [
        dataclasses.replace(s, instructions=dict.fromkeys(s.cubes, s.instructions[s.cubes[0]]))
        for s in scenes
    ]
    result = instruction_swap(policy, preprocessor, postprocessor, blind, noise_seed=0)
    assert result["mean_shift"] == pytest.approx(0.0, abs=1e-6)
    assert result["heads_to_named"] == pytest.approx(1 / 3)  # one cube chosen for every instruction
    assert result["retargets"] == 0.0
    assert all(len(set(choice)) == 1 for choice in result["choices"])


class ScriptedOracle:
    """A stand-in policy that returns the named cube's script (or another cube's, to test the scoring)."""

    def __init__(self, config, scenes, pick=lambda named, cubes: named):
        self.config, self.scenes, self.pick = config, {id(s): s for s in scenes}, pick
        self.current = None

    def eval(self):
        return self

    def predict_action_chunk(self, batch, noise):
        assert noise.shape == (len(batch["task"]), self.config.chunk_size, self.config.max_action_dim)
        scene = next(s for s in self.scenes.values() if torch.equal(s.state, batch["observation.state"][0]))
        colours = [re.search(r"the (\w+) cube", task).group(1) for task in batch["task"]]
        return torch.stack([scene.scripted[self.pick(c, scene.cubes)] for c in colours])  # (rows, chunk, 14)


def test_instruction_swap_scores_a_policy_that_follows_and_one_that_mixes_up(scenes, tiny):
    _, preprocessor, postprocessor = tiny
    config = tiny_config()
    # Different start states, so the oracle can tell the scenes apart.
    scenes = [dataclasses.replace(s, state=s.state + i) for i, s in enumerate(scenes)]
    result = instruction_swap(ScriptedOracle(config, scenes), preprocessor, postprocessor, scenes)
    assert result["heads_to_named"] == 1.0 and result["retargets"] == 1.0
    assert result["named_error"] == pytest.approx(0.0, abs=1e-6)
    expected_shift = np.mean(
        [
            np.mean(
                [
                    (s.scripted[a] - s.scripted[b]).abs().mean().item()
                    for i, a in enumerate(s.cubes)
                    for b in s.cubes[i + 1 :]
                ]
            )
            for s in scenes
        ]
    )
    assert result["mean_shift"] == pytest.approx(expected_shift, rel=1e-5)

    # Always the cube after the named one: never the named cube, yet the chunk moves with the prompt.
    rotate = lambda named, cubes: cubes[(cubes.index(named) + 1) % len(cubes)]  # noqa: E731
    result = instruction_swap(ScriptedOracle(config, scenes, rotate), preprocessor, postprocessor, scenes)
    assert result["heads_to_named"] == 0.0 and result["retargets"] == 0.0 and result["mean_shift"] > 0

    # Two cubes (as lift_pair): chance values follow the count.
    pairs = [
        dataclasses.replace(
            s, cubes=("red", "green"), instructions={c: s.instructions[c] for c in ("red", "green")}
        )
        for s in scenes
    ]
    result = instruction_swap(ScriptedOracle(config, pairs), preprocessor, postprocessor, pairs)
    assert (
        result["cubes"] == 2 and result["chance_heads_to_named"] == 0.5 and result["chance_retargets"] == 0.25
    )
    assert result["heads_to_named"] == 1.0 and [len(c) for c in result["choices"]] == [2, 2]
