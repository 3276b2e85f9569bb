"""Real ALOHA dataset layouts train without code changes: Mobile ALOHA (3 cameras) and static ALOHA
(4 cameras, any three chosen), 480x640 video frames with LeRobot's exact feature names."""

import pytest

from tests.fixtures.cli import run_cli, run_train, train_args
from tests.fixtures.synthetic_dataset import write_synthetic_dataset
from tests.fixtures.tiny_policy import TINY_CLI

pytestmark = pytest.mark.slow

MOBILE_ALOHA = ("cam_high", "cam_left_wrist", "cam_right_wrist")
STATIC_ALOHA = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")


@pytest.fixture(scope="module")
def static_aloha_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("aloha") / "static"
    write_synthetic_dataset(
        root,
        "local/aloha_static_4cam",
        cameras=STATIC_ALOHA,
        height=480,
        width=640,
        num_episodes=2,
        episode_length=8,
        gaze_boxes=False,
        video=True,
        task="Pick up the cup.",
    )
    return root


def test_mobile_aloha_layout_trains(tmp_path):
    root = tmp_path / "mobile"
    write_synthetic_dataset(
        root,
        "local/aloha_mobile_3cam",
        cameras=MOBILE_ALOHA,
        height=480,
        width=640,
        num_episodes=2,
        episode_length=8,
        gaze_boxes=False,
        video=True,
        task="Wipe the table.",
    )
    output = run_train(
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            *train_args(root, "local/aloha_mobile_3cam", tmp_path / "run", 2),
        ]
    )
    assert output.count("recon_loss:") >= 2
    assert (tmp_path / "run" / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").exists()


def test_static_aloha_trains_on_three_chosen_cameras(tmp_path, static_aloha_dataset):
    output = run_train(
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            '--policy.cameras=["cam_high", "cam_left_wrist", "cam_right_wrist"]',
            *train_args(static_aloha_dataset, "local/aloha_static_4cam", tmp_path / "run", 2),
        ]
    )
    assert output.count("recon_loss:") >= 2
    config = (tmp_path / "run" / "checkpoints" / "last" / "pretrained_model" / "config.json").read_text()
    assert "observation.images.cam_low" not in config and "observation.images.cam_high" in config


def test_configured_cameras_missing_from_the_dataset_fail_before_training(tmp_path, static_aloha_dataset):
    output = run_cli(
        "lerobot-train",
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            '--policy.cameras=["top"]',
            *train_args(static_aloha_dataset, "local/aloha_static_4cam", tmp_path / "run", 2),
        ],
        expect_ok=False,
    )
    assert (
        "['top'] not among the input cameras ['cam_high', 'cam_low', 'cam_left_wrist', 'cam_right_wrist']"
        in output
    )
    assert "step:1 " not in output
    assert not (tmp_path / "run" / "checkpoints").exists()
