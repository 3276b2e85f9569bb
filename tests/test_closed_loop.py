"""The closed loop, rung by rung: recorded actions replayed through LeRobot's own evaluation loop reach
what the script reached; a tiny ReconVLA trained on one placement succeeds on that placement.

If these pass, a 0 % success rate elsewhere is about learning, not about the loop (action order and
scale, joint names, camera keys, scene placement, the task string, chunk execution).
"""

import json

import numpy as np
import pytest
import torch

from lerobot_policy_reconvla.gaze_box import is_malformed
from tests.fixtures.playback import PlaybackPolicy, identity_processors

TASK = "lift_named"
SIZE = (32, 32)
CAMERAS = ("top", "left_wrist", "right_wrist")


@pytest.fixture(scope="module")
def replay_dataset(tmp_path_factory):
    """Two lift_named episodes (seeds 5, 6) as PNG frames (lossless: the env's pixels, exactly)."""
    from lerobot_policy_reconvla.sim import generate

    root = tmp_path_factory.mktemp("replay") / "lift_named"
    code = generate.main(
        [
            f"--task={TASK}",
            "--num_episodes=2",
            f"--root={root}",
            "--repo_id=local/replay",
            "--seed=5",
            f"--image_size=[{SIZE[0]},{SIZE[1]}]",
            "--images=true",
            "--shadows=false",
            "--workers=1",
        ]
    )
    assert code == 0
    return root


def _episodes(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset("local/replay", root=root)
    sidecar = json.loads((root / "meta" / "scripted_generation.json").read_text())
    for record in sidecar["episodes"]:
        rows = [
            dataset[i]
            for i in range(len(dataset))
            if int(dataset[i]["episode_index"]) == record["episode_index"]
        ]
        yield record, rows


def _replay(rows, seed: int):
    """LeRobot's eval_policy on aloha_multicam, playing back `rows`' actions from the scene of `seed`."""
    from lerobot.envs.factory import make_env
    from lerobot.scripts.lerobot_eval import eval_policy

    from lerobot_policy_reconvla.envs import AlohaMultiCamEnvConfig

    config = AlohaMultiCamEnvConfig(
        task=TASK, observation_height=SIZE[0], observation_width=SIZE[1], shadows=False
    )
    env = make_env(config)["aloha_multicam"][0]
    try:
        policy = PlaybackPolicy(torch.stack([row["action"] for row in rows]))  # (T, 14)
        info = eval_policy(
            env, policy, *identity_processors(), n_episodes=1, start_seed=seed, return_episode_data=True
        )
        return info, set(policy.prompts)
    finally:
        env.close()


@pytest.mark.slow
def test_replay_through_lerobot_eval_reaches_what_the_script_reached(replay_dataset):
    for record, rows in _episodes(replay_dataset):
        info, prompts = _replay(rows, record["seed"])
        episode = info["per_episode"][0]
        assert episode["seed"] == record["seed"]
        assert record["success"] and episode["success"], (record, episode)
        assert prompts == {rows[0]["task"]} == {record["task"]}  # the prompt the policy gets == the dataset's
        # Step by step, the env shows what the dataset recorded: same joint order and scale, same cameras
        # under the same keys, same object placement (the cubes are in the images).
        # One row per step (the observation the policy acted on, its action), then a last row that LeRobot
        # adds after the episode ends; compare the steps.
        data = {key: value[:-1] for key, value in info["episodes"].items()}
        steps = len(data["action"])  # the rollout ends at success, before the recorded episode does
        assert 0 < steps < len(rows)
        recorded = rows[:steps]
        for cam in CAMERAS:  # the generator's boxes are all usable or absent, never malformed
            boxes = torch.stack([r[f"observation.gaze_box.{cam}"] for r in rows])  # (T, 4)
            assert not is_malformed(boxes).any(), cam
        for key in ("action", "observation.state"):
            np.testing.assert_allclose(
                data[key], torch.stack([r[key] for r in recorded]), atol=1e-4, err_msg=key
            )
        for cam in CAMERAS:  # CPU rasterisation differs in a handful of edge pixels from run to run
            key = f"observation.images.{cam}"
            differs = (data[key] - torch.stack([r[key] for r in recorded])).abs() > 1.5 / 255
            assert differs.float().mean() < 1e-3, (key, differs.float().mean())


@pytest.mark.slow
def test_replay_in_another_scene_does_not_succeed(replay_dataset):
    """The check above can fail: one episode's actions, played in the other episode's scene, miss."""
    from lerobot_policy_reconvla.sim.scripted import scripted_object_pose
    from lerobot_policy_reconvla.sim.tasks import scene_for_seed

    (first, rows), (second, _) = list(_episodes(replay_dataset))
    targets = [scripted_object_pose(scene_for_seed(TASK, r["seed"]))[:2] for r in (first, second)]
    assert np.linalg.norm(targets[0] - targets[1]) > 0.05  # the named cubes lie apart
    info, _ = _replay(rows, second["seed"])
    assert not info["per_episode"][0]["success"]


@pytest.mark.slow
def test_tiny_reconvla_trained_on_one_placement_succeeds_there_and_not_with_the_loop_broken(
    tmp_path, monkeypatch
):
    """lerobot-train on perturbed demonstrations of one lift placement, lerobot-eval on that placement: the
    tiny preset, replanning every 10 steps as the demo does, lifts the cube in most episodes.

    The demonstrations are the script's, executed with a smooth perturbation of the arms while the dataset
    records the script's targets (the generator's --action-noise): from one unperturbed demonstration the
    policy reproduces the demonstration's actions on its observations, but closed loop it falls a few steps
    behind, grips the cube high and never lifts it (a state no demonstration shows). Measured with these
    settings: 5 of 5 lifted (and 5 of 5 at scene 0). The same checkpoint, with the loop broken on purpose,
    lifts 0 of 5 each time: the arms' actions swapped in the env, the camera images rotated among the keys,
    or the scene placed by seed 5 (the cube 8 cm away)."""
    from lerobot_policy_reconvla.sim import generate
    from lerobot_policy_reconvla.tools.presets import preset_path
    from tests.fixtures.cli import run_cli, run_train

    root, scene, size = tmp_path / "one_scene", 4, ("96", "128")  # scene 5 places the cube 8 cm away
    assert (
        generate.main(
            [
                "--task=lift",
                "--num_episodes=8",
                f"--root={root}",
                "--repo_id=local/one_scene",
                "--seed=100",
                f"--scene_seed={scene}",
                "--action_noise=0.02",
                f"--image_size=[{size[0]},{size[1]}]",
                "--shadows=false",
                "--workers=1",  # in this process: the data does not depend on the workers
            ]
        )
        == 0
    )
    run_train(
        [
            f"--config_path={preset_path('reconvla_tiny')}",
            "--dataset.repo_id=local/one_scene",
            f"--dataset.root={root}",
            f"--output_dir={tmp_path / 'train'}",
            "--steps=600",
            "--batch_size=8",
            "--save_freq=600",
            "--log_freq=100",
            "--wandb.enable=false",
            "--policy.image_resolution=[112,112]",
            "--env_eval_freq=0",
            "--policy.n_action_steps=10",
            "--policy.scheduler_decay_steps=600",  # the learning rate anneals by the end
            # The same training, cheaper: one loader process decodes the next batch while this one trains,
            # and the prompt ("Pick up the cube.", 7 tokens) is padded to 16 tokens, not 48 (padding is
            # masked out).
            "--num_workers=1",
            "--policy.tokenizer_max_length=16",
        ]
    )
    # 200 steps, not the demonstration's 150: room for a policy that lags the script by a few steps.
    env = [
        "--env.type=aloha_multicam",
        "--env.task=lift",
        f"--env.observation_height={size[0]}",
        f"--env.observation_width={size[1]}",
        "--env.shadows=false",
        f"--env.scene_seed={scene}",
        "--env.episode_length=200",
    ]
    run_cli(
        "lerobot-eval",
        [
            f"--policy.path={tmp_path / 'train/checkpoints/last/pretrained_model'}",
            *env,
            "--eval.n_episodes=5",
            "--eval.batch_size=1",
            f"--output_dir={tmp_path / 'eval'}",
        ],
    )
    info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    max_rewards = info["per_task"][0]["metrics"]["max_rewards"]  # 1 touched, 2 held off the table, 3 success
    assert info["overall"]["n_episodes"] == 5
    assert sum(info["per_task"][0]["metrics"]["successes"]) >= 4, max_rewards

    # The same checkpoint with the loop broken on purpose: none of it may still lift the cube.
    from lerobot_policy_reconvla.sim.env import AlohaMultiCamEnv
    from lerobot_policy_reconvla.sim.render import MultiCameraRenderer

    checkpoint = tmp_path / "train/checkpoints/last/pretrained_model"
    step, render = AlohaMultiCamEnv.step, MultiCameraRenderer.render

    def arms_swapped(env, action):  # the left arm's seven targets sent to the right arm and back
        return step(env, np.concatenate([action[7:], action[:7]]))

    def cameras_rotated(renderer, cameras=None):  # each key gets the next camera's image
        images = render(renderer, cameras)
        names = list(images)
        return {name: images[names[(i + 1) % len(names)]] for i, name in enumerate(names)}

    # First unbroken, through the same path: a `_successes` that could not count a success would pass
    # every "0" below.
    assert _successes(checkpoint, scene, size) >= 1, "unbroken"
    with monkeypatch.context() as broken:
        broken.setattr(AlohaMultiCamEnv, "step", arms_swapped)
        assert _successes(checkpoint, scene, size) == 0, "arms swapped"
    with monkeypatch.context() as broken:
        broken.setattr(MultiCameraRenderer, "render", cameras_rotated)
        assert _successes(checkpoint, scene, size) == 0, "cameras rotated"
    assert _successes(checkpoint, scene + 1, size) == 0, "the next seed's scene"


def _successes(checkpoint, scene: int, size, episodes: int = 2) -> int:
    """Successes of `checkpoint` in `episodes` lift episodes of `scene`, through lerobot-eval's own loop and
    processors (in this process, so the env can be broken on purpose)."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.envs.factory import make_env, make_env_pre_post_processors
    from lerobot.policies.factory import make_policy, make_pre_post_processors
    from lerobot.scripts.lerobot_eval import eval_policy

    from lerobot_policy_reconvla.envs import AlohaMultiCamEnvConfig

    env_config = AlohaMultiCamEnvConfig(
        task="lift",
        observation_height=int(size[0]),
        observation_width=int(size[1]),
        shadows=False,
        scene_seed=scene,
        episode_length=200,
    )
    policy_config = PreTrainedConfig.from_pretrained(checkpoint)
    policy_config.pretrained_path = checkpoint
    policy = make_policy(policy_config, env_cfg=env_config)
    preprocessor, postprocessor = make_pre_post_processors(policy.config, pretrained_path=checkpoint)
    env_preprocessor, env_postprocessor = make_env_pre_post_processors(env_config, policy.config)
    env = make_env(env_config)["aloha_multicam"][0]
    try:
        info = eval_policy(
            env,
            policy,
            env_preprocessor,
            env_postprocessor,
            preprocessor,
            postprocessor,
            n_episodes=episodes,
            start_seed=1000,
        )
    finally:
        env.close()
    return sum(episode["success"] for episode in info["per_episode"])
