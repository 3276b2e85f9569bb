"""8-bit AdamW (bitsandbytes) in LeRobot's optimizer registry: `--policy.optimizer_type=adamw_8bit`.

torch's AdamW keeps two moments per trained parameter at the parameter's dtype (4 bytes for pi0's bf16
weights, 8 for fp32); bitsandbytes' block-wise 8-bit AdamW keeps 2 bytes: ~8 GiB less for a full-size
fine-tune (docs/training.md).

How it is chosen: LeRobot replaces `--optimizer.*` by the policy's preset unless
`--use_policy_training_preset=false`, and only the preset path passes the policy's parameter groups
(`get_optim_params`: backbone, head at `recon_lr_scale`). So ReconVLA's preset builds this optimizer
when `--policy.optimizer_type=adamw_8bit`, keeping both groups, LeRobot's scheduler and its
checkpoint/resume (the type is saved in train_config.json as `optimizer.type: adamw_8bit`).

bitsandbytes is optional (the `bnb` extra) and imported only when the optimizer is built.
"""

from dataclasses import asdict, dataclass
from functools import cache
from typing import TYPE_CHECKING

import torch
from lerobot.optim.optimizers import AdamWConfig, OptimizerConfig, OptimizerParams
from lerobot.utils.import_utils import is_package_available

if TYPE_CHECKING:
    import bitsandbytes

_bitsandbytes_available = is_package_available("bitsandbytes")

# Optimizers ReconVLA's training preset can build (`--policy.optimizer_type`).
PRESET_OPTIMIZER_TYPES = ("adamw", "adamw_8bit")


@OptimizerConfig.register_subclass("adamw_8bit")
@dataclass
class AdamW8bitConfig(AdamWConfig):
    """LeRobot's AdamW fields (lr, betas, eps, weight_decay, grad_clip_norm) on bitsandbytes' AdamW8bit."""

    # Tensors with fewer elements keep 32-bit moments (bitsandbytes' default): quantising biases and
    # norms saves nothing and costs accuracy.
    min_8bit_size: int = 4096

    def build(self, params: OptimizerParams) -> torch.optim.Optimizer:
        if not _bitsandbytes_available:
            raise ImportError(
                "optimizer type 'adamw_8bit' needs bitsandbytes, which is not installed. Install it with "
                "pip install 'lerobot_policy_reconvla[bnb]', or train with --policy.optimizer_type=adamw"
            )
        # Generators (of parameters, or in a group's "params") are read twice below: make lists.
        params = [
            {**item, "params": list(item["params"])} if isinstance(item, dict) else item for item in params
        ]
        check_adamw8bit_runs_on(_devices_of(params))
        kwargs = asdict(self)
        kwargs.pop("grad_clip_norm")
        return _checkpointable_adamw8bit_class()(params, **kwargs)


def check_adamw8bit_runs_on(devices: set[torch.device]) -> None:
    """Runs one 8-bit AdamW step on a small tensor on each device, so an unsupported device fails now.

    Which devices bitsandbytes' 8-bit optimizers support depends on its version and build (CUDA
    always; CPU in recent releases); trying one step is the only reliable check, and it costs
    microseconds, before any training step is lost.
    """
    import bitsandbytes

    for device in devices:
        probe = torch.nn.Parameter(torch.zeros(4096, device=device))  # >= min_8bit_size: 8-bit path
        probe.grad = torch.ones_like(probe)
        try:
            bitsandbytes.optim.AdamW8bit([probe]).step()
        except Exception as error:  # noqa: BLE001 - any backend failure means the same thing to the user
            raise RuntimeError(
                f"optimizer type 'adamw_8bit': bitsandbytes {bitsandbytes.__version__} cannot run its 8-bit "
                f"AdamW on device '{device}' ({type(error).__name__}: {error}). Train on a device it "
                "supports (a CUDA GPU) or use --policy.optimizer_type=adamw"
            ) from error


def _devices_of(params: list) -> set[torch.device]:
    tensors = []
    for item in params:
        if isinstance(item, dict):  # a parameter group
            tensors.extend(item["params"])
        else:
            tensors.append(item)
    return {tensor.device for tensor in tensors}


@cache
def _checkpointable_adamw8bit_class() -> type["bitsandbytes.optim.AdamW8bit"]:
    """bitsandbytes' AdamW8bit whose state dict LeRobot's checkpoints can hold.

    LeRobot writes optimizer state as safetensors, which takes only tensors that share no memory.
    bitsandbytes keeps each parameter's `step` as a Python int, and every 8-bit parameter's state points
    at the same two quantisation maps (256 floats each). The state dict carries `step` as a 0-d tensor
    (as torch's AdamW does) and a copy of the maps per parameter; loading turns `step` back into an int.
    """
    import bitsandbytes

    quant_key = bitsandbytes.optim.optimizer.Optimizer8bit._FSDP_WRAPPED_QUANT_STATE_KEY

    class CheckpointableAdamW8bit(bitsandbytes.optim.AdamW8bit):
        def state_dict(self):
            state_dict = super().state_dict()  # per-parameter state dicts are already copies
            for param_state in state_dict["state"].values():
                if isinstance(param_state.get("step"), int):
                    param_state["step"] = torch.tensor(float(param_state["step"]))
                quant_state = param_state.get(quant_key, {})
                for name in ("qmap1", "qmap2"):
                    if name in quant_state:
                        quant_state[name] = quant_state[name].clone()
            return state_dict

        def load_state_dict(self, state_dict, move_to_device=True):
            state = {
                index: {
                    key: int(value.item()) if key == "step" and torch.is_tensor(value) else value
                    for key, value in param_state.items()
                }
                for index, param_state in state_dict["state"].items()
            }
            super().load_state_dict({**state_dict, "state": state}, move_to_device=move_to_device)

    return CheckpointableAdamW8bit


def optimizer_preset(optimizer_type: str, adamw: AdamWConfig) -> AdamWConfig:
    """The training preset's optimizer (`optimizer_type`, checked by the config): `adamw` as is, or the
    same hyperparameters on 8-bit AdamW."""
    return adamw if optimizer_type == "adamw" else AdamW8bitConfig(**asdict(adamw))
