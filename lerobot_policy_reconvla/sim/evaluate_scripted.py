"""Success rate of the scripted policies (joint-space replay, physics only, no rendering).

    python -m lerobot_policy_reconvla.sim.evaluate_scripted --task insertion --num-seeds 50 [--seed 0]
    python -m lerobot_policy_reconvla.sim.evaluate_scripted --task lift --num-seeds 50 --seed 1000 --blind

Prints one line per seed (mocap success, replay success, max reward) and the rates. ``--blind`` (lift):
replays one fixed trajectory, the script for a cube at the centre of the placement area, on every
seed's scene: the success of a policy that ignores the images (the floor a learned policy must beat).
"""

import argparse
import dataclasses

import numpy as np

from .constants import TASKS, check_task
from .scripted import replay, scripted_episode, scripted_episode_for_scene
from .tasks import LIFT_X_RANGE, LIFT_Y_RANGE, scene_for_seed


def centre_script(task: str) -> np.ndarray:
    """(T, 14) the lift script for a cube at the centre of the placement area."""
    centre = np.array([np.mean(LIFT_X_RANGE), np.mean(LIFT_Y_RANGE), 0.05, 1.0, 0.0, 0.0, 0.0])
    return scripted_episode_for_scene(dataclasses.replace(scene_for_seed(task, 0), object_pose=centre)).actions


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lerobot_policy_reconvla.sim.evaluate_scripted")
    p.add_argument("--task", required=True, help=f"one of {list(TASKS)}")
    p.add_argument("--num-seeds", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--blind", action="store_true", help="lift: replay the centre placement's script everywhere")
    args = p.parse_args(argv)
    try:
        check_task(args.task)
    except ValueError as error:
        p.error(str(error))
    if args.blind and args.task != "lift":
        p.error("--blind is defined for --task lift (one cube, one placement area)")
    blind_actions = centre_script(args.task) if args.blind else None
    ee_ok = ok = 0
    for seed in range(args.seed, args.seed + args.num_seeds):
        episode = scripted_episode(args.task, seed)
        if blind_actions is not None:
            episode = dataclasses.replace(episode, actions=blind_actions)
        result = replay(episode)
        ee_ok += episode.ee_success
        ok += result.success
        print(f"seed {seed}: mocap {'ok' if episode.ee_success else 'fail'}, replay "
              f"{'ok' if result.success else 'fail'} (max reward {result.max_reward:.0f})", flush=True)
    n = args.num_seeds
    what = "blind replay (the centre's script)" if args.blind else "replay"
    print(f"{args.task}: {what} success {ok}/{n} = {100 * ok / n:.0f}% (mocap {ee_ok}/{n} = {100 * ee_ok / n:.0f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
