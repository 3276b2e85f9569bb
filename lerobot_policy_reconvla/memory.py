"""GPU memory figures for the training log.

LeRobot's `lerobot-train` resets CUDA's peak-memory counter at the start of every step and logs the
whole step's peak as `mem_gb`. The policy adds, from the end of its forward pass, what is allocated
there (weights, gradients still held, optimizer state and the activations saved for backward) and the
forward pass's own peak: the two numbers that tell a user whether a larger batch would fit.
"""

import torch

GIB = 2**30


def cuda_memory_metrics(device: torch.device) -> dict[str, float]:
    """{'gpu_mem_alloc_gb', 'gpu_mem_fwd_peak_gb'} in GiB on a CUDA device; {} on any other device.

    The training loop logs every float of the policy's output dict (averaged over the log window,
    reduced across ranks), so these need no change to LeRobot; every rank reports the same keys.
    """
    if device.type != "cuda":
        return {}
    return {
        "gpu_mem_alloc_gb": torch.cuda.memory_allocated(device) / GIB,
        "gpu_mem_fwd_peak_gb": torch.cuda.max_memory_allocated(device) / GIB,
    }
