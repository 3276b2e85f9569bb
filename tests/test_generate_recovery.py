"""Rollback to the last commit (sim.recovery) on a real LeRobotDataset, and the one-line refusals."""

import json
import re

import numpy as np
import pytest
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from lerobot_policy_reconvla.sim.recovery import (
    SIDECAR,
    GenerationLedger,
    UnrecoverableDataset,
    commit_episode,
    create_committed,
    recover,
)

FEATURES = {"observation.state": {"dtype": "float32", "shape": (2,), "names": ["a", "b"]}}


def committed_dataset(root, episodes: int):
    def create(path):
        return LeRobotDataset.create("local/rec", fps=10, features=FEATURES, root=path, use_videos=False)

    ledger = GenerationLedger(task="t")
    dataset = create_committed(root, create, ledger, image_writer_threads=0)
    for seed in range(episodes):
        for step in range(3):
            dataset.add_frame({"observation.state": np.array([seed, step], np.float32), "task": "t"})
        dataset.save_episode()
        ledger.record_episode(episode_index=seed, seed=seed, success=True, task="t")
        dataset = commit_episode(dataset, ledger, image_writer_threads=0)
    dataset.finalize()
    return ledger


def test_recover_removes_uncommitted_files_and_restores_rewritten_metadata(tmp_path):
    root = tmp_path / "ds"
    committed_dataset(root, episodes=2)
    info = (root / "meta/info.json").read_bytes()
    # What a kill in the middle of a third episode's save leaves behind:
    (root / "data/chunk-000/file-002.parquet").write_bytes(b"PAR1 no footer")
    (root / "meta/episodes/chunk-000").joinpath("file-002.parquet").write_bytes(b"PAR1")
    (root / "images/observation.images.top/episode-000002").mkdir(parents=True)
    (root / "images/observation.images.top/episode-000002/frame-000000.png").write_bytes(b"png")
    (root / "tmpab12cd").mkdir()
    (root / "meta/info.json").write_text('{"total_episodes": 3')  # rewritten in place, cut short

    removed = recover(root, GenerationLedger.read(root))
    assert sorted(removed) == [  # what the interrupted episode wrote, the rewritten info.json restored
        "data/chunk-000/file-002.parquet",
        "images/observation.images.top/episode-000002/frame-000000.png",
        "meta/episodes/chunk-000/file-002.parquet",
        "meta/info.json",
    ]
    assert (root / "meta/info.json").read_bytes() == info and not (root / "images").exists()
    assert not (root / "tmpab12cd").exists()  # LeRobot's empty temporary video directory, removed unlisted
    dataset = LeRobotDataset("local/rec", root=root)
    assert dataset.meta.total_episodes == 2 and len(dataset) == 6
    assert dataset[5]["observation.state"].tolist() == [1.0, 2.0]
    assert (
        recover(root, GenerationLedger.read(root)) == []
    )  # idempotent: a kill during the rollback is rolled back again


def test_a_committed_file_changed_by_hand_is_refused_in_one_line(tmp_path):
    root = tmp_path / "ds"
    committed_dataset(root, episodes=1)
    data = root / "data/chunk-000/file-000.parquet"
    size = data.stat().st_size
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(
        UnrecoverableDataset, match=rf"data/chunk-000/file-000.parquet has 10 bytes, committed with {size}"
    ):
        recover(root, GenerationLedger.read(root))


def test_incomplete_metadata_from_an_older_run_is_refused_in_one_line_without_the_hub(tmp_path, capsys):
    from lerobot_policy_reconvla.sim.generate import main

    root = tmp_path / "old"
    (root / "meta").mkdir(parents=True)
    # What the generator wrote before commits existed, killed after one episode: info.json counts an
    # episode whose buffered metadata never reached meta/episodes/.
    LeRobotDataset.create(
        "local/old", fps=50, features=FEATURES, root=tmp_path / "new", use_videos=False
    ).finalize()
    info = json.loads((tmp_path / "new/meta/info.json").read_text())
    info.update(total_episodes=1, total_frames=400, total_tasks=1)
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / SIDECAR).write_text(
        json.dumps({"task": "transfer_cube", "next_seed": 1, "episodes": [{"seed": 0}]})
    )
    assert main(["--task=transfer_cube", "--num_episodes=2", f"--root={root}", "--repo_id=local/old"]) == 2
    err = capsys.readouterr().err
    assert re.search(
        r"cannot resume .*old: 1 episode\(s\) in meta/info.json but "
        r"\['meta/tasks.parquet', 'meta/episodes/'\] missing",
        err,
    ), err
    assert err.count("\n") == 1  # one line, no traceback
