"""`accelerate launch` of `lerobot-train --policy.type=reconvla` on 2 processes (DDP over gloo, CPU, tiny).

Under DDP every rank must run forward and backward each step (gradients are all-reduced), so a run that
completes on 2 processes proves both ranks trained; with the VAE target each rank loads its own frozen
VAE on its first step. Only the main process logs and writes checkpoints.

Marked `serial`: scripts/test.sh runs them after the other tests, with nothing beside them. On a loaded
machine a gloo rank can deadlock at exit: the last rank to leave destroys DDP's reducer while holding the GIL,
and the process group's destructor then waits for its worker thread, which needs the GIL to free the tensors
of the final barrier (docs/training.md).
"""

import json
import os
import re
from pathlib import Path

import pytest
from safetensors import safe_open

from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
from tests.fixtures import processes
from tests.fixtures.cli import lerobot_cli, train_args
from tests.fixtures.tiny_policy import TINY_CLI

DDP_CONFIG = Path(__file__).parents[1] / "configs" / "accelerate" / "ddp_bf16.yaml"


def accelerate_train(args: list[str], timeout: int = 600) -> str:
    # The shipped multi-GPU config, on 2 CPU processes: --policy.device=cpu makes lerobot-train build a
    # CPU Accelerator (gloo); precision follows --policy.dtype (float32 here).
    launch = [
        lerobot_cli("accelerate"),
        "launch",
        "--config_file",
        str(DDP_CONFIG),
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        "--num_cpu_threads_per_process",
        "1",
        "--main_process_port",
        "0",  # a free port: two runs on one machine never share a rendezvous
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", OMP_NUM_THREADS="1")
    result = processes.run(
        [*launch, lerobot_cli("lerobot-train"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def logged_steps(output: str) -> list[int]:
    return [int(step) for step in re.findall(r"\bstep:(\d+) ", output)]


@pytest.mark.slow
@pytest.mark.serial
def test_two_processes_train_checkpoint_once_and_resume(tmp_path, dataset_3cam, tiny_vae_dir):
    run = tmp_path / "run"
    vae_head = [
        "--policy.recon_target=vae",
        f"--policy.recon_vae={tiny_vae_dir}",
        "--policy.recon_image_size=128",
    ]
    output = accelerate_train(
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            *vae_head,
            "--policy.optimizer_type=adamw_8bit",
            *train_args(dataset_3cam, "local/synthetic_3cam", run, steps=2),
        ]
    )
    # LeRobot 0.6.1 logs "2 x 2 = 4"; its next release "2 x 2 dp workers x 1 grad accum = 4 (topology ...)".
    assert re.search(r"Effective batch size: 2 x 2 (dp workers x 1 grad accum )?= 4", output), output[-3000:]
    # Logged once per step (by the main process), with the rank-averaged loss terms.
    assert logged_steps(output) == [1, 2]
    assert len(re.findall(r"recon_loss:\d+\.\d+", output)) == 2
    assert output.count("Checkpoint policy after step 2") == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["000002", "last"]

    checkpoint = run / "checkpoints" / "last" / "pretrained_model"
    with safe_open(checkpoint / "model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert any(".recon_head.dit." in key for key in keys)
    assert not any("vae" in key for key in keys)  # the frozen VAE is loaded per rank, never saved
    assert json.loads((checkpoint / "train_config.json").read_text())["optimizer"]["type"] == "adamw_8bit"
    policy = ReconVLAPolicy.from_pretrained(checkpoint)
    assert policy.config.recon_target == "vae" and policy.config.optimizer_type == "adamw_8bit"

    # Resume on 2 processes: step, 8-bit optimizer state and scheduler continue.
    train_config = checkpoint / "train_config.json"
    output = accelerate_train(
        [f"--config_path={train_config}", "--resume=true", "--steps=3", "--save_freq=3"]
    )
    assert logged_steps(output) == [3]
    state_dir = run / "checkpoints" / "last" / "training_state"
    assert json.loads((state_dir / "training_step.json").read_text())["step"] == 3
    assert json.loads((state_dir / "scheduler_state.json").read_text())["last_epoch"] == 3
    with safe_open(state_dir / "optimizer_state.safetensors", "pt") as state:
        names = state.keys()  # a safetensors file handle: keys() is its listing, it is not a dict
        steps = {float(state.get_tensor(k)) for k in names if k.endswith("/step")}
        quantised = [k for k in names if k.endswith("/state1") and state.get_tensor(k).dtype.itemsize == 1]
    assert steps == {3.0} and quantised  # 8-bit moments continued from step 2


@pytest.mark.slow
@pytest.mark.serial
def test_recon_weight_zero_leaves_the_head_unused_without_tripping_ddp(tmp_path, dataset_3cam):
    # The head's parameters get no gradient; lerobot-train wraps the policy with
    # find_unused_parameters=True, so DDP accepts it.
    output = accelerate_train(
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            "--policy.recon_weight=0",
            "--save_checkpoint=false",
            *train_args(dataset_3cam, "local/synthetic_3cam", tmp_path / "run", steps=2),
        ]
    )
    assert logged_steps(output) == [1, 2]
    assert re.findall(r"recon_loss:(\d+\.\d+)", output) == ["0.000", "0.000"]
