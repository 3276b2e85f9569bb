"""Small synthetic LeRobotDataset v3 files, written with LeRobot's own writer.

For tests and smoke runs that need real dataset files without a simulator. Each camera sees a coloured square moving over a noisy background; its gaze box is the square's
bounding box, so a gaze crop and a whole image differ visibly. Actions and states follow a smooth
trajectory, so the action loss has something to fit.
"""

from pathlib import Path

import numpy as np

from lerobot.datasets import LeRobotDataset

ALOHA_JOINTS = [
    "waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper",
]  # fmt: skip
ALOHA_NAMES = [f"{side}_{joint}" for side in ("left", "right") for joint in ALOHA_JOINTS]


def dataset_features(cameras: list[str], height: int, width: int, gaze_boxes: bool, video: bool) -> dict:
    features = {
        f"observation.images.{cam}": {
            "dtype": "video" if video else "image",
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        }
        for cam in cameras
    }
    features["observation.state"] = {"dtype": "float32", "shape": (14,), "names": ALOHA_NAMES}
    features["action"] = {"dtype": "float32", "shape": (14,), "names": ALOHA_NAMES}
    if gaze_boxes:
        for cam in cameras:
            features[f"observation.gaze_box.{cam}"] = {
                "dtype": "float32", "shape": (4,), "names": ["x0", "y0", "x1", "y1"],
            }  # fmt: skip
    return features


def write_synthetic_dataset(
    root: Path,
    repo_id: str = "local/synthetic_3cam",
    cameras: tuple[str, ...] = ("top", "left_wrist", "right_wrist"),
    height: int = 96,
    width: int = 128,
    num_episodes: int = 2,
    episode_length: int = 20,
    gaze_boxes: bool = True,
    video: bool = False,
    task: str = "Insert the peg into the socket.",
    seed: int = 0,
) -> LeRobotDataset:
    rng = np.random.default_rng(seed)
    dataset = LeRobotDataset.create(
        repo_id=repo_id,
        fps=50,
        features=dataset_features(list(cameras), height, width, gaze_boxes, video),
        root=root,
        robot_type="aloha",
        use_videos=video,
    )
    side = max(8, min(height, width) // 4)
    for episode in range(num_episodes):
        phase = rng.uniform(0, 2 * np.pi, size=14)
        for step in range(episode_length):
            t = step / episode_length
            joints = np.sin(2 * np.pi * t + phase).astype(np.float32)
            frame = {"observation.state": joints, "action": np.roll(joints, 1), "task": task}
            for index, cam in enumerate(cameras):
                image = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
                x0 = int((width - side) * (0.5 + 0.4 * np.sin(2 * np.pi * t + index + episode)))
                y0 = int((height - side) * (0.5 + 0.4 * np.cos(2 * np.pi * t + index)))
                image[y0 : y0 + side, x0 : x0 + side] = (200, 40 + 60 * index, 30)
                frame[f"observation.images.{cam}"] = image
                if gaze_boxes:
                    frame[f"observation.gaze_box.{cam}"] = np.array(
                        [x0 / width, y0 / height, (x0 + side) / width, (y0 + side) / height], dtype=np.float32
                    )
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    return dataset
