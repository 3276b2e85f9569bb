"""Simulation throughput: frames/s of the three-camera ALOHA sim, before and after the persistent renderer.

    MUJOCO_GL=egl python benchmarks/bench_sim_throughput.py [--frames 30] [--workers 1 2] \
        [--sizes 96x128 224x224 480x640] [--modes before after no_shadows] [--task transfer_cube]

One frame = what the dataset generator and ``lerobot-eval`` do per step: one physics step (a scripted
demonstration's joint targets), the three cameras ``top``, ``left_wrist``, ``right_wrist`` rendered, and
the gaze boxes computed. Modes:

- ``before``: ``physics.render(...)`` per camera and call, gym-aloha's settings (how the env rendered
  before ``sim.render``);
- ``after``: ``AlohaMultiCamEnv.step`` with its persistent ``MultiCameraRenderer`` (default settings);
- ``no_shadows``: the same with ``shadows=False`` (images differ: no shadows).

``--breakdown`` first prints where one ``physics.render`` call's time goes (CPU ms per call of the
``top`` camera under render settings that isolate each cost, and the share of Python-side set-up
measured with cProfile).

Each configuration runs in fresh processes (one per worker, started together); frames/s is all
workers' frames over the wall time from the common start to the last worker's end. ``cpu ms/frame``
is the process CPU time per frame (renderer threads included), which does not depend on what else
the machine is running. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

CAMERAS = ["top", "left_wrist", "right_wrist"]
MODES = ("before", "after", "no_shadows")


def _frames(mode: str, task: str, size: tuple[int, int], frames: int, start, results) -> None:
    """One worker: warm up, wait for the others, time `frames` frames, report (frames, t0, t1, cpu)."""
    from lerobot_policy_reconvla.sim.env import AlohaMultiCamEnv
    from lerobot_policy_reconvla.sim.gaze import gaze_box, object_geom_ids
    from lerobot_policy_reconvla.sim.scripted import scripted_episode
    from lerobot_policy_reconvla.sim.tasks import TASK_SPECS, make_task_environment, object_pose_for_seed

    actions = scripted_episode(task, seed=0).actions  # (400, 14): the arms move as in a real episode
    if mode == "before":
        env = make_task_environment(task)
        env.task.object_pose = object_pose_for_seed(task, 0)
        env.reset()
        physics, geoms = env.physics, object_geom_ids(env.physics, TASK_SPECS[task].object_bodies)

        def step(action):
            env.step(action)
            images = {cam: physics.render(height=size[0], width=size[1], camera_id=cam) for cam in CAMERAS}
            boxes = {cam: gaze_box(physics, cam, geoms, size) for cam in CAMERAS}
            return images, boxes
    else:
        env = AlohaMultiCamEnv(task=task, cameras=CAMERAS, image_size=size, shadows=mode != "no_shadows")
        env.reset(seed=0)
        step = env.step

    for action in actions[:3]:  # warm-up: GL context, shader compilation, first shadow map
        step(action)
    start.wait()
    t0, cpu0 = time.monotonic(), time.process_time()
    for i in range(frames):
        step(actions[3 + i % (len(actions) - 3)])
    results.put((frames, t0, time.monotonic(), time.process_time() - cpu0))


def _breakdown(task: str, size: tuple[int, int], calls: int, results) -> None:
    """CPU ms per `top` render under settings isolating each cost (each in its own physics)."""
    import cProfile
    import pstats

    import mujoco

    from lerobot_policy_reconvla.sim.tasks import make_task_environment, object_pose_for_seed

    def physics_with(**vis):
        env = make_task_environment(task)
        model = env.physics.model
        for path, value in vis.items():
            struct, name = path.split(".")
            setattr(getattr(model.vis, struct), name, value)
        env.task.object_pose = object_pose_for_seed(task, 0)
        env.reset()
        return env.physics

    def cpu_ms(render) -> float:
        render()  # the first call builds the context
        start = time.process_time()
        for _ in range(calls):
            render()
        return 1000 * (time.process_time() - start) / calls

    h, w = size
    rows = []
    physics = physics_with()
    rows.append(
        (
            "gym-aloha's settings (4096 px shadow map, 4x multisampling)",
            cpu_ms(lambda: physics.render(h, w, camera_id="top")),
        )
    )
    for label, vis in [
        ("1024 px shadow map", {"quality.shadowsize": 1024}),
        (
            "1024 px shadow map over half the extent (sim.render default)",
            {"quality.shadowsize": 1024, "map.shadowclip": 0.5},
        ),
        ("no multisampling", {"quality.offsamples": 0}),
        (f"offscreen buffer of the image size ({h} x {w})", {"global_.offwidth": w, "global_.offheight": h}),
    ]:
        other = physics_with(**vis)
        rows.append((label, cpu_ms(lambda other=other: other.render(h, w, camera_id="top"))))
    for label, flag in [
        ("no shadows", "mjRND_SHADOW"),
        ("no reflections", "mjRND_REFLECTION"),
        ("no skybox", "mjRND_SKYBOX"),
    ]:
        overrides = {getattr(mujoco.mjtRndFlag, flag): False}
        rows.append(
            (
                label,
                cpu_ms(lambda o=overrides: physics.render(h, w, camera_id="top", render_flag_overrides=o)),
            )
        )
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        physics.render(h, w, camera_id="top")
    profile.disable()
    stats = pstats.Stats(profile).stats  # {(file, line, name): (cc, nc, tottime, cumtime, callers)}
    gl = sum(
        v[2]
        for k, v in stats.items()
        if k[2]
        in ("<built-in method mujoco._render.mjr_render>", "<built-in method mujoco._render.mjr_readPixels>")
    )
    total = sum(v[2] for v in stats.values())
    results.put((rows, gl / total))


def breakdown(task: str, size: tuple[int, int], calls: int = 10) -> None:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_breakdown, args=(task, size, calls, results))
    proc.start()
    rows, gl_share = results.get()
    proc.join()
    print(f"One `top` render at {size[0]} x {size[1]}, CPU ms per call ({calls} calls each):\n")
    print("| render settings | cpu ms/call |")
    print("| --- | --- |")
    for label, ms in rows:
        print(f"| {label} | {ms:.0f} |")
    print(
        f"\ncProfile: {100 * gl_share:.0f} % of a physics.render call is inside "
        "mjr_render / mjr_readPixels.\n"
    )


def measure(mode: str, task: str, size: tuple[int, int], frames: int, workers: int) -> dict:
    ctx = mp.get_context("spawn")  # fresh processes: no GL context inherited
    start, results = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(target=_frames, args=(mode, task, size, frames, start, results)) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    out = [results.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"worker failed (exit code {p.exitcode}) in {mode} {size}")
    total = sum(n for n, *_ in out)
    wall = max(t1 for _, _, t1, _ in out) - min(t0 for _, t0, _, _ in out)
    return {"fps": total / wall, "cpu_ms": 1000 * sum(c for *_, c in out) / total}


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 224x224, got {text!r}") from None
    return h, w


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=30, help="timed frames per worker")
    p.add_argument("--workers", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    p.add_argument("--sizes", type=parse_size, nargs="+", default=[(96, 128), (224, 224), (480, 640)])
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--task", default="transfer_cube")
    p.add_argument("--breakdown", action="store_true", help="first profile one render call (see above)")
    args = p.parse_args(argv)

    if args.breakdown:
        breakdown(args.task, (224, 224))

    print(
        f"{args.task}, cameras {', '.join(CAMERAS)}, {args.frames} frames per worker, "
        f"{os.cpu_count()} cores\n"
    )
    print("| image (H x W) | mode | workers | frames/s | cpu ms/frame |")
    print("| --- | --- | --- | --- | --- |")
    for size in args.sizes:
        for mode in args.modes:
            for workers in args.workers:
                r = measure(mode, args.task, size, args.frames, workers)
                print(
                    f"| {size[0]} x {size[1]} | {mode} | {workers} | {r['fps']:.1f} | {r['cpu_ms']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
