"""Crash consistency for a LeRobotDataset written episode by episode: every finished episode survives a kill.

Why this mechanism (LeRobot 0.6's v3 writer): episodes are appended to files that stay open. The data
parquet and the episodes-metadata parquet get their footer only in ``finalize()``, episode metadata rows
are buffered (10 episodes) before they reach disk, videos are concatenated into one MP4 per camera, and
``meta/info.json`` / ``meta/stats.json`` are rewritten in place after every episode. A SIGKILL (OOM killer,
pre-emption) therefore leaves files no reader accepts, and LeRobot, finding no usable local metadata,
goes to the Hub. So each episode is made a transaction, using LeRobot's public API only:

1. ``save_episode()`` then ``finalize()``: every file on disk is complete. ``LeRobotDataset.resume()``
   then starts *new* data, video and episodes-metadata files for the next episode (its writer never
   reopens a file of an earlier session), so a committed file is never written again.
2. Commit: the sidecar ``meta/scripted_generation.json`` is atomically replaced (``os.replace``) with
   the list of committed files and their sizes, plus a copy of the three files LeRobot rewrites in place
   (``info.json``, ``stats.json``, ``tasks.parquet``). Replacing one small file is the only atomic step
   a POSIX file system offers; everything else is made to hang on it.
3. On start, roll back to the last commit (``recover``): delete what no commit lists (the interrupted
   episode's files, LeRobot's temporary frames and videos) and restore the rewritten files. The
   interrupted episode's seed was never recorded as done, so it is generated again: episodes are
   deterministic in their seed, nothing is lost.

A new dataset is created in a staging directory and renamed into place with its first commit, so the
root either does not exist or is resumable. Cost: one data file, one episodes file and one MP4 per camera
per episode (LeRobot's loaders take any number), and a metadata reload per episode that grows with the
number of episodes (0.8 s after 1 episode, 1.6 s after 30 on 2 busy CPU cores:
benchmarks/bench_generator_commit.py), against minutes of rendering per 400-step episode.
This guards against the process being killed, not against power loss (nothing is fsync'ed).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

SIDECAR = "meta/scripted_generation.json"
# Where LeRobot's writer puts files; anything of ours is under meta/ too. Other entries of the root are
# left alone, except LeRobot's own scratch space (frames awaiting encoding, tempfile.mkdtemp videos).
DATASET_DIRS = ("data", "videos", "meta")
SCRATCH_DIRS = ("images",)
REWRITTEN_IN_PLACE = ("meta/info.json", "meta/stats.json", "meta/tasks.parquet")


class UnrecoverableDataset(SystemExit):
    """A committed file was changed or removed behind the generator's back (one-line message)."""


def read_sidecar(root: Path) -> dict | None:
    path = root / SIDECAR
    return json.loads(path.read_text()) if path.exists() else None


def write_sidecar(root: Path, state: dict) -> None:
    path = root / SIDECAR
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)  # atomic: a kill leaves the old or the new sidecar, never half of one


def _dataset_files(root: Path) -> list[str]:
    files = []
    for top in DATASET_DIRS:
        files += [p.relative_to(root).as_posix() for p in (root / top).rglob("*") if p.is_file()]
    return sorted(f for f in files if f not in (SIDECAR, SIDECAR.replace(".json", ".tmp")))


def snapshot(root: Path) -> dict:
    """The commit record of `root` as it is now: every dataset file's size, the rewritten files' bytes."""
    files = {f: (root / f).stat().st_size for f in _dataset_files(root) if f not in REWRITTEN_IN_PLACE}
    copies = {f: base64.b64encode((root / f).read_bytes()).decode() for f in REWRITTEN_IN_PLACE if (root / f).exists()}
    return {"files": files, "copies": copies}


@contextmanager
def signals_deferred():
    """Hold SIGINT/SIGTERM until the block is done: a Ctrl-C never lands inside a save or a commit.

    The handlers are swapped, not the signal mask: Python runs handlers in the main thread whichever
    thread the signal reaches (LeRobot's image writer threads do not block it).
    """
    received = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])  # delivered now, to the handler that was in place


def commit_episode(dataset, state: dict, reopen):
    """Make the episode just saved durable; returns the dataset reopened for the next one.

    `state` is the sidecar (already updated with the episode's seed); `reopen(root)` resumes writing.
    """
    root = Path(dataset.root)
    dataset.finalize()  # footers and buffered episode metadata reach disk
    state["committed"] = snapshot(root)
    write_sidecar(root, state)  # the commit point
    return reopen(root)


def create_committed(root: Path, create, state: dict, reopen):
    """Create a dataset at `root` atomically: built in a staging directory, renamed into place when committed.

    `create(path)` makes the empty LeRobotDataset at `path` (which must not exist, LeRobot's rule).
    """
    staging = staging_dir(root)
    if staging.exists():
        shutil.rmtree(staging)  # a create that was killed before its rename
    dataset = create(staging)
    dataset.finalize()
    state["committed"] = snapshot(staging)
    write_sidecar(staging, state)
    if root.exists():
        root.rmdir()  # empty (checked by the caller); os.replace cannot replace a directory
    os.replace(staging, root)
    return reopen(root)


def staging_dir(root: Path) -> Path:
    return root.parent / f".{root.name}.creating"


def recover(root: Path, state: dict) -> list[str]:
    """Roll `root` back to its last commit; returns the paths removed (an interrupted episode's files).

    Raises UnrecoverableDataset naming the file when a committed file is missing or has another size.
    """
    stale = staging_dir(root)
    if stale.exists():
        shutil.rmtree(stale)
    record = state.get("committed")
    if record is None:
        return []  # written before commits existed: resumed as it is
    for rel, size in record["files"].items():
        path = root / rel
        have = path.stat().st_size if path.exists() else None
        if have != size:
            found = "is missing" if have is None else f"has {have} bytes, committed with {size}"
            seeds = [e["seed"] for e in state.get("episodes", [])]
            raise UnrecoverableDataset(
                f"cannot resume {root}: {rel} {found}, so the committed episodes (seeds {seeds}) cannot be "
                f"trusted; move {root} away and run the same command again to regenerate them"
            )
    removed = [rel for rel in _dataset_files(root) if rel not in record["files"] and rel not in record["copies"]]
    for rel in removed:
        (root / rel).unlink()
    for rel in REWRITTEN_IN_PLACE:
        if rel in record["copies"]:
            tmp = root / (rel + ".restore")
            tmp.write_bytes(base64.b64decode(record["copies"][rel]))
            tmp.replace(root / rel)
        elif (root / rel).exists():
            (root / rel).unlink()
            removed.append(rel)
    for scratch in [root / d for d in SCRATCH_DIRS] + list(root.glob("tmp*")):
        if scratch.is_dir():  # LeRobot's frames awaiting encoding, tempfile.mkdtemp() videos
            shutil.rmtree(scratch)
            removed.append(scratch.relative_to(root).as_posix() + "/")
    for top in DATASET_DIRS:  # empty chunk directories left by removed files
        for d in sorted((root / top).rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    return removed
