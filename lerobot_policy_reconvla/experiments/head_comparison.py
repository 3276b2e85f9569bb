"""Does the reconstruction head help? Reads the outcome logs of runs trained with and without the head's
loss, paired by training seed, and prints the comparison table of docs/results.md.

    python -m lerobot_policy_reconvla.experiments.head_comparison \
        --seeds='[1003,1004]' \
        --with_head='[outputs/head_s1003/eval/outcomes.jsonl,outputs/head_s1004/eval/outcomes.jsonl]' \
        --without_head='[outputs/nohead_s1003/eval/outcomes.jsonl,outputs/nohead_s1004/eval/outcomes.jsonl]'

Each outcome log is the env's ``--env.outcome_log`` of one `lerobot-eval` (the demo keeps it as
``eval/outcomes.jsonl``); the two runs of a seed must have been evaluated on the same placements. Two
outcomes per episode: *lifted* (the env's success) and *held* (the cube held off the table at some step,
reward >= 2). The unit of replication is the training seed: the test over seeds is the exact sign-flip
test of `metrics.paired_comparison`. The pooled count by placement (an exact sign test over the placements
one run reached and the other did not) treats the episodes as independent, which runs sharing a training
seed are not, so it is printed as a lead only.
"""

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lerobot.configs import parser

from ..common.cli import UsageError, run_entry_point
from ..tools.demo import held_off_table, paired_counts, read_outcomes
from .metrics import paired_comparison

MODULE = "lerobot_policy_reconvla.experiments.head_comparison"
MEASURES = {  # name: whether one episode reached it
    "lifted": lambda episode: bool(episode["success"]),
    "held": held_off_table,
}


@dataclass
class HeadComparisonConfig:
    """Runs with and without the head's loss, paired by training seed: one outcome log per run."""

    # Training seed of each pair, in the order of the two lists below.
    seeds: list[int] = field(default_factory=list)
    # Outcome log (outcomes.jsonl) of each seed's run with the head.
    with_head: list[Path] = field(default_factory=list)
    # Outcome log of each seed's run without it (recon_weight=0).
    without_head: list[Path] = field(default_factory=list)


def paired_outcomes(with_path: Path, without_path: Path) -> dict[str, tuple[list[bool], list[bool]]]:
    """{measure: (with the head, without), one bool per placement in seed order}; raises UsageError where a
    log is missing, lacks the highest reward, or the two runs were not evaluated on the same placements."""
    runs = []
    for path in (with_path, without_path):
        episodes = read_outcomes(path)
        if not episodes:
            raise UsageError(f"{path}: expected an outcome log (--env.outcome_log) with one line per episode")
        if not all("max_reward" in episode for episode in episodes):
            raise UsageError(f"{path}: expected each episode's max_reward (written by the env's outcome log)")
        runs.append({int(episode["seed"]): episode for episode in episodes})
    with_runs, without_runs = runs
    if sorted(with_runs) != sorted(without_runs):
        raise UsageError(
            f"{with_path} and {without_path}: expected the same placements (env seeds), got "
            f"{len(with_runs)} and {len(without_runs)} episodes that differ"
        )
    placements = sorted(with_runs)
    return {
        name: ([reached(with_runs[s]) for s in placements], [reached(without_runs[s]) for s in placements])
        for name, reached in MEASURES.items()
    }


def comparison_lines(seeds: list[int], pairs: list[dict[str, tuple[list[bool], list[bool]]]]) -> list[str]:
    """Markdown: the per-seed table (counts and placements reached by one run only), then per measure the
    test over seeds and the pooled count by placement."""
    from scipy.stats import binomtest

    placements = {len(pair["held"][0]) for pair in pairs}
    of = f"of {placements.pop()}" if len(placements) == 1 else "per run"
    lines = [
        f"| training seed | with the head: lifted / held, {of} | without: lifted / held, {of} | "
        "lifted, paired by placement: with only / without only | "
        "held, paired by placement: with only / without only |",
        "| --- | --- | --- | --- | --- |",
    ]
    totals = {name: [0, 0, 0, 0] for name in MEASURES}  # with, without, with only, without only
    per_seed = {name: ([], []) for name in MEASURES}  # (with, without) counts per seed
    for seed, pair in zip(seeds, pairs, strict=True):
        cells = {}
        for name in MEASURES:
            with_head, without_head = pair[name]
            counts = paired_counts(with_head, without_head)
            row = [sum(with_head), sum(without_head), counts["policy_only"], counts["blind_only"]]
            totals[name] = [t + r for t, r in zip(totals[name], row, strict=True)]
            per_seed[name][0].append(row[0])
            per_seed[name][1].append(row[1])
            cells[name] = row
        lifted, held = cells["lifted"], cells["held"]
        lines.append(
            f"| {seed} | {lifted[0]} / {held[0]} | {lifted[1]} / {held[1]} | {lifted[2]} / {lifted[3]} | "
            f"{held[2]} / {held[3]} |"
        )
    lifted, held = totals["lifted"], totals["held"]
    episodes = sum(len(pair["held"][0]) for pair in pairs)
    lines += [
        f"| all, of {episodes} | {lifted[0]} / {held[0]} | {lifted[1]} / {held[1]} | "
        f"{lifted[2]} / {lifted[3]} | {held[2]} / {held[3]} |",
        "",
    ]
    for name in ("held", "lifted"):
        if len(seeds) >= 2:
            c = paired_comparison(*per_seed[name])
            over_seeds = (
                f"mean difference {c['mean']:+.2f} per run, more with the head on "
                f"{sum(a > b for a, b in zip(*per_seed[name], strict=True))} of {c['n']} seeds, exact "
                f"sign-flip p = {c['p']:.3f}, detectable at 80 % power {c['mde']:.1f}"
            )
        else:
            over_seeds = "one seed: no test over seeds"
        with_only, without_only = totals[name][2:]
        pooled = binomtest(with_only, with_only + without_only).pvalue if with_only + without_only else 1.0
        lines.append(
            f"- {name}: {totals[name][0]} with the head against {totals[name][1]} without; {over_seeds}; "
            f"pooled by placement {with_only} / {without_only}, exact sign test p = {pooled:.3f} "
            "(a lead only)"
        )
    return lines


def run_comparison(cfg: HeadComparisonConfig) -> list[str]:
    """The comparison's markdown lines; raises UsageError before reading a log if the lists do not pair."""
    if not cfg.seeds or not len(cfg.seeds) == len(cfg.with_head) == len(cfg.without_head):
        raise UsageError(
            f"--seeds, --with_head and --without_head: expected one entry per training seed in each, got "
            f"{len(cfg.seeds)}, {len(cfg.with_head)} and {len(cfg.without_head)}"
        )
    pairs = [paired_outcomes(a, b) for a, b in zip(cfg.with_head, cfg.without_head, strict=True)]
    return comparison_lines(cfg.seeds, pairs)


@parser.wrap()
def head_comparison_command(cfg: HeadComparisonConfig) -> int:
    print(f"$ {shlex.join(['python', '-m', MODULE, *sys.argv[1:]])}\n")
    print("\n".join(run_comparison(cfg)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status 0, or 2 with one line for a flag or a log that cannot be read as asked."""
    return run_entry_point(head_comparison_command, argv, prog=f"python -m {MODULE}")


if __name__ == "__main__":
    raise SystemExit(main())
