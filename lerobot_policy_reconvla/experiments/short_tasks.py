"""Success of the tiny preset on the short tasks, over several training seeds: the results table.

    python -m lerobot_policy_reconvla.experiments.short_tasks --tasks lift lift_named --seeds 3 \
        --out docs/results.md [--work-dir outputs/short_tasks] [--steps 1200] [--episodes 30]

Per task, the demonstrations are generated once (seeds 0, 1, ...); each training seed then runs the
demo's train and evaluate stages on them (``lerobot_policy_reconvla.tools.demo`` with ``--seed``): the same
data, a different model initialisation and batch order. Success is lerobot-eval's, on held-out
placements (evaluation seeds 1000 upwards); for ``lift_named`` the env's outcome log also gives the
wrong-object rate (episodes whose first lifted cube was not the named one). The report states the
command, the commit, the machine and the wall time of every run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from ..tools import demo
from . import checkout_commit
from ..sim.constants import TASKS

FIRST_TRAIN_SEED = 1000  # lerobot-train's default seed; seed k is FIRST_TRAIN_SEED + k


def run_seed(task: str, seed: int, work_dir: Path, passthrough: list[str]) -> dict:
    """The demo's summary for one training seed of `task` (the task's runs share one dataset).

    A run that finished before (its ``result.json`` is there) is read back, not repeated: an interrupted
    table resumes where it stopped.
    """
    out = work_dir / task / f"seed_{seed}"
    finished = out / "result.json"
    if finished.is_file():
        print(f"[{task} seed {seed}] finished before: {finished}", flush=True)
        return json.loads(finished.read_text())
    started = time.perf_counter()
    summary = demo.main([
        f"--task={task}", f"--seed={seed}", f"--output-dir={out}",
        f"--data-root={work_dir / task / 'data'}", "--curve-points=1", *passthrough,
    ])  # fmt: skip
    summary["seed"] = seed
    summary["wall_seconds"] = time.perf_counter() - started
    finished.write_text(json.dumps(summary, indent=2))
    return summary


def _mean_spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.0f}" if values else "-"
    return f"{statistics.mean(values):.0f} ± {statistics.stdev(values):.0f}"


def report(results: dict[str, list[dict]], command: str) -> str:
    first = next(iter(results.values()))[0]
    lines = [
        "# Short tasks: success of the tiny preset",
        "",
        f"Command: `{command}`  ",
        f"Commit: {checkout_commit()}  ",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, CPU only; "
        f"{len(first['success_curve'])} checkpoint evaluated per run  ",
        f"Evaluation: lerobot-eval, {first['eval_episodes']} held-out placements per run (seeds 1000 upwards; "
        "the demonstrations used seeds 0 upwards)",
        "",
        "| task | training seed | success (%) | wrong object (%) | data s | train s | eval s | run s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task, runs in results.items():
        for run in runs:
            seconds = run["seconds"]
            evals = sum(v for k, v in seconds.items() if k.startswith("eval"))
            wrong = "-" if run["wrong_object_pc"] is None else f"{run['wrong_object_pc']:.0f}"
            lines.append(
                f"| {task} | {run['seed']} | {run['eval_success_pc']:.0f} | {wrong} | {seconds['data']:.0f} | "
                f"{seconds['train']:.0f} | {evals:.0f} | {run['wall_seconds']:.0f} |"
            )
    lines += ["", "| task | seeds | success (%), mean ± sd | wrong object (%), mean ± sd |", "| --- | --- | --- | --- |"]
    for task, runs in results.items():
        wrong = [r["wrong_object_pc"] for r in runs if r["wrong_object_pc"] is not None]
        lines.append(
            f"| {task} | {len(runs)} | {_mean_spread([r['eval_success_pc'] for r in runs])} | "
            f"{_mean_spread(wrong) if wrong else '-'} |"
        )
    lines += [
        "",
        "The first run of a task also generates its demonstrations (its `data s`); later seeds reuse them.",
        "Per-run summaries (losses, curve, videos) are in each run's `summary.json` under the work directory.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, list[dict]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["lift", "lift_named"], choices=list(TASKS))
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per task")
    parser.add_argument("--first-seed", type=int, default=FIRST_TRAIN_SEED, help="lerobot-train seed of the first run")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/short_tasks"))
    parser.add_argument("--out", type=Path, default=None, help="write the report here (markdown)")
    args, passthrough = parser.parse_known_args(argv)  # the rest goes to the demo (--steps, --episodes, ...)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    command = "python -m lerobot_policy_reconvla.experiments.short_tasks " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    # Seed-major order, the report rewritten after every run: a table cut short still covers every task.
    results: dict[str, list[dict]] = {task: [] for task in args.tasks}
    for k in range(args.seeds):
        for task in args.tasks:
            results[task].append(run_seed(task, args.first_seed + k, args.work_dir, passthrough))
            text = report({t: runs for t, runs in results.items() if runs}, command)
            if args.out:
                args.out.write_text(text)
                (args.work_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(text)
    return results


if __name__ == "__main__":
    main()
