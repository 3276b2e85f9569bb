"""`lerobot-eval` runs the registered `aloha_multicam` env, loaded from the preset file, for one short
episode."""

import json

import pytest
import torch

from tests.fixtures.cli import run_cli, short_sim_eval_args
from tests.fixtures.tiny_policy import tiny_config

CAMERAS = ("top", "left_wrist", "right_wrist")


@pytest.mark.slow
def test_lerobot_eval_runs_the_env_from_the_preset(tmp_path):
    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors

    # A trivial (untrained, tiny) ReconVLA policy saved as lerobot-eval loads it: --policy.path=<dir>.
    torch.manual_seed(0)
    config = tiny_config(cameras=CAMERAS, image_shape=(3, 32, 32))
    policy_dir = tmp_path / "policy"
    ReconVLAPolicy(config).save_pretrained(policy_dir)
    for processor in make_reconvla_pre_post_processors(config):
        processor.save_pretrained(policy_dir)

    out = tmp_path / "eval"
    run_cli("lerobot-eval", short_sim_eval_args(policy_dir, out))
    info = json.loads((out / "eval_info.json").read_text())
    overall = info["overall"]
    assert overall["n_episodes"] == 1
    assert overall["pc_success"] == 0.0  # 4 steps cannot transfer the cube
    # The env config came from the preset (task) and the CLI (episode length) together.
    assert list(out.glob("videos/**/*.mp4")), "lerobot-eval rendered no episode video (env.render)"
