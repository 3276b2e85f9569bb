"""Refuses, before the first optimizer step, a training dataset whose video files cannot be decoded.

LeRobot decodes a video frame only when a sample needs it, inside the data loader. A video file cut short
(a copy or download that stopped, a disk that filled while encoding) or a file that is not a video at all
then fails after some training steps, with the decoder's message and neither the file's episode nor its
dataset named. So the policy, given the dataset's metadata by `lerobot-train` (`make_policy` passes
`dataset_meta`), decodes the last frame of every video file the dataset's episodes point to, through
LeRobot's own decoder, and names the file, its camera and its episodes when that fails.

What it catches: a missing file, a file that is not a video, a file cut short (its last frame, or with the
index at the end, its header, is gone). What it does not: damage in the middle of a file whose header and
last frame are intact (that still fails in the loader, when a sample reaches it). Cost: one seek and one
decoded frame per file (LeRobot's v3 datasets concatenate many episodes per file).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

logger = logging.getLogger(__name__)

# PyAV comes with LeRobot itself, so the check never depends on the optional torchcodec's FFmpeg libraries.
CHECK_BACKEND = "pyav"


class BrokenVideoError(ValueError):
    """A dataset video file that cannot be decoded (one line: the file, its camera, its episodes, the fix)."""


def video_files(dataset_meta) -> dict[tuple[str, Path], tuple[list[int], float]]:
    """{(camera key, absolute path): (episode indices in the file, timestamp of its last frame)} for every
    video file the dataset's episodes use."""
    episodes: dict[tuple[str, Path], list[int]] = defaultdict(list)
    last_frame: dict[tuple[str, Path], float] = {}
    frame_period = 1.0 / dataset_meta.fps
    for row in dataset_meta.episodes:
        index = int(row["episode_index"])
        for key in dataset_meta.video_keys:
            file = (key, Path(dataset_meta.root) / dataset_meta.get_video_file_path(index, key))
            episodes[file].append(index)
            end = float(row[f"videos/{key}/to_timestamp"]) - frame_period
            last_frame[file] = max(last_frame.get(file, end), end)
    return {file: (indices, last_frame[file]) for file, indices in episodes.items()}


def check_video_files(dataset_meta) -> None:
    """Decodes the last frame of every video file of `dataset_meta` (a LeRobotDatasetMetadata); raises
    BrokenVideoError naming the first file that fails. No-op without metadata, videos or local episodes."""
    if dataset_meta is None or not dataset_meta.video_keys or dataset_meta.episodes is None:
        return
    if not (Path(dataset_meta.root) / "videos").is_dir():
        return  # videos not on this machine (a streamed dataset): the loader fetches them itself
    from lerobot.datasets.video_utils import decode_video_frames

    for (key, path), (episodes, last_timestamp) in video_files(dataset_meta).items():
        shown = episodes if len(episodes) <= 5 else f"{episodes[:3]} ... {episodes[-1]} ({len(episodes)})"
        if not path.is_file():
            raise BrokenVideoError(
                f"{path} is missing: the video of {key} for episode(s) {shown}; the dataset at "
                f"{dataset_meta.root} is incomplete (download or copy it again)"
            )
        try:
            # Half a frame's tolerance: the nearest decodable frame must be the last frame itself.
            decode_video_frames(path, [max(last_timestamp, 0.0)], 0.5 / dataset_meta.fps, CHECK_BACKEND)
        except Exception as error:  # the decoder's own types vary (av.error.*, RuntimeError, AssertionError)
            first_line = (str(error).splitlines() or [type(error).__name__])[0][:200]
            raise BrokenVideoError(
                f"{path} ({path.stat().st_size} bytes) cannot be decoded to its last frame at "
                f"{last_timestamp:.3f} s: the video of {key} for episode(s) {shown} is cut short or not a "
                f"video ({type(error).__name__}: {first_line}). Re-encode or copy that file again, or leave "
                "those episodes out with --dataset.episodes; nothing was trained."
            ) from None
    logger.info("decoded the last frame of every video file of %s", dataset_meta.root)
