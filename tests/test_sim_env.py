"""The three-camera ALOHA env: cameras, errors, gaze boxes checked against MuJoCo's segmentation."""

import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
import torch

from lerobot_policy_reconvla.envs import AlohaMultiCamEnvConfig
from lerobot_policy_reconvla.sim.constants import SCENE_CAMERAS, TASK_DESCRIPTIONS
from lerobot_policy_reconvla.sim.env import AlohaMultiCamEnv
from lerobot_policy_reconvla.sim.gaze import ABSENT_BOX, gaze_box, object_geom_ids
from lerobot_policy_reconvla.sim.tasks import TASK_SPECS

SMALL = (48, 64)  # (H, W)


@pytest.fixture(scope="module")
def cube_env():
    env = AlohaMultiCamEnv(task="transfer_cube", cameras=list(SCENE_CAMERAS), image_size=(96, 128))
    env.reset(seed=0)
    return env


@pytest.mark.parametrize("task", ["insertion", "transfer_cube"])
def test_renders_every_named_camera_at_the_asked_shape(task):
    env = AlohaMultiCamEnv(task=task, cameras=["top", "left_wrist", "right_wrist", "angle"], image_size=SMALL)
    obs, info = env.reset(seed=1)
    assert list(obs["pixels"]) == ["top", "left_wrist", "right_wrist", "angle"]
    for image in obs["pixels"].values():
        assert image.shape == (*SMALL, 3) and image.dtype == np.uint8 and image.std() > 0
    assert obs["agent_pos"].shape == (14,)
    obs, reward, terminated, truncated, info = env.step(obs["agent_pos"])
    assert set(info) == {"is_success", "gaze_boxes"} and set(info["gaze_boxes"]) == set(obs["pixels"])
    assert env.task_description == TASK_DESCRIPTIONS[task]
    assert env.observation_space.contains(obs)


def test_scene_camera_list_matches_the_mujoco_model(cube_env):
    model = cube_env.physics.model
    assert tuple(model.id2name(i, "camera") for i in range(model.ncam)) == SCENE_CAMERAS


def test_unknown_camera_or_task_is_a_clear_error():
    with pytest.raises(
        ValueError,
        match=r"unknown camera\(s\) \['cam_high'\]; valid cameras: \['left_pillar'.*'right_wrist'\]",
    ):
        AlohaMultiCamEnv(task="insertion", cameras=["top", "cam_high"])
    with pytest.raises(
        ValueError,
        match=(
            r"unknown task 'stack'; valid tasks: "
            r"\['insertion', 'transfer_cube', 'lift', 'lift_named', 'lift_pair'\]"
        ),
    ):
        AlohaMultiCamEnv(task="stack")
    # The LeRobot config refuses them too, before any simulator is built.
    with pytest.raises(ValueError, match="valid cameras"):
        AlohaMultiCamEnvConfig(cameras=["cam_high"])
    with pytest.raises(ValueError, match="valid tasks"):
        AlohaMultiCamEnvConfig(task="AlohaInsertion-v0")


def test_episode_truncates_at_episode_length():
    env = AlohaMultiCamEnv(task="transfer_cube", cameras=["top"], image_size=(8, 8), episode_length=3)
    obs, _ = env.reset(seed=0)
    flags = [env.step(obs["agent_pos"])[3] for _ in range(3)]
    assert flags == [False, False, True]


def _segmentation_box(physics, camera, geom_ids, size):
    """Normalised bbox of the pixels MuJoCo's segmentation render assigns to `geom_ids`."""
    seg = physics.render(height=size[0], width=size[1], camera_id=camera, segmentation=True)  # (H, W, 2)
    mask = np.isin(seg[..., 0], geom_ids) & (seg[..., 1] == 5)  # 5 = mjOBJ_GEOM
    if not mask.any():
        return None
    rows, cols = np.nonzero(mask)
    return np.array(
        [cols.min() / size[1], rows.min() / size[0], (cols.max() + 1) / size[1], (rows.max() + 1) / size[0]]
    )


def test_cube_box_in_top_camera_contains_its_projected_centre_and_matches_segmentation(cube_env):
    physics, size = cube_env.physics, (240, 320)
    geoms = object_geom_ids(physics, TASK_SPECS["transfer_cube"].object_bodies)
    box = gaze_box(physics, "top", geoms, size)

    # Independent projection of the cube centre with MuJoCo's own camera matrices (mjv-style pinhole).
    cam = physics.model.name2id("top", "camera")
    rel = physics.named.data.xpos["box"] - physics.data.cam_xpos[cam]
    x, y, z = rel @ physics.data.cam_xmat[cam].reshape(3, 3)
    f = 0.5 * size[0] / np.tan(np.deg2rad(physics.model.cam_fovy[cam]) / 2)
    centre = np.array([(size[1] / 2 + f * x / -z) / size[1], (size[0] / 2 - f * y / -z) / size[0]])
    assert box[0] < centre[0] < box[2] and box[1] < centre[1] < box[3]

    seg = _segmentation_box(physics, "top", geoms, size)
    assert seg is not None
    # A box's silhouette spans exactly its projected corners: agree to within one pixel.
    np.testing.assert_allclose(box, seg, atol=1.0 / min(size))
    assert 0 < box[2] - box[0] < 0.2  # a 4 cm cube, not the whole image


# exact: the cube is fully visible there at seed 0; otherwise a gripper hides part of it (occlusion is
# not modelled), so the segmentation must lie inside the box.
@pytest.mark.parametrize(
    "camera,exact", [("angle", True), ("left_pillar", True), ("front_close", False), ("left_wrist", False)]
)
def test_boxes_match_segmentation_in_other_cameras(cube_env, camera, exact):
    physics, size = cube_env.physics, (240, 320)
    geoms = object_geom_ids(physics, TASK_SPECS["transfer_cube"].object_bodies)
    box, seg = gaze_box(physics, camera, geoms, size), _segmentation_box(physics, camera, geoms, size)
    if seg is None:  # out of view (or hidden): the box must say absent or lie outside the visible part
        assert np.array_equal(box, ABSENT_BOX) or camera == "left_wrist"
    else:
        # Clipped to the image; occlusion can shrink the segmentation, never grow it past the box.
        tol = 1.0 / min(size)
        assert (box[:2] <= seg[:2] + tol).all() and (box[2:] >= seg[2:] - tol).all()
        if exact:
            np.testing.assert_allclose(box, seg, atol=tol)


def test_box_is_absent_when_the_object_is_out_of_view():
    env = AlohaMultiCamEnv(task="transfer_cube", cameras=["top", "right_wrist"], image_size=SMALL)
    env.reset(seed=0)
    physics = env.physics
    geoms = object_geom_ids(physics, ["box"])
    # Behind the top camera (which looks down at the table from y=0.6, z=0.8) and far off to the side.
    for position in ([0.0, 0.6, 1.5], [3.0, -2.0, 0.05]):
        physics.named.data.qpos["red_box_joint"][:3] = position
        physics.forward()
        assert np.array_equal(gaze_box(physics, "top", geoms, SMALL), ABSENT_BOX)
        assert _segmentation_box(physics, "top", geoms, SMALL) is None
    assert np.array_equal(env.gaze_boxes()["top"], ABSENT_BOX)


def test_insertion_box_is_the_union_of_peg_and_socket():
    env = AlohaMultiCamEnv(task="insertion", cameras=["top"], image_size=(240, 320), gaze_min_size=0)
    _, info = env.reset(seed=2)
    physics = env.physics
    peg = gaze_box(physics, "top", object_geom_ids(physics, ["peg"]), (240, 320))
    socket = gaze_box(physics, "top", object_geom_ids(physics, ["socket"]), (240, 320))
    union = np.array(
        [min(peg[0], socket[0]), min(peg[1], socket[1]), max(peg[2], socket[2]), max(peg[3], socket[3])]
    )
    np.testing.assert_allclose(info["gaze_boxes"]["top"], union, atol=1e-6)
    seg = _segmentation_box(physics, "top", object_geom_ids(physics, ["peg", "socket"]), (240, 320))
    np.testing.assert_allclose(info["gaze_boxes"]["top"], seg, atol=1.0 / 240)


def test_env_config_features_follow_the_cameras():
    cfg = AlohaMultiCamEnvConfig(
        task="transfer_cube", cameras=["top", "right_wrist"], observation_height=96, observation_width=128
    )
    assert cfg.features_map == {
        "action": "action",
        "agent_pos": "observation.state",
        "pixels/top": "observation.images.top",
        "pixels/right_wrist": "observation.images.right_wrist",
    }
    assert cfg.features["pixels/top"].shape == (96, 128, 3)
    assert cfg.gym_kwargs["image_size"] == (96, 128) and cfg.gym_kwargs["max_episode_steps"] == 400
    assert cfg.task_description == TASK_DESCRIPTIONS["transfer_cube"]
    # LeRobot's own factory path builds it (gym registry id + string entry point).
    from lerobot.envs.factory import make_env

    envs = make_env(
        AlohaMultiCamEnvConfig(cameras=["top"], observation_height=8, observation_width=8, episode_length=2)
    )
    vec = envs["aloha_multicam"][0]
    obs, info = vec.reset(seed=[0])
    assert obs["pixels"]["top"].shape == (1, 8, 8, 3) and obs["agent_pos"].shape == (1, 14)
    assert vec.call("task_description") == (TASK_DESCRIPTIONS["insertion"],)
    assert vec.call("_max_episode_steps") == (2,)
    vec.close()


def test_gaze_boxes_grow_to_the_minimum_size_around_their_centre():
    from lerobot_policy_reconvla.sim.gaze import widen_box

    size = (96, 128)  # (H, W): short side 96 px, 0.25 of it = 24 px
    box = widen_box(np.array([0.5, 0.5, 0.52, 0.52], dtype=np.float32), size, 0.25)
    np.testing.assert_allclose([(box[2] - box[0]) * 128, (box[3] - box[1]) * 96], [24, 24], atol=1e-4)
    np.testing.assert_allclose([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], [0.51, 0.51], atol=1e-6)
    corner = widen_box(np.array([0.97, 0.0, 1.0, 0.02], dtype=np.float32), size, 0.25)  # shifted inside
    np.testing.assert_allclose(corner, [1 - 24 / 128, 0.0, 1.0, 0.25], atol=1e-6)
    large = np.array([0.1, 0.2, 0.6, 0.9], dtype=np.float32)
    np.testing.assert_array_equal(widen_box(large, size, 0.25), large)
    np.testing.assert_array_equal(widen_box(ABSENT_BOX, size, 0.25), ABSENT_BOX)
    np.testing.assert_array_equal(widen_box(box, size, 0.0), box)


def test_lift_named_names_one_cube_and_gazes_at_it():
    from lerobot_policy_reconvla.sim.constants import CUBE_COLOURS, task_instructions
    from lerobot_policy_reconvla.sim.tasks import CUBE_BODIES, NAMED_MIN_SEPARATION

    env = AlohaMultiCamEnv(task="lift_named", cameras=["top"], image_size=(96, 128), gaze_min_size=0)
    named = set()
    for seed in range(6):
        _, info = env.reset(seed=seed)
        target = env.scene.target
        named.add(target)
        assert env.task_description == f"Pick up the {target} cube." in task_instructions("lift_named")
        centres = env.physics.data.qpos[16:].reshape(len(CUBE_COLOURS), 7)[:, :2]  # (3, 2) cube x, y
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(3, 1)]
        assert gaps.min() >= NAMED_MIN_SEPARATION
        expected = gaze_box(
            env.physics, "top", object_geom_ids(env.physics, [CUBE_BODIES[target]]), (96, 128)
        )
        np.testing.assert_array_equal(info["gaze_boxes"]["top"], expected)
        assert info["first_lifted"] == ""  # the cubes drop into place at reset: nothing is lifted
    assert len(named) > 1  # the seed picks the cube


def _pair_slots_in_physics(env) -> list[int]:
    """lift_pair: the slot (index into PAIR_SLOTS) of the red and of the green cube, where the physics has
    them now."""
    from lerobot_policy_reconvla.sim.tasks import PAIR_SLOTS

    centres = env.physics.data.qpos[16:].reshape(2, 7)[:, :2]  # (2, 2) red, green x, y
    return [int(np.argmin(np.linalg.norm(np.asarray(PAIR_SLOTS) - c, axis=1))) for c in centres]


def test_lift_pair_puts_each_cube_in_its_own_slot_and_names_either():
    from lerobot_policy_reconvla.sim.constants import task_instructions
    from lerobot_policy_reconvla.sim.tasks import CUBE_BODIES, PAIR_JITTER, PAIR_SLOTS, scene_cubes

    env = AlohaMultiCamEnv(task="lift_pair", cameras=["top"], image_size=(96, 128), gaze_min_size=0)
    assert scene_cubes("lift_pair") == ("red", "green")
    layouts, named = set(), set()
    for seed in range(8):
        _, info = env.reset(seed=seed)
        target = env.scene.target
        named.add(target)
        assert env.task_description == f"Pick up the {target} cube." in task_instructions("lift_pair")
        centres = env.physics.data.qpos[16:].reshape(2, 7)[:, :2]  # (2, 2) red, green x, y
        slots = _pair_slots_in_physics(env)
        assert sorted(slots) == [0, 1]  # one cube per slot
        assert (
            np.abs(centres - np.asarray(PAIR_SLOTS)[slots]).max() <= PAIR_JITTER + 1e-3
        )  # + the drop onto the table
        layouts.add(tuple(slots))
        assert [env.scene.slot(colour) for colour in ("red", "green")] == slots  # as placed, read back
        expected = gaze_box(
            env.physics, "top", object_geom_ids(env.physics, [CUBE_BODIES[target]]), (96, 128)
        )
        np.testing.assert_array_equal(info["gaze_boxes"]["top"], expected)
    assert layouts == {(0, 1), (1, 0)} and named == {"red", "green"}  # the seed decides both


def test_outcome_log_records_each_finished_episode(tmp_path):
    from lerobot_policy_reconvla.sim.scripted import scripted_episode

    log = tmp_path / "outcomes.jsonl"
    env = AlohaMultiCamEnv(
        task="lift_named", cameras=["top"], image_size=(8, 8), gaze_boxes=False, outcome_log=str(log)
    )
    episode = scripted_episode("lift_named", 2)
    env.reset(seed=2)
    for action in episode.actions:
        *_, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    env.reset(seed=3)
    for _ in range(env.episode_length):  # standing still: nothing lifted, truncated
        env.step(episode.actions[0])
    first, second = [json.loads(line) for line in log.read_text().splitlines()]
    assert first == {
        "seed": 2,
        "scene_seed": 2,
        "task": episode.scene.instruction,
        "target": episode.scene.target,
        "success": True,
        "max_reward": 3.0,  # the success reward of a lift
        "last_reward": 3.0,  # the episode ends on success
        "steps": first["steps"],
        "first_lifted": episode.scene.target,
        "held_steps": first["held_steps"],
        "max_held_height_cm": first["max_held_height_cm"],
    }
    assert first["steps"] < 150 and terminated
    assert 0 < first["held_steps"] < first["steps"] and first["max_held_height_cm"] >= 5.0  # LIFT_HEIGHT
    assert (
        second["seed"] == 3
        and second["scene_seed"] == 3
        and not second["success"]
        and second["max_reward"] == 0.0  # the gripper never reached a cube
        and second["last_reward"] == 0.0
        and second["held_steps"] == 0
        and second["max_held_height_cm"] == 0.0
        and second["first_lifted"] == ""
        and second["steps"] == 150
    )


def test_lift_pair_outcome_log_names_the_slot_of_the_first_cube_lifted(tmp_path):
    """The scripted lift of the named cube logs that cube's slot, read from where the physics put it; an
    episode that lifts nothing logs no slot."""
    from lerobot_policy_reconvla.sim.scripted import scripted_episode
    from lerobot_policy_reconvla.sim.tasks import scene_cubes

    log = tmp_path / "outcomes.jsonl"
    env = AlohaMultiCamEnv(
        task="lift_pair", cameras=["top"], image_size=(8, 8), gaze_boxes=False, outcome_log=str(log)
    )
    placed_slots = []
    for seed in (0, 6):  # the named cube in slot 0, then in slot 1
        episode = scripted_episode("lift_pair", seed)
        env.reset(seed=seed)
        placed_slots.append(_pair_slots_in_physics(env)[scene_cubes("lift_pair").index(env.scene.target)])
        for action in episode.actions:
            *_, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
    env.reset(seed=2)
    for _ in range(env.episode_length):  # standing still: nothing lifted
        env.step(episode.actions[0])
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["success"] for line in lines] == [True, True, False]
    assert placed_slots == [0, 1]
    assert [line["first_lifted_slot"] for line in lines] == [0, 1, None]


def test_outcome_log_tells_a_cube_that_slipped_from_one_never_raised(tmp_path):
    """The scripted lift, with the gripper opened once the held cube has risen 2 cm: the log shows a hold
    that ended (last reward below held) and a rise short of a success's 5 cm."""
    from lerobot_policy_reconvla.sim.scripted import scripted_episode
    from lerobot_policy_reconvla.sim.tasks import LIFT_HELD_REWARD, cube_height

    log = tmp_path / "outcomes.jsonl"
    env = AlohaMultiCamEnv(
        task="lift", cameras=["top"], image_size=(8, 8), gaze_boxes=False, outcome_log=str(log)
    )
    actions = np.asarray(scripted_episode("lift", 2).actions)  # (steps, 14); index 13: the right gripper
    open_gripper = actions[:, 13].max()  # the script opens fully before the grasp
    env.reset(seed=2)
    held = let_go = False
    for step in range(env.episode_length):
        # The cube starts 3 cm up and drops into place: only a rise after a hold counts.
        let_go |= held and cube_height(env.physics, "red") >= 0.02
        action = actions[min(step, len(actions) - 1)].copy()
        if let_go:
            action[13] = open_gripper
        _, reward, terminated, truncated, _ = env.step(action)
        held |= reward >= LIFT_HELD_REWARD
        if terminated or truncated:
            break
    (outcome,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert let_go and not outcome["success"] and outcome["steps"] == env.episode_length
    assert outcome["max_reward"] == LIFT_HELD_REWARD and outcome["last_reward"] < LIFT_HELD_REWARD
    assert 0 < outcome["held_steps"] < 40
    assert 2.0 <= outcome["max_held_height_cm"] < 5.0


def test_name_every_cube_runs_each_scene_under_every_instruction_and_logs_the_scene(tmp_path):
    """Through LeRobot's env factory: seeds 2k and 2k+1 of lift_pair are one placement, each cube named."""
    from lerobot.envs.factory import make_env

    from lerobot_policy_reconvla.experiments.metrics import retargets
    from lerobot_policy_reconvla.sim.tasks import CUBE_BODIES, scene_for_seed

    log = tmp_path / "outcomes.jsonl"
    config = AlohaMultiCamEnvConfig(
        task="lift_pair",
        cameras=["top"],
        observation_height=8,
        observation_width=8,
        episode_length=2,
        outcome_log=str(log),
        name_every_cube=True,
    )
    assert config.gym_kwargs["name_every_cube"] is True and AlohaMultiCamEnvConfig().name_every_cube is False
    vec = make_env(config)["aloha_multicam"][0]
    env = vec.envs[0].unwrapped
    seeds = [100_000, 100_001, 100_002, 100_003]
    poses, named, instructions = {}, {}, {}
    for seed in seeds:
        obs, _ = vec.reset(seed=[seed])
        poses[seed] = env.physics.data.qpos[16:].copy()  # (14,) both cubes as placed, before any step
        named[seed], instructions[seed] = env.scene.target, vec.call("task_description")[0]
        assert env.scene.gaze_bodies == (CUBE_BODIES[named[seed]],)  # the gaze box follows the named cube
        for _ in range(2):  # standing still until truncated: the episode's outcome line
            obs, *_ = vec.step(obs["agent_pos"].astype(np.float32))
    vec.close()

    for scene in (100_000, 100_002):
        np.testing.assert_array_equal(poses[scene], poses[scene + 1])
        np.testing.assert_array_equal(poses[scene], scene_for_seed("lift_pair", scene).object_pose)
        assert {named[scene], named[scene + 1]} == {"red", "green"}
        assert instructions[scene] != instructions[scene + 1]
    assert not np.array_equal(poses[100_000], poses[100_002])  # the next pair of seeds is another scene

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(o["seed"], o["scene_seed"], o["target"]) for o in lines] == [
        (100_000, 100_000, "red"),
        (100_001, 100_000, "green"),
        (100_002, 100_002, "red"),
        (100_003, 100_002, "green"),
    ]
    assert retargets(lines, ("red", "green")) == {
        "scenes": 2,
        "retargeted": 0,
        "incomplete": 0,
        "retarget": 0.0,
    }


def test_name_every_cube_is_refused_for_a_task_with_one_instruction():
    from lerobot_policy_reconvla.sim.tasks import scene_naming_every_cube

    with pytest.raises(
        ValueError, match=r"name_every_cube=true needs a task naming one of several cubes.*'lift'"
    ):
        AlohaMultiCamEnvConfig(task="lift", name_every_cube=True)
    with pytest.raises(ValueError, match=r"name_every_cube needs a task .*'lift' has one instruction"):
        AlohaMultiCamEnv(task="lift", cameras=["top"], image_size=(8, 8), name_every_cube=True)
    with pytest.raises(ValueError, match="name_every_cube"):
        scene_naming_every_cube("insertion", 0)
    # lift_named: three cubes, so seeds 3k .. 3k+2 share seed 3k's placement
    named = [scene_naming_every_cube("lift_named", seed) for seed in (3, 4, 5)]
    assert [scene.target for scene in named] == ["red", "green", "blue"]
    assert all(np.array_equal(scene.object_pose, named[0].object_pose) for scene in named)


def test_gaze_box_convention_is_one_definition():
    from lerobot_policy_reconvla import gaze_box

    assert gaze_box.gaze_box_key("top") == "observation.gaze_box.top"
    assert gaze_box.camera_of("observation.gaze_box.left_wrist") == "left_wrist"
    with pytest.raises(ValueError, match="'observation.images.top' is not a gaze-box key"):
        gaze_box.camera_of("observation.images.top")
    boxes = np.stack([gaze_box.ABSENT_BOX, np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)])  # (2, 4)
    assert gaze_box.is_present(boxes).tolist() == [False, True]
    assert gaze_box.is_present(torch.as_tensor(boxes)).tolist() == [False, True]
    feature = gaze_box.gaze_box_feature()
    assert feature == {"dtype": "float32", "shape": (4,), "names": ["x0", "y0", "x1", "y1"]}
    feature["names"].append("edited")  # LeRobot may edit what it is given: the next spec is untouched
    assert gaze_box.gaze_box_feature()["names"] == ["x0", "y0", "x1", "y1"]


def test_observe_every_renders_the_cameras_every_kth_step_and_repeats_them_between():
    """Steps between observed ones return the last rendered images again; the state and the video frame
    (``render()``) stay current; the observed steps' images are those rendered every step."""
    rng = np.random.default_rng(0)
    every_step = AlohaMultiCamEnv(task="lift", image_size=SMALL, shadows=False)
    every_third = AlohaMultiCamEnv(task="lift", image_size=SMALL, shadows=False, observe_every=3)
    fresh, _ = every_step.reset(seed=3)
    kept, _ = every_third.reset(seed=3)
    start = fresh["agent_pos"].astype(np.float32)
    last_observed = kept["pixels"]
    for step in range(1, 8):
        action = start + rng.normal(0, 0.05, 14).astype(np.float32)  # the arms move: every frame differs
        fresh, *_ = every_step.step(action)
        kept, *_ = every_third.step(action)
        np.testing.assert_array_equal(kept["agent_pos"], fresh["agent_pos"])
        np.testing.assert_array_equal(every_third.render(), fresh["pixels"]["top"])  # videos stay current
        for camera, image in kept["pixels"].items():
            if step % 3 == 0:
                np.testing.assert_array_equal(image, fresh["pixels"][camera])
            else:
                np.testing.assert_array_equal(image, last_observed[camera])
                assert not np.array_equal(image, fresh["pixels"][camera]), (step, camera)
        last_observed = kept["pixels"] if step % 3 == 0 else last_observed
    for wrong in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="observe_every"):
            AlohaMultiCamEnv(task="lift", image_size=SMALL, observe_every=wrong)
        with pytest.raises(ValueError, match="observe_every"):
            AlohaMultiCamEnvConfig(task="lift", observe_every=wrong)
    assert AlohaMultiCamEnvConfig(task="lift", observe_every=5).gym_kwargs["observe_every"] == 5


def test_a_policy_replanning_every_k_steps_acts_the_same_when_the_env_renders_every_k():
    """Through lerobot-eval's own rollout: the tiny policy executing 4 actions per chunk takes exactly
    the same actions with the cameras rendered every 4th step as every step, and other actions when
    they are rendered every 3rd (it then replans on a stale image), so the equality is not vacuous."""
    from lerobot.envs.factory import make_env, make_env_pre_post_processors
    from lerobot.scripts.lerobot_eval import eval_policy

    from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
    from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors
    from tests.fixtures.tiny_policy import tiny_config

    torch.manual_seed(0)
    config = tiny_config(n_action_steps=4)
    policy = ReconVLAPolicy(config).eval()
    preprocessor, postprocessor = make_reconvla_pre_post_processors(config)

    def actions(observe_every: int) -> torch.Tensor:
        env_config = AlohaMultiCamEnvConfig(
            task="lift",
            observation_height=96,
            observation_width=128,
            shadows=False,
            episode_length=12,
            observe_every=observe_every,
        )
        env = make_env(env_config)["aloha_multicam"][0]
        env_pre, env_post = make_env_pre_post_processors(env_config, config)
        torch.manual_seed(1)  # the same flow-matching noise for every rollout
        try:
            info = eval_policy(
                env,
                policy,
                env_pre,
                env_post,
                preprocessor,
                postprocessor,
                n_episodes=1,
                start_seed=1000,
                return_episode_data=True,
            )
        finally:
            env.close()
        return info["episodes"]["action"]  # (steps, 14)

    every_step = actions(1)
    assert every_step.shape[0] >= 12 and every_step.shape[1] == 14
    torch.testing.assert_close(actions(4), every_step, rtol=0, atol=0)
    assert not torch.equal(actions(3)[4:], every_step[4:])  # same first chunk; then a stale image
