"""Does the reconstruction head change what the backbone learns? ReconVLA against pi0, same data and steps.

    reconvla-evidence --preset=cpu [--seeds=3] [--out=docs/evidence.md]
    reconvla-evidence --preset=gpu

(or ``python -m lerobot_policy_reconvla.experiments.evidence ...``; the earlier dashed spellings still work
for one release, with a deprecation message.)

Three arms, identical data, seeds, steps, batch and optimizer, each trained by `lerobot-train`:

- `pi0`: the same policy with recon_weight=0 (the head gets no gradient; the backbone is pi0's);
- `gaze`: ReconVLA reconstructing each camera's gaze crop (the simulator's boxes);
- `whole`: ReconVLA reconstructing the whole image: it trains on a copy of the dataset without the
  `observation.gaze_box.*` features (LeRobot's `remove_feature`), so the policy never sees a box.

Data: scripted three-camera demonstrations from `lerobot_policy_reconvla.sim.generate`; the held-out
episodes come from other seeds (other object placements) and are never trained on.

Metrics per arm, mean ± standard deviation over seeds: held-out action error (the same noise draws for
every arm), a grounding probe (ridge regression from each camera's visual hidden states, at the layer the
head reads, to the gaze box's centre; the untrained backbone is the floor), success rate with
`lerobot-eval` in `aloha_multicam`, the loss curves and the last checkpoint's reconstructions.
The report (markdown + PNGs) states the command, the commit and the machine.
"""

import copy
import json
import math
import os
import platform
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from lerobot.configs import parser

from ..common.cli import OldFlag, UsageError, check_image_size, run_entry_point
from ..common.processes import run_logged
from ..gaze_box import is_gaze_box_key
from ..tools.demo import lerobot_cli, parse_losses
from ..tools.presets import preset_path
from . import checkout_commit
from .metrics import paired_comparison

ARMS = {
    "pi0": "pi0: recon_weight=0",
    "gaze": "ReconVLA, gaze crops",
    "whole": "ReconVLA, whole image (no boxes)",
}
PROG = "reconvla-evidence"
MODULE = "lerobot_policy_reconvla.experiments.evidence"
EVIDENCE_TASKS = ("transfer_cube", "insertion")
FIXED_NOISE_SEED = 1234  # the action-error noise draws, identical for every arm and seed
EVAL_START_SEED = 100_000  # lerobot-eval's first env seed: the same initial states for every arm


@dataclass
class Preset:
    tasks: list[str]
    train_episodes: int
    heldout_episodes: int
    episode_length: int
    image_size: tuple[int, int]  # (H, W) of the camera images
    image_resolution: int  # side PaliGemma sees (tokens per camera: (side // 14)^2)
    steps: int
    batch_size: int
    eval_episodes: int  # lerobot-eval episodes per arm and seed
    recon_weight: float = 0.5  # the tiny preset's (configs/policy/reconvla_tiny.json)
    chunk_size: int = 20
    device: str = "cpu"
    probe_frames: int = 600  # training frames the probe is fitted on (evenly spaced)
    heldout_frames: int = 200  # held-out frames for the probe and the action error
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    workers: int | None = None  # generator processes (None: the cores available); the data does not depend on it


PRESETS = {
    # Sized from a timed short run on 2 CPU cores (0.39 s per step at batch 8, ~25 s per evaluated episode,
    # ~17 frames/s generated) to stay under 90 minutes with 3 seeds.
    "cpu": Preset(tasks=["transfer_cube"], train_episodes=6, heldout_episodes=2, episode_length=400,
                  image_size=(96, 128), image_resolution=112, steps=800, batch_size=8, eval_episodes=2),
    # Same recipe where success rates can mean something: more data, steps and evaluation episodes.
    "gpu": Preset(tasks=["transfer_cube", "insertion"], train_episodes=50, heldout_episodes=10,
                  episode_length=400, image_size=(224, 224), image_resolution=224, steps=20_000, batch_size=32,
                  eval_episodes=20, device="cuda", probe_frames=2000, heldout_frames=500),
}  # fmt: skip


def run(command: list[str], log_path: Path) -> str:
    """Runs one stage as the user would type it; its output goes to `log_path`; raises CommandFailed with the
    log's tail."""
    print(f"$ {shlex.join(command)}", flush=True)
    return run_logged(command, log_path, label=log_path.stem)


def generate(task: str, root: Path, episodes: int, first_seed: int, preset: Preset, log: Path) -> None:
    height, width = preset.image_size
    command = [
        sys.executable, "-m", "lerobot_policy_reconvla.sim.generate", f"--task={task}", f"--root={root}",
        f"--repo_id=local/{root.name}", f"--num_episodes={episodes}", f"--seed={first_seed}",
        f"--image_size=[{height},{width}]", f"--episode_length={preset.episode_length}",
    ]  # fmt: skip
    if preset.workers is not None:
        command.append(f"--workers={preset.workers}")
    if preset.episode_length < 400:
        command.append("--keep_failed=true")  # a shortened episode cannot finish the task
    run(command, log)


def without_gaze_boxes(root: Path, out_root: Path) -> None:
    """A copy of the dataset without its gaze-box features (the whole-image arm's view of the data)."""
    from lerobot.datasets import LeRobotDataset
    from lerobot.datasets.dataset_tools import remove_feature

    dataset = LeRobotDataset(f"local/{root.name}", root=root)
    boxes = [key for key in dataset.meta.features if is_gaze_box_key(key)]
    remove_feature(dataset, boxes, output_dir=out_root, repo_id=f"local/{out_root.name}")


def train(arm: str, seed: int, data_root: Path, out_dir: Path, preset: Preset, log: Path) -> list:
    """One arm and seed through `lerobot-train`; returns the logged (step, loss, action, recon) rows."""
    side = preset.image_resolution
    output = run(
        [
            lerobot_cli("lerobot-train"),
            f"--config_path={preset_path('reconvla_tiny')}",
            f"--dataset.repo_id=local/{data_root.name}",
            f"--dataset.root={data_root}",
            f"--output_dir={out_dir}",
            f"--seed={seed}",
            f"--steps={preset.steps}",
            f"--batch_size={preset.batch_size}",
            f"--save_freq={preset.steps}",
            f"--log_freq={max(1, preset.steps // 40)}",
            "--num_workers=0",
            "--wandb.enable=false",
            f"--policy.device={preset.device}",
            f"--policy.image_resolution=[{side},{side}]",
            f"--policy.chunk_size={preset.chunk_size}",
            f"--policy.n_action_steps={preset.chunk_size}",
            f"--policy.recon_weight={0.0 if arm == 'pi0' else preset.recon_weight}",
        ],  # fmt: skip
        log,
    )
    return parse_losses(output)


def evaluate_success(checkpoint: Path, task: str, preset: Preset, out_dir: Path, log: Path) -> float:
    height, width = preset.image_size
    run(
        [
            lerobot_cli("lerobot-eval"),
            f"--policy.path={checkpoint}",
            "--env.type=aloha_multicam",
            f"--env.task={task}",
            f"--env.observation_height={height}",
            f"--env.observation_width={width}",
            f"--env.episode_length={preset.episode_length}",
            f"--eval.n_episodes={preset.eval_episodes}",
            "--eval.batch_size=1",
            f"--seed={EVAL_START_SEED}",
            f"--output_dir={out_dir}",
            f"--policy.device={preset.device}",
        ],  # fmt: skip
        log,
    )
    return json.loads((out_dir / "eval_info.json").read_text())["overall"]["pc_success"]


def offline_metrics(
    checkpoints: dict[tuple[str, int], Path],
    train_root: Path,
    heldout_root: Path,
    preset: Preset,
    recon_dir: Path,
) -> dict:
    """Action error and probe of every checkpoint, plus the untrained floor; reconstructions of seed 0."""
    from lerobot.datasets import LeRobotDataset
    from lerobot.policies.factory import make_pre_post_processors

    from ..modeling_reconvla import ReconVLAPolicy
    from ..tools.visualize import write_reconstructions
    from . import metrics

    fps = LeRobotDataset(f"local/{heldout_root.name}", root=heldout_root).meta.fps
    chunk = {"action": [i / fps for i in range(preset.chunk_size)]}
    train_set = LeRobotDataset(f"local/{train_root.name}", root=train_root)
    heldout = LeRobotDataset(f"local/{heldout_root.name}", root=heldout_root, delta_timestamps=chunk)
    train_indices = metrics.evenly_spaced(len(train_set), preset.probe_frames)
    heldout_indices = metrics.evenly_spaced(len(heldout), preset.heldout_frames)
    results: dict = {}
    floor_done: set[int] = set()
    for (arm, seed), checkpoint in sorted(checkpoints.items()):
        policy = ReconVLAPolicy.from_pretrained(checkpoint)
        preprocessor, postprocessor = make_pre_post_processors(policy.config, pretrained_path=str(checkpoint))
        noise = torch.randn(
            len(heldout_indices), preset.chunk_size, policy.config.max_action_dim,
            generator=torch.Generator().manual_seed(FIXED_NOISE_SEED),
        )  # fmt: skip
        heldout_features = metrics.camera_features(policy, preprocessor, heldout, heldout_indices)
        train_features = metrics.camera_features(policy, preprocessor, train_set, train_indices)
        results[(arm, seed)] = {
            "action_error": metrics.heldout_action_error(policy, preprocessor, postprocessor, heldout,
                                                         heldout_indices, noise),
            "probe": metrics.probe_errors(train_features, heldout_features),
        }  # fmt: skip
        if seed not in floor_done:  # the untrained backbone of this seed: the probe's floor
            floor_done.add(seed)
            torch.manual_seed(seed)
            untrained = ReconVLAPolicy(copy.deepcopy(policy.config))
            results[("untrained", seed)] = {
                "probe": metrics.probe_errors(
                    metrics.camera_features(untrained, preprocessor, train_set, train_indices),
                    metrics.camera_features(untrained, preprocessor, heldout, heldout_indices),
                ),
                "constant": metrics.constant_probe_errors(train_features[1], heldout_features[1]),
            }
        if arm != "pi0" and seed == min(s for _, s in checkpoints):
            frames = LeRobotDataset(
                f"local/{heldout_root.name}", root=heldout_root
            )  # single frames, no chunk
            frame = dict(preprocessor(frames[heldout_indices[len(heldout_indices) // 2]]))
            if arm == "whole":  # this arm never saw a box: its target is the whole image
                frame = {k: v for k, v in frame.items() if not is_gaze_box_key(k)}
            write_reconstructions(policy, frame, recon_dir, prefix=f"{arm}_")
    return results


def mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    std = (
        math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        if len(values) > 1
        else float("nan")
    )
    return mean, std


def fmt(values: list[float], digits: int = 3) -> str:
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")


def plot_losses(curves: dict[str, list[list]], path: Path) -> None:
    """Action and recon loss over training, one line per arm (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for arm, runs in curves.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        length = min(len(r) for r in runs)
        steps = [row[0] for row in runs[0][:length]]
        for axis, column in ((axes[0], 2), (axes[1], 3)):
            mean = [sum(r[i][column] for r in runs) / len(runs) for i in range(length)]
            if column == 3 and not any(mean):
                continue  # pi0's head never trains: nothing to draw on a log scale
            axis.plot(steps, mean, label=ARMS[arm])
    axes[0].set_title("action loss (flow matching)")
    axes[1].set_title("recon loss (eps MSE)")
    for axis in axes:
        axis.set_xlabel("step")
        axis.set_yscale("log")
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def paired_comparisons(results: dict, arms: list[str], seeds: list[int], cameras: list[str]) -> list[str]:
    """Markdown: every pair of arms on every measure, seeds paired, two-sided t-test at 5 %: the mean
    difference, the threshold it must pass, the minimum detectable effect at 80 % power, p, and in how many
    seeds the first arm was lower. Every pair and measure is listed, whichever way it goes."""
    if len(seeds) < 2:
        return ["One seed: no spread, so no difference between arms is resolved by this run."]
    pairs = [(a, b) for i, a in enumerate(arms) for b in arms[i + 1 :]]
    measures = [("held-out action error", lambda r: r["action_error"])]
    measures += [(f"probe {camera}", lambda r, camera=camera: r["probe"][camera]) for camera in cameras]
    if all("success" in results[(arm, s)] for arm in arms for s in seeds):
        measures.append(("success %", lambda r: r["success"]))
    lines = [
        f"Paired comparisons over {len(seeds)} seeds (A - B; two-sided t-test at 5 %; a difference counts only "
        "beyond its threshold; MDE: the difference this many seeds would detect 80 % of the time; "
        f"{len(pairs) * len(measures)} comparisons, so about one in twenty crosses its threshold by chance):",
        "",
        "| A - B | measure | mean difference | threshold | MDE | p | A lower in |",
        "|---|---|---|---|---|---|---|",
    ]
    for a, b in pairs:
        for name, value in measures:
            first, second = [value(results[(a, s)]) for s in seeds], [value(results[(b, s)]) for s in seeds]
            if first == second:
                lines.append(f"| {a} - {b} | {name} | 0 (equal in every seed) | - | - | - | - |")
                continue
            c = paired_comparison(first, second)
            lines.append(
                f"| {a} - {b} | {name} | {c['mean']:+.4f} | {c['threshold']:.4f} | {c['mde']:.4f} | "
                f"{c['p']:.2f} | {c['lower_in']} of {c['n']} |"
            )
    return lines


def paired_comparisons_of_saved_run(results_json: Path) -> str:
    """The paired comparisons of a run's saved `<task>_results.json` (what the report of that run shows)."""
    saved = json.loads(Path(results_json).read_text())["results"]
    results = {(row["arm"], row["seed"]): row for row in saved}
    arms = [arm for arm in ARMS if any(key[0] == arm for key in results)]
    seeds = sorted({seed for arm, seed in results if arm in arms})
    cameras = list(next(row["probe"] for row in saved if row["arm"] in arms))
    return "\n".join(paired_comparisons(results, arms, seeds, cameras))


def write_report(
    out: Path,
    assets: Path,
    command: str,
    preset_name: str,
    preset: Preset,
    seeds: list[int],
    per_task: dict,
    seconds: float,
) -> None:
    commit = checkout_commit()
    device = torch.cuda.get_device_name(0) if preset.device == "cuda" and torch.cuda.is_available() else "cpu"
    lines = [
        "# Evidence: ReconVLA against pi0, same data, same steps",
        "",
        "Written by the command below; every figure here comes from that run. What each arm and metric is: "
        "[evidence_method.md](evidence_method.md).",
        "",
        f"    {command}",
        "",
        (
            f"- commit `{commit}`; machine: {platform.platform()}, {os.cpu_count()} CPU cores, "
            f"torch {torch.__version__} on {device}; {seconds / 60:.0f} min in all"
        ),
        f"- preset `{preset_name}`: {json.dumps(asdict(preset))}",
        f"- seeds {seeds} (each arm trains once per seed through `lerobot-train`); arms: "
        + "; ".join(f"`{a}` = {ARMS[a]}" for a in preset.arms),
        (
            "- action error: mean absolute error (joint units) of the sampled chunk against the held-out "
            "demonstration, the same noise draws for every arm; probe: mean distance (fraction of the image side) "
            "between the gaze box's centre and a ridge regression from that camera's visual hidden states, "
            "fitted on training episodes, scored on held-out ones (`untrained`: the same backbone before "
            "training; `constant`: always the training mean); success: `lerobot-eval` in `aloha_multicam`, "
            f"{preset.eval_episodes} episode(s) per arm and seed. Mean ± standard deviation over seeds."
        ),
        "",
    ]
    for task, (results, cameras) in per_task.items():
        lines += [
            f"## {task}",
            "",
            "| arm | held-out action error | " + " | ".join(f"probe {c}" for c in cameras) + " | success % |",
            "|---" * (len(cameras) + 3) + "|",
        ]
        for arm in [*preset.arms, "untrained", "constant"]:
            key = "untrained" if arm == "constant" else arm
            rows = [results[(key, s)] for s in seeds]
            probe_field = "constant" if arm == "constant" else "probe"
            action = fmt([r["action_error"] for r in rows]) if "action_error" in rows[0] else "-"
            success = fmt([r["success"] for r in rows], 1) if "success" in rows[0] else "-"
            probes = [fmt([r[probe_field][c] for r in rows]) for c in cameras]
            lines.append(f"| {ARMS.get(arm, arm)} | {action} | " + " | ".join(probes) + f" | {success} |")
        lines += [
            "",
            *paired_comparisons(results, preset.arms, seeds, cameras),
            "",
            f"![losses]({assets.name}/{task}_losses.png)",
            "",
        ]
        for picture in sorted(assets.glob(f"{task}_*_*.png")):
            if not picture.name.endswith("_losses.png"):
                lines.append(f"![{picture.stem}]({assets.name}/{picture.name})")
        lines.append("")
    out.write_text("\n".join(lines))


@dataclass
class EvidenceConfig:
    """Trains pi0 and the ReconVLA arms on the same data and seeds; a flag left unset takes the preset's value."""

    # Size of the experiment: cpu (about 90 minutes on 2 cores with 3 seeds) or gpu.
    preset: str = "cpu"
    # Seeds per arm (0, 1, ...).
    seeds: int = 3
    # The report (markdown); its PNGs and results go to <out stem>_files/ beside it.
    out: Path = Path("docs/evidence.md")
    # Data, checkpoints and logs (emptied at the start of every run).
    work_dir: Path = Path("outputs/evidence")
    # Training steps per arm and seed.
    steps: int | None = None
    # Training batch size.
    batch_size: int | None = None
    # Scripted episodes trained on (at least 2: the probe's penalty is chosen on held-out training episodes).
    train_episodes: int | None = None
    # Held-out episodes (other seeds, never trained on).
    heldout_episodes: int | None = None
    # Sim steps per episode.
    episode_length: int | None = None
    # lerobot-eval episodes per arm and seed.
    eval_episodes: int | None = None
    # Side each camera is resized to for the policy: a multiple of the patch size 14.
    image_resolution: int | None = None
    # Training frames the probe is fitted on (evenly spaced).
    probe_frames: int | None = None
    # Held-out frames for the probe and the action error.
    heldout_frames: int | None = None
    # Camera image height and width.
    image_size: list[int] | None = None
    # Arms to train, any of pi0, gaze, whole.
    arms: list[str] | None = None
    # Tasks, any of transfer_cube, insertion.
    tasks: list[str] | None = None
    # Processes generating the demonstrations (default: the cores available); the data does not depend on it.
    workers: int | None = None

    def resolved_preset(self) -> Preset:
        """The preset with this config's overrides; raises UsageError naming the first flag that cannot work."""
        if self.preset not in PRESETS:
            raise UsageError(f"--preset={self.preset}: expected one of {sorted(PRESETS)}")
        overrides = {f.name: getattr(self, f.name) for f in fields(Preset) if getattr(self, f.name, None) is not None}
        if "image_size" in overrides:
            check_image_size(self.image_size)
            overrides["image_size"] = tuple(self.image_size)
        for name, allowed in (("arms", list(ARMS)), ("tasks", list(EVIDENCE_TASKS))):
            unknown = [value for value in overrides.get(name, []) if value not in allowed]
            if unknown or overrides.get(name) == []:
                raise UsageError(f"--{name}={getattr(self, name)}: expected one or more of {allowed}")
        preset = replace(PRESETS[self.preset], **overrides)
        if self.seeds < 1:
            raise UsageError(f"--seeds={self.seeds}: expected at least 1")
        if preset.image_resolution % 14 or preset.image_resolution < 14:
            raise UsageError(
                f"--image_resolution={preset.image_resolution}: expected a multiple of the patch size 14"
            )
        if preset.train_episodes < 2:
            raise UsageError(
                f"--train_episodes={preset.train_episodes}: expected at least 2 (the probe's penalty is chosen "
                "by holding out whole training episodes)"
            )
        return preset


# The argparse spellings of earlier releases, still accepted (with a deprecation message) for one release.
OLD_FLAGS = {
    "--work-dir": OldFlag("work_dir"),
    "--batch-size": OldFlag("batch_size"),
    "--train-episodes": OldFlag("train_episodes"),
    "--heldout-episodes": OldFlag("heldout_episodes"),
    "--episode-length": OldFlag("episode_length"),
    "--eval-episodes": OldFlag("eval_episodes"),
    "--image-resolution": OldFlag("image_resolution"),
    "--probe-frames": OldFlag("probe_frames"),
    "--heldout-frames": OldFlag("heldout_frames"),
    "--image-size": OldFlag("image_size", "list"),
    "--arms": OldFlag("arms", "list"),
    "--tasks": OldFlag("tasks", "list"),
}


def run_evidence(cfg: EvidenceConfig, command: str) -> dict:
    """Runs the experiment and writes the report to `cfg.out`; returns {task: (results, cameras)}.

    `command`: the command line the report states. Raises UsageError before any work for a flag whose
    value cannot work.
    """
    preset = cfg.resolved_preset()
    seeds = list(range(cfg.seeds))
    started = time.perf_counter()

    work = cfg.work_dir.resolve()
    if work.exists():
        shutil.rmtree(work)  # every run starts from nothing: no figure from an older run survives
    work.mkdir(parents=True)
    out = cfg.out.resolve()
    assets = out.parent / f"{out.stem}_files"
    if assets.exists():
        shutil.rmtree(assets)
    assets.mkdir(parents=True)

    per_task = {}
    for task in preset.tasks:
        task_dir = work / task
        task_dir.mkdir()
        train_root, heldout_root = task_dir / f"{task}_train", task_dir / f"{task}_heldout"
        generate(task, train_root, preset.train_episodes, 0, preset, task_dir / "generate_train.log")
        # Held-out seeds start far above any seed the training set may have tried.
        generate(
            task, heldout_root, preset.heldout_episodes, 10_000, preset, task_dir / "generate_heldout.log"
        )
        no_box_root = task_dir / f"{task}_train_no_boxes"
        if "whole" in preset.arms:
            without_gaze_boxes(train_root, no_box_root)

        checkpoints, curves, successes = {}, {arm: [] for arm in preset.arms}, {}
        for seed in seeds:
            for arm in preset.arms:
                run_dir = task_dir / f"{arm}_seed{seed}"
                data = no_box_root if arm == "whole" else train_root
                curves[arm].append(
                    train(
                        arm, seed, data, run_dir / "train", preset, task_dir / f"{arm}_seed{seed}_train.log"
                    )
                )
                checkpoint = run_dir / "train" / "checkpoints" / "last" / "pretrained_model"
                checkpoints[(arm, seed)] = checkpoint
                successes[(arm, seed)] = evaluate_success(
                    checkpoint, task, preset, run_dir / "eval", task_dir / f"{arm}_seed{seed}_eval.log"
                )
        results = offline_metrics(checkpoints, train_root, heldout_root, preset, assets / "recon")
        for key, success in successes.items():
            results[key]["success"] = success
        for picture in sorted((assets / "recon").glob("*.png")):
            picture.rename(assets / f"{task}_{picture.name}")
        (assets / "recon").rmdir()
        plot_losses(curves, assets / f"{task}_losses.png")
        cameras = list(results[(preset.arms[0], seeds[0])]["probe"])
        per_task[task] = (results, cameras)
        (assets / f"{task}_results.json").write_text(json.dumps(
            {"results": [{"arm": a, "seed": s, **r} for (a, s), r in results.items()],
             "losses": curves}, indent=1))  # fmt: skip

    write_report(out, assets, command, cfg.preset, preset, seeds, per_task, time.perf_counter() - started)
    print(f"report {out}; plots and results in {assets}")
    return per_task


@parser.wrap()
def evidence_command(cfg: EvidenceConfig) -> int:
    run_evidence(cfg, shlex.join(["python", "-m", MODULE, *sys.argv[1:]]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``reconvla-evidence``: exit status 0, 2 with one line for a bad flag, 1 with the log's tail for a
    stage that failed."""
    return run_entry_point(evidence_command, argv, prog=PROG, old_flags=OLD_FLAGS)


if __name__ == "__main__":
    raise SystemExit(main())
