"""The README's main job, shortened: every stage runs through LeRobot's CLIs and reports its figures."""

import json
import subprocess
import sys

from PIL import Image


def test_demo_generates_trains_evaluates_and_draws(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "lerobot_policy_reconvla.demo", f"--output-dir={out}", "--episodes=1",
         "--episode-length=40", "--steps=4", "--batch-size=2"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["seconds"]) == {"data", "train", "eval", "reconstructions"}
    assert 0.0 <= summary["eval_success_pc"] <= 100.0
    assert summary["losses_first"][0] == 1 and summary["losses_last"][0] == 4
    assert (out / "train" / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").exists()
    # lerobot-train evaluated in aloha_multicam at its last step, then lerobot-eval on the checkpoint.
    assert "Eval policy at step 4" in (out / "train.log").read_text()
    assert summary["train_eval_success_pc"] == [summary["train_eval_success_pc"][0]]
    assert [json.loads((out / "eval" / "eval_info.json").read_text())["overall"]["n_episodes"]] == [1]
    assert len(summary["reconstructions"]) == 3
    for path in summary["reconstructions"]:
        assert Image.open(path).height == 256 + 18
    assert "ReconVLA demo" in result.stdout and "success" in result.stdout
