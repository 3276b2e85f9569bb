"""GPU memory figures in the policy's training metrics: present on CUDA only."""

import pytest
import torch
from conftest import raw_batch

from lerobot_policy_reconvla.memory import cuda_memory_metrics


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
