"""Shared fixtures: a tiny ReconVLA policy on three cameras and small LeRobotDataset files.

Plain helpers (the tiny config, the in-process CLI runner, the synthetic dataset writer, ...) live in
`tests/fixtures/`.
"""

import os
import signal
from pathlib import Path

import pytest
import torch
import tqdm

# Everything offline: no test may reach the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "offline")

from tests.fixtures.aloha_rig import arms  # noqa: E402,F401  (fixture: four fake Dynamixel buses)
from tests.fixtures.processes import leftovers_after, mark_test_run, marked_processes  # noqa: E402
from tests.fixtures.synthetic_dataset import write_synthetic_dataset  # noqa: E402
from tests.fixtures.tiny_policy import tiny_config  # noqa: E402
from tests.fixtures.tiny_vae import save_tiny_vae  # noqa: E402

# Set before any test module captures os.environ for its commands.
TEST_RUN = mark_test_run()
# A suite started in the background (`cmd &`, nohup) inherits SIGINT ignored, and so would every command
# it starts: a command a test stops with Ctrl-C would never see it. Commands get Python's default back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
LEFTOVER_GRACE_SECONDS = 15  # a killed parent's workers get this long to notice and exit
# Commands run in this process (tests/fixtures/cli.py): tqdm's monitor thread, started by their first progress
# bar and kept for the process's life, would make every later fork (LeRobot's video encoding pool, a data
# loader's workers) the fork of a multi-threaded process, which can deadlock in the child.
tqdm.tqdm.monitor_interval = 0


def pytest_collection_modifyitems(items):
    # The closed loop's 600-step training is the suite's longest test (13 of the 23 minutes of a full run
    # on 2 busy cores): started first, the other pytest-xdist process runs the other files beside it, instead
    # of the suite waiting for it at the end. The rest keeps its order (the sort is stable).
    items.sort(key=lambda item: item.path.name != "test_closed_loop.py")


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_session():
    yield
    leftovers = leftovers_after(TEST_RUN, before=set(), grace=LEFTOVER_GRACE_SECONDS)
    assert not leftovers, f"processes of this test run still alive at its end (killed now): {leftovers}"


@pytest.fixture(autouse=True)
def no_process_outlives_its_test():
    """Fails the test (and kills them) if processes it started are alive after it."""
    before = set(marked_processes(TEST_RUN))
    yield
    leftovers = leftovers_after(TEST_RUN, before, grace=LEFTOVER_GRACE_SECONDS)
    assert not leftovers, f"processes started by this test outlived it (killed now): {leftovers}"


@pytest.fixture
def policy_and_processors():
    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors

    torch.manual_seed(0)
    config = tiny_config()
    policy = ReconVLAPolicy(config)
    preprocessor, postprocessor = make_reconvla_pre_post_processors(config)
    return policy, preprocessor, postprocessor


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory) -> Path:
    """A saved small AutoencoderKL (8x downsampling, 4 latent channels, as recon_vae's default), for
    `recon_vae=`."""
    directory = tmp_path_factory.mktemp("vae") / "tiny_vae"
    save_tiny_vae(directory)
    return directory


@pytest.fixture(scope="session")
def dataset_3cam(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("datasets") / "synthetic_3cam"
    write_synthetic_dataset(root, repo_id="local/synthetic_3cam", gaze_boxes=True)
    return root


@pytest.fixture(scope="session")
def dataset_3cam_no_boxes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("datasets") / "synthetic_3cam_no_boxes"
    write_synthetic_dataset(root, repo_id="local/synthetic_3cam_no_boxes", gaze_boxes=False)
    return root
