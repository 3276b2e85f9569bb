"""Success of the tiny preset on the short tasks, over several training seeds: the results table.

    reconvla-short-tasks --tasks='[lift,lift_named]' --seeds=3 \
        --out=docs/results.md [--work_dir=outputs/short_tasks] [--demo.steps=1200] [--demo.num_episodes=30]

(or ``python -m lerobot_policy_reconvla.experiments.short_tasks ...``)

Per task, the demonstrations are generated once (seeds 0, 1, ...); each training seed then runs the
demo's train and evaluate stages on them (``lerobot_policy_reconvla.tools.demo`` with ``--seed``): the same
data, a different model initialisation and batch order. Success is lerobot-eval's, on held-out
placements (evaluation seeds 1000 upwards); for ``lift_named`` the env's outcome log also gives the
wrong-object rate (episodes whose first lifted cube was not the named one). The report states the
command, the commit, the machine and the wall time of every run.
"""

import json
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from lerobot.configs import parser

from ..common.cli import UsageError, run_entry_point
from ..sim.constants import TASKS
from ..tools.demo import DemoConfig, run_demo
from . import checkout_commit

PROG = "reconvla-short-tasks"
MODULE = "lerobot_policy_reconvla.experiments.short_tasks"
FIRST_TRAIN_SEED = 1000  # lerobot-train's default seed; seed k is FIRST_TRAIN_SEED + k


@dataclass
class ShortTasksConfig:
    """The tiny preset's success over several training seeds per task, through the demo's stages."""

    # Tasks, any of insertion, transfer_cube, lift, lift_named, lift_pair.
    tasks: list[str] = field(default_factory=lambda: ["lift", "lift_named"])
    # Training seeds per task.
    seeds: int = 3
    # lerobot-train seed of the first run (seed k is this + k).
    first_seed: int = FIRST_TRAIN_SEED
    # Data, runs and results.json; a run finished there before is read back, not repeated.
    work_dir: Path = Path("outputs/short_tasks")
    # Write the report here (markdown; default: only print it).
    out: Path | None = None
    # Checkpoints evaluated per run (the demo's --curve_points; the last at the demo's --steps).
    curve_points: int = 1
    # The demo's settings for every run (--demo.steps, --demo.num_episodes, ...); its task, seed,
    # output_dir, data_root and curve_points are set per run.
    demo: DemoConfig = field(default_factory=DemoConfig)

    def check(self) -> None:
        """Raises UsageError naming the first flag whose value cannot work."""
        unknown = [task for task in self.tasks if task not in TASKS]
        if unknown or not self.tasks:
            raise UsageError(f"--tasks={self.tasks}: expected one or more of {list(TASKS)}")
        if self.seeds < 1:
            raise UsageError(f"--seeds={self.seeds}: expected at least 1")
        if not 1 <= self.curve_points <= self.demo.steps:
            raise UsageError(
                f"--curve_points must be between 1 and --demo.steps ({self.demo.steps}), "
                f"got {self.curve_points}"
            )
        replace(self.demo, task=self.tasks[0], curve_points=self.curve_points).check(flag_prefix="--demo.")


def run_seed(task: str, seed: int, work_dir: Path, curve_points: int, demo_settings: DemoConfig) -> dict:
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
    summary = run_demo(
        replace(
            demo_settings,
            task=task,
            seed=seed,
            output_dir=out,
            data_root=work_dir / task / "data",
            curve_points=curve_points,
        )
    )
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
        f"Evaluation: lerobot-eval, {first['eval_episodes']} held-out placements per run "
        "(seeds 1000 upwards; the demonstrations used seeds 0 upwards)",
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
                f"| {task} | {run['seed']} | {run['eval_success_pc']:.0f} | {wrong} | "
                f"{seconds['data']:.0f} | {seconds['train']:.0f} | {evals:.0f} | {run['wall_seconds']:.0f} |"
            )
    lines += [
        "",
        "| task | seeds | success (%), mean ± sd | wrong object (%), mean ± sd |",
        "| --- | --- | --- | --- |",
    ]
    for task, runs in results.items():
        wrong = [r["wrong_object_pc"] for r in runs if r["wrong_object_pc"] is not None]
        lines.append(
            f"| {task} | {len(runs)} | {_mean_spread([r['eval_success_pc'] for r in runs])} | "
            f"{_mean_spread(wrong) if wrong else '-'} |"
        )
    lines += [
        "",
        "The first run of a task also generates its demonstrations (its `data s`); later seeds reuse them.",
        (
            "Per-run summaries (losses, curve, videos) are in each run's `summary.json` "
            "under the work directory."
        ),
        "",
    ]
    return "\n".join(lines)


def run_short_tasks(cfg: ShortTasksConfig, command: str) -> dict[str, list[dict]]:
    """Runs every task and seed (resuming finished runs) and prints the report, also written to `cfg.out`;
    returns {task: [each run's summary]}.

    `command`: the command line the report states. Raises UsageError before any work for a flag whose
    value cannot work.
    """
    cfg.check()
    # Seed-major order, the report rewritten after every run: a table cut short still covers every task.
    results: dict[str, list[dict]] = {task: [] for task in cfg.tasks}
    for k in range(cfg.seeds):
        for task in cfg.tasks:
            results[task].append(run_seed(task, cfg.first_seed + k, cfg.work_dir, cfg.curve_points, cfg.demo))
            text = report({t: runs for t, runs in results.items() if runs}, command)
            if cfg.out:
                cfg.out.write_text(text)
                (cfg.work_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(text)
    return results


@parser.wrap()
def short_tasks_command(cfg: ShortTasksConfig) -> int:
    run_short_tasks(cfg, shlex.join(["python", "-m", MODULE, *sys.argv[1:]]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``reconvla-short-tasks``: exit status 0, 2 with one line for a bad flag, 1 with the log's tail for a
    demo stage that failed."""
    return run_entry_point(short_tasks_command, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(main())
