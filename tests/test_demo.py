"""The README's main job, shortened: every stage runs through LeRobot's CLIs and reports its figures."""

import json

import pytest
from PIL import Image

from lerobot_policy_reconvla.common.cli import UsageError
from lerobot_policy_reconvla.sim.evaluate_scripted import blind_replays
from lerobot_policy_reconvla.tools.demo import (
    MARKER,
    DemoConfig,
    eval_command,
    held_out_episodes,
    paired_floor,
    parse_losses,
    prepare_output_dir,
    preset_policy_fields,
    run_demo,
)
from tests.fixtures.cli import run_cli


def test_losses_keep_their_steps_where_lerobot_rounds_them():
    """lerobot-train writes step 1,500 as "step:2K": the losses of a 1,500-step run logged every 150
    steps end at step 1,500, not at the last step it wrote in full (900)."""
    from lerobot.utils.utils import format_big_number

    log = "\n".join(
        f"INFO ot_train.py:641 step:{format_big_number(step)} smpl:{format_big_number(8 * step)} ep:1 "
        f"epch:0.10 loss:{1 / step:.4f} grdn:1.0 lr:1.0e-04 updt_s:0.262 data_s:0.080 smp/s:23 "
        f"action_loss:{0.5 / step:.4f} recon_loss:0.681"
        for step in range(150, 1501, 150)
    )
    losses = parse_losses(log, log_freq=150)
    assert [row[0] for row in losses] == list(range(150, 1501, 150))
    assert losses[-1] == (1500, round(1 / 1500, 4), round(0.5 / 1500, 4), 0.681)


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


@pytest.mark.slow
def test_demo_generates_trains_evaluates_and_draws(tmp_path):
    out = tmp_path / "demo"
    output = run_cli(
        "reconvla-demo",
        [
            f"--output_dir={out}",
            "--num_episodes=1",
            "--workers=1",
            "--episode_length=30",
            "--steps=4",
            "--batch_size=2",
            "--curve_points=2",
            "--eval_episodes=1",
            "--image_size=[48,64]",
        ],
    )
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["seconds"]) == {
        "data",
        "train",
        "eval step 2",
        "eval step 4",
        "blind floor",
        "reconstructions",
    }
    # The blind floor replayed on the last evaluation's one placement, for 30 steps: it cannot lift either.
    floor = summary["blind_floor"]
    assert floor["episodes"] == 1 and floor["blind_floor_pc"] == 0.0 and floor["neither"] == 1
    # One lerobot-eval per checkpoint; the summary reports lerobot-eval's figures, in training order.
    for point in summary["success_curve"]:
        eval_info = json.loads((out / "eval" / f"{point['step']:06d}" / "eval_info.json").read_text())
        assert eval_info["overall"]["n_episodes"] == 1
        assert point["success_pc"] == eval_info["overall"]["pc_success"]
    assert [p["step"] for p in summary["success_curve"]] == [2, 4]
    assert (
        summary["eval_success_pc"] == summary["success_curve"][-1]["success_pc"] == 0.0
    )  # 30 steps cannot lift
    assert Image.open(out / "success_curve.png").width > 0
    assert summary["losses_first"][0] == 1 and summary["losses_last"][0] == 4
    assert (out / "train" / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").exists()
    assert summary["recon_weight"] == 0.5 and len(summary["reconstructions"]) == 3  # the preset's weight
    for path in summary["reconstructions"]:
        assert Image.open(path).height == 256 + 18
    assert "ReconVLA demo" in output and "success curve" in output
    assert summary["held_without_success"] is None  # 30 steps cannot reach the cube: no hold to split
    assert (out / MARKER).is_file()

    # The ablation on the same data: the base trained alone, no reconstructions drawn, and said so.
    ablation = tmp_path / "no_head"
    output = run_cli(
        "reconvla-demo",
        [
            f"--output_dir={ablation}",
            f"--data_root={out / 'data'}",
            "--recon_weight=0",
            "--episode_length=30",
            "--steps=2",
            "--batch_size=2",
            "--curve_points=1",
            "--eval_episodes=1",
            "--image_size=[48,64]",
        ],
    )
    summary = json.loads((ablation / "summary.json").read_text())
    assert summary["recon_weight"] == 0.0 and summary["reconstructions"] == []
    assert "reconstructions" not in summary["seconds"] and "data" in summary["seconds"]
    assert "--recon_weight=0 trains the base alone" in output
    trained = json.loads(
        (ablation / "train" / "checkpoints" / "last" / "pretrained_model" / "config.json").read_text()
    )
    assert trained["recon_weight"] == 0.0  # what lerobot-train was given, not only what the summary says
    assert not (ablation / "data").exists()  # the first run's data, reused


def test_paired_floor_replays_the_blind_script_on_the_evaluated_placements():
    # Seeds 1000-1049 of `lift`: the blind script lifts 11 (reconvla-eval-scripted --blind=true, docs/sim.md).
    seeds = list(range(1000, 1010))
    blind = [result.success for result in blind_replays("lift", seeds)]
    policy = [True, False] * 5
    # The env's outcome log (--env.outcome_log), one line per episode as it ended.
    outcomes = [
        {"seed": seed, "success": won} for seed, won in reversed(list(zip(seeds, policy, strict=True)))
    ]
    floor = paired_floor("lift", outcomes)
    assert floor["episodes"] == 10 and floor["blind_floor_pc"] == 10 * sum(blind)
    assert floor["both"] + floor["policy_only"] == sum(policy)
    assert floor["both"] + floor["blind_only"] == sum(blind)
    assert sum(floor[k] for k in ("both", "policy_only", "blind_only", "neither")) == 10
    assert paired_floor("transfer_cube", outcomes) is None  # no blind floor defined there
    assert "held" not in floor  # outcome lines without the highest reward: success alone


def test_demo_evaluates_a_task_naming_a_cube_with_every_scene_under_each_instruction(tmp_path):
    """lift_pair / lift_named: every scene under each instruction, whole scenes only (the episodes and the
    first seed rounded up to multiples of the cubes); lift: lerobot-eval's own seeds. Each renders the
    cameras where the policy replans."""

    def flags(task: str, episodes: int) -> tuple[dict, int]:
        command, run = eval_command(DemoConfig(task=task), tmp_path / "ckpt", tmp_path / "eval", episodes)
        return dict(arg.split("=", 1) for arg in command[1:]), run

    pair, episodes = flags("lift_pair", 5)
    assert episodes == 6 and pair["--eval.n_episodes"] == "6" and pair["--seed"] == "1000"
    assert pair["--env.name_every_cube"] == "true" and pair["--env.observe_every"] == "20"
    named, episodes = flags("lift_named", 30)
    assert episodes == 30 and named["--seed"] == "1002" and named["--env.name_every_cube"] == "true"
    lift, episodes = flags("lift", 5)
    assert episodes == 5 and lift["--seed"] == "1000" and "--env.name_every_cube" not in lift
    assert (
        held_out_episodes("lift_pair", 6) == "6 held-out episodes (3 scenes, each under its 2 instructions)"
    )
    assert held_out_episodes("lift", 30) == "30 held-out placements"


def test_paired_floor_with_every_cube_named_replays_the_episodes_the_env_ran():
    """The blind script on lift_pair's scenes under each instruction: it takes the first slot whatever the
    instruction, so of each scene's two episodes at most one succeeds."""
    seeds = list(range(1000, 1008))  # four scenes, each under both instructions
    outcomes = [{"seed": seed, "success": False} for seed in seeds]
    floor = paired_floor("lift_pair", outcomes, name_every_cube=True)
    blind = [result.success for result in blind_replays("lift_pair", seeds, name_every_cube=True)]
    assert floor["episodes"] == 8 and floor["blind_floor_pc"] == 100 * sum(blind) / 8
    assert floor["blind_only"] == sum(blind) >= 1
    assert all(not (blind[i] and blind[i + 1]) for i in range(0, 8, 2)), blind


def test_paired_floor_also_pairs_the_cube_held_off_the_table():
    """The second reading: placements where the cube was held off the table (reward 2) at some step, by
    the policy (its outcome log) and by the blind script replayed there."""
    seeds = list(range(1000, 1010))
    blind = [result.max_reward for result in blind_replays("lift", seeds)]
    # The blind script holds some cubes off the table and misses others on these placements.
    assert any(reward >= 2 for reward in blind) and any(reward < 2 for reward in blind)
    policy = [2.0] * 5 + [1.0] * 5  # held on the first five placements only
    outcomes = [
        {"seed": seed, "success": False, "max_reward": reward}
        for seed, reward in zip(seeds, policy, strict=True)
    ]
    held = paired_floor("lift", outcomes)["held"]
    blind_held = [reward >= 2 for reward in blind]
    assert held["policy"] == 5 and held["blind"] == sum(blind_held)
    assert held["both"] == sum(blind_held[:5]) and held["blind_only"] == sum(blind_held[5:])
    assert held["policy_only"] == 5 - held["both"]


def test_unfinished_lifts_split_a_cube_let_go_from_one_held_to_the_end():
    from lerobot_policy_reconvla.tools.demo import unfinished_lifts

    def episode(success, max_reward, last_reward, held_steps, rise):
        return {
            "success": success,
            "max_reward": max_reward,
            "last_reward": last_reward,
            "held_steps": held_steps,
            "max_held_height_cm": rise,
        }

    outcomes = [
        episode(True, 3.0, 3.0, 30, 5.0),  # a success: not counted
        episode(False, 2.0, 2.0, 40, 0.5),  # held to the end, barely raised
        episode(False, 2.0, 1.0, 3, 0.0),  # a momentary hold, then touching only
        episode(False, 2.0, 0.0, 12, 3.1),  # raised 3 cm, then dropped
        episode(False, 1.0, 1.0, 0, 0.0),  # touched, never held: not counted
    ]
    split = unfinished_lifts(outcomes)
    assert split["episodes"] == 3 and split["let_go"] == 2 and split["held_to_end"] == 1
    assert split["highest_rise_cm"] == {"min": 0.0, "median": 0.5, "max": 3.1}
    assert split["held_steps"] == {"min": 3, "median": 12, "max": 40}
    # An outcome log written before these fields, or one without an unfinished hold, gives no split.
    assert unfinished_lifts([{"success": False, "max_reward": 2.0}]) is None
    assert unfinished_lifts(outcomes[:1] + outcomes[4:]) is None


@pytest.mark.parametrize(("resolution", "crop"), [(56, 16), (84, 24), (112, 32), (140, 40), (224, 32)])
def test_demo_fits_the_reconstruction_crop_to_the_image_resolution(resolution, crop):
    # The preset's 32-px crop where it divides into the token grid (112 and 224 px) and leaves each token at
    # most 4 x 4 pixels; 84 px gives a 6 x 6 grid, into which 32 does not divide (36 would give 6 x 6
    # pixels per token): 24; 56 px a 4 x 4 grid, where 32 would give 8 x 8: 16.
    demo = DemoConfig(image_resolution=resolution)
    policy = demo.training_policy_config()
    grid = resolution // 14
    assert policy.recon_image_size % grid == 0 and policy.recon_image_size // grid <= 4
    assert policy.image_resolution == (resolution, resolution)
    assert demo.training_policy_overrides()["recon_image_size"] == crop


def test_demo_trains_the_chosen_base_from_its_tiny_preset(tmp_path):
    from lerobot_policy_reconvla.configuration_reconvla import ReconVLAConfig
    from lerobot_policy_reconvla.configuration_reconvla_pi05 import ReconVLAPi05Config

    assert type(DemoConfig().training_policy_config()) is ReconVLAConfig
    pi05 = DemoConfig(base="pi05").training_policy_config()
    assert type(pi05) is ReconVLAPi05Config and pi05.paligemma_variant == "tiny"
    with pytest.raises(UsageError, match=r"--base=pi1: expected one of \['pi0', 'pi05'\]"):
        run_demo(DemoConfig(output_dir=tmp_path / "demo", base="pi1"))
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("base", ["pi0", "pi05"])
def test_demo_trains_the_base_alone_when_the_head_has_no_loss(base):
    preset_weight = preset_policy_fields(base)["recon_weight"]
    with_head = DemoConfig(base=base)
    assert preset_weight > 0 and with_head.trains_head
    assert with_head.training_policy_config().recon_weight == preset_weight  # the preset's unless set
    ablation = DemoConfig(base=base, recon_weight=0.0)
    assert ablation.training_policy_overrides()["recon_weight"] == 0.0  # passed to lerobot-train
    assert ablation.training_policy_config().recon_weight == 0.0 and not ablation.trains_head


def test_demo_refuses_a_policy_setting_that_cannot_train_before_any_work(tmp_path):
    out = tmp_path / "demo"
    with pytest.raises(UsageError, match=r"--image_resolution=10,.*cannot train: .*image_resolution"):
        run_demo(DemoConfig(output_dir=out, image_resolution=10))
    with pytest.raises(UsageError, match=r"--image_shift_pixels=-1, .*cannot train: .*image_shift_pixels"):
        run_demo(DemoConfig(output_dir=out, image_shift_pixels=-1))
    with pytest.raises(UsageError, match=r"--recon_weight=-1.0\) .*cannot train: .*recon_weight"):
        run_demo(DemoConfig(output_dir=out, recon_weight=-1.0))
    assert not out.exists()  # nothing generated, not even the output directory
