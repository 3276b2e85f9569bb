"""Faults users meet, each made for real and survived with a line that names what broke: a training run
killed while it saves a checkpoint, a dataset with a broken video, a disk that fills up."""

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lerobot_policy_reconvla.training.video_check import BrokenVideoError
from tests.fixtures.cli import run_cli, run_train, short_sim_eval_args, train_args
from tests.fixtures.synthetic_dataset import write_synthetic_dataset
from tests.fixtures.tiny_policy import TINY_CLI

# ------------------------------------------------------------------------------------------------------
# A dataset with a broken video file


@pytest.fixture(scope="module")
def video_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "videos"
    write_synthetic_dataset(
        root, repo_id="local/videos", video=True, height=32, width=48, num_episodes=2, episode_length=10
    )
    return root


def break_video(dataset: Path, copy: Path, camera: str, how: str) -> Path:
    """A copy of `dataset` with `camera`'s video cut to half its bytes or replaced by text; returns it."""
    shutil.copytree(dataset, copy)
    (video,) = (copy / "videos" / f"observation.images.{camera}").rglob("*.mp4")
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2] if how == "truncated" else b"this is not a video\n")
    return video


@pytest.mark.parametrize(("camera", "how"), [("left_wrist", "truncated"), ("top", "not a video")])
def test_a_broken_video_stops_training_before_any_step_naming_the_file_and_episodes(
    video_dataset, tmp_path, camera, how
):
    root = tmp_path / "broken"
    video = break_video(video_dataset, root, camera, how)
    run = tmp_path / "run"
    with pytest.raises(BrokenVideoError) as refused:
        run_train(["--policy.type=reconvla", *TINY_CLI, *train_args(root, "local/videos", run, steps=2)])
    message = str(refused.value)
    assert str(video) in message and f"observation.images.{camera}" in message
    assert "episode(s) [0, 1]" in message and "nothing was trained" in message
    assert not (run / "checkpoints").exists()  # stopped before the first optimizer step


def test_the_intact_video_dataset_trains(video_dataset, tmp_path):
    # The same check passes the dataset the broken copies came from (it refuses only what is broken).
    output = run_train(
        ["--policy.type=reconvla", *TINY_CLI, *train_args(video_dataset, "local/videos", tmp_path / "run", 1)]
    )
    assert "step:1 " in output


# ------------------------------------------------------------------------------------------------------
# A training run killed while it writes a checkpoint


def cut_off_checkpoint(run: Path, step_dir: str, previous: str) -> Path:
    """What a kill during the save of `step_dir` leaves: LeRobot writes the weights, the configs, the
    processors, the training state, and points `last` at the new checkpoint only after all of them. Here
    the weights are cut short, the processors and training state never written, `last` still at
    `previous`."""
    checkpoint = run / "checkpoints" / step_dir
    weights = checkpoint / "pretrained_model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    for processor in (checkpoint / "pretrained_model").glob("policy_*processor*"):
        processor.unlink()
    shutil.rmtree(checkpoint / "training_state")
    last = run / "checkpoints" / "last"
    last.unlink()
    last.symlink_to(previous)
    return checkpoint


def test_a_checkpoint_cut_off_mid_save_is_refused_by_name_and_resume_continues_from_the_last_complete(
    dataset_3cam, tmp_path
):
    run = tmp_path / "run"
    args = train_args(dataset_3cam, "local/synthetic_3cam", run, steps=4)
    run_train(["--policy.type=reconvla", *TINY_CLI, *args, "--save_freq=2"])
    checkpoint = cut_off_checkpoint(run, "000004", previous="000002")

    # Evaluating the cut-off checkpoint: one line naming its weight file, no traceback.
    output = run_cli(
        "lerobot-eval",
        short_sim_eval_args(checkpoint / "pretrained_model", tmp_path / "eval"),
        expect_ok=False,
    )
    assert f"{checkpoint / 'pretrained_model' / 'model.safetensors'} is truncated or corrupt" in output

    # --resume=true continues from the last complete checkpoint (step 2) and writes step 4 again, whole.
    output = run_train(
        [
            f"--config_path={run / 'checkpoints' / 'last' / 'pretrained_model' / 'train_config.json'}",
            "--resume=true",
            f"--output_dir={run}",
        ]
    )
    assert "step:3 " in output and "step:4 " in output and "step:2 " not in output
    assert os.readlink(run / "checkpoints" / "last") == "000004"
    state = json.loads((checkpoint / "training_state" / "training_step.json").read_text())
    assert state["step"] == 4
    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy

    ReconVLAPolicy.from_pretrained(checkpoint / "pretrained_model")  # complete again: loads strictly
    assert sorted(p.name for p in (checkpoint / "pretrained_model").glob("policy_*processor*.json")) == [
        "policy_postprocessor.json",
        "policy_preprocessor.json",
    ]


# ------------------------------------------------------------------------------------------------------
# A disk that fills up: the file-size limit (ulimit -f) makes the kernel refuse a write past `limit` bytes
# with EFBIG, as a full disk refuses one with ENOSPC; neither needs privileges nor a mounted file system.


def limited_to(limit: int):
    """preexec_fn: files of at most `limit` bytes, a write past it failing (not killing) the command."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run_limited(module: str, args: list[str], limit: int) -> subprocess.CompletedProcess:
    """`python -m module args` with the file-size limit (a process, since the limit is the process's)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        preexec_fn=limited_to(limit),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1"},
    )


def assert_no_space_line(result: subprocess.CompletedProcess, prog: str) -> None:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert re.search(rf"{prog}: error: no space left .*File too large", result.stderr), result.stderr[-3000:]


def generate_args(root: Path, episodes: int) -> list[str]:
    return [
        "--task=transfer_cube",
        f"--num_episodes={episodes}",
        f"--root={root}",
        "--repo_id=local/full",
        "--cameras=[top,left_wrist]",
        "--image_size=[32,48]",
        "--episode_length=12",
        "--keep_failed=true",
        "--workers=1",
    ]


def episodes_data(root: Path) -> tuple[list[int], np.ndarray]:
    """The committed seeds and every frame's state and action, as LeRobot reads them."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_policy_reconvla.sim.recovery import GenerationLedger

    seeds = [episode["seed"] for episode in GenerationLedger.read(root).episodes]
    frames = LeRobotDataset("local/full", root=root).hf_dataset.with_format("numpy")
    return seeds, np.concatenate([np.stack(frames["observation.state"]), np.stack(frames["action"])], 1)


def test_a_full_disk_stops_the_generator_in_one_line_keeping_its_committed_episodes(tmp_path):
    reference = tmp_path / "reference"
    run_cli("reconvla-generate", generate_args(reference, 2))  # uninterrupted
    # Each episode's metadata file (meta/episodes/...) is the largest file an episode writes; a limit
    # below it and above every other file fails exactly the save of a new episode.
    episode_files = [p.stat().st_size for p in (reference / "meta/episodes").rglob("*.parquet")]
    others = [p.stat().st_size for p in reference.rglob("*") if p.is_file() and "meta/episodes" not in str(p)]
    assert max(others) < min(episode_files)
    limit = (max(others) + min(episode_files)) // 2

    root = tmp_path / "full"
    run_cli("reconvla-generate", generate_args(root, 1))
    result = run_limited("lerobot_policy_reconvla.sim.generate", generate_args(root, 2), limit)
    assert_no_space_line(result, "reconvla-generate")
    assert "rolled back to its last commit, its 1 committed episode(s) kept" in result.stderr
    seeds, _ = episodes_data(root)  # loads at once, with the episode committed before the disk filled
    assert seeds == [0]

    # Space back: the same command goes on from the committed episode, and ends with the dataset an
    # uninterrupted run writes.
    output = run_cli("reconvla-generate", generate_args(root, 2))
    assert "interrupted" not in output  # rolled back already
    got, want = episodes_data(root), episodes_data(reference)
    assert got[0] == want[0] == [0, 1]
    np.testing.assert_array_equal(got[1], want[1])


def test_a_latent_cache_that_does_not_fit_is_refused_before_encoding_and_builds_once_space_is_back(
    dataset_3cam, tiny_vae_dir, tmp_path
):
    args = [
        "--dataset.repo_id=local/synthetic_3cam",
        f"--dataset.root={dataset_3cam}",
        *TINY_CLI,
        "--policy.type=reconvla",
        "--policy.recon_target=vae",
        f"--policy.recon_vae={tiny_vae_dir}",
        "--policy.recon_image_size=128",
        "--num_workers=0",
    ]
    reference = tmp_path / "reference"
    run_cli("reconvla-cache-latents", [*args, f"--cache_dir={reference}"])
    posterior = max(p.stat().st_size for p in reference.glob("*.posterior.npy"))

    # Room for every file but a camera's posterior: the build stops while creating its files, before
    # encoding a frame, and gives the space back.
    cache = tmp_path / "latents"
    result = run_limited(
        "lerobot_policy_reconvla.training.latent_cache", [*args, f"--cache_dir={cache}"], posterior // 2
    )
    assert_no_space_line(result, "reconvla-cache-latents")
    assert "caching latents" not in result.stderr  # no frame encoded
    assert not cache.exists() and not list(tmp_path.glob("latents.*"))  # nothing half-built left

    run_cli("reconvla-cache-latents", [*args, f"--cache_dir={cache}"])
    for path in sorted(reference.glob("*.npy")):
        np.testing.assert_array_equal(np.load(cache / path.name), np.load(path), err_msg=path.name)
