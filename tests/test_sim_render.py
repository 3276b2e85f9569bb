"""The persistent multi-camera renderer: gym-aloha's images (exactly, or within a stated tolerance)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from lerobot_policy_reconvla.sim.env import AlohaMultiCamEnv
from lerobot_policy_reconvla.sim.render import MultiCameraRenderer
from lerobot_policy_reconvla.sim.scripted import scripted_episode
from lerobot_policy_reconvla.sim.tasks import make_task_environment

CAMERAS = ["top", "left_wrist", "right_wrist"]
SIZE = (224, 224)
# The default shadow map (1024 px over half the scene extent instead of 4096 px over all of it) moves
# shadow edges by a texel: measured over both tasks, 3 cameras, 224 x 224 and 480 x 640, mean absolute
# difference <= 0.19 grey levels and <= 1.1 % of pixels differing by more than 8 levels.
MEAN_TOLERANCE = 0.5  # grey levels, mean over the image
EDGE_PIXELS_TOLERANCE = 0.02  # fraction of pixels differing by more than 8 levels


def scenes(task: str, seed: int, steps=(60, 150)):
    """Two physics in the same states along a scripted demonstration (arms moved, objects grasped)."""
    episode = scripted_episode(task, seed, episode_length=max(steps))
    envs = [make_task_environment(task), make_task_environment(task)]
    for env in envs:
        episode.scene.apply(env)
        env.reset()
    for t, action in enumerate(episode.actions, start=1):
        for env in envs:
            env.step(action)
        if t in steps:
            yield envs[0].physics, envs[1].physics


def gym_aloha_images(physics, size=SIZE) -> dict[str, np.ndarray]:
    """What gym-aloha renders: dm_control's Physics.render with the scene's own settings."""
    return {cam: physics.render(height=size[0], width=size[1], camera_id=cam) for cam in CAMERAS}


def test_exact_settings_render_gym_alohas_pixels():
    for ours, reference in scenes("transfer_cube", seed=1):
        renderer = MultiCameraRenderer(ours, CAMERAS, SIZE, shadow_map_size=None, shadow_clip=None)
        images, expected = renderer.render(), gym_aloha_images(reference)
        for cam in CAMERAS:
            assert images[cam].flags.c_contiguous and images[cam].dtype == np.uint8
            np.testing.assert_array_equal(images[cam], expected[cam], err_msg=cam)


@pytest.mark.parametrize("task", ["insertion", "transfer_cube"])
def test_default_settings_stay_within_the_stated_tolerance(task):
    renderer = None
    for ours, reference in scenes(task, seed=2):
        renderer = renderer or MultiCameraRenderer(ours, CAMERAS, SIZE)  # persistent: same cameras every step
        images, expected = renderer.render(), gym_aloha_images(reference)
        for cam in CAMERAS:
            diff = np.abs(images[cam].astype(int) - expected[cam].astype(int))  # (H, W, 3)
            assert diff.mean() <= MEAN_TOLERANCE, (cam, diff.mean())
            assert (diff.max(axis=-1) > 8).mean() <= EDGE_PIXELS_TOLERANCE, (
                cam,
                (diff.max(axis=-1) > 8).mean(),
            )
            assert diff.any() or cam != "top"  # the settings do act: shadow edges moved by a texel somewhere


def test_no_shadows_is_a_visible_change():
    physics, reference = next(scenes("transfer_cube", seed=0, steps=(60,)))
    image = MultiCameraRenderer(physics, ["top"], SIZE, shadows=False).render()["top"]
    diff = np.abs(image.astype(int) - gym_aloha_images(reference)["top"].astype(int))
    assert (diff.max(axis=-1) > 8).mean() > 0.02  # the arms' shadows are gone from the table


def test_settings_cannot_change_after_the_physics_rendered():
    physics = make_task_environment("transfer_cube").physics
    physics.render(height=32, width=32, camera_id="top")  # context made with gym-aloha's 4096 px shadow map
    with pytest.raises(
        ValueError, match=r"rendered before with other settings \(shadow_map_size, shadow_clip\)"
    ):
        MultiCameraRenderer(physics, ["top"], (32, 32))
    MultiCameraRenderer(physics, ["top"], (32, 32), shadow_map_size=None, shadow_clip=None)  # the same: fine


def test_bad_arguments_name_the_field():
    physics = make_task_environment("transfer_cube").physics
    with pytest.raises(
        ValueError, match=r"image_size must be \(height, width\) with positive values, got \(0, 8\)"
    ):
        MultiCameraRenderer(physics, ["top"], (0, 8))
    with pytest.raises(ValueError, match="shadow_map_size must be positive or None, got -1"):
        MultiCameraRenderer(physics, ["top"], (8, 8), shadow_map_size=-1)


def test_images_larger_than_gym_alohas_buffer():
    physics = make_task_environment("transfer_cube").physics
    image = MultiCameraRenderer(physics, ["top"], (720, 960)).render()["top"]  # buffer grows from 640 x 480
    assert image.shape == (720, 960, 3) and image.std() > 0


def test_env_render_is_the_observations_first_camera():
    env = AlohaMultiCamEnv(task="transfer_cube", cameras=["left_wrist", "top"], image_size=(48, 64))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.render(), obs["pixels"]["left_wrist"])
    obs, *_ = env.step(obs["agent_pos"])
    frame = env.render()
    np.testing.assert_array_equal(frame, obs["pixels"]["left_wrist"])
    frame[:] = 0  # a copy: the observation keeps its pixels
    assert obs["pixels"]["left_wrist"].any()


def test_shadows_switch_reaches_the_env_and_its_lerobot_config():
    from lerobot_policy_reconvla.envs import AlohaMultiCamEnvConfig

    assert AlohaMultiCamEnvConfig(shadows=False).gym_kwargs["shadows"] is False
    images = {}
    for shadows in (True, False):
        env = AlohaMultiCamEnv(task="transfer_cube", cameras=["top"], image_size=(96, 128), shadows=shadows)
        images[shadows] = env.reset(seed=0)[0]["pixels"]["top"].astype(int)
    assert (np.abs(images[True] - images[False]).max(axis=-1) > 8).mean() > 0.02
