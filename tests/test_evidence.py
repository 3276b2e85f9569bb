"""The evidence experiment at minimal size: real sim data, real `lerobot-train` / `lerobot-eval` runs."""

import json
import math
import os
import re
import sys
from pathlib import Path

import pytest

from tests.fixtures import processes
from tests.fixtures.wheels import make_wheel

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_script_runs_the_experiment_end_to_end_at_a_toy_size_on_the_cpu(tmp_path):
    """scripts/evidence_gpu.sh as it runs on a GPU machine, with the gpu preset shrunk and moved to the CPU:
    it installs its wheel folder into a folder of its own, then real sim data, real `lerobot-train` and
    `lerobot-eval` runs, two at a time."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, {"toy_pkg/__init__.py": b"VALUE = 7\n"})
    site = tmp_path / "site"
    report = tmp_path / "docs" / "evidence.md"
    command = [
        "bash",
        str(REPO / "scripts" / "evidence_gpu.sh"),
        "--device=cpu",
        "--seeds=2",
        "--jobs=2",
        f"--out={report}",
        f"--work_dir={tmp_path / 'work'}",
        "--arms=[pi0,gaze]",
        "--steps=3",
        "--batch_size=2",
        "--train_episodes=2",
        "--heldout_episodes=1",
        "--episode_length=30",
        "--eval_episodes=1",
        "--image_size=[48,64]",
        "--image_resolution=56",
        "--probe_frames=30",
        "--heldout_frames=12",
        "--workers=1",
        "--grounding_scenes=2",
    ]
    env = dict(
        os.environ, PYTHON=sys.executable, RECONVLA_GPU_WHEELS=str(wheels), RECONVLA_GPU_SITE=str(site)
    )
    result = processes.run(command, check=False, capture_output=True, text=True, timeout=1500, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert (site / "toy_pkg" / "__init__.py").is_file()

    text = report.read_text()
    assert (
        "lerobot_policy_reconvla.experiments.evidence --preset=gpu" in text
        and "--device=cpu --seeds=2" in text
    )
    assert "commit `" in text and "CPU cores" in text
    assert "2 run(s) (training, then `lerobot-eval`) at a time" in text
    assert "Paired comparisons over 2 seeds" in text
    # The report leads with the preset's primary question, five lines, before the secondary measures' table.
    lines = text.splitlines()
    top = lines.index("## Primary question")
    assert [line.split("**")[1] for line in lines[top + 2 : top + 7]] == [
        "Question",
        "Difference",
        "p",
        "Detectable",
        "Verdict",
    ]
    assert lines[top + 3].startswith("- **Difference** (gaze - pi0, mean over 2 paired seeds): ")
    # Two seeds: the exact test cannot go below p = 0.5, whatever the arms scored.
    assert lines[top + 6] == (
        "- **Verdict**: inconclusive: with 2 seeds the exact test cannot go below p = 0.500, so this run "
        "could detect no difference of any size, 15 points included."
    )
    assert top < lines.index("## Secondary measures") < lines.index("### lift_pair")
    assert lines.index("### lift_pair") < next(
        i for i, line in enumerate(lines) if line.startswith("| arm |")
    )
    assert "| pi0 - gaze | success % | primary, see above | - | - | - | - | - |" in lines
    # Every measure of a task naming a cube is in the table, with the untrained backbone and chance.
    header = next(line for line in text.splitlines() if line.startswith("| arm |"))
    assert header == (
        "| arm | success % | wrong object % | retarget % | approach action error | attention ratio "
        "| heads to named % | instruction shift | named probe top | named probe left_wrist "
        "| named probe right_wrist |"
    )
    # Closed loop, what always taking the first slot scores and the retargets' chance; the attention ratio's
    # chance level comes with its positive control's reading on the same scenes.
    assert re.search(
        r"\| chance / constant answer \| 50\.0 \(slot 0\) \| 50\.0 \(slot 0\) "
        r"\| ≤ 25\.0 \(slot 0: 0\.0\) \| - \| 1\.000 \(oracle \d+\.\d{3}\) \| 50\.0 \|",
        text,
    )
    # --eval_episodes=1 is rounded up to one whole scene, run under both instructions, gated against chance.
    assert "lift_pair 2 episode(s) from env seed 100000 (every scene under each instruction)" in text
    assert re.search(r"^- pi0: \d of 2 scenes \(.*\), p = \d\.\d{3}$", text, re.MULTILINE)
    assert "Gate: the pi0 arm " in text
    assets = report.parent / "evidence_files"
    assert (assets / "lift_pair_losses.png").stat().st_size > 0
    # Reconstructions only for the arm whose head trained (one picture per camera).
    assert sorted(p.name for p in assets.glob("lift_pair_gaze_*.png")) == [
        "lift_pair_gaze_left_wrist.png",
        "lift_pair_gaze_right_wrist.png",
        "lift_pair_gaze_top.png",
    ]

    # Each run was logged as it finished, with its outcome, time and grounding measures; each seed's
    # untrained floor with the seed's first finished run.
    runs = [json.loads(line) for line in (assets / "lift_pair_runs.jsonl").read_text().splitlines()]
    assert sorted((run["arm"], run["seed"]) for run in runs) == [
        ("gaze", 0),
        ("gaze", 1),
        ("pi0", 0),
        ("pi0", 1),
        ("untrained", 0),
        ("untrained", 1),
    ]
    trained = [run for run in runs if run["arm"] != "untrained"]
    assert all(run["seconds"] > 0 and 0.0 <= run["success"] <= 100.0 for run in trained)
    assert all(run["grounding"]["swap"]["scenes"] == 2 for run in runs)
    for seed in (0, 1):  # the floor comes right after the seed's first run, before any later run of it
        arms = [run["arm"] for run in runs if run["seed"] == seed]
        assert arms.index("untrained") == 1 and "untrained" not in arms[2:]

    saved = json.loads((assets / "lift_pair_results.json").read_text())
    rows = {row["arm"]: row for row in saved["results"]}
    assert set(rows) == {"pi0", "gaze", "untrained"}
    for arm in ("pi0", "gaze"):
        assert math.isfinite(rows[arm]["action_error"]) and rows[arm]["action_error"] > 0
        assert 0.0 <= rows[arm]["success"] <= 100.0 and 0.0 <= rows[arm]["wrong_object"] <= 100.0
        balanced = rows[arm]["balanced"]  # the env's outcome log grouped by scene: one, both cubes named
        assert {k: v for k, v in balanced.items() if k != "retargeted"} == {
            "cubes": 2,
            "scenes": 1,
            "incomplete": 0,
            "episodes": 2,
            "first_seed": 100_000,
        }
        assert rows[arm]["retarget"] == 100.0 * balanced["retargeted"]
        grounding = rows[arm]["grounding"]
        # Two held-out scenes, each with both cubes named in turn.
        assert grounding["swap"]["scenes"] == 2 and 0.0 <= grounding["swap"]["heads_to_named"] <= 1.0
        assert len(grounding["attention"]["per_layer"]) > 0 and grounding["attention"]["mean"] > 0
        # The top camera sees both cubes at the first frame: its named-cube probe is fitted and scored.
        assert math.isfinite(grounding["named_probe"]["top"])
    # The floor is a different backbone from the trained one: its measures differ.
    floor = rows["untrained"]["grounding"]
    assert floor["attention"]["mean"] != pytest.approx(
        rows["gaze"]["grounding"]["attention"]["mean"], abs=1e-9
    )
    # Every logged step of both runs made it into the curves; pi0's head never trained.
    assert [row[0] for row in saved["losses"]["gaze"][0]][-1] == 3
    assert all(row[3] == 0.0 for row in saved["losses"]["pi0"][0])
    assert all(row[3] > 0.0 for row in saved["losses"]["gaze"][0])


def test_one_training_episode_is_refused_before_any_work(tmp_path, capsys):
    from lerobot_policy_reconvla.experiments.evidence import main

    assert main(["--train_episodes=1", f"--work_dir={tmp_path / 'work'}", f"--out={tmp_path / 'e.md'}"]) == 2
    assert "reconvla-evidence: error: --train_episodes=1: expected at least 2" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_the_base_is_an_option_and_an_unknown_one_is_refused_before_any_work(tmp_path, capsys):
    from lerobot_policy_reconvla.experiments.evidence import EvidenceConfig, main

    assert EvidenceConfig().resolved_preset().base == "pi0"
    assert EvidenceConfig(base="pi05").resolved_preset().base == "pi05"
    assert main(["--base=pi1", f"--work_dir={tmp_path / 'work'}", f"--out={tmp_path / 'e.md'}"]) == 2
    assert "--base=pi1: expected one of ['pi0', 'pi05']" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_a_reconstruction_size_off_the_token_grid_is_refused_before_any_work(tmp_path, capsys):
    from lerobot_policy_reconvla.experiments.evidence import main

    argv = [
        "--image_resolution=84",
        "--recon_image_size=32",
        f"--work_dir={tmp_path / 'work'}",
        f"--out={tmp_path / 'e.md'}",
    ]
    assert main(argv) == 2
    assert "--recon_image_size=32: expected a multiple of the token grid 6" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_ridge_probe_recovers_a_linear_map_and_finds_nothing_in_noise():
    import torch

    from lerobot_policy_reconvla.experiments.metrics import constant_probe_errors, probe_errors

    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(40, 2, generator=generator) * 0.05
    features = {
        split: torch.randn(n, 40, generator=generator) for split, n in (("train", 300), ("test", 100))
    }
    centres = {split: 0.5 + x @ weights for split, x in features.items()}
    centres["test"][:5] = float("nan")  # out of view: left out, not counted as an error
    noise = {split: torch.randn(len(x), 40, generator=generator) for split, x in features.items()}
    constant = constant_probe_errors({"top": centres["train"]}, {"top": centres["test"]})["top"]

    episodes = {"train": torch.arange(300) // 50, "test": torch.arange(100) // 50}  # 6 and 2 episodes
    informative = probe_errors(
        ({"top": features["train"]}, {"top": centres["train"]}, episodes["train"]),
        ({"top": features["test"]}, {"top": centres["test"]}, episodes["test"]),
    )["top"]
    uninformative = probe_errors(
        ({"top": noise["train"]}, {"top": centres["train"]}, episodes["train"]),
        ({"top": noise["test"]}, {"top": centres["test"]}, episodes["test"]),
    )["top"]
    assert informative < 0.05 * constant
    assert uninformative == pytest.approx(constant, rel=0.2)


def test_probe_penalty_is_chosen_on_whole_episodes_so_memorising_them_does_not_pay():
    import torch

    from lerobot_policy_reconvla.experiments.metrics import constant_probe_errors, fit_ridge, probe_errors

    # Every episode has its own feature signature and its own target: the features identify the episode
    # but say nothing about a new one. Frames of an episode are near copies, as in a demonstration.
    generator = torch.Generator().manual_seed(0)

    def episodes(count: int, frames: int = 40) -> tuple[dict, dict, torch.Tensor]:
        signature = torch.randn(count, 60, generator=generator)
        target = 0.5 + 0.2 * torch.rand(count, 2, generator=generator)
        index = torch.arange(count).repeat_interleave(frames)
        x = signature[index] + 0.01 * torch.randn(count * frames, 60, generator=generator)
        return {"top": x}, {"top": target[index]}, index

    train, heldout = episodes(8), episodes(3)
    *_, penalty = fit_ridge(train[0]["top"], train[1]["top"], train[2])
    scale = (train[0]["top"].double().std(0) ** -2 * train[0]["top"].double().var(0)).sum()  # mean eigenvalue
    assert penalty >= scale  # a frame-wise choice would take the smallest penalty and memorise
    constant = constant_probe_errors(train[1], heldout[1])["top"]
    assert probe_errors(train, heldout)["top"] <= 1.2 * constant


def test_whole_image_arm_sees_the_same_frames_without_boxes(tmp_path):
    import torch
    from lerobot.datasets import LeRobotDataset

    from lerobot_policy_reconvla.experiments.evidence import without_gaze_boxes
    from tests.fixtures.synthetic_dataset import write_synthetic_dataset

    source = tmp_path / "train"
    write_synthetic_dataset(
        source, repo_id="local/train", height=24, width=32, num_episodes=1, episode_length=6
    )
    without_gaze_boxes(source, tmp_path / "train_no_boxes")
    original = LeRobotDataset("local/train", root=source)
    copy = LeRobotDataset("local/train_no_boxes", root=tmp_path / "train_no_boxes")

    assert sorted(set(original.meta.features) - set(copy.meta.features)) == [
        "observation.gaze_box.left_wrist",
        "observation.gaze_box.right_wrist",
        "observation.gaze_box.top",
    ]
    assert len(copy) == len(original)
    for key in ("observation.images.top", "observation.state", "action"):
        assert torch.equal(copy[3][key], original[3][key])
    assert not any(key.startswith("observation.gaze_box.") for key in copy[3])


def test_every_pair_of_arms_is_compared_on_every_measure_with_an_exact_p_corrected_over_the_family():
    import doctest

    from lerobot_policy_reconvla.experiments import metrics
    from lerobot_policy_reconvla.experiments.evidence import paired_comparisons

    assert doctest.testmod(metrics).failed == 0
    seeds, cameras = [0, 1, 2], ["top"]
    action = {"pi0": [0.030, 0.032, 0.034], "gaze": [0.020, 0.0221, 0.0239], "whole": [0.031, 0.031, 0.035]}
    results = {
        (arm, s): {"action_error": action[arm][s], "probe": {"top": 0.02 + 0.001 * s}, "success": 0.0}
        for arm in action
        for s in seeds
    }
    lines = paired_comparisons(results, ["pi0", "gaze", "whole"], seeds, cameras)
    rows = {
        tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in lines if line.startswith("| ")
    }
    pairs = ["pi0 - gaze", "pi0 - whole", "gaze - whole"]
    assert set(rows) == {
        (p, m) for p in pairs for m in ["held-out action error", "probe top", "success %"]
    } | {("A - B", "measure")}  # nothing left out, whichever way it goes
    gaze_row = [cell.strip() for cell in rows[("pi0 - gaze", "held-out action error")].split("|")[1:-1]]
    difference, threshold = float(gaze_row[2]), float(gaze_row[3])
    assert (
        difference == pytest.approx(0.01, abs=1e-4) and 0 < threshold < difference and gaze_row[7] == "0 of 3"
    )
    # Three seeds, the same sign in each: the exact sign-flip p is 2 / 2^3, and Holm multiplies the smallest p
    # by the number of tests (3: the action error of each pair; the other rows are equal in every seed).
    assert float(gaze_row[5]) == 0.25 and float(gaze_row[6]) == 0.75
    assert "3 tests (3 pairs of arms x 3 measures, less 6 rows equal" in lines[0]
    assert "equal in every seed" in rows[("pi0 - whole", "probe top")]
    assert paired_comparisons(results, ["pi0", "gaze"], [0], cameras)[0].startswith("One seed")


def test_a_task_naming_a_cube_is_reported_on_its_grounding_measures_beside_the_floor_and_chance():
    from lerobot_policy_reconvla.experiments.evidence import floor_values, paired_comparisons, results_table

    seeds, cameras = [0, 1], ["top", "left_wrist"]

    def row(attention, heads, shift, probe, success=None, wrong=None):
        result = {
            "action_error": 0.03,
            "grounding": {
                "attention": {"mean": attention},
                "swap": {"heads_to_named": heads, "mean_shift": shift, "chance_heads_to_named": 0.5},
                "named_probe": {"top": probe, "left_wrist": float("nan")},
                "named_constant": {"top": 0.2, "left_wrist": float("nan")},
            },
        }
        if success is not None:
            result.update(success=success, wrong_object=wrong)
        return result

    control = {"attention_control": {"oracle": {"mean": 1.87}}}  # what attention on the named cube reads
    results = {
        ("untrained", s): {"grounding": row(1.0, 0.5, 0.0, 0.19)["grounding"] | control} for s in seeds
    }
    results |= {("pi0", s): row(1.1 + s / 10, 0.5, 0.01, 0.15, 20.0, 40.0 + s) for s in seeds}
    results |= {("gaze", s): row(1.3 + s / 10, 0.75, 0.02, 0.10, 30.0, 10.0 + s) for s in seeds}
    table = results_table(results, ["pi0", "gaze"], seeds, cameras)
    assert table[0] == (
        "| arm | success % | wrong object % | approach action error | attention ratio | heads to named % "
        "| instruction shift | named probe top | named probe left_wrist |"
    )
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]] for line in table[2:]
    }
    assert rows["ReconVLA, gaze crops"][:5] == [
        "30.0 ± 0.0",
        "10.5 ± 0.7",
        "0.030 ± 0.000",
        "1.350 ± 0.071",
        "75.0 ± 0.0",
    ]
    # The untrained backbone is neither trained nor evaluated closed loop: no success, wrong object or action
    # error.
    assert rows["untrained"][:4] == ["-", "-", "-", "1.000 ± 0.000"]
    # Chance: the attention ratio's 1 (with its positive control's reading beside it), the swap's 50 %;
    # the probe's constant answer; nothing for the rest.
    assert rows["chance / constant answer"] == [
        "-",
        "-",
        "-",
        "1.000 (oracle 1.870)",
        "50.0",
        "-",
        "0.200 ± 0.000",
        "n/a",
    ]
    # A report made before the control existed reads chance alone.
    assert floor_values("attention ratio", [{"grounding": {}}]) == "1.000"
    lines = paired_comparisons(results, ["pi0", "gaze"], seeds, cameras)
    measured = {line.split("|")[2].strip(): line for line in lines if line.startswith("| pi0 - gaze")}
    assert set(measured) == {
        "success %",
        "wrong object %",
        "approach action error",
        "attention ratio",
        "heads to named %",
        "instruction shift",
        "named probe top",
        "named probe left_wrist",
    }
    assert "not measured in every seed" in measured["named probe left_wrist"]
    assert "equal in every seed" in measured["approach action error"]


def _outcome(scene: int, target: str, first_lifted: str, success: bool | None = None) -> dict:
    """One outcome-log line as the env writes it (the fields the closed-loop measures read)."""
    success = first_lifted == target if success is None else success
    return {
        "seed": scene,
        "scene_seed": scene,
        "target": target,
        "success": success,
        "first_lifted": first_lifted,
    }


def test_retargets_count_scenes_where_each_instruction_lifted_its_own_cube():
    from lerobot_policy_reconvla.experiments.metrics import first_slot_floor, lifted_named, retargets
    from lerobot_policy_reconvla.tools.demo import wrong_object_pc

    cubes = ("red", "green")
    slot0 = {
        0: "red",
        2: "green",
        4: "green",
        6: "red",
        8: "red",
    }  # the cube each scene put in the first slot
    # Always taking the first slot (never missing): the named cube in half the episodes, no scene retargeted.
    first_slot = [_outcome(scene, named, slot0[scene]) for scene in slot0 for named in cubes]
    assert retargets(first_slot, cubes) == {"scenes": 5, "retargeted": 0, "incomplete": 0, "retarget": 0.0}
    success = 100.0 * sum(lifted_named(o) for o in first_slot) / len(first_slot)
    assert success == first_slot_floor(2)["success"] == 50.0
    assert wrong_object_pc("lift_pair", first_slot) == first_slot_floor(2)["wrong_object"]
    # Following the instruction: every scene retargeted.
    follows = [_outcome(scene, named, named) for scene in slot0 for named in cubes]
    assert retargets(follows, cubes)["retarget"] == 100.0
    # Lifting the first slot's cube, then the other: success under both instructions, yet it never chose.
    both = [_outcome(scene, named, slot0[scene], success=True) for scene in slot0 for named in cubes]
    assert retargets(both, cubes)["retargeted"] == 0
    # One grasp missed: that scene is not retargeted; a scene run under one instruction only is left out.
    missed = [*follows[:-1], _outcome(8, "green", "", success=False), _outcome(10, "red", "red")]
    assert retargets(missed, cubes) == {"scenes": 5, "retargeted": 4, "incomplete": 1, "retarget": 80.0}
    # An outcome log written before scenes were logged groups nothing.
    assert (
        retargets([{k: v for k, v in o.items() if k != "scene_seed"} for o in follows], cubes)["scenes"] == 0
    )


def test_the_report_gates_the_retarget_comparisons_on_the_pi0_arm_beating_chance():
    from lerobot_policy_reconvla.experiments.evidence import results_table, retarget_gate

    seeds, cameras = [0, 1, 2, 3, 4], ["top"]

    def row(retargeted: int, scenes: int = 5) -> dict:
        grounding = {
            "attention": {"mean": 1.0},
            "swap": {"heads_to_named": 0.5, "mean_shift": 0.0, "chance_heads_to_named": 0.5},
            "named_probe": {"top": 0.1},
            "named_constant": {"top": 0.2},
        }
        balanced = {"cubes": 2, "scenes": scenes, "retargeted": retargeted, "incomplete": 0}
        return {
            "action_error": 0.03,
            "grounding": grounding,
            "success": 50.0,
            "wrong_object": 50.0,
            "retarget": 100.0 * retargeted / scenes,
            "balanced": balanced,
        }

    untrained = {("untrained", s): {"grounding": row(0)["grounding"]} for s in seeds}
    # pi0 at chance (7 of 25 scenes against 25 %); gaze far above it (25 of 25).
    at_chance = (
        untrained | {("pi0", s): row(1 + (s < 2)) for s in seeds} | {("gaze", s): row(5) for s in seeds}
    )
    lines = retarget_gate(at_chance, ["pi0", "gaze"], seeds)
    assert "Chance is at most 25.0 % of scenes" in lines[0]
    assert "- pi0: 7 of 25 scenes (28.0 %), p = 0." in "\n".join(lines)
    assert "- gaze: 25 of 25 scenes (100.0 %), p = 0.000" in lines
    assert "**inconclusive at this scale**" in lines[-1] and "does not retarget above chance" in lines[-1]
    # pi0 above chance: the comparisons are read.
    above = at_chance | {("pi0", s): row(3) for s in seeds}  # 15 of 25
    assert "retargets above chance" in retarget_gate(above, ["pi0", "gaze"], seeds)[-1]
    assert "inconclusive" not in retarget_gate(above, ["pi0", "gaze"], seeds)[-1]

    table = results_table(at_chance, ["pi0", "gaze"], seeds, cameras)
    assert table[0].startswith("| arm | success % | wrong object % | retarget % | approach action error |")
    chance = [cell.strip() for cell in table[-1].split("|")[2:-1]]
    assert chance[:4] == ["50.0 (slot 0)", "50.0 (slot 0)", "≤ 25.0 (slot 0: 0.0)", "-"]
    # A report made before the balanced evaluation (one instruction per scene): no retargets, gate or floor.
    old = {
        key: {k: v for k, v in r.items() if k not in ("retarget", "balanced")} for key, r in at_chance.items()
    }
    assert retarget_gate(old, ["pi0", "gaze"], seeds) == []
    assert [c.strip() for c in results_table(old, ["pi0", "gaze"], seeds, cameras)[-1].split("|")[2:5]] == [
        "-",
        "-",
        "-",
    ]


def _primary_results(differences: list[float], pi0: float = 20.0) -> dict:
    """Hand-made results of the pi0 and gaze arms: gaze's success is pi0's plus `differences[seed]`; the
    action error and probe differ in every seed so that they are tests beside the primary one."""
    results = {}
    for seed, difference in enumerate(differences):
        pi0_success = pi0 + 10 * (seed % 2)  # a spread across seeds, the same in both arms
        results[("pi0", seed)] = {"action_error": 0.03, "probe": {"top": 0.02}, "success": pi0_success}
        results[("gaze", seed)] = {
            "action_error": 0.02 - 0.001 * seed,
            "probe": {"top": 0.01},
            "success": pi0_success + difference,
        }
    return results


def test_the_primary_question_gets_its_difference_p_detectable_effect_and_a_verdict_by_the_stated_rule():
    from lerobot_policy_reconvla.experiments.evidence import PRESETS, Primary, primary_summary

    preset = PRESETS["cpu"]
    assert preset.primary == Primary("lift_pair", "success %", ("gaze", "pi0"), 15.0)

    def summary(differences: list[float]) -> list[str]:
        lines = primary_summary(_primary_results(differences), preset, list(range(len(differences))))
        assert len(lines) == 5 and lines[0].startswith("- **Question** (pre-registered")
        assert "on lift_pair" in lines[0] and "`gaze`" in lines[0] and "15 points or more" in lines[0]
        assert lines[4].startswith("- **Verdict**: ")
        return lines

    # Significant (6 seeds, the same sign in each: exact p = 2 / 2^6), either way.
    raised = summary([20, 30, 20, 30, 20, 30])
    assert raised[1] == (
        "- **Difference** (gaze - pi0, mean over 6 paired seeds): +25.0 points, 95 % t interval "
        "[+19.3, +30.7]; gaze lower in 0 of 6"
    )
    assert (
        raised[2].startswith("- **p** = 0.031: exact two-sided sign-flip")
        and "not Holm-adjusted" in raised[2]
    )
    assert raised[3].startswith("- **Detectable**: 7.8 points at 80 % power with 6 seeds")
    assert raised[4] == "- **Verdict**: the head raised success by 25.0 points (p = 0.031)."
    lowered = summary([-20, -30, -20, -30, -20, -30])
    assert lowered[4] == "- **Verdict**: the head lowered success by 25.0 points (p = 0.031)."
    # Not significant, but a 15-point difference would have been detected (MDE 11.4 with 8 seeds).
    assert summary([10, -10, 10, -10, 10, -10, 10, 0])[4] == (
        "- **Verdict**: no difference resolved; this run could have detected 11.4 points or more."
    )
    # Not significant, and only a difference far above 15 points could have been.
    assert summary([40, -30, 20, -40, 30, -10])[4] == (
        "- **Verdict**: inconclusive: this run could detect only 47.2 points or more, above the 15 points "
        "asked."
    )
    # 5 seeds, +20 in each: the t MDE is 0, yet the exact test cannot reach 0.05, so nothing is resolved.
    assert summary([20] * 5)[4] == (
        "- **Verdict**: inconclusive: with 5 seeds the exact test cannot go below p = 0.062, so this run "
        "could detect no difference of any size, 15 points included."
    )
    # Equal in every seed: no spread to size a detectable effect with.
    assert summary([0] * 6)[4].startswith(
        "- **Verdict**: no difference resolved: the arms scored the same in every seed"
    )
    one_seed = summary([20])
    assert one_seed[1] == "- **Difference** (gaze - pi0): +20.0 points in the one seed"
    assert one_seed[4].startswith("- **Verdict**: no verdict: one seed, so there is no spread")
    # The primary task not run at all, or run without the gaze arm.
    assert (
        primary_summary({}, preset, [0, 1])[4] == "- **Verdict**: no verdict: this run did not run lift_pair."
    )
    no_gaze = {key: row for key, row in _primary_results([20] * 6).items() if key[0] == "pi0"}
    assert primary_summary(no_gaze, preset, list(range(6)))[4] == (
        "- **Verdict**: no verdict: this run has no `gaze` arm on lift_pair."
    )


def test_the_primary_test_is_left_out_of_the_holm_family_of_the_secondary_comparisons():
    from lerobot_policy_reconvla.experiments.evidence import PRESETS, paired_comparisons

    seeds = list(range(6))
    results = _primary_results([20, 30, 20, 30, 20, 30])  # action error, probe and success: p = 2 / 2^6 each

    def rows(lines: list[str]) -> dict:
        return {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[3:-1]] for line in lines[4:]}

    everything = paired_comparisons(results, ["pi0", "gaze"], seeds, ["top"])
    assert "3 tests (1 pairs of arms x 3 measures, less 0 rows" in everything[0]
    assert rows(everything)["held-out action error"][3:5] == ["0.031", "0.094"]  # Holm: 3 x 0.031

    secondary = paired_comparisons(results, ["pi0", "gaze"], seeds, ["top"], PRESETS["cpu"].primary)
    assert (
        "2 tests (1 pairs of arms x 3 measures, less 0 rows equal or not measured in every seed, and the "
        "primary test (gaze - pi0 on success %), read alone above and not in this Holm family)"
        in secondary[0]
    )
    assert rows(secondary)["success %"][0] == "primary, see above"
    assert rows(secondary)["held-out action error"][3:5] == ["0.031", "0.062"]  # Holm: 2 x 0.031
    assert rows(secondary)["probe top"][3:5] == ["0.031", "0.062"]


def test_a_saved_run_renders_with_the_primary_block_first_and_without_the_primary_arms(tmp_path):
    from dataclasses import replace

    from lerobot_policy_reconvla.experiments.evidence import (
        PRESETS,
        paired_comparisons_of_saved_run,
        saved_results,
        write_report,
    )

    # The committed run, read back from its results JSON.
    saved = REPO / "docs" / "evidence_files" / "lift_pair_results.json"
    results, arms, seeds, cameras = saved_results(saved)
    assert arms == ["pi0", "gaze"] and seeds == [0, 1, 2, 3, 4, 5]

    def report(results: dict, preset) -> list[str]:
        out = tmp_path / "evidence.md"
        write_report(
            out,
            tmp_path / "evidence_files",
            "cmd",
            "cpu",
            preset,
            seeds,
            {"lift_pair": (results, cameras)},
            60,
            "c",
        )
        return out.read_text().splitlines()

    as_run = replace(PRESETS["cpu"], arms=arms, seeds=len(seeds))  # the preset with the arms that ran
    lines = report(results, as_run)
    top = lines.index("## Primary question")
    block = lines[top + 2 : top + 7]
    assert [line.split("**")[1] for line in block] == ["Question", "Difference", "p", "Detectable", "Verdict"]
    assert lines[top + 7] == "" and lines.index("## Secondary measures") == top + 8
    assert (
        top + 8
        < lines.index("### lift_pair")
        < next(i for i, line in enumerate(lines) if line.startswith("| arm |"))
    )
    assert lines[top - 1] == "" and lines[top - 2].startswith("- success, wrong object and retargets")
    # gaze 33.3 % against pi0 26.7 % over six seeds: +6.7 points, p = 0.625, detectable only at 33.3 points.
    assert block[1].startswith("- **Difference** (gaze - pi0, mean over 6 paired seeds): +6.7 points")
    assert block[2].startswith("- **p** = 0.625")
    assert block[4] == (
        "- **Verdict**: inconclusive: this run could detect only 33.3 points or more, above the 15 points "
        "asked."
    )
    # The primary's row is out of the Holm family: 9 tests in all, 8 in the report's family.
    assert paired_comparisons_of_saved_run(saved).startswith(
        "Paired comparisons over 6 seeds (A - B): 9 tests"
    )
    assert any(line.startswith("Paired comparisons over 6 seeds (A - B): 8 tests") for line in lines)
    assert "| pi0 - gaze | success % | primary, see above | - | - | - | - | - |" in lines

    # A run without the gaze arm: the block says so, the secondary table is all there.
    pi0_only = {key: row for key, row in results.items() if key[0] != "gaze"}
    lines = report(pi0_only, replace(as_run, arms=["pi0"]))
    assert "- **Verdict**: no verdict: this run has no `gaze` arm on lift_pair." in lines
    assert any(line.startswith("| pi0: recon_weight=0 |") for line in lines)
    assert any(line.startswith("Paired comparisons over 6 seeds (A - B): 0 tests") for line in lines)
    assert not any("primary, see above" in line for line in lines)
