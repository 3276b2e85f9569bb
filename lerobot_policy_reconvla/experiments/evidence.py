"""Does the reconstruction head change what the backbone learns? ReconVLA against pi0, same data and steps.

    reconvla-evidence --preset=cpu [--seeds=6] [--jobs=2] [--out=docs/evidence.md]
    # the gpu preset on a GPU machine without LeRobot (docs/evidence_method.md):
    bash scripts/evidence_gpu.sh

(or ``python -m lerobot_policy_reconvla.experiments.evidence ...``)

Up to three arms (the cpu preset trains `pi0` and `gaze`; `--arms` adds `whole`), identical data, seeds,
steps, batch and optimizer, each trained by `lerobot-train`:

- `pi0`: the same policy with recon_weight=0 (the head gets no gradient; the backbone is pi0's);
- `gaze`: ReconVLA reconstructing each camera's gaze crop (the simulator's boxes);
- `whole`: ReconVLA reconstructing the whole image: it trains on a copy of the dataset without the
  `observation.gaze_box.*` features (LeRobot's `remove_feature`), so the policy never sees a box.

Data: scripted three-camera demonstrations from `lerobot_policy_reconvla.sim.generate`; the held-out
episodes come from other seeds (other object placements) and are never trained on.

Metrics per arm, mean ± standard deviation over seeds: held-out action error (the same noise draws for
every arm), a grounding probe (ridge regression from each camera's visual hidden states, at the layer the
head reads, to the gaze box's centre; the untrained backbone is the floor), success rate with
`lerobot-eval` in `aloha_multicam` (tasks naming a cube: every scene under every instruction, and the
retarget rate, gated against chance), the loss curves and the last checkpoint's reconstructions.
The report (markdown + PNGs) states the command, the commit and the machine, leads with the preset's one
pre-registered primary question (`Preset.primary`: gaze against pi0 on lift_pair success) and its verdict, and
lists everything else as secondary.
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from lerobot.configs import parser

from ..common.cli import UsageError, check_image_size, run_entry_point
from ..common.processes import run_logged
from ..gaze_box import is_gaze_box_key
from ..sim.constants import NAMED_CUBE_TASKS, default_episode_length, every_cube_episodes
from ..tools.demo import BASE_PRESETS, OUTCOMES, lerobot_cli, parse_losses, read_outcomes, wrong_object_pc
from ..tools.presets import preset_path
from . import checkout_commit
from .metrics import (
    above_chance_p,
    first_slot_floor,
    holm,
    paired_comparison,
    retarget_chance,
    retargets,
)

ARMS = {
    "pi0": "pi0: recon_weight=0",
    "gaze": "ReconVLA, gaze crops",
    "whole": "ReconVLA, whole image (no boxes)",
}
PROG = "reconvla-evidence"
MODULE = "lerobot_policy_reconvla.experiments.evidence"
EVIDENCE_TASKS = ("lift_pair", "lift_named", "transfer_cube", "insertion")
FIXED_NOISE_SEED = 1234  # the action-error noise draws, identical for every arm and seed
EVAL_START_SEED = 100_000  # lerobot-eval's first env seed: the same initial states for every arm
PRIMARY_ROW = "primary, see above"  # the primary test's row in the paired comparisons: not in the Holm family
HELDOUT_FIRST_SEED = (
    10_000  # held-out episodes and scenes: far above any seed the training set may have tried
)


@dataclass(frozen=True)
class Primary:
    """The one pre-registered question a report leads with: on `task`, does `arms[0]` differ from `arms[1]` in
    `measure` (a column of the results table) by at least `smallest_difference` (points, for a % measure)?
    Fixed in the preset before a run, so the headline cannot be picked after the results are seen; every other
    comparison is secondary. Not a flag of the command for the same reason."""

    task: str = "lift_pair"
    measure: str = "success %"
    arms: tuple[str, str] = ("gaze", "pi0")  # (the reconstruction arm, pi0): the difference is A - B
    smallest_difference: float = 15.0


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
    eval_episodes: int  # lerobot-eval episodes per arm and seed (tasks naming a cube: see eval_seeds)
    recon_weight: float = 0.5  # the tiny preset's (configs/policy/reconvla_tiny.json)
    chunk_size: int = 20
    device: str = "cpu"
    probe_frames: int = 600  # training frames the probe is fitted on (evenly spaced)
    heldout_frames: int = 200  # held-out frames for the probe and the action error
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    seeds: int = 5  # training seeds per arm (0, 1, ...): each arm trains once per seed
    workers: int | None = (
        None  # generator processes (None: the cores available); the data does not depend on it
    )
    action_noise: float = (
        0.0  # std (rad) of the arms' perturbation while recording (the generator's --action_noise)
    )
    shadows: bool = True  # render shadows (data, evaluation and grounding scenes alike)
    n_action_steps: int | None = (
        None  # actions executed per predicted chunk in closed loop (None: the whole chunk)
    )
    grounding_scenes: int = 20  # tasks naming a cube: training and held-out scenes of the grounding measures
    recon_image_size: int | None = (
        None  # side of the reconstructed crop (None: the tiny preset's); a multiple of the token grid
    )
    jobs: int = 1  # (arm, seed) runs trained and evaluated at once, each with cores // jobs CPU threads
    base: str = "pi0"  # the base every arm trains (pi0: reconvla_tiny, pi05: reconvla_pi05_tiny)
    primary: Primary = field(default_factory=Primary)  # the report's one primary question

    @property
    def executed_actions(self) -> int:
        """Actions executed per predicted chunk: how often the policy replans (and reads the cameras)."""
        return self.n_action_steps or self.chunk_size


PRESETS = {
    # The instructed two-cube lift, sized from timed pilots of the pi0 arm on 2 CPU cores
    # (docs/evidence_method.md): the primary question's two arms x 6 seeds, two runs at a time on one core
    # each. Six, not five: with five paired seeds the exact test cannot go below p = 0.0625, so the primary
    # question could never be answered; the whole-image arm (--arms) paid for the sixth.
    "cpu": Preset(
        tasks=["lift_pair"],
        arms=["pi0", "gaze"],
        seeds=6,
        train_episodes=20,
        heldout_episodes=4,
        episode_length=150,
        image_size=(96, 128),
        image_resolution=84,
        steps=600,
        batch_size=8,
        eval_episodes=10,
        action_noise=0.02,
        shadows=False,
        n_action_steps=10,
        recon_image_size=24,
        jobs=2,
        primary=Primary(
            task="lift_pair", measure="success %", arms=("gaze", "pi0"), smallest_difference=15.0
        ),
    ),
    # The same recipe on one GPU machine (scripts/evidence_gpu.sh, sized for about 8 minutes): the primary
    # question's two arms x 8 seeds, all 16 runs at once (one per CPU core), twice the data and 3.3x the
    # steps. Decoding the video frames on the CPU, not the tiny model, bounds a step there, so the images
    # stay the cpu preset's size.
    "gpu": Preset(
        tasks=["lift_pair"],
        arms=["pi0", "gaze"],
        seeds=8,
        train_episodes=40,
        heldout_episodes=5,
        episode_length=150,
        image_size=(96, 128),
        image_resolution=84,
        steps=2000,
        batch_size=8,
        eval_episodes=10,
        device="cuda",
        action_noise=0.02,
        shadows=False,
        n_action_steps=10,
        recon_image_size=24,
        jobs=16,
        primary=Primary(
            task="lift_pair", measure="success %", arms=("gaze", "pi0"), smallest_difference=15.0
        ),
    ),
}


def run(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> str:
    """Runs one stage as the user would type it; its output goes to `log_path`; raises CommandFailed with the
    log's tail. `env`: variables set for this stage only."""
    print(f"$ {shlex.join(command)}", flush=True)
    return run_logged(command, log_path, label=log_path.stem, env=env)


def generate(task: str, root: Path, episodes: int, first_seed: int, preset: Preset, log: Path) -> None:
    height, width = preset.image_size
    command = [
        sys.executable,
        "-m",
        "lerobot_policy_reconvla.sim.generate",
        f"--task={task}",
        f"--root={root}",
        f"--repo_id=local/{root.name}",
        f"--num_episodes={episodes}",
        f"--seed={first_seed}",
        f"--image_size=[{height},{width}]",
        f"--episode_length={preset.episode_length}",
        f"--action_noise={preset.action_noise}",
        f"--shadows={str(preset.shadows).lower()}",
    ]
    if preset.workers is not None:
        command.append(f"--workers={preset.workers}")
    if preset.episode_length < default_episode_length(task):
        command.append("--keep_failed=true")  # a shortened episode cannot finish the task
    run(command, log)


def without_gaze_boxes(root: Path, out_root: Path) -> None:
    """A copy of the dataset without its gaze-box features (the whole-image arm's view of the data)."""
    from lerobot.datasets import LeRobotDataset
    from lerobot.datasets.dataset_tools import remove_feature

    dataset = LeRobotDataset(f"local/{root.name}", root=root)
    boxes = [key for key in dataset.meta.features if is_gaze_box_key(key)]
    remove_feature(dataset, boxes, output_dir=out_root, repo_id=f"local/{out_root.name}")


def train(
    arm: str,
    seed: int,
    data_root: Path,
    out_dir: Path,
    preset: Preset,
    log: Path,
    env: dict[str, str] | None = None,
) -> list:
    """One arm and seed through `lerobot-train`; returns the logged (step, loss, action, recon) rows."""
    side = preset.image_resolution
    log_freq = max(1, preset.steps // 40)
    output = run(
        [
            lerobot_cli("lerobot-train"),
            f"--config_path={preset_path(BASE_PRESETS[preset.base])}",
            f"--dataset.repo_id=local/{data_root.name}",
            f"--dataset.root={data_root}",
            f"--output_dir={out_dir}",
            f"--seed={seed}",
            f"--steps={preset.steps}",
            f"--batch_size={preset.batch_size}",
            f"--save_freq={preset.steps}",
            f"--log_freq={log_freq}",
            "--num_workers=0",
            "--wandb.enable=false",
            f"--policy.device={preset.device}",
            f"--policy.image_resolution=[{side},{side}]",
            f"--policy.chunk_size={preset.chunk_size}",
            f"--policy.n_action_steps={preset.executed_actions}",
            f"--policy.scheduler_decay_steps={preset.steps}",  # the learning rate anneals by the last step
            f"--policy.recon_weight={0.0 if arm == 'pi0' else preset.recon_weight}",
            *([f"--policy.recon_image_size={preset.recon_image_size}"] if preset.recon_image_size else []),
        ],
        log,
        env,
    )
    return parse_losses(output, log_freq)


def eval_seeds(task: str, episodes: int) -> tuple[int, int]:
    """(first env seed, episodes) of the closed-loop evaluation. A task naming one of n cubes runs every scene
    under every instruction (`--env.name_every_cube`, n consecutive seeds per scene from a multiple of n):
    the first seed and the episodes are rounded up to multiples of n, so every scene is complete (the cpu
    preset's 10 lift_pair episodes stay 10: 5 scenes x 2 instructions, the same cost).

    >>> eval_seeds("lift_pair", 10), eval_seeds("lift_named", 10), eval_seeds("lift", 10)
    ((100000, 10), (100002, 12), (100000, 10))
    """
    return every_cube_episodes(task, EVAL_START_SEED, episodes)


def evaluate_success(
    checkpoint: Path, task: str, preset: Preset, out_dir: Path, log: Path, env: dict[str, str] | None = None
) -> dict:
    """Closed loop with `lerobot-eval`: {"success": %} and, for tasks naming a cube (every scene run under
    every instruction), "wrong_object": % of episodes whose first lifted cube was not the named one,
    "retarget": % of scenes whose episode under each instruction lifted the named cube, and "balanced":
    the counts behind it (cubes, scenes, retargeted, incomplete, episodes, first seed)."""
    height, width = preset.image_size
    first_seed, episodes = eval_seeds(task, preset.eval_episodes)
    named = task in NAMED_CUBE_TASKS
    run(
        [
            lerobot_cli("lerobot-eval"),
            f"--policy.path={checkpoint}",
            "--env.type=aloha_multicam",
            f"--env.task={task}",
            f"--env.observation_height={height}",
            f"--env.observation_width={width}",
            f"--env.episode_length={preset.episode_length}",
            f"--env.shadows={str(preset.shadows).lower()}",
            f"--env.outcome_log={out_dir / OUTCOMES}",
            # The policy reads the cameras only when it replans: render them only then (same actions).
            f"--env.observe_every={preset.executed_actions}",
            *(["--env.name_every_cube=true"] if named else []),
            f"--eval.n_episodes={episodes}",
            "--eval.batch_size=1",
            f"--seed={first_seed}",
            f"--output_dir={out_dir}",
            f"--policy.device={preset.device}",
        ],
        log,
        env,
    )
    outcome = {"success": json.loads((out_dir / "eval_info.json").read_text())["overall"]["pc_success"]}
    outcomes = read_outcomes(out_dir / OUTCOMES)
    wrong = wrong_object_pc(task, outcomes)
    if wrong is not None:
        outcome["wrong_object"] = wrong
    if named:
        cubes = NAMED_CUBE_TASKS[task]
        counted = retargets(outcomes, cubes)
        outcome["retarget"] = counted.pop("retarget")
        outcome["balanced"] = {"cubes": len(cubes), **counted, "episodes": episodes, "first_seed": first_seed}
    return outcome


class OfflineMeasures:
    """Action error and probes of one checkpoint at a time, on data and scenes loaded once, so each run is
    measured as soon as it finishes; with a seed's first checkpoint, the untrained floor of that seed;
    reconstructions of the first seed's head arms.

    Tasks naming a cube get the grounding measures (`grounding`): the action error on the approach only,
    the attention ratio and the instruction swap on held-out scenes, and the named-cube probe (pooled
    tokens) fitted on training scenes and scored on held-out ones, in place of the layout probe.
    """

    def __init__(
        self,
        task: str,
        train_root: Path,
        heldout_root: Path,
        preset: Preset,
        recon_dir: Path,
        first_seed: int,
    ):
        from lerobot.datasets import LeRobotDataset

        from ..sim.scripted import LIFT_APPROACH_STEPS
        from . import grounding, metrics

        self.preset, self.recon_dir, self.first_seed = preset, recon_dir, first_seed
        self.heldout_root = heldout_root
        self.named = task in NAMED_CUBE_TASKS
        fps = LeRobotDataset(f"local/{heldout_root.name}", root=heldout_root).meta.fps
        chunk = {"action": [i / fps for i in range(preset.chunk_size)]}
        self.train_set = LeRobotDataset(f"local/{train_root.name}", root=train_root)
        self.heldout = LeRobotDataset(f"local/{heldout_root.name}", root=heldout_root, delta_timestamps=chunk)
        self.train_indices = metrics.evenly_spaced(len(self.train_set), preset.probe_frames)
        heldout_pool = list(range(len(self.heldout)))
        if self.named:  # the approach, where the cube is chosen; after it every chunk is the same lift
            frame_index = self.heldout.hf_dataset["frame_index"]
            heldout_pool = [i for i in heldout_pool if int(frame_index[i]) < LIFT_APPROACH_STEPS]
        self.heldout_indices = [
            heldout_pool[i] for i in metrics.evenly_spaced(len(heldout_pool), preset.heldout_frames)
        ]
        if self.named:
            scene_args = dict(image_size=preset.image_size, chunk=preset.chunk_size, shadows=preset.shadows)
            self.train_scenes = grounding.probe_scenes(task, range(preset.grounding_scenes), **scene_args)
            self.heldout_scenes = grounding.probe_scenes(
                task, range(HELDOUT_FIRST_SEED, HELDOUT_FIRST_SEED + preset.grounding_scenes), **scene_args
            )
        self.floor_done: set[int] = set()  # seeds whose untrained floor is measured

    def grounding_measures(self, policy, preprocessor, postprocessor) -> dict:
        from . import grounding, metrics

        # The committed report's reading (the head's hidden states); "values" is what the action loss trains.
        named_train = grounding.named_object_features(
            policy, preprocessor, self.train_scenes, source="hidden"
        )
        named_heldout = grounding.named_object_features(
            policy, preprocessor, self.heldout_scenes, source="hidden"
        )
        return {
            "attention": grounding.attention_ratio(
                policy, preprocessor, self.heldout_scenes, noise_seed=FIXED_NOISE_SEED
            ),
            # What the ratio reads, on the same scenes, for attention on the named cube (its positive control)
            "attention_control": grounding.attention_ratio_control(policy.config, self.heldout_scenes),
            "swap": grounding.instruction_swap(
                policy, preprocessor, postprocessor, self.heldout_scenes, noise_seed=FIXED_NOISE_SEED
            ),
            "named_probe": metrics.probe_errors(named_train, named_heldout),
            "named_constant": metrics.constant_probe_errors(named_train[1], named_heldout[1]),
        }

    def measure(self, arm: str, seed: int, checkpoint: Path) -> dict[tuple[str, int], dict]:
        """{(arm, seed): this checkpoint's measures}, with ("untrained", seed) at the seed's first call."""
        from lerobot.datasets import LeRobotDataset
        from lerobot.policies.factory import make_pre_post_processors

        from ..loading import reconvla_policy_class
        from ..tools.visualize import write_reconstructions
        from . import metrics

        preset = self.preset
        policy_class = reconvla_policy_class(checkpoint)  # the run's base: reconvla or reconvla_pi05
        policy = policy_class.from_pretrained(checkpoint)
        preprocessor, postprocessor = make_pre_post_processors(policy.config, pretrained_path=str(checkpoint))
        noise = torch.randn(
            len(self.heldout_indices),
            preset.chunk_size,
            policy.config.max_action_dim,
            generator=torch.Generator().manual_seed(FIXED_NOISE_SEED),
        )
        row: dict = {
            "action_error": metrics.heldout_action_error(
                policy, preprocessor, postprocessor, self.heldout, self.heldout_indices, noise
            ),
        }
        results = {(arm, seed): row}
        fresh_seed = seed not in self.floor_done
        self.floor_done.add(seed)
        if fresh_seed:  # the untrained backbone of this seed (the same for every arm): the probes' floor
            torch.manual_seed(seed)
            untrained = policy_class(copy.deepcopy(policy.config))
        # The named-cube probe replaces the layout probe, which a task naming a cube would confound.
        if self.named:
            row["grounding"] = self.grounding_measures(policy, preprocessor, postprocessor)
            if fresh_seed:
                results[("untrained", seed)] = {
                    "grounding": self.grounding_measures(untrained, preprocessor, postprocessor)
                }
        else:
            train_set, heldout = self.train_set, self.heldout
            heldout_features = metrics.camera_features(policy, preprocessor, heldout, self.heldout_indices)
            train_features = metrics.camera_features(policy, preprocessor, train_set, self.train_indices)
            row["probe"] = metrics.probe_errors(train_features, heldout_features)
            if fresh_seed:
                results[("untrained", seed)] = {
                    "probe": metrics.probe_errors(
                        metrics.camera_features(untrained, preprocessor, train_set, self.train_indices),
                        metrics.camera_features(untrained, preprocessor, heldout, self.heldout_indices),
                    ),
                    "constant": metrics.constant_probe_errors(train_features[1], heldout_features[1]),
                }
        if arm != "pi0" and seed == self.first_seed:
            # single frames, no chunk
            frames = LeRobotDataset(f"local/{self.heldout_root.name}", root=self.heldout_root)
            frame = dict(preprocessor(frames[self.heldout_indices[len(self.heldout_indices) // 2]]))
            if arm == "whole":  # this arm never saw a box: its target is the whole image
                frame = {k: v for k, v in frame.items() if not is_gaze_box_key(k)}
            write_reconstructions(policy, frame, self.recon_dir, prefix=f"{arm}_")
        return results


def train_and_evaluate(
    task: str,
    arm: str,
    seed: int,
    task_dir: Path,
    data_root: Path,
    preset: Preset,
    env: dict[str, str] | None,
) -> dict:
    """One arm and seed: `lerobot-train`, then `lerobot-eval` of its last checkpoint.

    Returns {"curve": logged loss rows, "checkpoint": path, "outcome": success (and wrong object), "seconds"}.
    """
    started = time.perf_counter()
    run_dir = task_dir / f"{arm}_seed{seed}"
    curve = train(
        arm, seed, data_root, run_dir / "train", preset, task_dir / f"{arm}_seed{seed}_train.log", env
    )
    checkpoint = run_dir / "train" / "checkpoints" / "last" / "pretrained_model"
    outcome = evaluate_success(
        checkpoint, task, preset, run_dir / "eval", task_dir / f"{arm}_seed{seed}_eval.log", env
    )
    return {
        "curve": curve,
        "checkpoint": checkpoint,
        "outcome": outcome,
        "seconds": time.perf_counter() - started,
    }


def train_and_evaluate_all(
    task: str,
    task_dir: Path,
    train_root: Path,
    no_box_root: Path,
    preset: Preset,
    seeds: list[int],
    assets: Path,
    measures: OfflineMeasures,
) -> tuple[dict, dict]:
    """Every arm and seed, `preset.jobs` at a time: ({(arm, seed): train_and_evaluate's result},
    {(arm, seed): its outcome and offline measures, with each seed's untrained floor}).

    Each finished run is measured offline (`measures`, here, while the other runs go on) and appends one line
    to `<assets>/<task>_runs.jsonl`: its outcome, grounding and other measures, last losses and time (the
    untrained floor of its seed as a line of its own, with the seed's first run), so a run cut short keeps
    what finished. The first failure cancels the runs not yet started and is raised once the running ones
    end.
    """
    # Concurrent runs split the cores: without this each would start one thread per core and they would fight.
    env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // preset.jobs))} if preset.jobs > 1 else None
    progress = assets / f"{task}_runs.jsonl"
    finished, results = {}, {}
    with ThreadPoolExecutor(max_workers=preset.jobs) as pool:
        futures = {}
        for seed in seeds:
            for arm in preset.arms:
                data = no_box_root if arm == "whole" else train_root
                futures[pool.submit(train_and_evaluate, task, arm, seed, task_dir, data, preset, env)] = (
                    arm,
                    seed,
                )
        try:
            for future in as_completed(futures):
                arm, seed = futures[future]
                run = finished[(arm, seed)] = future.result()
                measured = measures.measure(arm, seed, run["checkpoint"])
                measured[(arm, seed)].update(run["outcome"], seconds=run["seconds"])
                results.update(measured)
                last = run["curve"][-1] if run["curve"] else None
                seconds = round(run["seconds"], 1)
                with open(progress, "a") as file:
                    for (measured_arm, measured_seed), row in measured.items():
                        line = {"arm": measured_arm, "seed": measured_seed, **row}
                        if measured_arm == arm:
                            line.update(last_logged=last, seconds=seconds)
                        file.write(json.dumps(line) + "\n")
                print(
                    f"[{task}] {arm} seed {seed} done in {seconds / 60:.1f} min: {run['outcome']}", flush=True
                )
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return finished, results


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
    """Action and recon loss over training, one line per arm (mean over seeds). Without matplotlib (a GPU
    machine's bare stack) there is no plot: the curves are in the results JSON either way."""
    try:
        import matplotlib
    except ImportError:
        print(
            f"matplotlib is not installed: no {path.name}; the loss curves are in the results JSON",
            flush=True,
        )
        return

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


def measures(row: dict, cameras: list[str]) -> list[tuple[str, Callable[[dict], float], int]]:
    """(name, value of a result row, digits) of every measure a run of this kind reports, in table order.

    `row`: any arm's result; a task naming a cube has the grounding measures (`grounding`).
    """
    if "grounding" in row:
        found = [
            ("success %", lambda r: r["success"], 1),
            ("wrong object %", lambda r: r["wrong_object"], 1),
            ("retarget %", lambda r: r["retarget"], 1),  # absent from reports made before it
            ("approach action error", lambda r: r["action_error"], 3),
            ("attention ratio", lambda r: r["grounding"]["attention"]["mean"], 3),
            ("heads to named %", lambda r: 100 * r["grounding"]["swap"]["heads_to_named"], 1),
            ("instruction shift", lambda r: r["grounding"]["swap"]["mean_shift"], 4),
        ]
        found += [(f"named probe {c}", lambda r, c=c: r["grounding"]["named_probe"][c], 3) for c in cameras]
        return [
            m
            for m in found
            if (m[0] != "success %" or "success" in row) and (m[0] != "retarget %" or "retarget" in row)
        ]
    found = [("held-out action error", lambda r: r["action_error"], 3)]
    found += [(f"probe {c}", lambda r, c=c: r["probe"][c], 3) for c in cameras]
    if "success" in row:
        found.append(("success %", lambda r: r["success"], 1))
    return found


def result_cameras(row: dict) -> list[str]:
    """The cameras a result row was probed on."""
    return list(row["grounding"]["named_probe"] if "grounding" in row else row["probe"])


def floor_values(name: str, rows: list[dict], cubes: int | None = None) -> str:
    """The chance or constant-answer level of a measure (the table's last row), "-" where there is none.

    `cubes`: where the closed loop ran every scene under each of that many instructions, the closed-loop
    measures get what always taking the first slot scores, and the retargets their chance."""
    if cubes and name in ("success %", "wrong object %"):
        return f"{first_slot_floor(cubes)[name.removesuffix(' %').replace(' ', '_')]:.1f} (slot 0)"
    if cubes and name == "retarget %":
        # An upper bound: what the best instruction-blind policy reaches (metrics.retarget_chance).
        return f"≤ {100 * retarget_chance(cubes):.1f} (slot 0: {first_slot_floor(cubes)['retarget']:.1f})"
    if name == "attention ratio":
        control = rows[0]["grounding"].get("attention_control")  # absent from reports made before it
        return "1.000" if control is None else f"1.000 (oracle {control['oracle']['mean']:.3f})"
    if name == "heads to named %":
        return f"{100 * rows[0]['grounding']['swap']['chance_heads_to_named']:.1f}"
    if name.startswith("named probe "):
        return fmt([r["grounding"]["named_constant"][name.removeprefix("named probe ")] for r in rows])
    if name.startswith("probe "):
        return fmt([r["constant"][name.removeprefix("probe ")] for r in rows])
    return "-"


def paired_comparisons(
    results: dict, arms: list[str], seeds: list[int], cameras: list[str], primary: Primary | None = None
) -> list[str]:
    """Markdown: every pair of arms on every measure, seeds paired: the mean difference, the exact sign-flip
    permutation p and its Holm-adjusted value over every test of the table (the family), the t threshold and
    minimum detectable effect at 80 % power, and in how many seeds the first arm was lower. Every pair and
    measure is listed, whichever way it goes; rows equal in every seed, or not measured in every seed, are
    listed but are not tests.

    `primary`: the pre-registered question when `results` are its task's. Its (pair, measure) row is listed as
    "primary, see above" and left out of the Holm family: it is the one test read alone (`primary_summary`),
    and counting it in the family too would read it twice."""
    if len(seeds) < 2:
        return ["One seed: no spread, so no difference between arms is resolved by this run."]
    pairs = [(a, b) for i, a in enumerate(arms) for b in arms[i + 1 :]]
    compared = measures(results[(arms[0], seeds[0])], cameras)
    rows: list[tuple[str, str, dict | str]] = []  # (pair, measure, comparison or why it is not a test)
    for a, b in pairs:
        for name, value, _ in compared:
            first, second = [value(results[(a, s)]) for s in seeds], [value(results[(b, s)]) for s in seeds]
            if primary is not None and {a, b} == set(primary.arms) and name == primary.measure:
                rows.append((f"{a} - {b}", name, PRIMARY_ROW))
            elif any(math.isnan(v) for v in first + second):  # first: a NaN is `==` to itself in a list
                rows.append((f"{a} - {b}", name, "n/a (not measured in every seed)"))
            elif first == second:
                rows.append((f"{a} - {b}", name, "0 (equal in every seed)"))
            else:
                rows.append((f"{a} - {b}", name, paired_comparison(first, second)))
    tests = [c for _, _, c in rows if isinstance(c, dict)]
    for comparison, adjusted in zip(tests, holm([c["p"] for c in tests]), strict=True):
        comparison["p_holm"] = adjusted
    excluded = sum(c == PRIMARY_ROW for _, _, c in rows)
    primary_note = (
        f", and the primary test ({' - '.join(primary.arms)} on {primary.measure}), read alone above and not "
        "in this Holm family"
        if excluded
        else ""
    )
    lines = [
        f"Paired comparisons over {len(seeds)} seeds (A - B): {len(tests)} tests ({len(pairs)} pairs of arms "
        f"x {len(compared)} measures, less {len(rows) - len(tests) - excluded} rows equal or not measured in "
        f"every seed{primary_note}). "
        "p: exact two-sided sign-flip permutation test of the mean difference; Holm p: adjusted over these "
        f"{len(tests)} tests, and a difference counts only where it is below 0.05. With {len(seeds)} seeds "
        f"no p can be below {2 / 2 ** len(seeds):.4f}. Threshold and MDE: the t approximation of the "
        "smallest significant difference and of the difference detected 80 % of the time.",
        "",
        "| A - B | measure | mean difference | threshold | MDE | p | Holm p | A lower in |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pair, name, c in rows:
        if isinstance(c, str):
            lines.append(f"| {pair} | {name} | {c} | - | - | - | - | - |")
            continue
        lines.append(
            f"| {pair} | {name} | {c['mean']:+.4f} | {c['threshold']:.4f} | {c['mde']:.4f} | "
            f"{c['p']:.3f} | {c['p_holm']:.3f} | {c['lower_in']} of {c['n']} |"
        )
    return lines


def primary_values(
    results: dict, primary: Primary, seeds: list[int]
) -> tuple[list[float], list[float], int] | str:
    """The primary measure of both primary arms per seed, and the measure's digits; or why there are none."""
    missing = [arm for arm in primary.arms if any((arm, s) not in results for s in seeds)]
    if missing:
        return f"this run has no `{'`, `'.join(missing)}` arm on {primary.task}"
    row = results[(primary.arms[0], seeds[0])]
    found = {name: (value, digits) for name, value, digits in measures(row, result_cameras(row))}
    if primary.measure not in found:
        return f"this run did not measure {primary.measure}"
    value, digits = found[primary.measure]
    first, second = ([value(results[(arm, s)]) for s in seeds] for arm in primary.arms)
    return first, second, digits


def primary_verdict(comparison: dict, primary: Primary, digits: int, unit: str) -> str:
    """The primary question's answer in plain words, by a rule fixed before the run:

    1. p < 0.05 (exact, not adjusted: it is the one primary test): the head raised or lowered the measure;
    2. with n seeds the exact test cannot go below 2 / 2^n: where that is 0.05 or more (5 seeds or fewer)
       nothing can be resolved, however small the t approximation's MDE, so it is inconclusive;
    3. the arms equal in every seed: no spread, so no detectable effect can be sized;
    4. MDE <= the smallest difference of interest: no difference resolved, and one that large would have been;
    5. otherwise inconclusive: the run could detect only differences larger than the one asked about.
    """
    what, n = primary.measure.removesuffix(" %"), comparison["n"]
    mean, mde, p = comparison["mean"], comparison["mde"], comparison["p"]
    if p < 0.05:
        direction = "raised" if mean > 0 else "lowered"
        return f"the head {direction} {what} by {abs(mean):.{digits}f}{unit} (p = {p:.3f})"
    floor = 2 / 2**n
    if floor >= 0.05:
        return (
            f"inconclusive: with {n} seeds the exact test cannot go below p = {floor:.3f}, so this run could "
            f"detect no difference of any size, {primary.smallest_difference:g}{unit} included"
        )
    if comparison["lower_in"] == 0 and mean == 0:  # no difference below 0 and none above: all are 0
        return (
            "no difference resolved: the arms scored the same in every seed, and with no spread this run "
            "cannot size the difference it could have detected"
        )
    if mde <= primary.smallest_difference:
        return f"no difference resolved; this run could have detected {mde:.{digits}f}{unit} or more"
    return (
        f"inconclusive: this run could detect only {mde:.{digits}f}{unit} or more, above the "
        f"{primary.smallest_difference:g}{unit} asked"
    )


def primary_summary(results: dict, preset: Preset, seeds: list[int]) -> list[str]:
    """Markdown, five lines: the preset's pre-registered primary question, the paired difference with its 95 %
    t interval, the exact sign-flip p (not Holm-adjusted: the one primary test), the minimum detectable effect
    at 80 % power for this many seeds, and the verdict (`primary_verdict`'s rule).

    `results`: {(arm, seed): row} of the primary's task, empty where this run did not run that task (every
    line then says so: a report of other tasks or arms still renders)."""
    primary = preset.primary
    a, b = primary.arms
    unit = " points" if primary.measure.endswith(" %") else ""  # a % measure differs in percentage points
    question = (
        f"- **Question** (pre-registered in the preset, before the run): on {primary.task}, does the "
        f"reconstruction head change {primary.measure}, `{a}` ({ARMS.get(a, a)}) against `{b}` "
        f"({ARMS.get(b, b)}), by {primary.smallest_difference:g}{unit} or more either way?"
    )
    values = primary_values(results, primary, seeds) if results else f"this run did not run {primary.task}"
    if isinstance(values, str):
        return [
            question,
            f"- **Difference** ({a} - {b}): n/a ({values})",
            "- **p**: n/a",
            "- **Detectable**: n/a",
            f"- **Verdict**: no verdict: {values}.",
        ]
    first, second, digits = values
    if any(math.isnan(v) for v in first + second):
        return [
            question,
            f"- **Difference** ({a} - {b}): n/a (not measured in every seed)",
            "- **p**: n/a",
            "- **Detectable**: n/a",
            f"- **Verdict**: no verdict: {primary.measure} was not measured in every seed.",
        ]
    if len(seeds) < 2:
        return [
            question,
            f"- **Difference** ({a} - {b}): {first[0] - second[0]:+.{digits}f}{unit} in the one seed",
            "- **p**: n/a (one seed: no spread to test against)",
            "- **Detectable**: n/a (one seed)",
            "- **Verdict**: no verdict: one seed, so there is no spread and no difference can be resolved.",
        ]
    c = paired_comparison(first, second)
    # The t approximation's threshold is the half-width of the 95 % t interval of the mean difference.
    low, high = c["mean"] - c["threshold"], c["mean"] + c["threshold"]
    return [
        question,
        f"- **Difference** ({a} - {b}, mean over {c['n']} paired seeds): {c['mean']:+.{digits}f}{unit}, "
        f"95 % t interval [{low:+.{digits}f}, {high:+.{digits}f}]; {a} lower in {c['lower_in']} of {c['n']}",
        f"- **p** = {c['p']:.3f}: exact two-sided sign-flip permutation test of the paired differences, the "
        "one primary test, so not Holm-adjusted",
        f"- **Detectable**: {c['mde']:.{digits}f}{unit} at 80 % power with {c['n']} seeds (t approximation); "
        f"the exact test's smallest p with {c['n']} seeds is {2 / 2 ** c['n']:.3f}",
        f"- **Verdict**: {primary_verdict(c, primary, digits, unit)}.",
    ]


def balanced_cubes(results: dict, arms: list[str], seeds: list[int]) -> int | None:
    """The cubes named in turn in every scene of the runs' closed loop; None where each scene had one
    instruction (a report made before the balanced evaluation, or a task naming no cube)."""
    found = [
        results[(a, s)]["balanced"]["cubes"] for a in arms for s in seeds if "balanced" in results[(a, s)]
    ]
    return found[0] if found else None


def retarget_gate(results: dict, arms: list[str], seeds: list[int]) -> list[str]:
    """Markdown: each arm's retargets pooled over seeds against chance (one-sided exact binomial p), and the
    gate: unless the pi0 arm retargets above chance, the arms' retarget comparisons read "inconclusive at this
    scale", not "no effect". Empty where the closed loop did not run every scene under every instruction."""
    cubes = balanced_cubes(results, arms, seeds)
    if cubes is None:
        return []
    chance = retarget_chance(cubes)
    lines = [
        f"Retargets: every evaluation scene ran once under each of its {cubes} instructions; a scene "
        "counts when every one of those episodes lifted the named cube (success, the named cube the first "
        f"one picked up). Chance is at most {100 * chance:.1f} % of scenes ((1/{cubes})^{cubes}: a policy "
        "that ignores the instruction, picks a cube at random each episode and never misses); always taking "
        f"the first slot scores 0 % retargets and {first_slot_floor(cubes)['success']:.1f} % success. Pooled "
        "over seeds, one-sided exact binomial p against chance:",
        "",
    ]
    p_values = {}
    for arm in arms:
        counts = [results[(arm, s)]["balanced"] for s in seeds]
        scenes, retargeted = sum(c["scenes"] for c in counts), sum(c["retargeted"] for c in counts)
        p_values[arm] = above_chance_p(retargeted, scenes, chance) if scenes else float("nan")
        share = f"{100 * retargeted / scenes:.1f} %" if scenes else "n/a"
        lines.append(f"- {arm}: {retargeted} of {scenes} scenes ({share}), p = {p_values[arm]:.3f}")
    lines.append("")
    if "pi0" not in p_values:
        lines.append("Gate: no pi0 arm in this run, so no reading of the retarget comparisons against it.")
    elif p_values["pi0"] < 0.05:
        lines.append(
            f"Gate: the pi0 arm retargets above chance (p = {p_values['pi0']:.3f} < 0.05): it follows the "
            "instruction, so the arms' retarget rates compare how well each grounds it."
        )
    else:
        lines.append(
            f"Gate: the pi0 arm does not retarget above chance (p = {p_values['pi0']:.3f}): the baseline "
            "does not follow the instruction at this size, so the retarget comparisons between arms read "
            '**inconclusive at this scale**, not "no effect".'
        )
    return lines


def results_table(results: dict, arms: list[str], seeds: list[int], cameras: list[str]) -> list[str]:
    """Markdown: every measure per arm (mean ± sd over seeds), the untrained backbone, and chance or the
    constant answer."""
    shown = measures(results[(arms[0], seeds[0])], cameras)
    lines = ["| arm | " + " | ".join(name for name, _, _ in shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for arm in [*arms, "untrained"]:
        rows = [results[(arm, s)] for s in seeds]
        cells = []
        for _, value, digits in shown:
            try:
                cells.append(fmt([value(r) for r in rows], digits))
            except KeyError:  # the untrained backbone is not trained, evaluated or tested on actions
                cells.append("-")
        lines.append(f"| {ARMS.get(arm, arm)} | " + " | ".join(cells) + " |")
    cubes = balanced_cubes(results, arms, seeds)
    floor = [floor_values(name, [results[("untrained", s)] for s in seeds], cubes) for name, _, _ in shown]
    lines.append("| chance / constant answer | " + " | ".join(floor) + " |")
    return lines


def saved_results(results_json: Path) -> tuple[dict, list[str], list[int], list[str]]:
    """A run's saved `<task>_results.json` read back: ({(arm, seed): row}, arms, seeds, cameras)."""
    saved = json.loads(Path(results_json).read_text())["results"]
    results = {(row["arm"], row["seed"]): row for row in saved}
    arms = [arm for arm in ARMS if any(key[0] == arm for key in results)]
    seeds = sorted({seed for arm, seed in results if arm in arms})
    cameras = list(result_cameras(next(row for row in saved if row["arm"] in arms)))
    return results, arms, seeds, cameras


def paired_comparisons_of_saved_run(results_json: Path) -> str:
    """The paired comparisons of a run's saved `<task>_results.json` (what the report of that run shows: the
    committed one predates the primary question, so its Holm family has every test)."""
    return "\n".join(paired_comparisons(*saved_results(results_json)))


def write_report(
    out: Path,
    assets: Path,
    command: str,
    preset_name: str,
    preset: Preset,
    seeds: list[int],
    per_task: dict,
    seconds: float,
    commit: str,
) -> None:
    device = torch.cuda.get_device_name(0) if preset.device == "cuda" and torch.cuda.is_available() else "cpu"
    lines = [
        "# Evidence: ReconVLA against pi0, same data, same steps",
        "",
        "Written by the command below; every figure here comes from that run. What each arm and measure is: "
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
        f"- {preset.jobs} run(s) (training, then `lerobot-eval`) at a time; minutes per run: "
        + "; ".join(
            f"{task} {fmt([r['seconds'] / 60 for k, r in res.items() if k[0] != 'untrained'], 1)}"
            for task, (res, _) in per_task.items()
        ),
        "- success, wrong object and retargets: `lerobot-eval` in `aloha_multicam`, "
        + "; ".join(
            f"{task} {eval_seeds(task, preset.eval_episodes)[1]} episode(s) from env seed "
            f"{eval_seeds(task, preset.eval_episodes)[0]}"
            + (" (every scene under each instruction)" if task in NAMED_CUBE_TASKS else "")
            for task in per_task
        )
        + " per arm and seed, the same placements for every arm. Mean ± standard deviation over seeds.",
        "",
        "## Primary question",
        "",
        *primary_summary(per_task.get(preset.primary.task, ({}, []))[0], preset, seeds),
        "",
        "## Secondary measures",
        "",
        "Everything below is secondary: each task's paired comparisons are Holm-corrected over their own "
        "family, which leaves the primary test out.",
        "",
    ]
    for task, (results, cameras) in per_task.items():
        primary = preset.primary if task == preset.primary.task else None
        lines += [
            f"### {task}",
            "",
            *results_table(results, preset.arms, seeds, cameras),
            "",
            *paired_comparisons(results, preset.arms, seeds, cameras, primary),
            "",
        ]
        gate = retarget_gate(results, preset.arms, seeds)
        lines += [*gate, ""] if gate else []
        if (assets / f"{task}_losses.png").exists():
            lines += [f"![losses]({assets.name}/{task}_losses.png)", ""]
        for picture in sorted(assets.glob(f"{task}_*_*.png")):
            if not picture.name.endswith("_losses.png"):
                lines.append(f"![{picture.stem}]({assets.name}/{picture.name})")
        lines.append("")
    out.write_text("\n".join(lines))


@dataclass
class EvidenceConfig:
    """Trains pi0 and the ReconVLA arms on the same data and seeds; a flag left unset takes the preset's
    value."""

    # Size of the experiment: cpu (pi0 and gaze, 6 seeds, on 2 cores) or gpu (scripts/evidence_gpu.sh).
    preset: str = "cpu"
    # Training seeds per arm (0, 1, ...; default: the preset's, 6 for cpu).
    seeds: int | None = None
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
    # lerobot-eval episodes per arm and seed (tasks naming one of n cubes: rounded up to a multiple of n, each
    # scene run under every instruction).
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
    # Tasks, any of lift_pair, lift_named, transfer_cube, insertion.
    tasks: list[str] | None = None
    # Processes generating the demonstrations (default: the cores available); the data does not depend on it.
    workers: int | None = None
    # Std (rad) of the arms' perturbation while recording the demonstrations (0: exact scripted replays).
    action_noise: float | None = None
    # Render shadows (data, evaluation and grounding scenes alike).
    shadows: bool | None = None
    # Actions executed per predicted chunk in closed loop (default: the whole chunk).
    n_action_steps: int | None = None
    # Tasks naming a cube: training and held-out scenes of the grounding measures (each).
    grounding_scenes: int | None = None
    # Side of the reconstructed crop (default: the tiny preset's 32); a multiple of image_resolution // 14.
    recon_image_size: int | None = None
    # (arm, seed) runs trained and evaluated at once; each gets cores // jobs CPU threads.
    jobs: int | None = None
    # Device the policies train and run on (cpu, cuda).
    device: str | None = None
    # Base policy of every arm: pi0 (`reconvla`; the `pi0` arm is that base without the head) or pi05
    # (`reconvla_pi05`; the same arm is then pi05 without the head).
    base: str | None = None

    def resolved_preset(self) -> Preset:
        """The preset with this config's overrides; raises UsageError naming the first flag that cannot
        work."""
        if self.preset not in PRESETS:
            raise UsageError(f"--preset={self.preset}: expected one of {sorted(PRESETS)}")
        overrides = {
            f.name: getattr(self, f.name) for f in fields(Preset) if getattr(self, f.name, None) is not None
        }
        if "image_size" in overrides:
            check_image_size(self.image_size)
            overrides["image_size"] = tuple(self.image_size)
        for name, allowed in (("arms", list(ARMS)), ("tasks", list(EVIDENCE_TASKS))):
            unknown = [value for value in overrides.get(name, []) if value not in allowed]
            if unknown or overrides.get(name) == []:
                raise UsageError(f"--{name}={getattr(self, name)}: expected one or more of {allowed}")
        if self.base is not None and self.base not in BASE_PRESETS:
            raise UsageError(f"--base={self.base}: expected one of {list(BASE_PRESETS)}")
        preset = replace(PRESETS[self.preset], **overrides)
        if preset.seeds < 1:
            raise UsageError(f"--seeds={preset.seeds}: expected at least 1")
        if preset.jobs < 1:
            raise UsageError(f"--jobs={preset.jobs}: expected at least 1")
        if preset.image_resolution % 14 or preset.image_resolution < 14:
            raise UsageError(
                f"--image_resolution={preset.image_resolution}: expected a multiple of the patch size 14"
            )
        grid = preset.image_resolution // 14
        recon_size = (
            preset.recon_image_size
            or json.loads(preset_path(BASE_PRESETS[preset.base]).read_text())["policy"]["recon_image_size"]
        )
        if recon_size % grid:  # lerobot-train would refuse it only after the data is generated
            raise UsageError(
                f"--recon_image_size={recon_size}: expected a multiple of the token grid {grid} "
                f"(--image_resolution={preset.image_resolution} // 14)"
            )
        if preset.train_episodes < 2:
            raise UsageError(
                f"--train_episodes={preset.train_episodes}: expected at least 2 (the probe's penalty is "
                "chosen by holding out whole training episodes)"
            )
        return preset


def run_evidence(cfg: EvidenceConfig, command: str) -> dict:
    """Runs the experiment and writes the report to `cfg.out`; returns {task: (results, cameras)}.

    `command`: the command line the report states. Raises UsageError before any work for a flag whose
    value cannot work.
    """
    preset = cfg.resolved_preset()
    seeds = list(range(preset.seeds))
    started = time.perf_counter()
    commit = checkout_commit()  # before this run rewrites its own tracked report files

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
        generate(
            task,
            heldout_root,
            preset.heldout_episodes,
            HELDOUT_FIRST_SEED,
            preset,
            task_dir / "generate_heldout.log",
        )
        no_box_root = task_dir / f"{task}_train_no_boxes"
        if "whole" in preset.arms:
            without_gaze_boxes(train_root, no_box_root)

        measures = OfflineMeasures(task, train_root, heldout_root, preset, assets / "recon", seeds[0])
        finished, results = train_and_evaluate_all(
            task, task_dir, train_root, no_box_root, preset, seeds, assets, measures
        )
        curves = {arm: [finished[(arm, seed)]["curve"] for seed in seeds] for arm in preset.arms}
        for picture in sorted((assets / "recon").glob("*.png")):
            picture.rename(assets / f"{task}_{picture.name}")
        (assets / "recon").rmdir()
        plot_losses(curves, assets / f"{task}_losses.png")
        cameras = result_cameras(results[(preset.arms[0], seeds[0])])
        per_task[task] = (results, cameras)
        (assets / f"{task}_results.json").write_text(
            json.dumps(
                {"results": [{"arm": a, "seed": s, **r} for (a, s), r in results.items()], "losses": curves},
                indent=1,
            )
        )

    write_report(
        out, assets, command, cfg.preset, preset, seeds, per_task, time.perf_counter() - started, commit
    )
    print(f"report {out}; plots and results in {assets}")
    return per_task


@parser.wrap()
def evidence_command(cfg: EvidenceConfig) -> int:
    run_evidence(cfg, shlex.join(["python", "-m", MODULE, *sys.argv[1:]]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``reconvla-evidence``: exit status 0, 2 with one line for a bad flag, 1 with the log's tail for a
    stage that failed."""
    return run_entry_point(evidence_command, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(main())
