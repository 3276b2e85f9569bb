"""Training memory: GPU memory figures in the policy's metrics (CUDA only); gradient checkpointing."""

import pytest
import torch

from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy, cuda_memory_metrics
from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors
from tests.fixtures.tiny_policy import fixed_training_noise, perturb_head_, raw_batch, tiny_config


def test_no_memory_keys_off_cuda(policy_and_processors):
    assert cuda_memory_metrics(torch.device("cpu")) == {}
    policy, preprocessor, _ = policy_and_processors
    _, metrics = policy.forward(preprocessor(raw_batch()))
    assert set(metrics) == {"action_loss", "recon_loss", "loss"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_memory_keys_on_cuda():
    device = torch.device("cuda")
    torch.cuda.reset_peak_memory_stats(device)
    held = torch.empty(256, 1024, 1024, dtype=torch.uint8, device=device)  # 0.25 GiB
    metrics = cuda_memory_metrics(device)
    assert set(metrics) == {"gpu_mem_alloc_gb", "gpu_mem_fwd_peak_gb"}
    assert metrics["gpu_mem_fwd_peak_gb"] >= metrics["gpu_mem_alloc_gb"] >= 0.25
    del held


def counted(forward, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    return wrapper


def test_gradient_checkpointing_keeps_every_gradient_exact():
    # pi0 recomputes each checkpointed layer in backward, and the head each DiT block; neither the hook
    # that captures the backbone's hidden states nor the recomputation may change what reaches a parameter.
    grads, block_runs = {}, {}
    for run, (checkpointing, recon_weight) in {
        "eager": (False, 1.0),
        "checkpointed": (True, 1.0),
        "action only": (False, 0.0),
    }.items():
        torch.manual_seed(0)
        config = tiny_config(gradient_checkpointing=checkpointing, recon_weight=recon_weight)
        policy = ReconVLAPolicy(config).train()
        assert policy.model.gradient_checkpointing_enabled is checkpointing
        dit = policy.model.recon_head.dit
        assert dit.is_gradient_checkpointing is checkpointing
        perturb_head_(policy)  # so that the recon loss's gradient reaches the backbone through the capture
        runs = []  # calls of the blocks' forward (module hooks do not fire when checkpointing recomputes)
        for block in dit.blocks:
            block.forward = counted(block.forward, runs)
        batch = make_reconvla_pre_post_processors(config)[0](raw_batch())
        loss, _ = policy.forward(batch, **fixed_training_noise())
        loss.backward()
        block_runs[run] = len(runs)
        grads[run] = {n: p.grad for n, p in policy.named_parameters() if p.grad is not None}
    assert block_runs["eager"] == len(dit.blocks)
    assert block_runs["checkpointed"] == 2 * len(dit.blocks)  # forward, and again in backward
    assert grads["checkpointed"].keys() == grads["eager"].keys()
    assert any(".recon_head." in name for name in grads["checkpointed"])
    for name, grad in grads["eager"].items():
        assert torch.allclose(grads["checkpointed"][name], grad, atol=1e-6), name
    # What is compared carries the recon loss into the backbone: without it, the backbone's gradients differ.
    backbone = [name for name in grads["action only"] if ".paligemma." in name]
    assert backbone and any(
        not torch.allclose(grads["eager"][name], grads["action only"][name], atol=1e-6) for name in backbone
    )
