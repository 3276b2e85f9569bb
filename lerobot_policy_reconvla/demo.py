"""The main job, end to end through LeRobot's own CLIs, offline on the CPU.

1. make a small three-camera dataset with gaze boxes,
2. train the tiny ReconVLA on it with `lerobot-train` (preset `configs/policy/reconvla_tiny.json`),
3. write the reconstruction pictures of the last checkpoint,
4. print where everything is and the figures (losses, seconds).

    python -m lerobot_policy_reconvla.demo [--output-dir outputs/demo] [--steps 200]

Every stage is a subprocess running the command a user would type; its full log is kept next to its
outputs, and the command lines are printed so any stage can be rerun by hand.
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
    return str(Path(sys.executable).parent / name)


def parse_losses(train_log: str) -> list[tuple[int, float, float, float]]:
    """(step, loss, action_loss, recon_loss) of every logged training step."""
    return [(int(s), float(l), float(a), float(r)) for s, l, a, r in STEP_LINE.findall(train_log)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=4, help="episodes in the generated dataset")
    args = parser.parse_args(argv)

    out = args.output_dir.resolve()
    if out.exists():
        shutil.rmtree(out)  # the demo always starts from nothing
    out.mkdir(parents=True)
    timings: dict[str, float] = {}
    repo_id = "local/reconvla_demo_3cam"
    data_root = out / "data"
    train_dir = out / "train"

    # 1. Data.
    start = time.perf_counter()
    from .synthetic_dataset import write_synthetic_dataset

    print(f"[data] writing a three-camera dataset with gaze boxes to {data_root}", flush=True)
    write_synthetic_dataset(data_root, repo_id, num_episodes=args.episodes, episode_length=50, height=96, width=128)
    timings["data"] = time.perf_counter() - start

    # 2. Train.
    train_log = run_stage(
        "train",
        [
            lerobot_cli("lerobot-train"), f"--config_path={preset_path('reconvla_tiny')}",
            f"--dataset.repo_id={repo_id}", f"--dataset.root={data_root}", f"--output_dir={train_dir}",
            f"--steps={args.steps}", f"--batch_size={args.batch_size}", f"--save_freq={args.steps}",
            f"--log_freq={max(1, args.steps // 10)}", "--num_workers=0", "--wandb.enable=false",
        ],  # fmt: skip
        out / "train.log",
        timings,
    )
    losses = parse_losses(train_log)
    checkpoint = train_dir / "checkpoints" / "last" / "pretrained_model"

    # 3. Reconstructions of the trained head.
    run_stage(
        "reconstructions",
        [
            sys.executable, "-m", "lerobot_policy_reconvla.visualize", f"--policy-path={checkpoint}",
            f"--dataset-repo-id={repo_id}", f"--dataset-root={data_root}", "--frame-index=25",
            f"--out-dir={out / 'reconstructions'}",
        ],  # fmt: skip
        out / "reconstructions.log",
        timings,
    )
    pictures = sorted((out / "reconstructions").glob("*.png"))

    # 4. Summary.
    summary = {
        "dataset": str(data_root),
        "checkpoint": str(checkpoint),
        "reconstructions": [str(p) for p in pictures],
        "losses_first": losses[0] if losses else None,
        "losses_last": losses[-1] if losses else None,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n==================== ReconVLA demo ====================")
    print(f"dataset          {data_root}")
    print(f"checkpoint       {checkpoint}")
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
