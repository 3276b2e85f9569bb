"""The main job, end to end through LeRobot's own CLIs, offline on the CPU.

1. generate a small three-camera ALOHA sim dataset with gaze boxes (scripted transfer-cube demos),
2. train the tiny ReconVLA on it with `lerobot-train` (preset `configs/policy/reconvla_tiny.json`),
   evaluating in `aloha_multicam` during training,
3. evaluate the last checkpoint with `lerobot-eval`,
4. write the reconstruction pictures of the last checkpoint,
5. print where everything is and the figures (losses, success rate, seconds).

    python -m lerobot_policy_reconvla.demo [--output-dir outputs/demo] [--steps 150] [--episodes 2]

The tiny model trained for minutes on two demonstrations does not solve the task (expect 0 %
success); the demo shows the whole pipeline working, not a result.

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

from .presets import preset_path

MARKER = ".reconvla_demo"
# What a demo run writes besides the data: removed before a rerun (lerobot-train refuses an existing output_dir).
STAGE_OUTPUTS = ("train", "eval", "reconstructions", "data.log", "train.log", "eval.log", "reconstructions.log",
                 "summary.json")  # fmt: skip
TRAIN_EVAL_LINE = re.compile(r"Suite overall aggregated: \{.*?'pc_success': ([\d.]+)")
STEP_LINE = re.compile(r"step:(\d+) .*?loss:([\d.]+).*?action_loss:([\d.]+) recon_loss:([\d.]+)")


def run_stage(name: str, command: list[str], log_path: Path, timings: dict[str, float]) -> str:
    """Runs one stage, teeing its output to `log_path`; fails loudly with the log's tail."""
    print(f"\n[{name}] $ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    env = dict(os.environ, HF_HUB_OFFLINE="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    with open(log_path, "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    timings[name] = time.perf_counter() - start
    output = log_path.read_text()
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
    (out / MARKER).write_text("written by python -m lerobot_policy_reconvla.demo; the demo may replace this directory's stage outputs\n")


def parse_losses(train_log: str) -> list[tuple[int, float, float, float]]:
    """(step, loss, action_loss, recon_loss) of every logged training step."""
    return [(int(s), float(l), float(a), float(r)) for s, l, a, r in STEP_LINE.findall(train_log)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--steps", type=int, default=150, help="training steps")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=2, help="scripted demonstrations to generate")
    parser.add_argument("--eval-episodes", type=int, default=1, help="lerobot-eval episodes")
    parser.add_argument("--episode-length", type=int, default=400, help="sim steps per episode")
    parser.add_argument("--task", default="transfer_cube", choices=["transfer_cube", "insertion"])
    parser.add_argument("--image-size", type=int, nargs=2, default=[96, 128], metavar=("H", "W"))
    args = parser.parse_args(argv)

    out = args.output_dir.resolve()
    prepare_output_dir(out)
    timings: dict[str, float] = {}
    repo_id = f"local/aloha_sim_{args.task}_3cam"
    data_root = out / "data"
    train_dir = out / "train"
    height, width = args.image_size
    env_args = [
        "--env.type=aloha_multicam", f"--env.task={args.task}", f"--env.observation_height={height}",
        f"--env.observation_width={width}", f"--env.episode_length={args.episode_length}",
    ]  # fmt: skip

    # 1. Data: scripted demonstrations replayed with three cameras rendering (a previous run's data is
    #    resumed by the generator, which refuses it if the task, cameras or image size differ).
    generate = [
        sys.executable, "-m", "lerobot_policy_reconvla.sim.generate", f"--task={args.task}",
        f"--num-episodes={args.episodes}", f"--root={data_root}", f"--repo-id={repo_id}",
        "--image-size", str(height), str(width), f"--episode-length={args.episode_length}",
    ]  # fmt: skip
    if args.episode_length < 400:
        generate.append("--keep-failed")  # a shortened episode cannot finish the task
    run_stage("data", generate, out / "data.log", timings)

    # 2. Train, with one evaluation episode in aloha_multicam at the end of training.
    train_log = run_stage(
        "train",
        [
            lerobot_cli("lerobot-train"), f"--config_path={preset_path('reconvla_tiny')}",
            f"--dataset.repo_id={repo_id}", f"--dataset.root={data_root}", f"--output_dir={train_dir}",
            f"--steps={args.steps}", f"--batch_size={args.batch_size}", f"--save_freq={args.steps}",
            f"--log_freq={max(1, args.steps // 10)}", "--num_workers=0", "--wandb.enable=false",
            *env_args, f"--env_eval_freq={args.steps}", "--eval.n_episodes=1", "--eval.batch_size=1",
        ],  # fmt: skip
        out / "train.log",
        timings,
    )
    losses = parse_losses(train_log)
    train_evals = [float(pc) for pc in TRAIN_EVAL_LINE.findall(train_log)]
    checkpoint = train_dir / "checkpoints" / "last" / "pretrained_model"

    # 3. Evaluate the last checkpoint.
    eval_dir = out / "eval"
    run_stage(
        "eval",
        [
            lerobot_cli("lerobot-eval"), f"--policy.path={checkpoint}", *env_args,
            f"--eval.n_episodes={args.eval_episodes}", "--eval.batch_size=1", f"--output_dir={eval_dir}",
        ],  # fmt: skip
        out / "eval.log",
        timings,
    )
    eval_info = json.loads((eval_dir / "eval_info.json").read_text())
    success = eval_info["overall"]["pc_success"]
    videos = sorted(eval_dir.rglob("*.mp4"))

    # 4. Reconstructions of the trained head.
    run_stage(
        "reconstructions",
        [
            sys.executable, "-m", "lerobot_policy_reconvla.visualize", f"--policy-path={checkpoint}",
            f"--dataset-repo-id={repo_id}", f"--dataset-root={data_root}", f"--frame-index={args.episode_length // 2}",
            f"--out-dir={out / 'reconstructions'}",
        ],  # fmt: skip
        out / "reconstructions.log",
        timings,
    )
    pictures = sorted((out / "reconstructions").glob("*.png"))

    # 5. Summary.
    summary = {
        "dataset": str(data_root),
        "checkpoint": str(checkpoint),
        "reconstructions": [str(p) for p in pictures],
        "train_eval_success_pc": train_evals,
        "eval_success_pc": success,
        "eval_videos": [str(v) for v in videos],
        "losses_first": losses[0] if losses else None,
        "losses_last": losses[-1] if losses else None,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n==================== ReconVLA demo ====================")
    print(f"dataset          {data_root}")
    print(f"checkpoint       {checkpoint}")
    print(f"eval in training success {', '.join(f'{pc:.0f}%' for pc in train_evals)} (1 episode at step {args.steps})")
    print(f"eval             {eval_dir}  success {success:.0f}% over {args.eval_episodes} episode(s)")
    for video in videos:
        print(f"eval video       {video}")
    for picture in pictures:
        print(f"reconstruction   {picture}")
    if losses:
        (s0, l0, a0, r0), (s1, l1, a1, r1) = losses[0], losses[-1]
        print(f"loss             step {s0}: {l0:.3f} (action {a0:.3f}, recon {r0:.3f})")
        print(f"                 step {s1}: {l1:.3f} (action {a1:.3f}, recon {r1:.3f})")
    print("seconds          " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print(f"summary          {out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    main()
