"""Grounding measures (experiments.grounding) on real lift_named scenes and the tiny untrained policy."""

import dataclasses
import math
import re

import numpy as np
import pytest
import torch
from einops import rearrange
from lerobot.policies.common.vla_utils import (
    make_att_2d_masks,
    prepare_attention_masks_4d,
    resize_with_pad_torch,
)
from lerobot.utils.constants import (
    OBS_LANGUAGE_ATTENTION_MASK,
    OBS_LANGUAGE_TOKENS,
    OPENPI_ATTENTION_MASK_VALUE,
)
from torch import Tensor

from lerobot_policy_reconvla.experiments.grounding import (
    attention_ratio,
    attention_ratio_control,
    camera_grids,
    capture_expert_attention,
    centre_cell,
    control_mass,
    equal_area_windows,
    expert_attention_modules,
    instruction_swap,
    named_and_distractor_mass,
    named_object_features,
    policy_cameras,
    predict_chunks,
    probe_scenes,
    ratio_from_mass,
    raw_batch,
    scene_token_boxes,
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


def test_attention_ratio_reads_the_captured_mass_through_ratio_from_mass(scenes, tiny):
    # The real policy's reading is ratio_from_mass of the masses its hooks captured.
    policy, preprocessor, _ = tiny
    cameras = policy_cameras(policy, scenes)
    noise = torch.randn(
        len(scenes), CHUNK, policy.config.max_action_dim, generator=torch.Generator().manual_seed(0)
    )
    masses = []
    for scene, scene_noise in zip(scenes, noise, strict=True):
        with capture_expert_attention(policy, CHUNK) as captured:
            predict_chunks(policy, preprocessor, scene, cameras, scene_noise)
        masses.append(torch.stack([torch.stack(calls).mean(0) for calls in captured]))  # (L, rows, kv)
    expected = ratio_from_mass(policy.config, cameras, scenes, masses)
    result = attention_ratio(policy, preprocessor, scenes, noise_seed=0)  # scene_noise draws the same
    assert result["per_layer"] == pytest.approx(expected["per_layer"], rel=1e-6)
    assert result["named_mass"] == pytest.approx(expected["named_mass"], rel=1e-6)


# --- the attention ratio's positive control -----------------------------------------------------------


def test_centre_cell_lies_in_the_boxs_equal_area_window():
    rng = np.random.default_rng(0)
    grid = 8
    for _ in range(2000):
        boxes = []
        for _ in range(2):
            x0, y0 = rng.uniform(0, grid, 2)
            boxes.append(np.array([x0, y0, rng.uniform(x0, grid), rng.uniform(y0, grid)]))
        (rows, cols), _ = equal_area_windows(boxes[0], boxes[1], grid)
        row, col = centre_cell(boxes[0], grid)
        assert rows.start <= row < rows.stop and cols.start <= col < cols.stop


def test_control_mass_puts_the_peak_on_the_named_cubes_centre_token(scenes, tiny):
    policy, _, _ = tiny
    config, cameras, grid = policy.config, policy_cameras(policy, scenes), TOKEN_GRID
    scene = scenes[0]
    boxes = scene_token_boxes(scene, cameras, config)
    mass = control_mass(scene, cameras, config, "named", peak=0.5)
    assert mass.shape == (1, 3, len(CAMERAS) * grid * grid)  # (L, rows, kv)
    grids = camera_grids(mass, len(CAMERAS), grid)[:, 0]  # (rows, K, grid, grid)
    torch.testing.assert_close(grids.sum((-2, -1)), torch.ones(3, len(CAMERAS), dtype=torch.float64))
    for row, colour in enumerate(scene.cubes):
        for k in range(len(CAMERAS)):
            if boxes[colour][k] is None:  # not seen: nothing to attend to
                torch.testing.assert_close(grids[row, k], torch.full((grid, grid), 1 / grid**2).double())
            else:
                assert grids[row, k][centre_cell(boxes[colour][k], grid)] == pytest.approx(
                    0.5 + 0.5 / grid**2
                )


def test_the_attention_ratios_control_reads_above_at_and_below_chance(scenes, tiny):
    policy, _, _ = tiny
    peak = 0.5
    control = attention_ratio_control(policy.config, scenes, peak=peak)
    oracle, uniform, distractors = control["oracle"], control["uniform"], control["distractors"]
    assert control["peak"] == peak and oracle["terms"] == 6  # 2 scenes x 3 cubes, only the top sees two
    # The floor of the docstring: the named window holds the peak in every term, a distractor's window only
    # where the two overlap (F), and the uniform rest is alike in both. F is the dict's overlap here: every
    # camera that counts sees all three cubes (a third of the top camera's pairs overlap in these scenes).
    top = [
        sum(box is not None for box in scene_token_boxes(s, CAMERAS, policy.config).values()) for s in scenes
    ]
    assert top == [3, 3] and 0 < oracle["overlap"] < 1
    floor = 1 / (1 - peak * (1 - oracle["overlap"]))  # 1.5
    assert oracle["mean"] >= floor > 1.4
    # Uniform attention: equal-area windows hold equal mass, overlap or not, so exactly chance.
    assert uniform["mean"] == pytest.approx(1.0, abs=1e-12)
    assert uniform["named_mass"] == pytest.approx(uniform["distractor_mass"], rel=1e-12)
    # The peak on the other cubes: the distractor windows hold it, the named window only where it overlaps.
    assert distractors["mean"] < 1 / floor < 1
    for reading in (oracle, uniform, distractors):
        assert reading["image_share"] == [pytest.approx(1.0)] and len(reading["per_layer"]) == 1
    # No peak: the oracle is the uniform mass.
    assert attention_ratio_control(policy.config, scenes, peak=0.0)["oracle"]["mean"] == pytest.approx(
        1.0, abs=1e-12
    )


# --- the named-cube probe's features ------------------------------------------------------------------


@pytest.fixture(scope="module")
def features(scenes, tiny):
    policy, preprocessor, _ = tiny
    return {
        (source, layer): named_object_features(policy, preprocessor, scenes, source=source, layer=layer)
        for source, layer in (("values", None), ("keys", None), ("hidden", None), ("values", 0), ("keys", 0))
    }


def language_model(policy):
    return policy.model.paligemma_with_expert.paligemma.model.language_model


def test_named_object_features_read_each_source_with_its_width(scenes, tiny, features):
    policy, _, _ = tiny
    text = language_model(policy).config
    kv_width = text.num_key_value_heads * text.head_dim
    rows = 3 * len(scenes)
    hidden_features, hidden_centres, hidden_groups = features[("hidden", None)]
    for (source, _layer), (feats, centres, groups) in features.items():
        width = text.hidden_size if source == "hidden" else kv_width
        assert set(feats) == set(CAMERAS)
        assert all(f.shape == (rows, width) and f.isfinite().all() for f in feats.values()), source
        assert torch.equal(groups, hidden_groups)  # the same rows and targets, whatever is read
        for cam in CAMERAS:
            torch.testing.assert_close(centres[cam], hidden_centres[cam], equal_nan=True)
    assert kv_width != text.hidden_size  # the tiny model: the readings differ even in width
    values, keys = features[("values", None)][0], features[("keys", None)][0]
    assert not torch.allclose(values["top"], keys["top"], atol=1e-3)
    with pytest.raises(ValueError, match="layer"):
        named_object_features(policy, tiny[1], scenes, source="hidden", layer=0)
    with pytest.raises(ValueError, match="source"):
        named_object_features(policy, tiny[1], scenes, source="queries")
    attention = language_model(policy).layers[-1].self_attn
    assert not attention.k_proj._forward_hooks and not attention.v_proj._forward_hooks


def test_named_object_values_are_the_prefix_cache_the_action_expert_reads(scenes, tiny, features):
    # pi0's sample_actions builds the cache with this prefix forward; pooled over each camera's image tokens,
    # its values at the last layer are the default features.
    policy, preprocessor, _ = tiny
    model = policy.model
    cameras = policy_cameras(policy, scenes)
    batch = preprocessor(raw_batch(scenes[0], cameras))
    images, img_masks = policy._preprocess_images(batch)
    embs, pad_masks, att_masks = model.embed_prefix(
        images, img_masks, batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK]
    )
    with torch.no_grad():
        _, cache = model.paligemma_with_expert.forward(
            attention_mask=prepare_attention_masks_4d(make_att_2d_masks(pad_masks, att_masks)),
            position_ids=torch.cumsum(pad_masks, dim=1) - 1,
            past_key_values=None,
            inputs_embeds=[embs, None],
            use_cache=True,
        )
    _, values, _ = list(cache)[-1]  # (rows, kv_heads, L_prefix, head_dim)
    image_values = values[:, :, : len(CAMERAS) * TOKEN_GRID**2]
    pooled = rearrange(image_values, "b h (k t) d -> b k t (h d)", k=len(CAMERAS)).mean(2)  # (rows, K, D)
    feats = features[("values", None)][0]
    for k, cam in enumerate(CAMERAS):
        torch.testing.assert_close(feats[cam][:3], pooled[:, k].float(), atol=1e-5, rtol=1e-4)


def image_tokens_blind_to_language(policy):
    """Pre-hooks on every PaliGemma decoder layer that mask the image tokens' attention to the language
    tokens (a counterfactual prefix: pi0's own mask lets them attend both ways)."""
    image_tokens = len(CAMERAS) * TOKEN_GRID**2

    def blind(_module, args, kwargs):
        mask = kwargs["attention_mask"].clone()  # (B, 1, q, kv) additive
        mask[:, :, :image_tokens, image_tokens:] = OPENPI_ATTENTION_MASK_VALUE
        return args, {**kwargs, "attention_mask": mask}

    return [
        layer.register_forward_pre_hook(blind, with_kwargs=True) for layer in language_model(policy).layers
    ]


def within_scene_spread(feats: Tensor) -> float:
    """Largest difference between rows of the same scene (rows: scene after scene, one per cube named)."""
    per_scene = rearrange(feats, "(s n) d -> s n d", n=3)
    return (per_scene - per_scene.mean(1, keepdim=True)).abs().max().item()


def test_named_object_features_change_with_the_instruction_only_through_attention_to_language(
    scenes, tiny, features
):
    policy, preprocessor, _ = tiny
    for source in ("values", "keys"):
        last, first = features[(source, None)][0]["top"], features[(source, 0)][0]["top"]
        # Layer 0's keys and values come before any attention: the image tokens know no instruction yet.
        assert within_scene_spread(first) < 1e-6, source
        # The last layer's do: layer 0's image tokens attended to the language tokens.
        assert within_scene_spread(last) > 1e-3, source
    # Block that attention and the last layer's image values are the same under every instruction.
    handles = image_tokens_blind_to_language(policy)
    try:
        blind = named_object_features(policy, preprocessor, scenes)[0]["top"]
    finally:
        for handle in handles:
            handle.remove()
    assert within_scene_spread(blind) < 1e-6
    assert not torch.allclose(blind, features[("values", None)][0]["top"], atol=1e-3)


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
