"""Success rate of the scripted policies (joint-space replay, physics only, no rendering).

    reconvla-eval-scripted --task=insertion --num_seeds=50 [--seed=0]
    reconvla-eval-scripted --task=lift --num_seeds=50 --seed=1000 --blind=true
    reconvla-eval-scripted --task=lift_pair --num_seeds=50 --seed=1000 --blind=true
    reconvla-eval-scripted --task=lift_pair --num_seeds=10 --seed=100000 --blind=true --name_every_cube=true

(or ``python -m lerobot_policy_reconvla.sim.evaluate_scripted ...``)

Prints one line per seed (mocap success, replay success, max reward) and the rates. ``--blind=true`` replays
one fixed trajectory on every seed's scene: for ``lift`` the script for a cube at the centre of the
placement area (a policy that ignores the images), for ``lift_pair`` the script for the first slot's centre
(a policy that ignores the instruction and always takes that slot): the floors a learned policy must beat.
``--name_every_cube=true`` places and names the episodes as ``lerobot-eval --env.name_every_cube=true`` does
(every scene under every instruction), so a floor reads on the very episodes a policy was evaluated on.
"""

import dataclasses

import numpy as np
from lerobot.configs import parser

from ..common.cli import UsageError, run_entry_point
from .constants import NAMED_CUBE_TASKS, TASKS
from .scripted import ReplayResult, ScriptedEpisode, replay, scripted_episode_for_scene
from .tasks import (
    LIFT_X_RANGE,
    LIFT_Y_RANGE,
    PAIR_SLOTS,
    Scene,
    scene_cubes,
    scene_for_seed,
    scene_naming_every_cube,
)

PROG = "reconvla-eval-scripted"


@dataclasses.dataclass
class EvaluateScriptedConfig:
    """Replays the scripted policy of every seed (physics only) and prints its success rate."""

    # One of insertion, transfer_cube, lift, lift_named, lift_pair.
    task: str
    # Seeds evaluated, one episode each.
    num_seeds: int = 50
    # First seed.
    seed: int = 0
    # lift, lift_pair: replay one fixed script on every seed (lift: the area's centre; lift_pair: the first
    # slot's centre), the success of a policy blind to the images (lift) or to the instruction (lift_pair).
    blind: bool = False
    # lift_named, lift_pair: each scene under every instruction, seed by seed as lerobot-eval's
    # --env.name_every_cube=true runs them (start at a multiple of the cube count).
    name_every_cube: bool = False

    def check(self) -> None:
        """Raises UsageError naming the first flag whose value cannot work."""
        if self.task not in TASKS:
            raise UsageError(f"--task={self.task}: expected one of {list(TASKS)}")
        if self.num_seeds < 1:
            raise UsageError(f"--num_seeds must be at least 1, got {self.num_seeds}")
        if self.blind and self.task not in BLIND_TASKS:
            raise UsageError(
                f"--blind=true is defined for --task in {list(BLIND_TASKS)}, got --task={self.task}"
            )
        if self.name_every_cube and self.task not in NAMED_CUBE_TASKS:
            raise UsageError(
                "--name_every_cube=true needs a task naming one of several cubes "
                f"({list(NAMED_CUBE_TASKS)}), got --task={self.task}"
            )


BLIND_TASKS = ("lift", "lift_pair")


def centre_script(task: str) -> np.ndarray:
    """(T, 14) the lift script for a cube at the centre of the placement area (lift) or of the first slot
    (lift_pair)."""
    upright = [0.05, 1.0, 0.0, 0.0, 0.0]
    if task == "lift":
        scene = dataclasses.replace(
            scene_for_seed(task, 0),
            object_pose=np.array([np.mean(LIFT_X_RANGE), np.mean(LIFT_Y_RANGE), *upright]),
        )
    else:  # the named cube at the first slot's centre, the other at the second's
        scene = scene_for_seed(task, 0)
        first, second = (np.array([*slot, *upright]) for slot in PAIR_SLOTS)
        named_first = scene_cubes(task).index(scene.target) == 0
        scene = dataclasses.replace(
            scene, object_pose=np.concatenate([first, second] if named_first else [second, first])
        )
    return scripted_episode_for_scene(scene).actions


def episode_scene(task: str, seed: int, name_every_cube: bool = False) -> Scene:
    """The scene of episode `seed`, placed and named as the env places it (``--env.name_every_cube``)."""
    return scene_naming_every_cube(task, seed) if name_every_cube else scene_for_seed(task, seed)


def blind_replays(
    task: str, seeds: list[int], episode_length: int | None = None, name_every_cube: bool = False
) -> list[ReplayResult]:
    """The blind floor (`centre_script`) replayed on each of `seeds`' scenes, physics only: the same
    placements a policy was evaluated on, for a paired reading. `episode_length` cuts the trajectory to the
    steps the policy had (default: the task's); `name_every_cube` places and names the scenes as the env
    does with that option."""
    actions = centre_script(task)[:episode_length]  # (T, 14), one fixed trajectory for every scene
    return [
        replay(
            ScriptedEpisode(
                task,
                seed,
                episode_scene(task, seed, name_every_cube),
                actions,
                ee_success=False,
                ee_max_reward=0.0,
            )
        )
        for seed in seeds
    ]


@parser.wrap()
def evaluate_scripted_command(cfg: EvaluateScriptedConfig) -> int:
    cfg.check()
    blind_actions = centre_script(cfg.task) if cfg.blind else None
    ee_ok = ok = 0
    for seed in range(cfg.seed, cfg.seed + cfg.num_seeds):
        episode = scripted_episode_for_scene(episode_scene(cfg.task, seed, cfg.name_every_cube), seed)
        if blind_actions is not None:
            episode = dataclasses.replace(episode, actions=blind_actions)
        result = replay(episode)
        named = f" ({episode.scene.target} named)" if cfg.name_every_cube else ""
        ee_ok += episode.ee_success
        ok += result.success
        print(
            f"seed {seed}{named}: mocap {'ok' if episode.ee_success else 'fail'}, replay "
            f"{'ok' if result.success else 'fail'} (max reward {result.max_reward:.0f})",
            flush=True,
        )
    n = cfg.num_seeds
    what = "blind replay (the centre's script)" if cfg.blind else "replay"
    print(
        f"{cfg.task}: {what} success {ok}/{n} = {100 * ok / n:.0f}% "
        f"(mocap {ee_ok}/{n} = {100 * ee_ok / n:.0f}%)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``reconvla-eval-scripted``: exit status 0, or 2 with one line for a bad flag."""
    return run_entry_point(evaluate_scripted_command, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(main())
