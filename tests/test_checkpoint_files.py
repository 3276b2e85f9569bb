"""A checkpoint whose model.safetensors is truncated or missing fails in one line naming the file, wherever
it is loaded."""

import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from lerobot_policy_reconvla.loading import IncompleteCheckpointError, check_safetensors_file
from tests.fixtures.cli import run_cli, short_sim_eval_args
from tests.fixtures.tiny_policy import tiny_config

CAMERAS = ("top", "left_wrist", "right_wrist")


@pytest.fixture(scope="module")
def saved_policy(tmp_path_factory) -> Path:
    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors

    torch.manual_seed(0)
    config = tiny_config(cameras=CAMERAS, image_shape=(3, 32, 32))
    path = tmp_path_factory.mktemp("saved") / "pretrained_model"
    ReconVLAPolicy(config).save_pretrained(path)
    for processor in make_reconvla_pre_post_processors(config):
        processor.save_pretrained(path)
    return path


def damaged_copy(saved: Path, tmp_path: Path, keep_bytes: int | None) -> Path:
    """A copy of the checkpoint with model.safetensors cut to `keep_bytes` (None: removed)."""
    copy = tmp_path / "pretrained_model"
    shutil.copytree(saved, copy)
    weights = copy / "model.safetensors"
    if keep_bytes is None:
        weights.unlink()
    else:
        os.truncate(weights, keep_bytes)
    return copy


def test_check_accepts_a_complete_file_and_names_a_truncated_one(saved_policy, tmp_path):
    weights = saved_policy / "model.safetensors"
    assert check_safetensors_file(weights) == weights
    size = weights.stat().st_size
    for keep in (
        size - 1,
        size // 2,
        100,
        4,
        0,
    ):  # data cut short, header cut short, less than the length field
        damaged = damaged_copy(saved_policy, tmp_path / str(keep), keep) / "model.safetensors"
        with pytest.raises(
            IncompleteCheckpointError,
            match=rf"^{re.escape(str(damaged))} is truncated or corrupt \({keep} bytes",
        ):
            check_safetensors_file(damaged)
    with pytest.raises(
        FileNotFoundError, match=rf"^{re.escape(str(tmp_path / 'nowhere.safetensors'))} is missing"
    ):
        check_safetensors_file(tmp_path / "nowhere.safetensors")


def test_from_pretrained_names_the_truncated_or_missing_weight_file(saved_policy, tmp_path):
    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy

    truncated = damaged_copy(saved_policy, tmp_path / "truncated", keep_bytes=1000)
    with pytest.raises(
        IncompleteCheckpointError, match=re.escape(f"{truncated / 'model.safetensors'} is truncated")
    ):
        ReconVLAPolicy.from_pretrained(truncated)
    missing = damaged_copy(saved_policy, tmp_path / "missing", keep_bytes=None)
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing / 'model.safetensors'} does not exist")):
        ReconVLAPolicy.from_pretrained(missing)


def test_visualizer_exits_with_one_line_naming_the_file(saved_policy, tmp_path, capsys):
    from lerobot_policy_reconvla.tools.visualize import main

    for keep_bytes, says in ((1000, "is truncated or corrupt"), (None, "does not exist")):
        damaged = damaged_copy(saved_policy, tmp_path / str(keep_bytes), keep_bytes)
        status = main(
            [f"--policy.path={damaged}", "--dataset.repo_id=local/unused", f"--output_dir={tmp_path / 'out'}"]
        )
        assert status == 2
        err = capsys.readouterr().err
        message = err.strip().splitlines()[-1]
        assert message.startswith(f"reconvla-visualize: error: {damaged / 'model.safetensors'} {says}"), err
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_lerobot_eval_policy_path_ends_with_one_line_naming_the_file(saved_policy, tmp_path):
    damaged = damaged_copy(saved_policy, tmp_path, keep_bytes=1000)
    output = run_cli("lerobot-eval", short_sim_eval_args(damaged, tmp_path / "eval"), expect_ok=False)
    last_line = output.strip().splitlines()[-1]
    error = "lerobot_policy_reconvla.loading.IncompleteCheckpointError"
    assert last_line.startswith(f"{error}: {damaged / 'model.safetensors'} is truncated"), output[-3000:]
    assert not (tmp_path / "eval" / "eval_info.json").exists()
