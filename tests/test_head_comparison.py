"""The head's comparison reader: it regenerates the committed table from the committed outcome logs, and
refuses logs that cannot be paired."""

import json
from pathlib import Path

from lerobot_policy_reconvla.experiments.head_comparison import main

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "docs" / "runs" / "lift_demo_600" / "seeds"


def committed_logs() -> tuple[list[int], list[Path], list[Path]]:
    """The confirmation's outcome logs as docs/results.md lists them: seeds 1000-1002 re-evaluated at 20
    actions per chunk, seeds 1003-1005 from the demo's own evaluation."""
    seeds = list(range(1000, 1006))
    with_head = [RUNS / f"seed{s}" / "n_action_steps_20" / "outcomes.jsonl" for s in seeds[:3]]
    with_head += [RUNS / f"head_seed{s}" / "outcomes.jsonl" for s in seeds[3:]]
    without = [RUNS / f"nohead_seed{s}" / "n_action_steps_20" / "outcomes.jsonl" for s in seeds[:3]]
    without += [RUNS / f"nohead_seed{s}" / "outcomes.jsonl" for s in seeds[3:]]
    return seeds, with_head, without


def flags(seeds, with_head, without) -> list[str]:
    return [
        f"--seeds=[{','.join(map(str, seeds))}]",
        f"--with_head=[{','.join(map(str, with_head))}]",
        f"--without_head=[{','.join(map(str, without))}]",
    ]


def test_the_committed_confirmation_table_is_what_the_committed_outcome_logs_give(capsys):
    assert main(flags(*committed_logs())) == 0
    printed = capsys.readouterr().out.splitlines()
    table = [line for line in printed if line.startswith("| ")]
    assert len(table) == 2 + 6 + 1  # header, rule, six seeds, the total
    results = (REPO / "docs" / "results.md").read_text().splitlines()
    start = results.index(table[0])  # the committed table, verbatim, header to total
    assert results[start : start + len(table)] == table
    assert table[-1] == "| all, of 180 | 23 / 78 | 11 / 52 | 23 / 11 | 55 / 29 |"
    held = next(line for line in printed if line.startswith("- held:"))
    assert "more with the head on 5 of 6 seeds, exact sign-flip p = 0.094" in held
    assert "pooled by placement 55 / 29, exact sign test p = 0.006" in held


def write_log(path: Path, outcomes: list[tuple[int, bool, float]]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"seed": seed, "success": success, "max_reward": reward}) + "\n"
            for seed, success, reward in outcomes
        )
    )
    return path


def test_a_single_seed_is_counted_without_a_test_over_seeds(tmp_path, capsys):
    with_head = write_log(tmp_path / "a.jsonl", [(7, True, 3.0), (8, False, 2.0), (9, False, 0.0)])
    without = write_log(tmp_path / "b.jsonl", [(9, False, 2.0), (7, False, 1.0), (8, False, 0.0)])
    assert main(flags([5], [with_head], [without])) == 0
    printed = capsys.readouterr().out.splitlines()
    # Paired by env seed, not by line order: with the head 7 lifted and held, 8 held; without, 9 held.
    assert "| 5 | 1 / 2 | 0 / 1 | 1 / 0 | 2 / 1 |" in printed
    assert any(
        line.startswith("- held: 2 with the head against 1 without; one seed: no test") for line in printed
    )


def test_logs_that_cannot_be_paired_are_refused_naming_the_flag_or_the_file(tmp_path, capsys):
    a = write_log(tmp_path / "a.jsonl", [(1, True, 3.0), (2, False, 0.0)])
    b = write_log(tmp_path / "b.jsonl", [(1, True, 3.0), (3, False, 0.0)])
    assert main(flags([1, 2], [a], [b])) == 2
    assert (
        "--seeds, --with_head and --without_head: expected one entry per training seed"
        in capsys.readouterr().err
    )

    assert main(flags([1], [a], [b])) == 2
    assert f"{a} and {b}: expected the same placements" in capsys.readouterr().err

    assert main(flags([1], [a], [tmp_path / "missing.jsonl"])) == 2
    assert "missing.jsonl: expected an outcome log" in capsys.readouterr().err

    (tmp_path / "old.jsonl").write_text(json.dumps({"seed": 1, "success": True}) + "\n")
    assert main(flags([1], [a], [tmp_path / "old.jsonl"])) == 2
    assert "old.jsonl: expected each episode's max_reward" in capsys.readouterr().err
