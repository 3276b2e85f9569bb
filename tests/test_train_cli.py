"""`lerobot-train --policy.type=reconvla` end to end, from the flags a user types (tiny variant, in this
process)."""

import json
import re

import pytest
import torch

from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
from tests.fixtures.cli import run_cli, run_train, train_args
from tests.fixtures.tiny_policy import TINY_CLI, act_from_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_3cam(tmp_path_factory, dataset_3cam):
    """One 3-step run on the boxed 3-camera dataset that several tests read (never write): checkpoints at
    every step, the head at 4x the learning rate, reconstructions logged to an offline wandb run at step 2."""
    run = tmp_path_factory.mktemp("trained_3cam") / "run"
    output = run_train(
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            "--policy.recon_lr_scale=4.0",
            "--policy.recon_log_images_freq=2",
            *train_args(dataset_3cam, "local/synthetic_3cam", run, steps=3),
            "--wandb.enable=true",
            "--wandb.mode=offline",
            "--wandb.project=reconvla_test",
        ]
    )
    return run, output


@pytest.mark.parametrize("with_boxes", [True, False])
def test_train_saves_a_checkpoint_that_policy_path_loads(request, tmp_path, with_boxes):
    root = request.getfixturevalue("dataset_3cam" if with_boxes else "dataset_3cam_no_boxes")
    repo_id = "local/synthetic_3cam" if with_boxes else "local/synthetic_3cam_no_boxes"
    if with_boxes:
        run, output = request.getfixturevalue("trained_3cam")
    else:
        run = tmp_path / "run"
        output = run_train(["--policy.type=reconvla", *TINY_CLI, *train_args(root, repo_id, run)])
    # Both loss terms are logged separately at every step.
    assert output.count("action_loss:") >= 3 and output.count("recon_loss:") >= 3
    assert ("reconstructs its whole image" in output) is (not with_boxes)

    checkpoint = run / "checkpoints" / "last" / "pretrained_model"
    saved = json.loads((checkpoint / "config.json").read_text())
    assert saved["type"] == "reconvla" and saved["paligemma_variant"] == "tiny"
    # Gaze boxes were targets, not inputs.
    assert not any(key.startswith("observation.gaze_box") for key in saved["input_features"])

    # The checkpoint and its processors reload offline and act.
    action = act_from_checkpoint(ReconVLAPolicy, checkpoint)
    assert action.shape == (1, 14) and torch.isfinite(action).all()

    if with_boxes:
        # --policy.path: LeRobot loads the checkpoint (config and weights) and trains on from it.
        output = run_train(
            [f"--policy.path={checkpoint}", *train_args(root, repo_id, tmp_path / "finetune", steps=2)]
        )
        assert "recon_loss:" in output
        assert (
            tmp_path / "finetune" / "checkpoints" / "last" / "pretrained_model" / "model.safetensors"
        ).exists()


def test_resume_continues_step_optimizer_and_scheduler(tmp_path, trained_3cam):
    import shutil

    from safetensors.torch import load_file

    run = tmp_path / "run"
    shutil.copytree(trained_3cam[0], run, symlinks=True)  # the shared run stays as it is
    first_state = load_file(run / "checkpoints" / "000003" / "training_state" / "optimizer_state.safetensors")
    train_config = run / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    output = run_train(
        [
            f"--config_path={train_config}",
            "--resume=true",
            "--steps=5",
            "--save_freq=5",
            f"--output_dir={run}",
            "--wandb.enable=false",
        ]
    )
    assert "step:4 " in output and "step:5 " in output and "step:1 " not in output

    state_dir = run / "checkpoints" / "last" / "training_state"
    assert json.loads((state_dir / "training_step.json").read_text())["step"] == 5
    scheduler = json.loads((state_dir / "scheduler_state.json").read_text())
    assert scheduler["last_epoch"] == 5
    groups = json.loads((state_dir / "optimizer_param_groups.json").read_text())
    assert [g["initial_lr"] for g in groups] == pytest.approx([2.5e-5, 1e-4])  # backbone, head x4
    optimizer = load_file(state_dir / "optimizer_state.safetensors")
    steps = {float(v) for k, v in optimizer.items() if k.endswith("/step")}
    assert steps == {5.0}  # Adam moments continued from step 3, not restarted
    moment = next(k for k in optimizer if k.endswith("/exp_avg"))
    assert not torch.equal(optimizer[moment], first_state[moment])


def test_pixel_coordinate_gaze_boxes_are_refused_with_one_message_before_training(tmp_path):
    from tests.fixtures.synthetic_dataset import write_synthetic_dataset

    root = tmp_path / "pixel_boxes"
    write_synthetic_dataset(
        root, repo_id="local/pixel_boxes", num_episodes=1, episode_length=4, pixel_boxes=True
    )
    output = run_cli(
        "lerobot-train",
        ["--policy.type=reconvla", *TINY_CLI, *train_args(root, "local/pixel_boxes", tmp_path / "run")],
        expect_ok=False,
    )
    refusals = re.findall(
        r"observation\.gaze_box\.\w+: the dataset's boxes average .*? Divide x0, x1 by", output
    )
    assert len(refusals) == 1, output[-3000:]  # the first camera's, named once
    assert "step:" not in output and not (tmp_path / "run" / "checkpoints").exists()


def test_rename_map_fine_tunes_a_checkpoint_on_renamed_cameras_with_their_gaze_boxes(tmp_path):
    """A checkpoint trained on top/left_wrist/right_wrist, fine-tuned on a dataset whose cameras are named
    as in ALOHA's raw recordings: images and gaze boxes renamed together, every box used."""
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors
    from tests.fixtures.synthetic_dataset import write_synthetic_dataset
    from tests.fixtures.tiny_policy import tiny_config

    renamed = {"top": "cam_high", "left_wrist": "cam_left_wrist", "right_wrist": "cam_right_wrist"}
    root = tmp_path / "raw_names"
    write_synthetic_dataset(root, repo_id="local/raw_names", cameras=tuple(renamed.values()), num_episodes=1)
    checkpoint = tmp_path / "checkpoint"
    config = tiny_config()
    ReconVLAPolicy(config).save_pretrained(checkpoint)
    for processor in make_reconvla_pre_post_processors(config):
        processor.save_pretrained(checkpoint)

    rename_map = {}
    for ours, theirs in renamed.items():
        rename_map[f"observation.images.{theirs}"] = f"observation.images.{ours}"
        rename_map[f"observation.gaze_box.{theirs}"] = f"observation.gaze_box.{ours}"
    output = run_train(
        [
            f"--policy.path={checkpoint}",
            f"--rename_map={json.dumps(rename_map)}",
            "--policy.push_to_hub=false",
            *train_args(root, "local/raw_names", tmp_path / "finetune", steps=2),
        ]
    )
    assert re.findall(r"\bstep:(\d+) ", output) == ["1", "2"]
    assert "recon_loss:" in output
    assert "reconstructs its whole image" not in output  # every camera found its renamed box


def test_held_out_episodes_give_an_eval_loss_during_training(tmp_path, dataset_3cam):
    """--dataset.eval_split holds out the last episode; --eval_steps scores it (action + recon loss)."""
    output = run_train(
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            "--dataset.eval_split=0.5",
            "--eval_steps=1",
            *train_args(dataset_3cam, "local/synthetic_3cam", tmp_path / "run", steps=2),
        ]
    )
    logged = re.findall(r"step (\d+): eval_loss=(\d+\.\d+)", output)
    assert [step for step, _ in logged] == ["1", "2"], output[-3000:]
    eval_losses = [float(loss) for _, loss in logged]
    assert all(loss > 0 for loss in eval_losses)
    assert eval_losses[0] != eval_losses[1]  # a training step came between them


def test_reconstructions_are_logged_to_wandb_as_images_every_n_steps(trained_3cam):
    """wandb in offline mode: with --policy.recon_log_images_freq=2, step 2's pictures (one per camera) are
    in the run's files; the losses lerobot-train logs beside them are plain numbers, none dropped."""
    run, output = trained_3cam
    assert "was ignored as its type" not in output  # LeRobot's logger drops anything not int/float/str
    (run_dir,) = (run / "wandb").glob("offline-run-*")
    images = sorted(
        p.name for p in (run_dir / "files" / "media" / "images" / "train" / "reconstruction").iterdir()
    )
    # One picture per camera in 3 steps: logged at step 2 only.
    assert [name.rsplit("_", 2)[0] for name in images] == ["left_wrist", "right_wrist", "top"], images
    from PIL import Image

    picture = Image.open(next((run_dir / "files" / "media" / "images").rglob("top_*.png")))
    assert picture.height == 256 + 18 and picture.width > 3 * 256  # input | target | reconstruction
