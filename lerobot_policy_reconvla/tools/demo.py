"""The main job, end to end through LeRobot's own CLIs, offline on the CPU.

1. generate three-camera ALOHA sim demonstrations with gaze boxes (scripted one-arm cube lifts at
   random placements, seeds 0, 1, ...),
2. train the tiny ReconVLA on them with `lerobot-train` (preset `configs/policy/reconvla_tiny.json`, on
   pi0; `--base=pi05`: `reconvla_pi05_tiny.json`), saving a checkpoint at every point of the curve,
3. evaluate every checkpoint with `lerobot-eval` in `aloha_multicam` on held-out placements (LeRobot's
   evaluation seeds, 1000 upwards, which no demonstration used): the last on --eval_episodes, the earlier
   ones on fewer (--curve_eval_episodes), every scene under each instruction where the instruction names
   one of several cubes; on `lift` and `lift_pair` the blind floor (one fixed trajectory,
   sim.evaluate_scripted) is replayed on the last evaluation's episodes, for a paired reading,
4. write the reconstruction pictures of the last checkpoint and the success-versus-step curve (PNG),
5. print where everything is and the figures (losses, success rates, seconds).

    reconvla-demo [--output_dir=outputs/demo] [--task=lift] [--steps=600] [--base=pi0]

(or ``python -m lerobot_policy_reconvla.tools.demo ...``.) Every stage is a subprocess running the command
a user would type; its full log is kept next to its outputs, and the command lines are printed so any stage
can be rerun by hand.

The demo writes only into `--output_dir`. It refuses a directory that is not empty unless a previous
demo run made it (the `.reconvla_demo` marker); then it keeps the generated data (the generator resumes
it, adding episodes only if more are asked for) and replaces only the outputs of the later stages.
"""

import json
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lerobot.configs import parser

from ..common.cli import UsageError, check_image_size, run_entry_point
from ..common.processes import run_logged
from ..sim.constants import NAMED_CUBE_TASKS, TASKS, default_episode_length, every_cube_episodes
from .presets import preset_path

PROG = "reconvla-demo"

# Chosen from timed runs on 2 CPU cores: the whole demo in under 15 minutes (13.5 measured, install
# excluded) with the tiny preset's success on held-out lift placements above zero (docs/results.md).
DEFAULT_EPISODES = 20
DEFAULT_STEPS = 600
BASE_PRESETS = {"pi0": "reconvla_tiny", "pi05": "reconvla_pi05_tiny"}  # the tiny preset of each base
EVAL_START_SEED = 1000  # lerobot-eval's default --seed: placements no demonstration used (they start at 0)
DEFAULT_ACTION_NOISE = 0.02  # rad: demonstrations that show the way back to the script's path (sim.generate)
OUTCOMES = "outcomes.jsonl"  # per-episode outcomes the env writes next to lerobot-eval's eval_info.json

MARKER = ".reconvla_demo"
# What a demo run writes besides the data: removed before a rerun (lerobot-train refuses an existing
# output_dir).
STAGE_OUTPUTS = (
    "train",
    "eval",
    "reconstructions",
    "data.log",
    "train.log",
    "eval.log",
    "reconstructions.log",
    "summary.json",
    "success_curve.png",
)
# lerobot-train's log line of a step; it writes the step as a rounded big number from 1,000 on ("step:2K").
STEP_LINE = re.compile(r"step:\S+ .*?loss:([\d.]+).*?action_loss:([\d.]+) recon_loss:([\d.]+)")


@dataclass
class DemoConfig:
    """Generates demonstrations, trains the tiny ReconVLA, evaluates its checkpoints, draws
    reconstructions."""

    # Directory the demo writes into (new, empty, or an earlier demo run's).
    output_dir: Path = Path("outputs/demo")
    # One of insertion, transfer_cube, lift, lift_named, lift_pair.
    task: str = "lift"
    # Scripted demonstrations to generate.
    num_episodes: int = DEFAULT_EPISODES
    # Training steps.
    steps: int = DEFAULT_STEPS
    # The base policy the head is added to: pi0 (`reconvla`, whose results docs/results.md reports) or pi05
    # (`reconvla_pi05`).
    base: str = "pi0"
    # Std (rad) of the arms' perturbation while recording the demonstrations (the generator's
    # --action_noise; 0: exact scripted replays).
    action_noise: float = DEFAULT_ACTION_NOISE
    # Training batch size.
    batch_size: int = 8
    # Checkpoints evaluated, evenly spaced (the last at --steps).
    curve_points: int = 3
    # Actions executed per predicted chunk (the preset's chunk is 20). Whole chunks: on three training seeds'
    # checkpoints, 20 lifted 12 of 90 held-out cubes where 10 lifted 3 (docs/results.md).
    n_action_steps: int = 20
    # lerobot-eval episodes of the last checkpoint (held-out placements, seeds 1000 upwards).
    eval_episodes: int = 30
    # lerobot-eval episodes of each earlier checkpoint of the curve (the first of the same placements).
    curve_eval_episodes: int = 5
    # Sim steps per episode (default: the task's).
    episode_length: int | None = None
    # Camera image height and width.
    image_size: list[int] = field(default_factory=lambda: [96, 128])
    # Side the policy resizes each camera to (tokens per camera: (side // 14)^2).
    image_resolution: int = 112
    # Render shadows (about 3x slower on a CPU).
    shadows: bool = False
    # Training only: random shift of each camera by up to this many pixels, its gaze box moved along
    # (--policy.image_shift_pixels; 0: off).
    image_shift_pixels: int = 0
    # Weight of the reconstruction loss (--policy.recon_weight; default: the preset's). 0 trains the same
    # policy with the head's loss off, i.e. the base alone: the head's ablation, paired by --seed.
    recon_weight: float | None = None
    # lerobot-train's seed (model initialisation, batch order).
    seed: int = 1000
    # Dataset directory of the demonstrations (default: <output_dir>/data); runs that differ only in
    # training can share one.
    data_root: Path | None = None
    # Processes generating the demonstrations (default: the cores available); the data does not depend on it.
    workers: int | None = None

    def check(self, flag_prefix: str = "--") -> None:
        """Raises UsageError naming the first flag whose value cannot work (`flag_prefix`: how the flags are
        spelled where this config is nested, e.g. "--demo.")."""
        if self.task not in TASKS:
            raise UsageError(f"{flag_prefix}task={self.task}: expected one of {list(TASKS)}")
        if self.base not in BASE_PRESETS:
            raise UsageError(f"{flag_prefix}base={self.base}: expected one of {list(BASE_PRESETS)}")
        check_image_size(self.image_size, f"{flag_prefix}image_size")
        if self.num_episodes < 1:
            raise UsageError(f"{flag_prefix}num_episodes must be at least 1, got {self.num_episodes}")
        for name in ("eval_episodes", "curve_eval_episodes"):
            if getattr(self, name) < 1:
                raise UsageError(f"{flag_prefix}{name} must be at least 1, got {getattr(self, name)}")
        if not 1 <= self.curve_points <= self.steps:
            raise UsageError(
                f"{flag_prefix}curve_points must be between 1 and {flag_prefix}steps ({self.steps}), "
                f"got {self.curve_points}"
            )
        self.training_policy_config(flag_prefix)  # the policy settings too, before any data is generated

    def training_policy_overrides(self) -> dict:
        """The policy fields the training stage sets on top of the tiny preset (``--policy.<name>``)."""
        preset = preset_policy_fields(self.base)
        return {
            "image_resolution": (self.image_resolution, self.image_resolution),
            "recon_image_size": fitting_recon_image_size(
                preset["recon_image_size"], self.image_resolution, preset["paligemma_variant"]
            ),
            "n_action_steps": self.n_action_steps,
            "scheduler_decay_steps": self.steps,  # the learning rate anneals by the last step
            "image_shift_pixels": self.image_shift_pixels,
            **({} if self.recon_weight is None else {"recon_weight": self.recon_weight}),
        }

    @property
    def names_every_cube(self) -> bool:
        """Whether the evaluation runs every scene under each instruction (a task naming one of several
        cubes): the eval command and the blind floor's replay must agree on it."""
        return self.task in NAMED_CUBE_TASKS

    @property
    def trains_head(self) -> bool:
        """Whether the reconstruction head gets a loss (with none it stays at its initialisation, and the demo
        draws no reconstructions)."""
        return self.training_policy_config().recon_weight > 0

    def training_policy_config(self, flag_prefix: str = "--"):
        """The policy config lerobot-train will build (ReconVLAConfig, or ReconVLAPi05Config for pi05); raises
        UsageError with the config's reason when the demo's flags give one that cannot work."""
        from lerobot.configs import PreTrainedConfig

        fields_ = preset_policy_fields(self.base)
        config_class = PreTrainedConfig.get_choice_class(fields_.pop("type"))
        try:
            return config_class(**{**fields_, **self.training_policy_overrides()})
        except ValueError as error:
            raise UsageError(
                f"the demo's flags (e.g. {flag_prefix}image_resolution={self.image_resolution}, "
                f"{flag_prefix}n_action_steps={self.n_action_steps}, {flag_prefix}image_shift_pixels="
                f"{self.image_shift_pixels}, {flag_prefix}recon_weight={self.recon_weight}) give a policy "
                f"that cannot train: {error}"
            ) from None


def preset_policy_fields(base: str = "pi0") -> dict:
    """The `base`'s tiny preset's ``policy`` section (the config file lerobot-train is given)."""
    return json.loads(preset_path(BASE_PRESETS[base]).read_text())["policy"]


# Most pixels of the crop one image token reconstructs, per side. The tiny preset's 32-px crop over 56 px's
# 4 x 4 token grid gives each token 8 x 8 pixels, which the tiny DiT does not learn (its loss stays at
# 0.68-0.74 over 1,500 steps); with a 16-px crop, 4 x 4 per token as at the demo's 112 px, it reaches
# 0.042 (docs/results.md, runs r56 and r56c16).
MAX_RECON_PIXELS_PER_TOKEN = 4


def fitting_recon_image_size(preset_size: int, image_resolution: int, paligemma_variant: str) -> int:
    """The preset's reconstruction crop side rounded up to a multiple of the image-token grid (the config's
    rule: every token gets the same p x p pixels), at most MAX_RECON_PIXELS_PER_TOKEN per token; the
    preset's own value where it already fits."""
    from ..configuration_reconvla import vision_patch_size

    grid = image_resolution // vision_patch_size(paligemma_variant)
    if grid < 1:
        return preset_size  # the config refuses the resolution itself, naming it
    return min(grid * -(-preset_size // grid), grid * MAX_RECON_PIXELS_PER_TOKEN)


def run_stage(
    name: str, command: list[str], log_path: Path, timings: dict[str, float], append: bool = False
) -> str:
    """Runs one stage, writing its output to `log_path` (after what is there with `append`); raises
    CommandFailed with the log's tail; returns this stage's output."""
    print(f"\n[{name}] $ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    output = run_logged(command, log_path, label=name, append=append)
    timings[name] = time.perf_counter() - start
    print(f"[{name}] done in {timings[name]:.0f} s (log: {log_path})", flush=True)
    return output


def lerobot_cli(name: str) -> str:
    """Path of a LeRobot console script: the one installed next to this Python (the environment running the
    tool), else the first on PATH (LeRobot installed with ``pip install --target``, as scripts/evidence_gpu.sh
    does)."""
    path = Path(sys.executable).parent / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} is neither next to {sys.executable} nor on PATH; install lerobot in this environment"
        )
    return found


def prepare_output_dir(out: Path) -> None:
    """Makes `out` ready for a run without deleting anything the demo did not write itself."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise UsageError(
                f"--output_dir={out} is not empty and is not the output of a previous demo run "
                f"(no {MARKER} file); pass a new or empty directory"
            )
        for name in STAGE_OUTPUTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(
        "written by python -m lerobot_policy_reconvla.tools.demo; "
        "the demo may replace this directory's stage outputs\n"
    )


def parse_losses(train_log: str, log_freq: int) -> list[tuple[int, float, float, float]]:
    """(step, loss, action_loss, recon_loss) of every logged step of a run started from step 0 with
    ``--log_freq=log_freq``: lerobot-train logs every log_freq-th step, and its log rounds steps from 1,000
    on, so a line's step is its rank times log_freq."""
    return [
        (log_freq * rank, float(loss), float(action), float(recon))
        for rank, (loss, action, recon) in enumerate(STEP_LINE.findall(train_log), start=1)
    ]


def read_outcomes(path: Path) -> list[dict]:
    """The env's outcome log (one JSON line per finished episode, ``--env.outcome_log``)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wrong_object_pc(task: str, outcomes: list[dict]) -> float | None:
    """Percent of episodes whose first lifted cube was not the named one (tasks that name a cube; None
    otherwise)."""
    named = [o for o in outcomes if o.get("target")]
    if task not in NAMED_CUBE_TASKS or not named:
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


def paired_counts(policy: list[bool], blind: list[bool]) -> dict[str, int]:
    """Placements where the policy only, the blind floor only, both or neither reached an outcome."""
    pairs = list(zip(policy, blind, strict=True))
    return {
        "policy_only": sum(p and not b for p, b in pairs),
        "blind_only": sum(b and not p for p, b in pairs),
        "both": sum(p and b for p, b in pairs),
        "neither": sum(not p and not b for p, b in pairs),
    }


def held_off_table(episode: dict) -> bool:
    """Whether an outcome-log episode held the named cube off the table at some step (lift reward >= 2)."""
    from ..sim.tasks import LIFT_HELD_REWARD

    return episode["max_reward"] >= LIFT_HELD_REWARD


def paired_floor(
    task: str, outcomes: list[dict], episode_length: int | None = None, name_every_cube: bool = False
) -> dict | None:
    """The blind floor replayed on the placements of one evaluation (the seeds of its outcome log), and the
    paired counts against the policy's outcomes; None for a task without a blind floor.

    Besides success, a second paired reading where the outcome log has each episode's highest reward:
    ``held``, the named cube held by the gripper off the table at some step (lift reward >= 2): whether
    the policy finds and grips the cube, even where it does not raise it the 5 cm of a success."""
    from ..sim.evaluate_scripted import BLIND_TASKS, blind_replays
    from ..sim.tasks import LIFT_HELD_REWARD

    if task not in BLIND_TASKS:
        return None
    episodes = sorted(outcomes, key=lambda outcome: outcome["seed"])  # one line per episode, as they ended
    seeds = [int(episode["seed"]) for episode in episodes]
    blind = blind_replays(task, seeds, episode_length, name_every_cube=name_every_cube)
    n = len(episodes)
    floor = {
        "episodes": n,
        "blind_floor_pc": 100.0 * sum(result.success for result in blind) / n,
        **paired_counts([bool(e["success"]) for e in episodes], [result.success for result in blind]),
    }
    if all("max_reward" in episode for episode in episodes):
        policy_held = [held_off_table(episode) for episode in episodes]
        blind_held = [result.max_reward >= LIFT_HELD_REWARD for result in blind]
        floor["held"] = {
            "policy": sum(policy_held),
            "blind": sum(blind_held),
            **paired_counts(policy_held, blind_held),
        }
    return floor


def unfinished_lifts(outcomes: list[dict]) -> dict | None:
    """The episodes that held the cube off the table without a success, split by how they ended: ``let_go``
    (the last step no longer held it: it slipped or was dropped) and ``held_to_end`` (still held when the
    episode ran out: not raised the 5 cm of a success), with the highest rise while held (cm) and the
    steps held, each as min / median / max. None where the outcome log predates these fields or no such
    episode exists."""
    from ..sim.tasks import LIFT_HELD_REWARD

    unfinished = [
        episode
        for episode in outcomes
        if "held_steps" in episode and not episode["success"] and held_off_table(episode)
    ]
    if not unfinished:
        return None

    def spread(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"min": ordered[0], "median": statistics.median(ordered), "max": ordered[-1]}

    let_go = sum(episode["last_reward"] < LIFT_HELD_REWARD for episode in unfinished)
    return {
        "episodes": len(unfinished),
        "let_go": let_go,
        "held_to_end": len(unfinished) - let_go,
        "highest_rise_cm": spread([episode["max_held_height_cm"] for episode in unfinished]),
        "held_steps": spread([episode["held_steps"] for episode in unfinished]),
    }


def plot_success_curve(
    curve: list[tuple[int, float, int]], task: str, path: Path, floor_pc: float | None = None
) -> None:
    """Success rate (%) on held-out placements against the training step, one point per checkpoint
    (`curve`: step, success %, episodes), with the blind floor of the last evaluation's placements."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, success, episodes = zip(*curve, strict=True)
    figure, axis = plt.subplots(figsize=(5, 3.2), dpi=120)
    axis.plot(steps, success, marker="o", label="tiny ReconVLA")
    for step, pc, n in curve:
        axis.annotate(
            f"n={n}", (step, pc), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7
        )
    if floor_pc is not None:
        axis.axhline(floor_pc, color="grey", linestyle="--", label=f"blind floor (n={episodes[-1]})")
        axis.legend(loc="upper left", fontsize=7)
    axis.set_xlabel("training step")
    axis.set_ylabel("success (%) on held-out placements")
    axis.set_ylim(-5, 105)
    axis.set_title(f"tiny ReconVLA, {task}, held-out placements")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def eval_command(cfg: DemoConfig, checkpoint: Path, eval_dir: Path, episodes: int) -> tuple[list[str], int]:
    """The lerobot-eval command of one checkpoint on held-out placements, and its episodes: a task naming
    one of several cubes runs every scene under each instruction (``--env.name_every_cube``), whole scenes
    only (the episodes rounded up), so its success measures following the instruction."""
    first_seed, episodes = every_cube_episodes(cfg.task, EVAL_START_SEED, episodes)
    height, width = cfg.image_size
    command = [
        lerobot_cli("lerobot-eval"),
        f"--policy.path={checkpoint}",
        "--env.type=aloha_multicam",
        f"--env.task={cfg.task}",
        f"--env.observation_height={height}",
        f"--env.observation_width={width}",
        f"--env.episode_length={cfg.episode_length or default_episode_length(cfg.task)}",
        f"--env.shadows={'true' if cfg.shadows else 'false'}",
        # The policy reads the cameras only when it replans: render them only then (same actions).
        f"--env.observe_every={cfg.n_action_steps}",
        f"--env.outcome_log={eval_dir / OUTCOMES}",
        *(["--env.name_every_cube=true"] if cfg.names_every_cube else []),
        f"--eval.n_episodes={episodes}",
        "--eval.batch_size=1",
        f"--seed={first_seed}",
        f"--output_dir={eval_dir}",
    ]
    return command, episodes


def held_out_episodes(task: str, episodes: int) -> str:
    """How an evaluation's episodes read: placements, or scenes under each instruction."""
    if task not in NAMED_CUBE_TASKS:
        return f"{episodes} held-out placements"
    cubes = len(NAMED_CUBE_TASKS[task])
    return f"{episodes} held-out episodes ({episodes // cubes} scenes, each under its {cubes} instructions)"


def run_demo(cfg: DemoConfig) -> dict:
    """Runs every stage into `cfg.output_dir` and prints the figures; returns the summary (summary.json).

    Raises UsageError before any work for a flag whose value cannot work or an output directory the demo
    did not make; a stage that fails raises CommandFailed with the tail of its log.
    """
    cfg.check()
    curve_steps = checkpoint_steps(cfg.steps, cfg.curve_points)
    episode_length = cfg.episode_length or default_episode_length(cfg.task)

    out = cfg.output_dir.resolve()
    prepare_output_dir(out)
    timings: dict[str, float] = {}
    repo_id = f"local/aloha_sim_{cfg.task}_3cam"
    data_root = cfg.data_root.resolve() if cfg.data_root else out / "data"
    train_dir = out / "train"
    height, width = cfg.image_size
    shadows = "true" if cfg.shadows else "false"

    # 1. Data: scripted demonstrations replayed with three cameras rendering (a previous run's data is
    #    resumed by the generator, which refuses it if the task, cameras or image size differ).
    generate = [
        sys.executable,
        "-m",
        "lerobot_policy_reconvla.sim.generate",
        f"--task={cfg.task}",
        f"--num_episodes={cfg.num_episodes}",
        f"--root={data_root}",
        f"--repo_id={repo_id}",
        f"--image_size=[{height},{width}]",
        f"--episode_length={episode_length}",
        f"--action_noise={cfg.action_noise}",
        f"--shadows={shadows}",
    ]
    if cfg.workers is not None:
        generate.append(f"--workers={cfg.workers}")
    if episode_length < default_episode_length(cfg.task):
        generate.append("--keep_failed=true")  # a shortened episode cannot finish the task
    run_stage("data", generate, out / "data.log", timings)

    # 2. Train, saving a checkpoint at every point of the curve.
    policy_flags = [
        f"--policy.{name}=" + (f"[{','.join(map(str, value))}]" if isinstance(value, tuple) else str(value))
        for name, value in cfg.training_policy_overrides().items()
    ]
    save_freq = cfg.steps // cfg.curve_points
    log_freq = max(1, cfg.steps // 10)
    train_log = run_stage(
        "train",
        [
            lerobot_cli("lerobot-train"),
            f"--config_path={preset_path(BASE_PRESETS[cfg.base])}",
            f"--dataset.repo_id={repo_id}",
            f"--dataset.root={data_root}",
            f"--output_dir={train_dir}",
            f"--steps={cfg.steps}",
            f"--batch_size={cfg.batch_size}",
            f"--save_freq={save_freq}",
            f"--log_freq={log_freq}",
            "--num_workers=0",
            "--wandb.enable=false",
            f"--seed={cfg.seed}",
            "--env_eval_freq=0",
            *policy_flags,
        ],
        out / "train.log",
        timings,
    )
    losses = parse_losses(train_log, log_freq)
    from lerobot.common.train_utils import get_step_checkpoint_dir

    checkpoints = {
        step: get_step_checkpoint_dir(train_dir, cfg.steps, step) / "pretrained_model" for step in curve_steps
    }

    # 3. Evaluate every checkpoint on held-out placements (lerobot-eval's seeds start at 1000).
    curve: list[tuple[int, float, int]] = []  # (step, success %, episodes)
    for step, checkpoint in checkpoints.items():
        eval_dir = out / "eval" / f"{step:06d}"
        n_episodes = (
            cfg.eval_episodes if step == cfg.steps else min(cfg.curve_eval_episodes, cfg.eval_episodes)
        )
        command, n_episodes = eval_command(cfg, checkpoint, eval_dir, n_episodes)
        run_stage(f"eval step {step}", command, out / "eval.log", timings, append=True)
        eval_info = json.loads((eval_dir / "eval_info.json").read_text())
        curve.append((step, eval_info["overall"]["pc_success"], n_episodes))
    success, final_eval = curve[-1][1], eval_dir  # the last checkpoint's
    outcomes = read_outcomes(final_eval / OUTCOMES)
    videos = sorted(final_eval.rglob("*.mp4"))
    start = time.perf_counter()
    # The blind script on the last evaluation's placements.
    floor = paired_floor(cfg.task, outcomes, episode_length, name_every_cube=cfg.names_every_cube)
    timings["blind floor"] = time.perf_counter() - start
    curve_png = out / "success_curve.png"
    plot_success_curve(curve, cfg.task, curve_png, floor["blind_floor_pc"] if floor else None)

    # 4. Reconstructions of the trained head (none when it had no loss: they would show its initialisation).
    checkpoint = checkpoints[cfg.steps]
    trains_head = cfg.trains_head
    pictures: list[Path] = []
    if trains_head:
        run_stage(
            "reconstructions",
            [
                sys.executable,
                "-m",
                "lerobot_policy_reconvla.tools.visualize",
                f"--policy.path={checkpoint}",
                f"--dataset.repo_id={repo_id}",
                f"--dataset.root={data_root}",
                f"--frame_index={episode_length // 2}",
                f"--output_dir={out / 'reconstructions'}",
            ],
            out / "reconstructions.log",
            timings,
        )
        pictures = sorted((out / "reconstructions").glob("*.png"))

    # 5. Summary.
    summary = {
        "task": cfg.task,
        "base": cfg.base,
        "recon_weight": cfg.training_policy_config().recon_weight,  # the preset's unless --recon_weight
        "dataset": str(data_root),
        "checkpoint": str(checkpoint),
        "reconstructions": [str(p) for p in pictures],
        "eval_episodes": curve[-1][2],
        "eval_success_pc": success,
        "blind_floor": floor,
        "success_curve": [{"step": step, "success_pc": pc, "episodes": n} for step, pc, n in curve],
        "success_curve_png": str(curve_png),
        "wrong_object_pc": wrong_object_pc(cfg.task, outcomes),
        "held_without_success": unfinished_lifts(outcomes),
        "eval_videos": [str(v) for v in videos],
        "losses_first": losses[0] if losses else None,
        "losses_last": losses[-1] if losses else None,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n==================== ReconVLA demo ====================")
    print(f"dataset          {data_root} ({cfg.num_episodes} scripted {cfg.task} demonstrations)")
    print(f"checkpoint       {checkpoint}")
    evaluated = held_out_episodes(cfg.task, curve[-1][2])
    print(f"success          {success:.0f}% over {evaluated} at step {cfg.steps}")
    if floor is not None:
        print(
            f"blind floor      {floor['blind_floor_pc']:.0f}% on the same placements (one fixed trajectory); "
            f"paired: policy only {floor['policy_only']}, blind only {floor['blind_only']}, "
            f"both {floor['both']}, neither {floor['neither']}"
        )
        if "held" in floor:
            held = floor["held"]
            print(
                f"cube held        off the table by the policy in {held['policy']} of {floor['episodes']}, "
                f"by the blind floor in {held['blind']}; paired: policy only {held['policy_only']}, "
                f"blind only {held['blind_only']}, both {held['both']}"
            )
    unfinished = summary["held_without_success"]
    if unfinished is not None:
        rise = unfinished["highest_rise_cm"]
        print(
            f"held, not lifted {unfinished['episodes']} episodes: {unfinished['let_go']} let the cube go, "
            f"{unfinished['held_to_end']} still held it at the end; highest rise while held "
            f"{rise['median']:.1f} cm median ({rise['min']:.1f}-{rise['max']:.1f}; a success is 5)"
        )
    if summary["wrong_object_pc"] is not None:
        print(f"wrong object     {summary['wrong_object_pc']:.0f}% of episodes lifted another cube first")
    print(
        "success curve    "
        + ", ".join(f"step {step}: {pc:.0f}% (n={n})" for step, pc, n in curve)
        + f"  ({curve_png})"
    )
    for video in videos:
        print(f"eval video       {video}")
    for picture in pictures:
        print(f"reconstruction   {picture}")
    if not trains_head:
        print(
            "reconstruction   none: --recon_weight=0 trains the base alone, the head keeps its initialisation"
        )
    if losses:
        (s0, l0, a0, r0), (s1, l1, a1, r1) = losses[0], losses[-1]
        print(f"loss             step {s0}: {l0:.3f} (action {a0:.3f}, recon {r0:.3f})")
        print(f"                 step {s1}: {l1:.3f} (action {a1:.3f}, recon {r1:.3f})")
    print(
        "seconds          "
        + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
        + f"; total {sum(timings.values()):.0f}"
    )
    print(f"summary          {out / 'summary.json'}")
    return summary


@parser.wrap()
def demo_command(cfg: DemoConfig) -> int:
    run_demo(cfg)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``reconvla-demo``: exit status 0, 2 with one line for a bad flag or output directory, 1 with the
    log's tail for a stage that failed."""
    return run_entry_point(demo_command, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(main())
