"""ReconVLA on pi0.5 (`--policy.type=reconvla_pi05`): the state in the prompt, inference that is pi05's,
checked loading of pi05 checkpoints, and LeRobot's own train and eval commands. The architecture, settings
and processor steps against stock pi05's are in test_config_and_plugin.py, LoRA in test_policy.py (both
parametrized by base); the recon branch itself (boxes, targets, cache, shift) is shared with `reconvla` and
tested there.
"""

import json
import logging

import pytest
import torch
from safetensors.torch import save_file

from lerobot_policy_reconvla.configuration_reconvla_pi05 import ReconVLAPi05Config
from lerobot_policy_reconvla.modeling_reconvla_pi05 import ReconVLAPi05Policy
from lerobot_policy_reconvla.processor_reconvla_pi05 import make_reconvla_pi05_pre_post_processors
from tests.fixtures.base_checkpoint import save_as_base_checkpoint
from tests.fixtures.cli import run_cli, run_train, short_sim_eval_args, train_args
from tests.fixtures.tiny_policy import (
    CHUNK,
    IMAGE_SHAPE,
    TINY_CLI,
    act_from_checkpoint,
    perturb_head_,
    raw_batch,
    tiny_config,
)

# The tiny tokenizer writes raw_batch's prompt with its 14 state bins in about 80 tokens (pi05's default
# room is 200, sized for PaliGemma's tokenizer).
PROMPT_LENGTH = 96


def pi05_config(**overrides) -> ReconVLAPi05Config:
    return tiny_config(config_class=ReconVLAPi05Config, tokenizer_max_length=PROMPT_LENGTH, **overrides)


@pytest.fixture
def pi05_policy_and_processors():
    torch.manual_seed(0)
    config = pi05_config()
    return (ReconVLAPi05Policy(config), *make_reconvla_pi05_pre_post_processors(config))


def test_tiny_variant_conditions_the_experts_norms_on_time_at_its_width():
    # The tiny module tree and dtypes against stock pi05's: test_config_and_plugin.py, for both bases.
    tiny = ReconVLAPi05Policy(pi05_config()).model
    expert = tiny.paligemma_with_expert.gemma_expert.config
    assert (
        expert.use_adarms and expert.adarms_cond_dim == expert.hidden_size == tiny.time_mlp_out.out_features
    )


def test_the_state_is_in_the_prompt_and_both_losses_reach_the_backbone(pi05_policy_and_processors):
    policy, pre, _ = pi05_policy_and_processors
    perturb_head_(policy)
    raw = raw_batch()
    tokens = pre(raw)["observation.language.tokens"]
    moved = raw_batch()
    moved["observation.state"] = moved["observation.state"] + 0.5
    assert not torch.equal(pre(moved)["observation.language.tokens"], tokens)  # pi05's state tokens

    loss, info = policy.forward(pre(raw))
    assert info["recon_loss"] > 0 and info["action_loss"] > 0
    assert loss.item() == pytest.approx(info["action_loss"] + policy.config.recon_weight * info["recon_loss"])
    loss.backward()
    grads = {
        part: sum(
            p.grad.norm().item() for n, p in policy.named_parameters() if part in n and p.grad is not None
        )
        for part in ("recon_head.", "vision_tower.", "language_model.", "gemma_expert.")
    }
    assert all(norm > 0 for norm in grads.values()), grads


def test_chunks_are_stock_pi05s_on_the_same_weights_and_noise(pi05_policy_and_processors):
    """The twin runs only LeRobot's pi05 classes (benchmarks/pi0_pair.py); ReconVLA's chunks equal its own."""
    from lerobot.policies.pi05.modeling_pi05 import PI05Policy

    from benchmarks.pi0_pair import assert_same_chunks, make_stock_twin

    policy, pre, _ = pi05_policy_and_processors
    perturb_head_(policy)  # a trained-looking head must change nothing at inference either
    stock = make_stock_twin(policy)
    assert type(stock) is PI05Policy
    assert assert_same_chunks(policy.eval(), stock.eval(), pre(raw_batch()), compiled=False) == 0.0


def test_inference_never_runs_the_head(pi05_policy_and_processors):
    policy, pre, post = pi05_policy_and_processors
    calls = []
    policy.model.recon_head.register_forward_pre_hook(lambda *_: calls.append("head"))
    batch = pre(raw_batch())
    policy.reset()
    actions = [policy.select_action(batch) for _ in range(CHUNK + 1)]
    assert all(a.shape == (2, 14) for a in actions)
    assert post(policy.predict_action_chunk(batch)).shape == (2, CHUNK, 14)
    assert calls == []


def test_save_load_gives_identical_actions(pi05_policy_and_processors, tmp_path):
    policy, pre, _ = pi05_policy_and_processors
    batch = pre(raw_batch())
    noise = torch.randn(2, CHUNK, policy.config.max_action_dim, generator=torch.Generator().manual_seed(3))
    expected = policy.predict_action_chunk(batch, noise=noise)
    policy.save_pretrained(tmp_path)
    loaded = ReconVLAPi05Policy.from_pretrained(tmp_path)
    assert type(loaded.config) is ReconVLAPi05Config
    assert torch.equal(loaded.predict_action_chunk(batch, noise=noise), expected)


def test_pi05_checkpoint_loads_every_pi05_weight_and_a_fresh_head(tmp_path, caplog):
    torch.manual_seed(0)
    source = ReconVLAPi05Policy(pi05_config())
    pi05_state = save_as_base_checkpoint(source, tmp_path / "pi05")
    assert json.loads((tmp_path / "pi05" / "config.json").read_text())["type"] == "pi05"
    torch.manual_seed(123)  # the loaded model starts from other random weights
    with caplog.at_level(logging.WARNING):
        loaded = ReconVLAPi05Policy.from_pretrained(tmp_path / "pi05")
    own = loaded.state_dict()
    for key, tensor in pi05_state.items():
        assert torch.equal(own[key], tensor), key
    assert any("Loaded every pi05 weight" in r.message for r in caplog.records)

    # Anything else than the head missing, or an unknown tensor, is refused.
    del pi05_state["model.time_mlp_in.weight"]
    save_file(
        {**pi05_state, "model.something_else.weight": torch.zeros(2)}, tmp_path / "pi05/model.safetensors"
    )
    with pytest.raises(ValueError, match="missing keys.*time_mlp_in.weight.*unexpected keys.*something_else"):
        ReconVLAPi05Policy.from_pretrained(tmp_path / "pi05")


def test_checkpoints_of_the_other_base_are_refused(tmp_path):
    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy

    save_as_base_checkpoint(ReconVLAPolicy(tiny_config()), tmp_path / "pi0")
    with pytest.raises(
        ValueError, match="holds a 'pi0' policy; reconvla_pi05 loads 'reconvla_pi05' or 'pi05'"
    ):
        ReconVLAPi05Policy.from_pretrained(tmp_path / "pi0")


def test_gradient_checkpointing_includes_the_head():
    # LoRA's targets and the head's modules_to_save: test_policy.py, for both bases.
    checkpointed = ReconVLAPi05Policy(pi05_config(gradient_checkpointing=True))
    assert checkpointed.model.gradient_checkpointing_enabled
    assert checkpointed.model.recon_head.dit.gradient_checkpointing


@pytest.mark.slow
def test_lerobot_train_and_eval_run_reconvla_pi05(tmp_path, dataset_3cam):
    """`lerobot-train --policy.type=reconvla_pi05` on the boxed 3-camera dataset logs both losses; its
    checkpoint reloads through LeRobot's factory and runs one `lerobot-eval` episode in aloha_multicam."""
    run = tmp_path / "run"
    output = run_train(
        [
            "--policy.type=reconvla_pi05",
            *TINY_CLI,
            f"--policy.tokenizer_max_length={PROMPT_LENGTH}",
            *train_args(dataset_3cam, "local/synthetic_3cam", run),
        ]
    )
    assert output.count("action_loss:") >= 3 and output.count("recon_loss:") >= 3
    checkpoint = run / "checkpoints" / "last" / "pretrained_model"
    saved = json.loads((checkpoint / "config.json").read_text())
    assert saved["type"] == "reconvla_pi05" and saved["paligemma_variant"] == "tiny"

    action = act_from_checkpoint(ReconVLAPi05Policy, checkpoint)
    assert action.shape == (1, 14) and torch.isfinite(action).all()

    height, width = IMAGE_SHAPE[1:]  # the env renders what the policy was trained on
    eval_args = [
        arg
        for arg in short_sim_eval_args(checkpoint, tmp_path / "eval")
        if not arg.startswith(("--env.observation_height", "--env.observation_width"))
    ]
    run_cli(
        "lerobot-eval", [*eval_args, f"--env.observation_height={height}", f"--env.observation_width={width}"]
    )
    info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 1
