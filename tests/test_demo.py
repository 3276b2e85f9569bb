"""The README's main job, shortened: every stage runs through LeRobot's CLIs and reports its figures."""

import json
import sys

import pytest
from PIL import Image

from lerobot_policy_reconvla.common.cli import UsageError
from lerobot_policy_reconvla.tools import demo
from lerobot_policy_reconvla.tools.demo import MARKER, prepare_output_dir
from tests.fixtures import warm_python


def test_demo_refuses_a_directory_it_did_not_create(tmp_path):
    (tmp_path / "thesis.tex").write_text("keep me")
    with pytest.raises(UsageError, match=rf"--output_dir={tmp_path} is not empty .*no {MARKER}"):
        prepare_output_dir(tmp_path)
    assert (tmp_path / "thesis.tex").read_text() == "keep me"
    assert not (tmp_path / MARKER).exists()


def test_demo_rerun_keeps_the_data_and_replaces_only_its_own_outputs(tmp_path):
    out = tmp_path / "demo"
    prepare_output_dir(out)  # a new directory
    assert (out / MARKER).is_file()
    for name in ("data/meta", "train/checkpoints", "eval/videos", "reconstructions"):
        (out / name).mkdir(parents=True)
    for name in ("data/meta/info.json", "train.log", "summary.json", "success_curve.png", "notes.txt"):
        (out / name).write_text("{}")
    prepare_output_dir(out)  # a previous demo output
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "data", "notes.txt"])
    assert (out / "data" / "meta" / "info.json").exists()  # the generator resumes it
    prepare_output_dir(tmp_path / "empty")  # an empty directory is fine too
    (tmp_path / "empty2").mkdir()
    prepare_output_dir(tmp_path / "empty2")
    assert (tmp_path / "empty2" / MARKER).is_file()


def test_demo_still_accepts_the_earlier_dashed_flags_with_a_deprecation_line(tmp_path, monkeypatch, capsys):
    parsed = []
    monkeypatch.setattr(demo, "run_demo", parsed.append)  # parse only: no stage runs
    status = demo.main([f"--output-dir={tmp_path / 'demo'}", "--episodes", "3", "--image-size", "48", "64",
                        "--shadows", "--n-action-steps=5", "--steps=40"])  # fmt: skip
    assert status == 0
    (cfg,) = parsed
    assert (cfg.output_dir, cfg.num_episodes, cfg.image_size) == (tmp_path / "demo", 3, [48, 64])
    assert (cfg.shadows, cfg.n_action_steps, cfg.steps) == (True, 5, 40)
    err = capsys.readouterr().err
    assert "reconvla-demo: deprecated flag spelling(s)" in err
    assert "--episodes 3 -> --num_episodes=3" in err and "--image-size 48 64 -> --image_size=[48,64]" in err


@pytest.mark.slow
def test_demo_generates_trains_evaluates_and_draws(tmp_path):
    out = tmp_path / "demo"
    result = warm_python.run(
        [sys.executable, "-m", "lerobot_policy_reconvla.tools.demo", f"--output_dir={out}", "--num_episodes=1",
         "--workers=1", "--episode_length=30", "--steps=4", "--batch_size=2", "--curve_points=2", "--eval_episodes=1",
         "--image_size=[48,64]"],
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["seconds"]) == {"data", "train", "eval step 2", "eval step 4", "reconstructions"}
    # One lerobot-eval per checkpoint; the summary reports lerobot-eval's figures, in training order.
    for point in summary["success_curve"]:
        eval_info = json.loads((out / "eval" / f"{point['step']:06d}" / "eval_info.json").read_text())
        assert eval_info["overall"]["n_episodes"] == 1
        assert point["success_pc"] == eval_info["overall"]["pc_success"]
    assert [p["step"] for p in summary["success_curve"]] == [2, 4]
    assert summary["eval_success_pc"] == summary["success_curve"][-1]["success_pc"] == 0.0  # 30 steps cannot lift
    assert Image.open(out / "success_curve.png").width > 0
    assert summary["losses_first"][0] == 1 and summary["losses_last"][0] == 4
    assert (out / "train" / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").exists()
    assert len(summary["reconstructions"]) == 3
    for path in summary["reconstructions"]:
        assert Image.open(path).height == 256 + 18
    assert "ReconVLA demo" in result.stdout and "success curve" in result.stdout
    assert (out / MARKER).is_file()
