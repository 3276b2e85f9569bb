"""Policy presets load through LeRobot's own config parser (`--config_path`)."""

import os
import subprocess

import pytest

from lerobot.configs.train import TrainPipelineConfig
from lerobot_policy_reconvla.configuration_reconvla import ReconVLAConfig
from lerobot_policy_reconvla.presets import available_presets, main, preset_path
from tests.fixtures.cli import lerobot_cli


def load_preset(name: str, *overrides: str) -> TrainPipelineConfig:
    # What `lerobot-train --config_path=<preset> ...` does (lerobot.configs.parser.wrap).
    return TrainPipelineConfig.from_pretrained(
        str(preset_path(name)), cli_args=["--dataset.repo_id=local/any", *overrides]
    )


def test_tiny_preset_is_the_cpu_variant():
    policy = load_preset("reconvla_tiny").policy
    assert isinstance(policy, ReconVLAConfig)
    assert (policy.paligemma_variant, policy.action_expert_variant, policy.recon_target) == ("tiny", "tiny", "pixels")
    assert policy.device == "cpu"


def test_aloha_preset_is_full_size_bf16_with_the_papers_recon_settings():
    policy = load_preset("reconvla_aloha", "--policy.device=cpu").policy
    assert isinstance(policy, ReconVLAConfig)
    assert (policy.paligemma_variant, policy.action_expert_variant, policy.dtype) == ("gemma_2b", "gemma_300m", "bfloat16")
    assert (policy.recon_dit_depth, policy.recon_dit_width, policy.recon_dit_heads) == (3, 1024, 16)
    assert (policy.recon_weight, policy.recon_timestep_repeats, policy.recon_target) == (1.0, 4, "vae")


def test_cli_overrides_win_over_the_preset():
    assert load_preset("reconvla_tiny", "--policy.recon_weight=0.25").policy.recon_weight == 0.25


def test_unknown_preset_is_a_clear_error(capsys, tmp_path):
    assert "reconvla_tiny" in available_presets()
    with pytest.raises(KeyError, match=r"no preset named 'reconvla_huge'; available presets: \[.*'reconvla_aloha'"):
        preset_path("reconvla_huge")
    assert main(["reconvla_huge"]) == 2
    assert "available presets" in capsys.readouterr().err
    # LeRobot itself refuses a --config_path that does not exist, before building anything.
    result = subprocess.run(
        [lerobot_cli("lerobot-train"), "--config_path=configs/policy/reconvla_huge.json",
         "--dataset.repo_id=local/any", f"--output_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )  # fmt: skip
    assert result.returncode != 0 and "reconvla_huge.json" in result.stderr
    assert not (tmp_path / "run").exists()
