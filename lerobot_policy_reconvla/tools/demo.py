"""The main job, end to end through LeRobot's own CLIs, offline on the CPU.

1. generate three-camera ALOHA sim demonstrations with gaze boxes (scripted one-arm cube lifts at
   random placements, seeds 0, 1, ...),
2. train the tiny ReconVLA on them with `lerobot-train` (preset `configs/policy/reconvla_tiny.json`),
   saving a checkpoint at every point of the curve,
3. evaluate every checkpoint with `lerobot-eval` in `aloha_multicam` on held-out placements (LeRobot's
   evaluation seeds, 1000 upwards, which no demonstration used),
4. write the reconstruction pictures of the last checkpoint and the success-versus-step curve (PNG),
5. print where everything is and the figures (losses, success rates, seconds).

    python -m lerobot_policy_reconvla.tools.demo [--output-dir outputs/demo] [--task lift] [--steps 600]

Every stage is a subprocess running the command a user would type; its full log is kept next to its
outputs, and the command lines are printed so any stage can be rerun by hand.

The demo writes only into `--output-dir`. It refuses a directory that is not empty unless a previous
demo run made it (the `.reconvla_demo` marker); then it keeps the generated data (the generator resumes
it, adding episodes only if more are asked for) and replaces only the outputs of the later stages.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..sim.constants import TASKS, default_episode_length
from .presets import preset_path

# Chosen from timed runs on 2 CPU cores: the whole demo in under 15 minutes (13.5 measured, install
# excluded) with the tiny preset's success on held-out lift placements above zero (docs/results.md).
DEFAULT_EPISODES = 20
DEFAULT_STEPS = 600
DEFAULT_ACTION_NOISE = 0.02  # rad: demonstrations that show the way back to the script's path (sim.generate)
OUTCOMES = "outcomes.jsonl"  # per-episode outcomes the env writes next to lerobot-eval's eval_info.json

MARKER = ".reconvla_demo"
# What a demo run writes besides the data: removed before a rerun (lerobot-train refuses an existing output_dir).
STAGE_OUTPUTS = ("train", "eval", "reconstructions", "data.log", "train.log", "eval.log", "reconstructions.log",
                 "summary.json", "success_curve.png")  # fmt: skip
STEP_LINE = re.compile(r"step:(\d+) .*?loss:([\d.]+).*?action_loss:([\d.]+) recon_loss:([\d.]+)")


def run_stage(name: str, command: list[str], log_path: Path, timings: dict[str, float], append: bool = False) -> str:
    """Runs one stage, writing its output to `log_path` (after what is there with `append`); fails loudly
    with the log's tail; returns this stage's output."""
    print(f"\n[{name}] $ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    env = dict(os.environ, HF_HUB_OFFLINE="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    offset = log_path.stat().st_size if append and log_path.exists() else 0
    with open(log_path, "a" if append else "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    timings[name] = time.perf_counter() - start
    with open(log_path) as log:
        log.seek(offset)
        output = log.read()
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-40:])
        raise SystemExit(f"[{name}] failed (exit {result.returncode}); last lines of {log_path}:\n{tail}")
    print(f"[{name}] done in {timings[name]:.0f} s (log: {log_path})", flush=True)
    return output


def lerobot_cli(name: str) -> str:
    """Path of a LeRobot console script installed next to this Python (the environment running the demo)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not installed next to {sys.executable}; install lerobot in this environment")
    return str(path)


def prepare_output_dir(out: Path) -> None:
    """Makes `out` ready for a run without deleting anything the demo did not write itself."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise SystemExit(
                f"--output-dir {out} is not empty and is not the output of a previous demo run (no {MARKER} file); "
                "pass a new or empty directory"
            )
        for name in STAGE_OUTPUTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by python -m lerobot_policy_reconvla.tools.demo; the demo may replace this directory's stage outputs\n")


def parse_losses(train_log: str) -> list[tuple[int, float, float, float]]:
    """(step, loss, action_loss, recon_loss) of every logged training step."""
    return [(int(s), float(l), float(a), float(r)) for s, l, a, r in STEP_LINE.findall(train_log)]


def read_outcomes(path: Path) -> list[dict]:
    """The env's outcome log (one JSON line per finished episode, ``--env.outcome_log``)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wrong_object_pc(task: str, outcomes: list[dict]) -> float | None:
    """Percent of episodes whose first lifted cube was not the named one (``lift_named``; None otherwise)."""
    named = [o for o in outcomes if o.get("target")]
    if task != "lift_named" or not named:
        return None
    wrong = sum(bool(o["first_lifted"]) and o["first_lifted"] != o["target"] for o in named)
    return 100.0 * wrong / len(named)


def checkpoint_steps(steps: int, points: int) -> list[int]:
    """Training steps at which the curve is measured: multiples of ``steps // points`` (lerobot-train's
    --save_freq), the last one `steps` (lerobot-train always saves the last step).

    >>> checkpoint_steps(1200, 3), checkpoint_steps(1000, 3)
    ([400, 800, 1200], [333, 666, 1000])
    """
    if points < 1 or steps < points:
        raise ValueError(f"need 1 <= curve points <= steps, got {points} points for {steps} steps")
    every = steps // points
    return [every * (i + 1) for i in range(points - 1)] + [steps]


def plot_success_curve(curve: list[tuple[int, float]], n_episodes: int, task: str, path: Path) -> None:
    """Success rate (%) on held-out placements against the training step, one point per checkpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, success = zip(*curve, strict=True)
    figure, axis = plt.subplots(figsize=(5, 3.2), dpi=120)
    axis.plot(steps, success, marker="o")
    axis.set_xlabel("training step")
    axis.set_ylabel(f"success (%) over {n_episodes} episodes")
    axis.set_ylim(-5, 105)
    axis.set_title(f"tiny ReconVLA, {task}, held-out placements")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--task", default="lift", choices=list(TASKS))
    parser.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help="scripted demonstrations to generate")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training steps")
    parser.add_argument("--action-noise", type=float, default=DEFAULT_ACTION_NOISE,
                        help="std (rad) of the arms' perturbation while recording the demonstrations "
                             "(sim.generate --action-noise; 0: exact scripted replays)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--curve-points", type=int, default=2, help="checkpoints evaluated (the last at --steps)")
    parser.add_argument("--n-action-steps", type=int, default=10,
                        help="actions executed per predicted chunk (the preset's chunk is 20): replanning more often")
    parser.add_argument("--eval-episodes", type=int, default=10, help="lerobot-eval episodes per checkpoint")
    parser.add_argument("--episode-length", type=int, default=None, help="sim steps per episode (the task's)")
    parser.add_argument("--image-size", type=int, nargs=2, default=[96, 128], metavar=("H", "W"))
    parser.add_argument("--image-resolution", type=int, default=112,
                        help="side the policy resizes each camera to (tokens per camera: (side // 14)^2)")
    parser.add_argument("--shadows", action="store_true", help="render shadows (about 3x slower on a CPU)")
    parser.add_argument("--seed", type=int, default=1000, help="lerobot-train's seed (model init, batch order)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="dataset directory of the demonstrations (default: <output-dir>/data); runs that "
                             "differ only in training can share one")
    args = parser.parse_args(argv)
    curve_steps = checkpoint_steps(args.steps, args.curve_points)
    episode_length = args.episode_length or default_episode_length(args.task)

    out = args.output_dir.resolve()
    prepare_output_dir(out)
    timings: dict[str, float] = {}
    repo_id = f"local/aloha_sim_{args.task}_3cam"
    data_root = args.data_root.resolve() if args.data_root else out / "data"
    train_dir = out / "train"
    height, width = args.image_size
    shadows = "true" if args.shadows else "false"
    env_args = [
        "--env.type=aloha_multicam", f"--env.task={args.task}", f"--env.observation_height={height}",
        f"--env.observation_width={width}", f"--env.episode_length={episode_length}", f"--env.shadows={shadows}",
    ]  # fmt: skip

    # 1. Data: scripted demonstrations replayed with three cameras rendering (a previous run's data is
    #    resumed by the generator, which refuses it if the task, cameras or image size differ).
    generate = [
        sys.executable, "-m", "lerobot_policy_reconvla.sim.generate", f"--task={args.task}",
        f"--num-episodes={args.episodes}", f"--root={data_root}", f"--repo-id={repo_id}",
        "--image-size", str(height), str(width), f"--episode-length={episode_length}",
        f"--action-noise={args.action_noise}",
    ]  # fmt: skip
    if not args.shadows:
        generate.append("--no-shadows")
    if episode_length < default_episode_length(args.task):
        generate.append("--keep-failed")  # a shortened episode cannot finish the task
    run_stage("data", generate, out / "data.log", timings)

    # 2. Train, saving a checkpoint at every point of the curve.
    save_freq = args.steps // args.curve_points
    train_log = run_stage(
        "train",
        [
            lerobot_cli("lerobot-train"), f"--config_path={preset_path('reconvla_tiny')}",
            f"--dataset.repo_id={repo_id}", f"--dataset.root={data_root}", f"--output_dir={train_dir}",
            f"--steps={args.steps}", f"--batch_size={args.batch_size}", f"--save_freq={save_freq}",
            f"--log_freq={max(1, args.steps // 10)}", "--num_workers=0", "--wandb.enable=false",
            f"--policy.image_resolution=[{args.image_resolution},{args.image_resolution}]",
            f"--seed={args.seed}", "--env_eval_freq=0", f"--policy.n_action_steps={args.n_action_steps}",
            f"--policy.scheduler_decay_steps={args.steps}",  # the learning rate anneals by the last step
        ],  # fmt: skip
        out / "train.log",
        timings,
    )
    losses = parse_losses(train_log)
    from lerobot.common.train_utils import get_step_checkpoint_dir

    checkpoints = {step: get_step_checkpoint_dir(train_dir, args.steps, step) / "pretrained_model" for step in curve_steps}

    # 3. Evaluate every checkpoint on held-out placements (lerobot-eval's seeds start at 1000).
    curve: list[tuple[int, float]] = []
    for step, checkpoint in checkpoints.items():
        eval_dir = out / "eval" / f"{step:06d}"
        run_stage(
            f"eval step {step}",
            [
                lerobot_cli("lerobot-eval"), f"--policy.path={checkpoint}", *env_args,
                f"--env.outcome_log={eval_dir / OUTCOMES}", f"--eval.n_episodes={args.eval_episodes}",
                "--eval.batch_size=1", f"--output_dir={eval_dir}",
            ],  # fmt: skip
            out / "eval.log",
            timings,
            append=True,
        )
        curve.append((step, json.loads((eval_dir / "eval_info.json").read_text())["overall"]["pc_success"]))
    success, final_eval = curve[-1][1], eval_dir  # the last checkpoint's
    outcomes = read_outcomes(final_eval / OUTCOMES)
    videos = sorted(final_eval.rglob("*.mp4"))
    curve_png = out / "success_curve.png"
    plot_success_curve(curve, args.eval_episodes, args.task, curve_png)

    # 4. Reconstructions of the trained head.
    checkpoint = checkpoints[args.steps]
    run_stage(
        "reconstructions",
        [
            sys.executable, "-m", "lerobot_policy_reconvla.tools.visualize", f"--policy-path={checkpoint}",
            f"--dataset-repo-id={repo_id}", f"--dataset-root={data_root}", f"--frame-index={episode_length // 2}",
            f"--out-dir={out / 'reconstructions'}",
        ],  # fmt: skip
        out / "reconstructions.log",
        timings,
    )
    pictures = sorted((out / "reconstructions").glob("*.png"))

    # 5. Summary.
    summary = {
        "task": args.task,
        "dataset": str(data_root),
        "checkpoint": str(checkpoint),
        "reconstructions": [str(p) for p in pictures],
        "eval_episodes": args.eval_episodes,
        "eval_success_pc": success,
        "success_curve": [{"step": step, "success_pc": pc} for step, pc in curve],
        "success_curve_png": str(curve_png),
        "wrong_object_pc": wrong_object_pc(args.task, outcomes),
        "eval_videos": [str(v) for v in videos],
        "losses_first": losses[0] if losses else None,
        "losses_last": losses[-1] if losses else None,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n==================== ReconVLA demo ====================")
    print(f"dataset          {data_root} ({args.episodes} scripted {args.task} demonstrations)")
    print(f"checkpoint       {checkpoint}")
    print(f"success          {success:.0f}% over {args.eval_episodes} held-out placements at step {args.steps}")
    if summary["wrong_object_pc"] is not None:
        print(f"wrong object     {summary['wrong_object_pc']:.0f}% of episodes lifted another cube first")
    print("success curve    " + ", ".join(f"step {step}: {pc:.0f}%" for step, pc in curve) + f"  ({curve_png})")
    for video in videos:
        print(f"eval video       {video}")
    for picture in pictures:
        print(f"reconstruction   {picture}")
    if losses:
        (s0, l0, a0, r0), (s1, l1, a1, r1) = losses[0], losses[-1]
        print(f"loss             step {s0}: {l0:.3f} (action {a0:.3f}, recon {r0:.3f})")
        print(f"                 step {s1}: {l1:.3f} (action {a1:.3f}, recon {r1:.3f})")
    print("seconds          " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) + f"; total {sum(timings.values()):.0f}")
    print(f"summary          {out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    main()
