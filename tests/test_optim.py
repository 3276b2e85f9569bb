"""8-bit AdamW: LeRobot registry, ReconVLA's preset and parameter groups, checkpoint round trip, CPU step."""

from dataclasses import dataclass

import bitsandbytes
import draccus
import pytest
import torch
from lerobot.optim.optimizers import AdamWConfig, OptimizerConfig, load_optimizer_state, save_optimizer_state

from lerobot_policy_reconvla.training import optim
from lerobot_policy_reconvla.training.optim import AdamW8bitConfig
from tests.fixtures.tiny_policy import tiny_config


def test_adamw_8bit_is_in_lerobots_registry_and_parses_from_the_cli():
    assert OptimizerConfig.get_choice_class("adamw_8bit") is AdamW8bitConfig

    @dataclass
    class WithOptimizer:  # the shape of LeRobot's TrainPipelineConfig.optimizer field
        optimizer: OptimizerConfig | None = None

    args = ["--optimizer.type=adamw_8bit", "--optimizer.lr=3e-4", "--optimizer.min_8bit_size=64"]
    parsed = draccus.parse(WithOptimizer, args=args).optimizer
    assert isinstance(parsed, AdamW8bitConfig) and parsed.type == "adamw_8bit"
    assert (
        parsed.lr == 3e-4 and parsed.min_8bit_size == 64 and parsed.weight_decay == AdamWConfig.weight_decay
    )


def test_policy_preset_keeps_pi0_hyperparameters_on_the_8bit_optimizer():
    config = tiny_config(optimizer_type="adamw_8bit", optimizer_lr=5e-5, optimizer_weight_decay=0.02)
    preset = config.get_optimizer_preset()
    assert type(preset) is AdamW8bitConfig
    assert (preset.lr, preset.weight_decay, preset.betas) == (5e-5, 0.02, config.optimizer_betas)
    assert type(tiny_config().get_optimizer_preset()) is AdamWConfig  # pi0's default is unchanged
    with pytest.raises(ValueError, match="optimizer_type='adam8'.*expected one of"):
        tiny_config(optimizer_type="adam8")


def test_policy_groups_keep_the_head_lr_scale_and_step_on_cpu(policy_and_processors):
    policy, _, _ = policy_and_processors
    policy.config.recon_lr_scale, policy.config.optimizer_type = 4.0, "adamw_8bit"
    # What lerobot-train does with the policy preset: preset.build(policy.get_optim_params()).
    optimizer = policy.config.get_optimizer_preset().build(policy.get_optim_params())
    assert isinstance(optimizer, bitsandbytes.optim.AdamW8bit)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([2.5e-5, 1e-4])  # backbone, head x4
    head = {id(p) for p in policy.model.recon_head.parameters()}
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == head

    # One step on the head only (CPU): large tensors get 8-bit moments, small ones stay fp32.
    for param in optimizer.param_groups[1]["params"]:
        param.grad = torch.randn_like(param)
    optimizer.step()
    states = [optimizer.state[p] for p in optimizer.param_groups[1]["params"]]
    assert {s["state1"].dtype for s in states} == {torch.uint8, torch.float32}


def test_first_step_matches_torch_adamw_on_cpu():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(64, 128))  # 8192 elements: 8-bit moments
    reference = torch.nn.Parameter(weight.detach().clone())
    initial = weight.detach().clone()
    grad = torch.randn_like(weight)
    weight.grad, reference.grad = grad.clone(), grad.clone()
    AdamW8bitConfig(lr=1e-2, weight_decay=0.1).build([weight]).step()
    torch.optim.AdamW([reference], lr=1e-2, weight_decay=0.1).step()
    # AdamW's first update is ~lr * sign(grad): 8-bit moments must reproduce it, not merely move.
    assert (weight - initial).abs().mean() > 5e-3
    assert torch.allclose(weight, reference, atol=2e-4)


def test_state_round_trips_through_lerobots_checkpoint_files(tmp_path):
    def make():
        torch.manual_seed(0)
        # Two tensors with 8-bit moments (>= 4096 elements) share bitsandbytes' quantisation maps.
        model = torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.Linear(64, 64), torch.nn.Linear(64, 4))
        groups = [{"params": model[:2].parameters()}, {"params": model[2].parameters(), "lr": 3e-3}]
        return model, AdamW8bitConfig(lr=1e-3).build(groups)

    def train_step(model, optimizer, seed):
        generator = torch.Generator().manual_seed(seed)
        model(torch.randn(8, 128, generator=generator)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    model, optimizer = make()
    for seed in range(3):
        train_step(model, optimizer, seed)
    save_optimizer_state(optimizer, tmp_path)  # safetensors: every value must be a tensor

    restored_model, restored = make()
    restored_model.load_state_dict(model.state_dict())
    load_optimizer_state(restored, tmp_path)
    first = restored.state[restored.param_groups[0]["params"][0]]
    assert first["step"] == 3 and isinstance(first["step"], int)  # bitsandbytes' own type again
    assert first["state1"].dtype == torch.uint8
    assert [g["lr"] for g in restored.param_groups] == [1e-3, 3e-3]

    # Continuing from the restored state is exactly continuing the original run.
    train_step(model, optimizer, seed=3)
    train_step(restored_model, restored, seed=3)
    for original, resumed in zip(model.parameters(), restored_model.parameters(), strict=True):
        assert torch.equal(original, resumed)


def test_unsupported_device_fails_before_training(monkeypatch):
    # Stand-in for a bitsandbytes build without a backend for the device (e.g. a CUDA-only wheel on
    # a CPU machine): its optimizer step raises.
    def no_backend(self, closure=None):
        raise NotImplementedError("no 8-bit optimizer kernel for this device")

    monkeypatch.setattr(bitsandbytes.optim.AdamW8bit, "step", no_backend)
    with pytest.raises(
        RuntimeError, match=r"cannot run its 8-bit AdamW on device 'cpu'.*optimizer_type=adamw"
    ):
        AdamW8bitConfig().build([torch.nn.Parameter(torch.zeros(3))])


def test_missing_bitsandbytes_names_the_extra(monkeypatch):
    monkeypatch.setattr(optim, "_bitsandbytes_available", False)
    with pytest.raises(ImportError, match=r"lerobot_policy_reconvla\[bnb\]"):
        AdamW8bitConfig().build([torch.nn.Parameter(torch.zeros(3))])
