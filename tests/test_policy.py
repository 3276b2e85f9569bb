"""ReconVLAPolicy on the tiny variant: gradients, losses, inference path, save/load, bad input."""

import json
import logging

import pytest
import torch
from safetensors.torch import save_file

from lerobot_policy_reconvla.configuration_reconvla import ReconVLAConfig
from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
from lerobot_policy_reconvla.recon.target import ReconTarget
from tests.fixtures.base_checkpoint import save_as_base_checkpoint
from tests.fixtures.tiny_policy import CAMERAS, CHUNK, TOKEN_GRID, raw_batch, tiny_config


def _head_params(policy):
    return [p for n, p in policy.named_parameters() if ".recon_head." in f".{n}"]


def _core_forward(policy, batch, **recon):
    """The core model's training forward on a preprocessed batch, with flow-matching noise and time drawn as
    the base draws them; `recon`: the recon keywords (recon_targets, ...). Returns (action losses, recon)."""
    images, img_masks = policy._preprocess_images(batch)
    tokens, masks = batch["observation.language.tokens"], batch["observation.language.attention_mask"]
    actions = policy.prepare_action(batch)  # (B, chunk, A_max)
    noise = policy.model.sample_noise(actions.shape, actions.device)
    time = policy.model.sample_time(actions.shape[0], actions.device)
    inputs = policy._base_model_inputs(batch, images, img_masks, tokens, masks, actions)
    return policy.model(*inputs, noise, time, **recon)


def _recon_only_backward(policy, batch):
    """Backpropagates L_recon alone (the action loss is computed but not used)."""
    policy.zero_grad(set_to_none=True)
    _, recon_losses = _core_forward(
        policy, batch, recon_targets=policy.recon_targets(batch, policy.gaze_boxes(batch))
    )
    recon_losses.mean().backward()
    return recon_losses


def _grad_norm(policy, fragment):
    grads = [p.grad for n, p in policy.named_parameters() if fragment in n and p.grad is not None]
    return sum(g.norm().item() for g in grads)


def test_recon_loss_alone_trains_vision_tower_and_language_layers(policy_and_processors):
    policy, pre, _ = policy_and_processors
    batch = pre(raw_batch())
    policy.train()
    optimizer = torch.optim.SGD(_head_params(policy), lr=0.5)

    # Zero-initialised output projection and adaLN gates: the head's first prediction is exactly zero
    # and ignores its condition, so no gradient reaches the backbone yet.
    _recon_only_backward(policy, batch)
    assert _grad_norm(policy, "vision_tower") == 0.0 and _grad_norm(policy, "language_model") == 0.0
    # The first update moves only the output projection (the gates' gradient goes through it); the
    # second opens the gates. From then on L_recon shapes the backbone.
    for _ in range(2):
        optimizer.step()
        _recon_only_backward(policy, batch)
    assert _grad_norm(policy, "paligemma.model.vision_tower") > 0
    assert _grad_norm(policy, "paligemma.model.multi_modal_projector") > 0
    assert _grad_norm(policy, "language_model.layers.0.") > 0
    # The prefix never attends to the action tokens: the action expert gets nothing from L_recon.
    assert _grad_norm(policy, "gemma_expert") == 0.0
    assert _grad_norm(policy, "action_out_proj") == 0.0


def test_frozen_vision_encoder_leaves_siglip_to_pi0_and_recon_trains_the_rest():
    """As the official (and the paper preset): SigLIP frozen, L_recon reaches projector and language
    layers."""
    config = tiny_config(freeze_vision_encoder=True)
    policy = ReconVLAPolicy(config)
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors

    batch = make_reconvla_pre_post_processors(config)[0](raw_batch())
    policy.train()
    optimizer = torch.optim.SGD(_head_params(policy), lr=0.5)
    for _ in range(3):
        _recon_only_backward(policy, batch)
        optimizer.step()
    assert not any(
        p.requires_grad for p in policy.model.paligemma_with_expert.paligemma.model.vision_tower.parameters()
    )
    assert _grad_norm(policy, "paligemma.model.multi_modal_projector") > 0
    assert _grad_norm(policy, "language_model.layers.0.") > 0


def test_target_carries_no_gradient():
    target = ReconTarget(mode="pixels", image_size=32, grid_size=16)
    images = [torch.rand(2, 3, 40, 60, requires_grad=True) for _ in range(3)]
    boxes = [torch.tensor([[0.1, 0.1, 0.9, 0.9]] * 2) for _ in range(3)]
    tokens = target(images, boxes)
    assert tokens.shape == (2 * 3, 16 * 16, 3 * 2 * 2)
    assert not tokens.requires_grad


def test_both_losses_fall_on_a_fixed_batch(policy_and_processors):
    policy, pre, _ = policy_and_processors
    batch = pre(raw_batch())
    policy.train()
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(2, CHUNK, policy.config.max_action_dim, generator=generator)
    time = torch.full((2,), 0.5)
    num_targets = 2 * len(CAMERAS) * policy.config.recon_timestep_repeats
    recon_noise = torch.randn(num_targets, TOKEN_GRID**2, 48, generator=generator)
    recon_timesteps = torch.randint(0, 1000, (num_targets,), generator=generator)
    policy.config.optimizer_lr = 1e-3
    policy.config.recon_lr_scale = 5.0  # the head starts from scratch: let it move faster
    optimizer = torch.optim.AdamW(policy.get_optim_params())
    history = []
    for _ in range(30):
        loss, info = policy.forward(
            batch, noise=noise, time=time, recon_noise=recon_noise, recon_timesteps=recon_timesteps
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(info)
    first, last = history[0], history[-1]
    assert last["action_loss"] < 0.7 * first["action_loss"], (first, last)
    assert last["recon_loss"] < 0.5 * first["recon_loss"], (first, last)
    assert set(first) == {"action_loss", "recon_loss", "loss"}
    assert all(isinstance(v, float) for v in first.values())


def test_loss_is_action_plus_weighted_recon_and_masks_padding(policy_and_processors):
    policy, pre, _ = policy_and_processors
    policy.config.recon_weight = 0.3
    batch = pre(raw_batch())
    fixed = dict(
        noise=torch.zeros(2, CHUNK, policy.config.max_action_dim),
        time=torch.full((2,), 0.5),
        recon_noise=torch.zeros(2 * 3 * 4, TOKEN_GRID**2, 48),
        recon_timesteps=torch.full((2 * 3 * 4,), 500),
    )
    loss, info = policy.forward(batch, **fixed)
    assert info["loss"] == pytest.approx(info["action_loss"] + 0.3 * info["recon_loss"], rel=1e-5)

    per_sample, info_none = policy.forward(batch, reduction="none", **fixed)
    assert per_sample.shape == (2,)
    assert per_sample.mean().item() == pytest.approx(loss.item(), rel=1e-5)

    # Steps past the episode end do not count: the loss is the mean over valid steps only.
    images, img_masks = policy._preprocess_images(batch)
    action_losses, _ = policy.model(
        images,
        img_masks,
        batch["observation.language.tokens"],
        batch["observation.language.attention_mask"],
        policy.prepare_state(batch),
        policy.prepare_action(batch),
        fixed["noise"],
        fixed["time"],
    )
    per_step = action_losses[:, :, :14].mean(-1)  # (B, chunk)
    batch["action_is_pad"][:, CHUNK // 2 :] = True
    _, info_padded = policy.forward(batch, **fixed)
    assert info_padded["action_loss"] == pytest.approx(per_step[:, : CHUNK // 2].mean().item(), rel=1e-5)
    assert info_padded["action_loss"] != pytest.approx(per_step.mean().item(), rel=1e-3)


def test_select_action_never_calls_recon_head_or_vae(tiny_vae_dir, monkeypatch):
    config = tiny_config(recon_target="vae", recon_vae=str(tiny_vae_dir), recon_image_size=128)
    policy = ReconVLAPolicy(config)
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors

    pre, post = make_reconvla_pre_post_processors(config)
    calls = {"dit": 0, "target": 0}
    policy.model.recon_head.dit.register_forward_hook(lambda *_: calls.__setitem__("dit", calls["dit"] + 1))
    original_call = ReconTarget.__call__

    def counting_call(self, *args, **kwargs):
        calls["target"] += 1
        return original_call(self, *args, **kwargs)

    monkeypatch.setattr(ReconTarget, "__call__", counting_call)

    batch = pre(raw_batch())
    policy.reset()
    actions = [policy.select_action(batch) for _ in range(CHUNK + 1)]
    assert all(a.shape == (2, 14) for a in actions)
    assert len(policy._action_queue) == CHUNK - 1  # a second chunk was predicted at step CHUNK + 1
    policy.reset()
    assert len(policy._action_queue) == 0
    chunk = policy.predict_action_chunk(batch)
    assert chunk.shape == (2, CHUNK, 14)
    assert post(chunk).shape == (2, CHUNK, 14)
    assert calls == {"dit": 0, "target": 0}
    assert policy.model.recon_head.target._vae is None  # never even loaded

    # Training does use both, and loads the VAE from the local path.
    policy.train()
    policy.forward(batch)
    assert calls == {"dit": 1, "target": 1}
    assert policy.model.recon_head.target._vae is not None


def test_held_out_loss_in_eval_mode_is_the_same_at_every_evaluation(policy_and_processors):
    """lerobot-train's eval_loss calls forward in eval mode: fixed noise and timesteps make two
    evaluations of the same weights agree, without touching the training RNG."""
    policy, pre, _ = policy_and_processors
    batch = pre(raw_batch())
    policy.eval()
    rng_before = torch.get_rng_state()
    first, first_terms = policy.forward(batch)
    assert torch.equal(torch.get_rng_state(), rng_before)  # training draws continue as if no eval ran
    torch.randn(100)  # whatever happens between evaluations
    second, second_terms = policy.forward(batch)
    assert torch.equal(first, second) and first_terms == second_terms
    assert first_terms["recon_loss"] > 0  # both parts of the loss are in it
    assert first_terms["loss"] == pytest.approx(
        first_terms["action_loss"] + policy.config.recon_weight * first_terms["recon_loss"], rel=1e-5
    )
    policy.train()
    trained_a, _ = policy.forward(batch)
    trained_b, _ = policy.forward(batch)
    assert not torch.equal(trained_a, trained_b)  # training keeps drawing fresh noise


def test_missing_gaze_boxes_fall_back_to_whole_image_and_say_so_once(policy_and_processors, caplog):
    policy, pre, _ = policy_and_processors
    batch = pre(raw_batch(gaze_boxes=False))
    with caplog.at_level(logging.WARNING):
        policy.forward(batch)
        policy.forward(batch)
    warnings = [r.message for r in caplog.records if "observation.gaze_box" in r.message]
    assert len(warnings) == len(CAMERAS)
    assert all("whole image" in w for w in warnings)

    # A missing box is the absent marker ([-1] * 4, object out of view); both reconstruct the whole image.
    assert torch.equal(policy.gaze_boxes(batch), torch.full((2, len(CAMERAS), 4), -1.0))
    absent = pre(raw_batch())
    for cam in CAMERAS:
        absent[f"observation.gaze_box.{cam}"] = torch.full((2, 4), -1.0)
    images = [absent[f"observation.images.{cam}"] for cam in CAMERAS]
    whole = policy.model.recon_head.target(images, [torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2)] * len(CAMERAS))
    assert torch.equal(policy.recon_targets(absent, policy.gaze_boxes(absent)), whole)


def test_gaze_boxes_left_behind_by_a_camera_rename_are_named_with_the_keys_to_add(policy_and_processors):
    """`--rename_map` renamed the image but not its gaze box: the box would be silently unused."""
    policy, pre, _ = policy_and_processors
    batch = pre(raw_batch())
    batch["observation.gaze_box.cam_high"] = batch.pop("observation.gaze_box.top")
    with pytest.raises(
        ValueError,
        match=r"gaze boxes for camera\(s\) \['cam_high'\].*none for its camera\(s\) "
        r"\['top'\].*\"observation.gaze_box.cam_high\": \"observation.gaze_box.top\"",
    ):
        policy.forward(batch)
    # An extra camera's box beside a complete set is the dataset's business, not an error.
    batch["observation.gaze_box.top"] = batch["observation.gaze_box.cam_high"]
    loss, _ = policy.forward(batch)
    assert torch.isfinite(loss)


def test_malformed_gaze_boxes_stop_training_or_are_named_once(policy_and_processors, caplog):
    policy, pre, _ = policy_and_processors
    # Pixel coordinates (a detector's output on a 128 x 96 image) in every row: refused with the fix.
    pixels = pre(raw_batch())
    pixels["observation.gaze_box.top"] = torch.tensor([[30.0, 20.0, 70.0, 60.0]] * 2)
    with pytest.raises(
        ValueError,
        match=r"observation.gaze_box.top: 2 of 2 boxes .*malformed.*30\.0.*"
        r"Divide x0, x1 by the image width and y0, y1 by its height",
    ):
        policy.forward(pixels)
    # NaN, inverted, partly negative (only [-1, -1, -1, -1] is the absent marker)
    for bad in ([float("nan")] * 4, [0.6, 0.2, 0.4, 0.8], [-0.1, 0.2, 0.5, 0.6]):
        batch = pre(raw_batch())
        batch["observation.gaze_box.left_wrist"] = torch.tensor([bad] * 2)
        with pytest.raises(ValueError, match="observation.gaze_box.left_wrist: 2 of 2"):
            policy.forward(batch)
    # A few malformed boxes among valid ones: trained (whole image there), warned once per camera.
    few = pre(raw_batch(batch_size=4))
    few["observation.gaze_box.top"] = torch.tensor([[0.1, 0.1, 0.5, 0.5]] * 3 + [[30.0, 20.0, 70.0, 60.0]])
    with caplog.at_level(logging.WARNING):
        policy.forward(few)
        policy.forward(few)
    warned = [r.message for r in caplog.records if "malformed" in r.message]
    assert len(warned) == 1 and "1 of 4" in warned[0] and "25%" in warned[0]
    assert torch.equal(policy.gaze_boxes(few)[:, 0], torch.tensor([[0.1, 0.1, 0.5, 0.5]] * 3 + [[-1.0] * 4]))
    # Absent markers are not malformed.
    absent = pre(raw_batch())
    absent["observation.gaze_box.top"] = torch.full((2, 4), -1.0)
    policy.forward(absent)
    # Nor is a box in another layout accepted.
    absent["observation.gaze_box.top"] = torch.full((2, 1, 4), -1.0)
    with pytest.raises(ValueError, match=r"gaze_box.top has shape \(2, 1, 4\), expected \(2, 4\)"):
        policy.forward(absent)


def test_gaze_box_predicates_agree_on_numpy_and_torch():
    import numpy as np

    from lerobot_policy_reconvla.gaze_box import is_absent, is_malformed, is_present, is_valid

    # Valid, absent, partly negative, pixel coordinates, NaN.
    boxes = [[0.1, 0.2, 0.5, 0.6], [-1.0] * 4, [-0.1, 0.2, 0.5, 0.6], [30.0, 20, 70, 60], [float("nan")] * 4]
    expected = {
        is_absent: [False, True, False, False, False],
        is_present: [True, False, True, True, True],
        is_valid: [True, False, False, False, False],
        is_malformed: [False, False, True, True, True],
    }
    for predicate, values in expected.items():
        assert predicate(np.array(boxes)).tolist() == values, predicate.__name__
        assert predicate(torch.tensor(boxes)).tolist() == values, predicate.__name__


def test_pixel_coordinate_boxes_in_the_dataset_stats_are_refused_before_building():
    stats = {
        "observation.gaze_box.top": {"mean": [52.0, 31.0, 80.0, 60.0], "max": [120.0, 90.0, 128.0, 96.0]}
    }
    with pytest.raises(
        ValueError, match=r"observation.gaze_box.top: the dataset's boxes average .*Divide x0"
    ):
        ReconVLAPolicy(tiny_config(), dataset_stats=stats)
    fine = {"observation.gaze_box.top": {"mean": [0.3, 0.3, 0.5, 0.6], "max": [0.9, 0.9, 1.0, 1.0]}}
    ReconVLAPolicy(tiny_config(), dataset_stats=fine)


def test_save_load_gives_identical_actions(policy_and_processors, tmp_path):
    policy, pre, _ = policy_and_processors
    batch = pre(raw_batch())
    noise = torch.randn(2, CHUNK, policy.config.max_action_dim, generator=torch.Generator().manual_seed(3))
    expected = policy.predict_action_chunk(batch, noise=noise)
    policy.save_pretrained(tmp_path)
    loaded = ReconVLAPolicy.from_pretrained(tmp_path)
    assert isinstance(loaded.config, type(policy.config))
    assert torch.equal(loaded.predict_action_chunk(batch, noise=noise), expected)
    for key, tensor in policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


@pytest.mark.parametrize("strip_model_prefix", [False, True])
def test_pi0_checkpoint_loads_every_pi0_weight_and_a_fresh_head(tmp_path, caplog, strip_model_prefix):
    torch.manual_seed(0)
    source = ReconVLAPolicy(tiny_config())
    pi0_state = save_as_base_checkpoint(source, tmp_path / "pi0", strip_model_prefix)
    torch.manual_seed(123)  # the loaded model starts from other random weights
    with caplog.at_level(logging.WARNING):
        loaded = ReconVLAPolicy.from_pretrained(tmp_path / "pi0")
    own = loaded.state_dict()
    for key, tensor in pi0_state.items():
        key = key if key.startswith("model.") else f"model.{key}"
        assert torch.equal(own[key], tensor), key
    assert any("recon head starts fresh" in r.message for r in caplog.records)
    assert loaded.config.recon_weight == 1.0 and loaded.config.paligemma_variant == "tiny"


def test_pi0_checkpoint_with_unknown_or_missing_keys_is_an_error(tmp_path):
    source = ReconVLAPolicy(tiny_config())
    state = save_as_base_checkpoint(source, tmp_path / "extra")
    save_file(
        {**state, "model.something_else.weight": torch.zeros(2)}, tmp_path / "extra" / "model.safetensors"
    )
    with pytest.raises(ValueError, match="unexpected keys.*something_else"):
        ReconVLAPolicy.from_pretrained(tmp_path / "extra")

    state = save_as_base_checkpoint(source, tmp_path / "missing")
    del state["model.state_proj.weight"]
    save_file(state, tmp_path / "missing" / "model.safetensors")
    with pytest.raises(ValueError, match="missing keys.*state_proj.weight"):
        ReconVLAPolicy.from_pretrained(tmp_path / "missing")


def test_checkpoint_of_another_shape_is_a_clear_error(tmp_path):
    ReconVLAPolicy(tiny_config(recon_dit_width=32, recon_dit_heads=4)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"does not fit.*recon_head"):
        ReconVLAPolicy.from_pretrained(tmp_path, config=tiny_config())


def test_missing_local_checkpoint_says_so(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"outputs/train/last/pretrained_model does not exist \(no such local directory",
    ):
        ReconVLAPolicy.from_pretrained(tmp_path / "outputs/train/last/pretrained_model")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match=r"model\.safetensors is a file; expected the directory"):
        ReconVLAPolicy.from_pretrained(tmp_path / "model.safetensors")
    with pytest.raises(FileNotFoundError, match=r"config\.json does not exist: .* is not a saved policy"):
        ReconVLAPolicy.from_pretrained(tmp_path)


def test_checkpoint_of_another_policy_type_is_refused(tmp_path):
    ReconVLAPolicy(tiny_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "type": "act"}))
    with pytest.raises(ValueError, match="holds a 'act' policy"):
        ReconVLAPolicy.from_pretrained(tmp_path)


def test_missing_camera_is_a_clear_error(policy_and_processors):
    policy, pre, _ = policy_and_processors
    batch = pre(raw_batch())
    del batch["observation.images.left_wrist"]
    with pytest.raises(KeyError, match=r"observation\.images\.left_wrist"):
        policy.forward(batch)
    with pytest.raises(KeyError, match=r"observation\.images\.left_wrist"):
        policy.select_action(batch)


def test_wrong_image_size_is_a_clear_error(policy_and_processors):
    policy, pre, _ = policy_and_processors
    batch = pre(raw_batch())
    batch["observation.images.top"] = torch.rand(2, 3, 480, 640)
    with pytest.raises(
        ValueError, match=r"observation\.images\.top has shape \(3, 480, 640\).*expected \(3, 96, 128\)"
    ):
        policy.forward(batch)


def test_action_dim_above_max_action_dim_is_a_clear_error():
    with pytest.raises(ValueError, match=r"action has 40 dimensions but max_action_dim=32"):
        ReconVLAPolicy(tiny_config(action_dim=40))


def test_optimizer_groups_cover_every_trainable_parameter_once(policy_and_processors):
    policy, _, _ = policy_and_processors
    policy.config.recon_lr_scale = 10.0
    groups = policy.get_optim_params()
    assert len(groups) == 2
    backbone, head = groups
    assert head["lr"] == pytest.approx(policy.config.optimizer_lr * 10.0)
    assert {id(p) for p in head["params"]} == {id(p) for p in policy.model.recon_head.parameters()}
    trainable = {id(p) for p in policy.parameters() if p.requires_grad}
    assert {id(p) for p in backbone["params"]} | {id(p) for p in head["params"]} == trainable
    assert len(backbone["params"]) + len(head["params"]) == len(trainable)


@pytest.mark.parametrize("base", ["pi0", "pi05"])
def test_peft_lora_targets_paligemma_attention_expert_and_trains_the_head(base):
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    from lerobot_policy_reconvla.configuration_reconvla_pi05 import ReconVLAPi05Config

    torch.manual_seed(0)
    config = tiny_config(config_class=ReconVLAPi05Config if base == "pi05" else ReconVLAConfig)
    policy = get_policy_class(config.type)(config)
    pre, _ = make_pre_post_processors(config)
    policy.config.pretrained_path = f"local/{base}"  # LeRobot refuses PEFT without a base checkpoint
    peft_model = policy.wrap_with_peft(peft_cli_overrides={"method_type": "LORA", "r": 4})
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    for fragment in (
        "language_model.layers.0.self_attn.q_proj.lora_A",
        "language_model.layers.0.self_attn.k_proj.lora_A",
        "language_model.layers.0.self_attn.v_proj.lora_A",
        "language_model.layers.0.self_attn.o_proj.lora_A",
        "gemma_expert.model.layers.0.self_attn.q_proj.lora_A",
        "gemma_expert.model.layers.0.self_attn.v_proj.lora_A",
        "recon_head.dit.modules_to_save.default.blocks.0.attn.to_q.weight",
    ):
        assert any(fragment in name for name in trainable), fragment
    assert not any("vision_tower" in name for name in trainable)
    groups = peft_model.get_optim_params()
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    loss, info = peft_model.forward(pre(raw_batch()))
    loss.backward()
    assert info["recon_loss"] > 0


def test_prefix_only_condition_equals_the_training_forwards(policy_and_processors):
    """The picture tool conditions the head as training does, without action tokens."""
    from lerobot_policy_reconvla.modeling_reconvla import capture_prefix_hidden_states

    policy, pre, _ = policy_and_processors
    policy.eval()
    batch = pre(raw_batch())
    images, img_masks = policy._preprocess_images(batch)
    tokens, masks = batch["observation.language.tokens"], batch["observation.language.attention_mask"]
    language_model = policy.model.paligemma_with_expert.paligemma.model.language_model
    with torch.no_grad(), capture_prefix_hidden_states(language_model, -1) as captured:
        _core_forward(policy, batch)
    expected, _ = policy.model._recon_condition(captured[0], masks, len(CAMERAS))
    cond, _ = policy.model.prefix_recon_condition(images, img_masks, tokens, masks, len(CAMERAS))
    assert cond.shape == (2 * len(CAMERAS), TOKEN_GRID**2, 256)  # 256: the tiny backbone's width
    assert torch.allclose(cond, expected, atol=1e-5)


@pytest.mark.parametrize("layer", [-1, 0])
def test_captured_hidden_states_are_transformers_own_output_hidden_states(layer):
    """The hooks inside pi0's joint (prefix + action) training forward capture exactly what transformers
    returns as `hidden_states` for the prefix alone: the output of layer `layer` (the last one after the
    final norm)."""
    from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d

    from lerobot_policy_reconvla.modeling_reconvla import capture_prefix_hidden_states
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors

    torch.manual_seed(0)
    config = tiny_config(recon_layer=layer)
    policy = ReconVLAPolicy(config).eval()
    batch = make_reconvla_pre_post_processors(config)[0](raw_batch())
    images, img_masks = policy._preprocess_images(batch)
    tokens, masks = batch["observation.language.tokens"], batch["observation.language.attention_mask"]
    language_model = policy.model.paligemma_with_expert.paligemma.model.language_model
    assert len(language_model.layers) > 1  # so that layer 0 is not also the last
    with torch.no_grad(), capture_prefix_hidden_states(language_model, layer) as captured:
        _core_forward(policy, batch)

    prefix_embs, pad_masks, att_masks = policy.model.embed_prefix(images, img_masks, tokens, masks)
    with torch.no_grad():
        output = language_model(
            inputs_embeds=prefix_embs,
            attention_mask=prepare_attention_masks_4d(make_att_2d_masks(pad_masks, att_masks)),
            position_ids=torch.cumsum(pad_masks, dim=1) - 1,
            use_cache=False,
            output_hidden_states=True,
        )
    # hidden_states[i] enters layer i; the last entry is the final norm's output.
    expected = output.hidden_states[-1] if layer == -1 else output.hidden_states[layer + 1]
    assert captured[0].shape == expected.shape
    valid = pad_masks  # (B, L_prefix): padded prompt positions attend to nothing and feed nothing
    torch.testing.assert_close(captured[0][valid], expected[valid], atol=1e-4, rtol=1e-4)
    neighbour = output.hidden_states[-2] if layer == -1 else output.hidden_states[layer]  # the layer's input
    assert not torch.allclose(
        neighbour[valid], expected[valid], atol=1e-2
    )  # so a layer off by one would fail


def test_reconstruction_pictures_are_written_per_camera(policy_and_processors, tmp_path):
    from PIL import Image

    from lerobot_policy_reconvla.tools.visualize import write_reconstructions

    policy, pre, _ = policy_and_processors
    paths = write_reconstructions(policy, pre(raw_batch()), tmp_path, num_inference_steps=2)
    assert [p.name for p in paths] == [f"{cam}.png" for cam in CAMERAS]
    picture = Image.open(paths[0])
    assert picture.height == 256 + 18 and picture.width > 3 * 256


@pytest.mark.parametrize(
    ("head_dtype", "expected"), [("float32", torch.float32), ("bfloat16", torch.bfloat16)]
)
def test_bfloat16_backbone_trains_with_the_head_in_its_own_precision(head_dtype, expected):
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors

    config = tiny_config(dtype="bfloat16", recon_head_dtype=head_dtype)
    policy = ReconVLAPolicy(config)
    towers = policy.model.paligemma_with_expert  # pi0's mixed precision: bf16 layers, fp32 vision tower
    assert towers.paligemma.model.language_model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert towers.gemma_expert.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    assert towers.paligemma.model.vision_tower.dtype == torch.float32
    pre, _ = make_reconvla_pre_post_processors(config)
    policy.train()
    seen = []
    policy.model.recon_head.dit.output_proj.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    loss, info = policy.forward(pre(raw_batch()))
    loss.backward()
    assert torch.isfinite(loss) and info["recon_loss"] > 0
    assert seen == [expected]  # fp32 by default (the official head), bf16 on request
    assert policy.model.recon_head.dit.cond_proj.weight.dtype == torch.float32  # master weights stay fp32
    assert policy.model.recon_head.dit.cond_proj.weight.grad is not None
