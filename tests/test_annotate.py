"""reconvla-annotate: gaze boxes from a zero-shot detector, written as a new LeRobotDataset.

Offline: the transformers detectors are tiny random-init Grounding DINO / OWLv2 models saved to a local
directory (the real load -> process -> post-process -> write path); the time rules, the stage switch and
the evaluation use a deterministic detector that finds the synthetic datasets' coloured squares exactly.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lerobot.datasets import LeRobotDataset

from lerobot_policy_reconvla.annotate import (
    AnnotateConfig,
    AnnotateError,
    Detection,
    ZeroShotDetector,
    annotate,
    detection_frames,
    evaluate_boxes,
    fill_boxes,
    gripper_stages,
    main,
)
from lerobot_policy_reconvla.common.durable import ResumeRefused
from lerobot_policy_reconvla.gaze_box import ABSENT_BOX as ABSENT
from tests.fixtures.cli import run_cli, run_train
from tests.fixtures.tiny_policy import TINY_CLI

TASK = "Insert the peg into the socket."
CAMERAS = ("top", "left_wrist", "right_wrist")
EPISODE_LENGTH = 10
GRIPPERS = (6, 13)  # left_gripper, right_gripper in the synthetic state


def make_dataset(root: Path, repo_id: str, gaze_boxes: bool, video: bool) -> Path:
    """The package's synthetic writer: a coloured square per camera whose box is the true gaze box."""
    from tests.fixtures.synthetic_dataset import write_synthetic_dataset

    write_synthetic_dataset(
        root,
        repo_id=repo_id,
        gaze_boxes=gaze_boxes,
        video=video,
        height=48,
        width=64,
        episode_length=EPISODE_LENGTH,
        task=TASK,
    )
    return root


@pytest.fixture(scope="module")
def video_source(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("src") / "video", "local/annotate_video", False, True)


@pytest.fixture(scope="module")
def boxed_source(tmp_path_factory) -> Path:
    """PNG frames (lossless: the colour detector finds the true boxes exactly) with true gaze boxes."""
    return make_dataset(tmp_path_factory.mktemp("src") / "boxed", "local/annotate_boxed", True, False)


class SquareDetector:
    """Deterministic detector with the annotator's interface: the bright square's exact bounding box.

    Finds it for the phrase "square", nothing for any other phrase; `shift` moves every box right by a
    fraction of the width. Records the phrase of every image it is asked about.
    """

    name = "square-detector"

    def __init__(self, shift: float = 0.0, interrupt_after: int | None = None):
        self.shift, self.interrupt_after = shift, interrupt_after
        self.phrases: list[str] = []
        self.calls = 0

    def detect(self, images, phrases):
        if self.interrupt_after is not None and self.calls >= self.interrupt_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.phrases.extend(phrases)
        found = []
        for image, phrase in zip(images, phrases, strict=True):
            ys, xs = np.nonzero(image[..., 0] > 150)  # the square is R=200 on a background below 60
            if phrase != "square" or len(xs) == 0:
                found.append(None)
                continue
            h, w = image.shape[:2]
            box = np.array(
                [xs.min() / w + self.shift, ys.min() / h, (xs.max() + 1) / w + self.shift, (ys.max() + 1) / h]
            )
            found.append(Detection(box.astype(np.float32), 0.9))
        return found


def config(source: Path, repo_id: str, **overrides) -> AnnotateConfig:
    kwargs = dict(repo_id=repo_id, root=source, object="square", stride=1, device="cpu")
    return AnnotateConfig(**(kwargs | overrides))


def read_data(root: Path) -> pd.DataFrame:
    return pd.concat(
        [pd.read_parquet(p) for p in sorted((root / "data").glob("*/*.parquet"))], ignore_index=True
    )


# ---------------------------------------------------------------------------------------------------
# Pure rules
# ---------------------------------------------------------------------------------------------------


def hit(x: float, score: float = 0.8) -> Detection:
    return Detection(np.array([x, 0.1, x + 0.2, 0.3], dtype=np.float32), score)


def test_docstring_examples():
    import doctest

    from lerobot_policy_reconvla.annotate import boxes as module

    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted >= 8


def test_fill_boxes_interpolates_between_hits_holds_through_short_misses_then_marks_absent():
    segments = np.zeros(12, dtype=int)
    detected = {0: hit(0.0), 4: hit(0.4), 8: None, 11: None}
    boxes, scores = fill_boxes(12, detected, segments, max_gap=5)
    np.testing.assert_allclose(boxes[:5, 0], [0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-6)  # interpolated
    np.testing.assert_allclose(boxes[5:10, 0], 0.4)  # frames 5..9 are <= 5 frames after the last hit
    np.testing.assert_array_equal(boxes[10:], [ABSENT, ABSENT])  # beyond max_gap
    assert np.isnan(scores[10:]).all() and scores[2] == pytest.approx(0.8)

    # A box never crosses into another segment (another object is gazed there).
    boxes, _ = fill_boxes(
        6, {0: hit(0.0), 2: hit(0.2), 3: None, 5: None}, np.array([0, 0, 0, 1, 1, 1]), max_gap=5
    )
    np.testing.assert_array_equal(boxes[3:], [ABSENT] * 3)
    # Nothing before the first hit.
    boxes, _ = fill_boxes(4, {0: None, 3: hit(0.5)}, np.zeros(4), max_gap=5)
    np.testing.assert_array_equal(boxes[:3], [ABSENT] * 3)


def test_detection_frames_cover_every_segment_start_stride_and_end():
    segments = np.array([0] * 7 + [1] * 5)
    assert detection_frames(segments, stride=3).tolist() == [0, 3, 6, 7, 10, 11]
    assert detection_frames(segments, stride=1).tolist() == list(range(12))


def test_gripper_stage_switches_once_when_a_gripper_closes_after_being_open():
    left = [0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9]
    right = [0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.1]  # starts closed: that is not a grasp
    stages = gripper_stages(np.array([left, right]).T, threshold=0.5)
    assert stages.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert gripper_stages(np.array([[0.9], [0.8]]), threshold=0.5).tolist() == [0, 0]
    assert gripper_stages(np.array([[0.1], [0.9]]), threshold=0.5, closed_below=False).tolist() == [0, 1]


def test_evaluation_counts_misses_as_zero_and_false_positives_apart():
    truth = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5], ABSENT])
    predicted = np.array([[0.0, 0.0, 0.5, 0.5], ABSENT, [0.1, 0.1, 0.2, 0.2]])
    result = evaluate_boxes(predicted, truth)
    assert result["mean_iou"] == pytest.approx(0.5) and result["hit_rate"] == pytest.approx(0.5)
    assert result["false_positive_rate"] == 1.0 and result["frames_with_true_box"] == 2


# ---------------------------------------------------------------------------------------------------
# The run, with the deterministic detector
# ---------------------------------------------------------------------------------------------------


def test_evaluation_is_exact_against_own_boxes_and_lower_against_shifted_ones(boxed_source):
    exact = annotate(
        config(boxed_source, "local/annotate_boxed", evaluate_against="observation.gaze_box"),
        detector=SquareDetector(),
    )
    shifted = annotate(
        config(boxed_source, "local/annotate_boxed", evaluate_against="observation.gaze_box"),
        detector=SquareDetector(shift=0.1),
    )
    for cam in CAMERAS:
        assert exact["evaluation"][cam]["mean_iou"] == pytest.approx(1.0, abs=1e-6)
        assert exact["evaluation"][cam]["hit_rate"] == 1.0
        assert 0.0 < shifted["evaluation"][cam]["mean_iou"] < 0.9
        assert exact["cameras"][cam] == {"frames_with_box": 1.0, "mean_score": pytest.approx(0.9)}


def test_stride_runs_the_detector_on_planned_frames_and_interpolates(boxed_source, tmp_path):
    detector = SquareDetector()
    report = annotate(
        config(
            boxed_source,
            "local/annotate_boxed",
            stride=4,
            evaluate_against="observation.gaze_box",
            preview=tmp_path / "preview.png",
        ),
        detector=detector,
    )
    # Frames 0, 4, 8 and the last (9) of each of the 2 episodes, once per camera.
    assert len(detector.phrases) == 2 * 4 * len(CAMERAS)
    for cam in CAMERAS:
        # Exact at the 8 detection frames of 20; the square moves along a curve, so interpolated boxes
        # in between are near it, not on it.
        assert report["evaluation"][cam]["hit_rate"] >= 8 / 20
        assert 8 / 20 < report["evaluation"][cam]["mean_iou"] < 1.0
        assert report["cameras"][cam]["frames_with_box"] == 1.0
    from PIL import Image

    # One row per camera, 6 tiles of 256 px; detected boxes drawn in lime, true boxes in white.
    preview = np.asarray(Image.open(tmp_path / "preview.png").convert("RGB"))
    assert preview.shape[1] == 6 * 256 and preview.shape[0] == len(CAMERAS) * (192 + 16)
    tiles = preview[(np.arange(preview.shape[0]) % (192 + 16)) >= 16]  # without the white label strips
    assert (tiles == [0, 255, 0]).all(axis=-1).sum() > 100 and (tiles == 255).all(axis=-1).sum() > 100


def test_two_stage_objects_switch_on_the_gripper_and_absent_marker(video_source, tmp_path):
    objects = tmp_path / "objects.json"
    objects.write_text(json.dumps({TASK: ["square", "nothing"]}))
    output = tmp_path / "out"
    detector = SquareDetector()
    annotate(
        config(
            video_source,
            "local/annotate_video",
            object=None,
            objects=objects,
            gripper_threshold=0.0,
            max_gap=0,
            new_root=output,
        ),
        detector=detector,
    )

    # The expected switch, straight from the state: first frame a gripper is below 0 after being >= 0.
    state = read_data(video_source)
    expected = []
    for _, episode in state.groupby("episode_index"):
        grippers = np.stack(episode["observation.state"].to_numpy())[:, GRIPPERS]
        switch = next(
            (
                t
                for t in range(1, len(grippers))
                for g in range(2)
                if grippers[t, g] < 0 and (grippers[:t, g] >= 0).any()
            ),
            len(grippers),
        )
        expected.append(switch)
    assert all(0 < s < EPISODE_LENGTH for s in expected), "the fixture must switch mid-episode"

    written = read_data(output)
    for episode, switch in enumerate(expected):
        rows = written[written["episode_index"] == episode]
        for cam in CAMERAS:
            boxes = np.stack(rows[f"observation.gaze_box.{cam}"].to_numpy())
            assert (boxes[:switch] >= 0).all(), "first object: boxes before the gripper closes"
            np.testing.assert_array_equal(boxes[switch:], np.tile(ABSENT, (EPISODE_LENGTH - switch, 1)))
    # Stride 1: every frame was asked for once per camera, with the first phrase before its switch.
    asked = {phrase: detector.phrases.count(phrase) for phrase in set(detector.phrases)}
    assert asked == {
        "square": sum(expected) * len(CAMERAS),
        "nothing": sum(EPISODE_LENGTH - s for s in expected) * len(CAMERAS),
    }


def test_written_dataset_keeps_the_source_and_adds_boxes(video_source, tmp_path):
    output = tmp_path / "annotated"
    annotate(
        config(video_source, "local/annotate_video", new_root=output, stride=3, pad=0.1),
        detector=SquareDetector(),
    )
    dataset = LeRobotDataset("local/annotate_video_gaze", root=output)
    source = LeRobotDataset("local/annotate_video", root=video_source)
    assert dataset.num_frames == source.num_frames and dataset.num_episodes == source.num_episodes
    for cam in CAMERAS:
        feature = dataset.meta.features[f"observation.gaze_box.{cam}"]
        assert feature["dtype"] == "float32" and tuple(feature["shape"]) == (4,)
        assert f"observation.gaze_box.{cam}" in dataset.meta.stats
    item = dataset[3]
    box = item["observation.gaze_box.top"]
    assert box.shape == (4,) and (box >= 0).all() and (box <= 1).all() and box[0] < box[2]
    torch.testing.assert_close(item["observation.images.top"], source[3]["observation.images.top"])

    # Every source column and every video file is unchanged.
    written, original = read_data(output), read_data(video_source)
    pd.testing.assert_frame_equal(written[original.columns], original)
    videos = sorted(p.relative_to(video_source) for p in (video_source / "videos").rglob("*.mp4"))
    assert videos and all((output / v).read_bytes() == (video_source / v).read_bytes() for v in videos)
    meta = json.loads((output / "meta" / "gaze_annotation.json").read_text())
    assert meta["model"] == "square-detector" and meta["stride"] == 3 and meta["pad"] == 0.1
    assert meta["prompts"] == {TASK: ["square"]} and set(meta["cameras"]) == set(CAMERAS)
    assert not output.with_name("annotated.partial").exists()


def test_interrupted_run_leaves_no_dataset_and_a_rerun_resumes(video_source, tmp_path, caplog):
    output = tmp_path / "out"
    staging = tmp_path / "out.partial"
    # batch_size 16 > episode length: one detector call per camera per episode; stop in episode 2.
    with pytest.raises(KeyboardInterrupt):
        annotate(
            config(video_source, "local/annotate_video", new_root=output, batch_size=16),
            detector=SquareDetector(interrupt_after=len(CAMERAS) + 1),
        )
    assert not output.exists()
    assert [p.name for p in (staging / "detections").glob("*.npz")] == ["episode_000000.npz"]

    with pytest.raises(ResumeRefused, match=r"other settings \(differs in \['stride'\]\).*delete"):
        annotate(
            config(video_source, "local/annotate_video", new_root=output, stride=2),
            detector=SquareDetector(),
        )

    # What a kill while episode 2's detections were written leaves: its temporary file, cut short.
    (staging / "detections" / "episode_000001.tmp.npz").write_bytes(b"PK\x03\x04 cut short")
    resumed = SquareDetector()
    with caplog.at_level("INFO", logger="lerobot_policy_reconvla.annotate.run"):
        annotate(
            config(video_source, "local/annotate_video", new_root=output, batch_size=16), detector=resumed
        )
    assert "1 episode(s) already detected" in caplog.text  # the cut-short file is not counted, but removed
    assert resumed.calls == len(CAMERAS)  # only episode 2 was detected again
    assert not staging.exists()
    clean = tmp_path / "clean"
    annotate(config(video_source, "local/annotate_video", new_root=clean), detector=SquareDetector())
    cam_key = "observation.gaze_box.left_wrist"
    np.testing.assert_array_equal(np.stack(read_data(output)[cam_key]), np.stack(read_data(clean)[cam_key]))


# ---------------------------------------------------------------------------------------------------
# Bad input: a clear error before any work
# ---------------------------------------------------------------------------------------------------


def test_bad_inputs_are_refused_before_work(video_source, boxed_source, tmp_path):
    def run(**kw):
        return annotate(config(video_source, "local/annotate_video", **kw), detector=SquareDetector())

    with pytest.raises(AnnotateError, match=r"unknown camera\(s\) \['cam_high'\]; the dataset has \['top'"):
        run(cameras=["cam_high"], new_root=tmp_path / "a")

    objects = tmp_path / "objects.json"
    objects.write_text(json.dumps({"Pick up the cube.": "cube"}))
    with pytest.raises(
        AnnotateError, match=r"no phrase for task\(s\) \['Insert the peg.*\n  \"Insert the peg"
    ):
        run(object=None, objects=objects, new_root=tmp_path / "a")

    objects.write_text(json.dumps({TASK: ["a", "b", "c"]}))
    with pytest.raises(AnnotateError, match="expected a phrase or a list of one or two phrases"):
        run(object=None, objects=objects, new_root=tmp_path / "a")

    objects.write_text(json.dumps({TASK: ["peg", "socket"]}))
    with pytest.raises(AnnotateError, match=r"needs the gripper signal.*no joint\(s\) \['gripper'\]"):
        run(object=None, objects=objects, gripper_names=["gripper"], new_root=tmp_path / "a")

    (tmp_path / "exists").mkdir()
    with pytest.raises(AnnotateError, match="--new_root .*exists.* already exists"):
        run(new_root=tmp_path / "exists")

    with pytest.raises(AnnotateError, match=r"already has \['observation.gaze_box.top'"):
        annotate(
            config(boxed_source, "local/annotate_boxed", new_root=tmp_path / "a"),
            detector=SquareDetector(),
        )
    with pytest.raises(AnnotateError, match=r"--evaluate_against observation.gaze_box: the dataset has no"):
        run(evaluate_against="observation.gaze_box")

    with pytest.raises(
        AnnotateError,
        match=r"(?s)--detector_model 'no-such/detector' cannot be loaded"
        r".*pass --detector_model a local directory",
    ):
        annotate(
            config(
                video_source,
                "local/annotate_video",
                new_root=tmp_path / "a",
                detector_model="no-such/detector",
            )
        )
    with pytest.raises(AnnotateError, match=r"dataset 'local/missing' cannot be loaded from root .*missing"):
        annotate(
            config(tmp_path / "missing", "local/missing", new_root=tmp_path / "a"),
            detector=SquareDetector(),
        )
    with pytest.raises(AnnotateError, match="exactly one of --object PHRASE or --objects FILE"):
        config(video_source, "local/annotate_video", object=None)
    with pytest.raises(AnnotateError, match="--stride 0: expected an integer >= 1"):
        config(video_source, "local/annotate_video", stride=0, new_root=tmp_path / "a")
    assert not (tmp_path / "a").exists() and not (tmp_path / "a.partial").exists()

    # The CLI turns them into one line on stderr and exit status 2.
    assert (
        main(
            [
                "--repo_id=local/annotate_video",
                f"--root={video_source}",
                "--object=square",
                "--cameras=[cam_high]",
                f"--new_root={tmp_path / 'a'}",
            ]
        )
        == 2
    )


def test_cli_takes_lists_and_switches_in_lerobots_spellings(video_source, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--new_root" in capsys.readouterr().out
    monkeypatch.setattr(ZeroShotDetector, "load", staticmethod(lambda *args, **kwargs: SquareDetector()))
    output = tmp_path / "out"
    assert (
        main(
            [
                "--repo_id=local/annotate_video",
                f"--root={video_source}",
                "--object=square",
                "--cameras=[top,left_wrist]",
                f"--new_root={output}",
                "--max_gap=3",
                "--batch_size=16",
                "--gripper_closed_above=true",
            ]
        )
        == 0
    )
    meta = json.loads((output / "meta" / "gaze_annotation.json").read_text())
    assert set(meta["cameras"]) == {"top", "left_wrist"} and meta["max_gap"] == 3
    assert meta["gripper"]["closed"] == "above"


def test_cli_interrupt_says_how_to_resume_and_refusals_exit_2(video_source, tmp_path, monkeypatch, capsys):
    # The first run's detector stops in episode 2; later runs get fresh ones.
    first = [SquareDetector(interrupt_after=len(CAMERAS) + 1)]

    def load(*args, **kwargs):
        return first.pop() if first else SquareDetector()

    monkeypatch.setattr(ZeroShotDetector, "load", staticmethod(load))
    output = tmp_path / "out"
    args = [
        "--repo_id=local/annotate_video",
        f"--root={video_source}",
        "--object=square",
        "--batch_size=16",
        f"--new_root={output}",
    ]
    assert main(args) == 130
    stderr = capsys.readouterr().err
    assert f"finished episodes are kept in {output}.partial. Run the same command again to resume" in stderr
    assert not output.exists()

    assert main([*args, "--stride=2"]) == 2  # another detection setting: the interrupted run is not resumed
    assert "other settings (differs in ['stride'])" in capsys.readouterr().err
    assert main([*args, "--stride=0"]) == 2  # refused by the config's own check, in one line
    assert "reconvla-annotate: error: --stride 0: expected an integer >= 1" in capsys.readouterr().err
    assert main(args) == 0 and output.exists() and not output.with_name("out.partial").exists()


# ---------------------------------------------------------------------------------------------------
# The real transformers detectors (tiny, random weights, saved and loaded like a downloaded model)
# ---------------------------------------------------------------------------------------------------


def save_tiny_grounding_dino(path: Path) -> Path:
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "square", "red", "cube"]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    # Sizes from transformers' own Grounding DINO tests (two decoder layers: its box heads are tied).
    config = GroundingDinoConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        num_queries=8,
        encoder_n_points=2,
        decoder_n_points=2,
        backbone_config=SwinConfig(
            window_size=7, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], out_indices=[2, 3, 4]
        ),
        text_config={
            "model_type": "bert",
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 8,
            "max_position_embeddings": 16,
            "vocab_size": len(words),
        },
        max_text_len=16,
    )
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).save_pretrained(path)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 48, "longest_edge": 64})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def save_tiny_owlv2(path: Path) -> Path:
    from transformers import (
        CLIPTokenizer,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    letters = "abcdefghijklmnopqrstuvwxyz"
    # OWLv2 treats a query whose first token id is 0 as padding: keep the special tokens away from 0.
    vocab = [*letters, *(c + "</w>" for c in letters), "<unk>", "<|startoftext|>", "<|endoftext|>"]
    # model_max_length as OWLv2's own tokenizer: its processor pads every query to that length.
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=[], model_max_length=16)
    config = Owlv2Config(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = Owlv2ForObjectDetection(config)
    # Random box-head weights push every box to zero width or height; with a zero last layer each
    # patch predicts OWLv2's prior box (centred on the patch, one patch in size), as a trained model
    # would predict some proper box.
    torch.nn.init.zeros_(model.box_head.dense2.weight)
    torch.nn.init.zeros_(model.box_head.dense2.bias)
    model.save_pretrained(path)
    image_processor = Owlv2ImageProcessor(size={"height": 64, "width": 64})
    Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_grounding_dino(tmp_path_factory) -> Path:
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("detectors") / "grounding_dino")


@pytest.mark.parametrize("family", ["grounding-dino", "owlv2"])
def test_transformers_detector_loads_processes_post_processes_and_writes(
    family, video_source, tmp_path, request
):
    model_dir = (
        request.getfixturevalue("tiny_grounding_dino")
        if family == "grounding-dino"
        else save_tiny_owlv2(tmp_path / "owlv2")
    )
    output = tmp_path / "out"
    # Random weights score every query above 0: with threshold 0 a frame lacks a box only where every
    # query's box is degenerate.
    report = annotate(
        config(
            video_source,
            "local/annotate_video",
            detector=family,
            detector_model=str(model_dir),
            box_threshold=0.0,
            stride=4,
            batch_size=4,
            new_root=output,
        )
    )
    assert report["detector"] == family and report["model"] == str(model_dir)
    dataset = LeRobotDataset("local/annotate_video_gaze", root=output)
    for cam in CAMERAS:
        boxes = np.stack(read_data(output)[f"observation.gaze_box.{cam}"])
        assert boxes.shape == (dataset.num_frames, 4) and boxes.dtype == np.float32
        present = boxes[(boxes >= 0).all(axis=1)]
        assert len(present) and (present <= 1).all()
        assert ((present[:, 2:] - present[:, :2]) * [64, 48] >= 1).all()  # at least a pixel wide and high
        np.testing.assert_array_equal(boxes[(boxes < 0).any(axis=1)], -1)  # the rest: the absent marker
        assert report["cameras"][cam]["frames_with_box"] == pytest.approx(len(present) / dataset.num_frames)
        assert 0 < report["cameras"][cam]["mean_score"] <= 1
        if family == "grounding-dino":  # its random queries all score high: a box on every frame
            assert len(present) == dataset.num_frames

    # A batch may mix phrases (two-stage tasks): each frame gets what it would get alone; bfloat16
    # autocast runs the same path.
    frame = LeRobotDataset("local/annotate_video", root=video_source, return_uint8=True)[0]
    image = frame["observation.images.top"].permute(1, 2, 0).numpy()  # (H, W, 3) uint8
    detector = ZeroShotDetector.load(str(model_dir), "cpu", torch.float32, box_threshold=0.0)
    # (Two frames per call: at this tiny size a single frame's coarsest feature map is 1x1, too small for
    # the GroupNorm after it.)
    alone = detector.detect([image, image], ["cube", "cube"])[1]
    mixed = detector.detect([image, image], ["red square", "cube"])[1]
    np.testing.assert_allclose(mixed.box, alone.box, atol=1e-5)
    assert mixed.score == pytest.approx(alone.score, abs=1e-5)
    low_precision = ZeroShotDetector.load(str(model_dir), "cpu", torch.bfloat16, box_threshold=0.0)
    assert len(low_precision.detect([image, image], ["red square", "cube"])) == 2


# ---------------------------------------------------------------------------------------------------
# The command, and training on what it wrote
# ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_annotates_and_lerobot_train_uses_the_boxes(video_source, tiny_grounding_dino, tmp_path):
    output, preview = tmp_path / "annotated", tmp_path / "preview.png"
    annotate_args = [
        "--repo_id=local/annotate_video",
        f"--root={video_source}",
        "--object=red cube",
        f"--detector_model={tiny_grounding_dino}",
        "--box_threshold=0",
        "--stride=5",
        f"--new_root={output}",
        f"--preview={preview}",
    ]
    said = run_cli("reconvla-annotate", annotate_args)
    assert "top              box in 100.0% of frames" in said
    assert preview.stat().st_size > 0 and (output / "meta" / "gaze_annotation.json").exists()
    # Rerunning into the same output is refused with the reason.
    assert "already exists" in run_cli("reconvla-annotate", annotate_args, expect_ok=False)

    log = run_train(
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            "--dataset.repo_id=local/annotate_video_gaze",
            f"--dataset.root={output}",
            f"--output_dir={tmp_path / 'run'}",
            "--steps=2",
            "--batch_size=2",
            "--save_freq=2",
            "--log_freq=1",
            "--num_workers=0",
            "--wandb.enable=false",
        ]
    )
    assert log.count("recon_loss:") >= 2
    assert "reconstructs its whole image" not in log  # the policy found a gaze box for every camera
    assert "malformed" not in log  # the written boxes pass the policy's checks (dataset stats, every batch)
