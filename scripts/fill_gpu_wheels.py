"""Fills gpu_wheels/ with what a bare GPU machine lacks for the project's GPU runs, as wheels of at most
60 MiB.

    # here, in the project's environment (scripts/setup_venv.sh):
    .venv/bin/python scripts/fill_gpu_wheels.py
    # copy the repository with gpu_wheels/ to the GPU machine, then there:
    bash scripts/evidence_gpu.sh                          # or: bash benchmarks/run_bench_gpu.sh

The GPU machine is assumed to have torch, transformers, peft, accelerate, einops and the usual scientific
stack (numpy, pandas, pyarrow, scipy, opencv, pillow) with their dependencies, and no network. What the runs
import beyond that is found by importing them here (the experiment, `lerobot-train`, `lerobot-eval`, the
simulator and one rendered frame), and each such distribution is downloaded at the version installed here as
a Python 3.12 manylinux wheel, with this project's own wheel beside them (LeRobot finds plugins by their
installed metadata).

Two steps keep the folder under the limit, neither changing what gets installed where it is used:
- dm_control's wheel is 56 MB, mostly the locomotion and dog-model assets the ALOHA scenes never load; those
  folders are dropped (and their lines removed from the wheel's RECORD);
- every wheel is recompressed with LZMA, which pip reads like any zip method Python's zipfile reads (av's
  bundled FFmpeg shrinks from 40 to 30 MB).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIMIT_MIB = 60
# What the GPU machine already has; everything these require is taken to be there too.
GPU_MACHINE_HAS = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "einops",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "opencv-python-headless",
    "pillow",
)
# Imported here only because they are installed here; the GPU runs do not need them.
OPTIONAL = {"bitsandbytes"}  # peft and transformers import it when present; only adamw_8bit uses it
# Parts of a wheel that no GPU run reads: {distribution: path prefixes inside the wheel}. The folder is
# checked after filling by installing it on its own and importing everything again.
DROPPED = {
    "dm-control": (
        "dm_control/locomotion/",
        "dm_control/suite/dog_assets/",
        "dm_control/mujoco/testing/",
        "dm_control/blender/",
        "dm_control/mjcf/test_assets/",
        "dm_control/suite/all_domains.png",
    ),
    "pyopengl": ("OpenGL/DLLS/",),  # Windows libraries
    "lxml": ("lxml/objectify.", "lxml/includes/"),  # dm_control parses XML with lxml.etree only; C headers
}
# Imports everything the GPU runs load (the experiment, both LeRobot commands, the benchmark's VAE, the
# simulator and one rendered frame), then prints the distributions that provide the loaded modules.
PROBE = """
import importlib.metadata, json, sys
import lerobot.scripts.lerobot_train, lerobot.scripts.lerobot_eval
from lerobot.utils.import_utils import register_third_party_plugins
register_third_party_plugins()
import lerobot_policy_reconvla.experiments.evidence, lerobot_policy_reconvla.experiments.grounding
import lerobot_policy_reconvla.sim.generate, lerobot_policy_reconvla.modeling_reconvla
from diffusers import AutoencoderKL
from lerobot_policy_reconvla.sim.env import AlohaMultiCamEnv
env = AlohaMultiCamEnv(task="lift_pair", image_size=(48, 64))
env.reset(seed=0)
env.close()
providers = importlib.metadata.packages_distributions()
names = {name for module in list(sys.modules) for name in providers.get(module.split(".")[0], [])}
print(json.dumps(sorted(names)))
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(roots: tuple[str, ...]) -> set[str]:
    """`roots` and every installed distribution they require, transitively (canonical names)."""
    seen: set[str] = set()
    todo = [canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement:
                continue  # optional extras are not installed with their parent
            todo.append(canonical(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]))
    return seen


def distributions_to_carry() -> list[str]:
    """Distributions the GPU runs import that the GPU machine lacks (canonical names), this project
    excluded."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1", MUJOCO_GL="egl"),
    ).stdout
    imported = {canonical(n) for n in json.loads(out.strip().splitlines()[-1])}
    present = requirement_closure(GPU_MACHINE_HAS)
    return sorted(imported - present - OPTIONAL - {canonical("lerobot_policy_reconvla")})


def repack(wheel: Path, dropped: tuple[str, ...] = ()) -> None:
    """Rewrites `wheel` in place with LZMA compression, without the entries under `dropped` (and their RECORD
    lines). The installed files that remain are byte for byte the same, so their RECORD hashes still hold."""
    with zipfile.ZipFile(wheel) as source:
        entries = [i for i in source.infolist() if not i.filename.startswith(dropped)]
        contents = {i.filename: source.read(i) for i in entries}
    if dropped:
        record = next(name for name in contents if name.endswith(".dist-info/RECORD"))
        rows = csv.reader(io.StringIO(contents[record].decode()))
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(
            row for row in rows if row and not row[0].startswith(dropped)
        )
        contents[record] = text.getvalue().encode()
    partial = wheel.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_LZMA) as target:
        for info in entries:
            target.writestr(info, contents[info.filename], compress_type=zipfile.ZIP_LZMA)
    partial.replace(wheel)


def check_alone(dest: Path) -> None:
    """Installs `dest`'s wheels into a folder of their own, placed ahead of this environment, and imports
    everything the GPU runs import again: a file dropped from a wheel that is needed fails here, not there."""
    with tempfile.TemporaryDirectory() as site:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                "--no-compile",
                f"--target={site}",
                *map(str, sorted(dest.glob("*.whl"))),
            ],
            check=True,
        )
        env = dict(os.environ, HF_HUB_OFFLINE="1", MUJOCO_GL="egl", PYTHONPATH=site)
        subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, env=env)


def download(specs: list[str], dest: Path) -> None:
    platforms = [
        f"--platform={tag}"
        for tag in (
            "manylinux_2_28_x86_64",
            "manylinux_2_27_x86_64",
            "manylinux_2_26_x86_64",
            "manylinux_2_24_x86_64",
            "manylinux_2_17_x86_64",
            "manylinux2014_x86_64",
            "manylinux1_x86_64",
        )
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version=3.12",
            "--implementation=cp",
            *platforms,
            f"--dest={dest}",
            *specs,
        ],
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dest", type=Path, default=REPO / "gpu_wheels", help="folder to fill (emptied first)"
    )
    args = parser.parse_args(argv)

    names = distributions_to_carry()
    if args.dest.exists():
        shutil.rmtree(args.dest)
    args.dest.mkdir(parents=True)
    download([f"{n}=={importlib.metadata.version(n)}" for n in names], args.dest)
    with tempfile.TemporaryDirectory() as build:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                f"--wheel-dir={build}",
                str(REPO),
            ],
            check=True,
        )
        for built in Path(build).glob("*.whl"):
            shutil.move(built, args.dest / built.name)
    for wheel in sorted(args.dest.glob("*.whl")):
        name = canonical(wheel.name.split("-")[0])
        repack(wheel, DROPPED.get(name, ()))
    check_alone(args.dest)
    size_mib = sum(f.stat().st_size for f in args.dest.iterdir()) / 2**20
    print(f"{args.dest}: {len(list(args.dest.glob('*.whl')))} wheels, {size_mib:.1f} MiB: {', '.join(names)}")
    if size_mib > LIMIT_MIB:
        print(
            f"error: {args.dest} is {size_mib:.1f} MiB, over the {LIMIT_MIB} MiB a GPU run carries",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
