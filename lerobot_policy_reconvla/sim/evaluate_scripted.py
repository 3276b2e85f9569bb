"""Success rate of the scripted policies (joint-space replay, physics only, no rendering).

    python -m lerobot_policy_reconvla.sim.evaluate_scripted --task insertion --num-seeds 50 [--seed 0]

Prints one line per seed (mocap success, replay success, max reward 0-4) and the rates.
"""

import argparse

from ..envs.constants import TASKS, check_task
from .scripted import replay, scripted_episode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lerobot_policy_reconvla.sim.evaluate_scripted")
    p.add_argument("--task", required=True, help=f"one of {list(TASKS)}")
    p.add_argument("--num-seeds", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    args = p.parse_args(argv)
    try:
        check_task(args.task)
    except ValueError as error:
        p.error(str(error))
    ee_ok = ok = 0
    for seed in range(args.seed, args.seed + args.num_seeds):
        episode = scripted_episode(args.task, seed)
        result = replay(episode)
        ee_ok += episode.ee_success
        ok += result.success
        print(f"seed {seed}: mocap {'ok' if episode.ee_success else 'fail'}, replay "
              f"{'ok' if result.success else 'fail'} (max reward {result.max_reward:.0f})", flush=True)
    n = args.num_seeds
    print(f"{args.task}: replay success {ok}/{n} = {100 * ok / n:.0f}% (mocap {ee_ok}/{n} = {100 * ee_ok / n:.0f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
