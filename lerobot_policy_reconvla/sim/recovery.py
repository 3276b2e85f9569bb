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

A new dataset is created in ``<root>.partial`` (``common.durable``) and renamed into place with its first
commit, so the root either does not exist or is resumable. Cost: one data file, one episodes file and one
MP4 per camera per episode (LeRobot's loaders take any number), and a metadata reload per episode that
grows with the
number of episodes (0.8 s after 1 episode, 1.6 s after 30 on 2 busy CPU cores:
benchmarks/bench_generator_commit.py), against minutes of rendering per 400-step episode.
This guards against the process being killed, not against power loss (nothing is fsync'ed).
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..common.durable import ResumeRefused, read_json, staging_path, write_json_atomically

SIDECAR = "meta/scripted_generation.json"
# Where LeRobot's writer puts files; anything of ours is under meta/ too. Other entries of the root are
# left alone, except LeRobot's own scratch space (frames awaiting encoding, tempfile.mkdtemp videos).
DATASET_DIRS = ("data", "videos", "meta")
SCRATCH_DIRS = ("images",)
REWRITTEN_IN_PLACE = ("meta/info.json", "meta/stats.json", "meta/tasks.parquet")


class UnrecoverableDataset(ResumeRefused):
    """A committed file was changed or removed behind the generator's back (one-line message)."""


@dataclass
class GenerationLedger:
    """The sidecar: how the dataset was generated, which seeds are done, and the last commit.

    A sidecar written before a setting existed reads as that setting's neutral value (the field's default).
    """

    task: str
    cameras: list[str] = field(default_factory=list)
    shadows: bool = True
    gaze_min_size: float = 0.0
    scene_seed: int | None = None
    action_noise: float = 0.0
    next_seed: int = 0
    episodes: list[dict] = field(
        default_factory=list
    )  # {episode_index, seed, success, task} per saved episode
    lost_seeds: list[int] = field(default_factory=list)  # seeds whose worker died
    committed: dict | None = None  # snapshot() at the last commit

    # What a resumed run must repeat (the cameras and image size are checked against the dataset's features).
    RESUME_SETTINGS = ("task", "shadows", "gaze_min_size", "scene_seed", "action_noise")

    @classmethod
    def read(cls, root: Path) -> GenerationLedger | None:
        record = read_json(Path(root) / SIDECAR)
        if record is None:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in record.items() if name in known})

    def settings(self) -> dict:
        return {name: getattr(self, name) for name in self.RESUME_SETTINGS}

    def record_episode(self, episode_index: int, seed: int, success: bool, task: str) -> None:
        self.episodes.append({"episode_index": episode_index, "seed": seed, "success": success, "task": task})
        self.next_seed = seed + 1

    def skip_seed(self, seed: int, lost: bool) -> None:
        if lost:
            self.lost_seeds.append(seed)
        self.next_seed = seed + 1


def write_sidecar(root: Path, ledger: GenerationLedger) -> None:
    """The commit point: a kill leaves the old sidecar or the new one, never half of one."""
    write_json_atomically(Path(root) / SIDECAR, asdict(ledger))


def _dataset_files(root: Path) -> list[str]:
    files = []
    for top in DATASET_DIRS:
        files += [p.relative_to(root).as_posix() for p in (root / top).rglob("*") if p.is_file()]
    return sorted(f for f in files if f not in (SIDECAR, SIDECAR.replace(".json", ".tmp")))


def snapshot(root: Path) -> dict:
    """The commit record of `root` as it is now: every dataset file's size, the rewritten files' bytes."""
    files = {f: (root / f).stat().st_size for f in _dataset_files(root) if f not in REWRITTEN_IN_PLACE}
    copies = {
        f: base64.b64encode((root / f).read_bytes()).decode()
        for f in REWRITTEN_IN_PLACE
        if (root / f).exists()
    }
    return {"files": files, "copies": copies}


def commit_episode(dataset, ledger: GenerationLedger, image_writer_threads: int):
    """Make the episode just saved durable; returns the dataset reopened for the next one."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(dataset.root)
    dataset.finalize()  # footers and buffered episode metadata reach disk
    remove_empty_scratch(root)
    ledger.committed = snapshot(root)
    write_sidecar(root, ledger)  # the commit point
    return LeRobotDataset.resume(dataset.repo_id, root=root, image_writer_threads=image_writer_threads)


def create_committed(root: Path, create, ledger: GenerationLedger, image_writer_threads: int):
    """Create a dataset at `root` atomically: built in ``<root>.partial``, renamed into place when committed.

    `create(path)` makes the empty LeRobotDataset at `path` (which must not exist, LeRobot's rule).
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from ..common.durable import publish

    staging = staging_path(root)
    if staging.exists():
        shutil.rmtree(staging)  # a create that was killed before its rename
    dataset = create(staging)
    dataset.finalize()
    ledger.committed = snapshot(staging)
    write_sidecar(staging, ledger)
    publish(staging, root)  # `root` is absent or empty (checked by the caller)
    return LeRobotDataset.resume(dataset.repo_id, root=root, image_writer_threads=image_writer_threads)


def recover(root: Path, ledger: GenerationLedger) -> list[str]:
    """Roll `root` back to its last commit; returns the paths removed or restored (an interrupted episode's
    files); empty when `root` is as committed, which then is not written to at all.

    Raises UnrecoverableDataset naming the file when a committed file is missing or has another size.
    """
    stale = staging_path(root)
    if stale.exists():
        shutil.rmtree(stale)
    record = ledger.committed
    if record is None:
        return []  # written before commits existed: resumed as it is
    for rel, size in record["files"].items():
        path = root / rel
        have = path.stat().st_size if path.exists() else None
        if have != size:
            found = "is missing" if have is None else f"has {have} bytes, committed with {size}"
            seeds = [e["seed"] for e in ledger.episodes]
            raise UnrecoverableDataset(
                f"cannot resume {root}: {rel} {found}, so the committed episodes (seeds {seeds}) cannot be "
                f"trusted; move {root} away and run the same command again to regenerate them"
            )
    removed = [
        rel for rel in _dataset_files(root) if rel not in record["files"] and rel not in record["copies"]
    ]
    for rel in removed:
        (root / rel).unlink()
    for rel in REWRITTEN_IN_PLACE:
        path = root / rel
        if rel in record["copies"]:
            committed = base64.b64decode(record["copies"][rel])
            if path.exists() and path.read_bytes() == committed:
                continue  # as committed: left alone, not even rewritten
            tmp = root / (rel + ".restore")
            tmp.write_bytes(committed)
            tmp.replace(path)
            removed.append(rel)  # the uncommitted version
        elif path.exists():
            path.unlink()
            removed.append(rel)
    for scratch in scratch_dirs(root):  # LeRobot's frames awaiting encoding, tempfile.mkdtemp() videos
        removed += [p.relative_to(root).as_posix() for p in scratch.rglob("*") if p.is_file()]
        shutil.rmtree(scratch)
    _remove_empty_dirs(root)  # chunk directories left by removed files
    return removed


def scratch_dirs(root: Path) -> list[Path]:
    """LeRobot's scratch space under `root`: frames awaiting encoding, tempfile.mkdtemp() videos."""
    return [p for p in [root / d for d in SCRATCH_DIRS] + list(root.glob("tmp*")) if p.is_dir()]


def remove_empty_scratch(root: Path) -> None:
    """Removes scratch directories that hold no file: what LeRobot's writer leaves after an episode is
    encoded (one empty directory per camera). A clean exit leaves nothing behind in the dataset."""
    for scratch in scratch_dirs(root):
        if not any(p.is_file() for p in scratch.rglob("*")):
            shutil.rmtree(scratch)


def _remove_empty_dirs(root: Path) -> None:
    for top in DATASET_DIRS:
        for d in sorted((root / top).rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
