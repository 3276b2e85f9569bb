"""The Hub model card of a ReconVLA policy (README.md): what LeRobot 0.6.1's ``push_model_to_hub`` writes,
and what ``reconvla-model-card`` (``tools/model_card.py``) writes for a checkpoint on any LeRobot.

LeRobot's generic card knows base models only for its own policy types, so a ReconVLA fine-tuned from
``lerobot/pi0_base`` would say nothing of where it came from, nor of what makes it ReconVLA. This card
states: the method and its paper, the base model (``pretrained_path``) or "trained from scratch", the
reconstruction settings, whether the training data had gaze boxes for each camera, and the commands
to evaluate the policy. It is rendered with huggingface_hub's ``ModelCard.from_template`` from
``assets/model_card_template.md`` and, as LeRobot does, validated by the Hub before a push.
"""

from __future__ import annotations

import importlib.metadata
import os
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import ModelCard, ModelCardData, constants
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from lerobot import __version__ as lerobot_version

from ..common.cli import UsageError
from ..configuration_reconvla import ReconSettings, ReconVLAConfig
from ..gaze_box import gaze_box_key
from ..sim.constants import SCENE_CAMERAS, TASKS, task_instructions

if TYPE_CHECKING:
    from lerobot.configs.train import TrainPipelineConfig
    from lerobot.datasets import LeRobotDatasetMetadata

PAPER_ARXIV_ID = "2508.10333"
PAPER_TITLE = "ReconVLA: Reconstructive Vision-Language-Action Model as Effective Robot Perceiver"
TEMPLATE = "model_card_template.md"
# Camera names of the `aloha` and `aloha_sim` robots (real ALOHA layouts; cam_low on some setups).
REAL_ALOHA_CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")


def base_model_of(config: ReconVLAConfig) -> tuple[str | None, str | None]:
    """(Hub repo id, local path) the policy was fine-tuned from; (None, None) when trained from scratch.

    >>> base_model_of(ReconVLAConfig(pretrained_path="lerobot/pi0_base"))
    ('lerobot/pi0_base', None)
    >>> base_model_of(ReconVLAConfig())
    (None, None)
    """
    if config.pretrained_path is None:
        return None, None
    source = str(config.pretrained_path)
    if os.path.isdir(source):  # a local checkpoint: no Hub id to link to
        return None, source
    try:
        validate_repo_id(source)
    except HFValidationError:
        return None, source
    return source, None


def gaze_boxes_per_camera(
    config: ReconVLAConfig, dataset_meta: LeRobotDatasetMetadata | None
) -> dict[str, bool] | None:
    """{camera: whether the training data had `observation.gaze_box.<camera>`}; None without metadata."""
    if dataset_meta is None:
        return None
    cameras = config.camera_names
    return {camera: gaze_box_key(camera) in dataset_meta.features for camera in cameras}


def _dataset_facts(dataset_repo_id: str | None, dataset_meta: LeRobotDatasetMetadata | None) -> dict | None:
    if dataset_meta is None:
        return {"repo_id": dataset_repo_id} if dataset_repo_id else None
    return {
        "repo_id": dataset_meta.repo_id,
        "episodes": dataset_meta.total_episodes,
        "frames": dataset_meta.total_frames,
        "fps": dataset_meta.fps,
        "robot_type": dataset_meta.robot_type,
        "tasks": [str(task) for task in dataset_meta.tasks.index],
    }


def _training_facts(cfg: TrainPipelineConfig | None) -> dict | None:
    if cfg is None:
        return None
    optimizer = getattr(cfg, "optimizer", None)
    peft = getattr(cfg, "peft", None)
    return {
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "optimizer": getattr(optimizer, "type", None),
        "lr": getattr(optimizer, "lr", None),
        "lora_rank": getattr(peft, "r", None) if peft is not None else None,
    }


def _evaluation(config: ReconVLAConfig, dataset: dict | None) -> dict:
    """What the eval commands need: which of the sim env / the ALOHA robots fit the cameras, a prompt."""
    cameras = config.camera_names
    tasks = (dataset or {}).get("tasks") or []
    prompt = tasks[0] if tasks else "<task description>"
    return {
        "cameras": cameras,
        "prompt": prompt,
        # aloha_multicam renders gym-aloha's scene cameras under their own names (top, left_wrist, ...).
        "sim_env": all(camera in SCENE_CAMERAS for camera in cameras),
        "sim_task": next((name for name in TASKS if prompt in task_instructions(name)), "insertion"),
        # The aloha / aloha_sim robots name their cameras as the real ALOHA does.
        "aloha_robot": all(camera in REAL_ALOHA_CAMERAS for camera in cameras),
    }


def reconvla_model_card(
    config: ReconVLAConfig,
    dataset_repo_id: str | None,
    license: str | None,
    tags: list[str] | None,
    cfg: TrainPipelineConfig | None = None,
    dataset_meta: LeRobotDatasetMetadata | None = None,
) -> ModelCard:
    """The card LeRobot's ``push_model_to_hub`` saves as README.md (same arguments as LeRobot's)."""
    base_model, local_base = base_model_of(config)
    card_data = ModelCardData(
        license=license or "apache-2.0",
        library_name="lerobot",
        pipeline_tag="robotics",
        tags=sorted(
            set(tags or []) | {"robotics", "lerobot", "reconvla", config.base_type, f"arxiv:{PAPER_ARXIV_ID}"}
        ),
        model_name=config.type,
        datasets=dataset_repo_id,
        base_model=base_model,
        # The Hub's relation of this model to its base: LoRA adapters are "adapter".
        base_model_relation=("adapter" if config.use_peft else "finetune") if base_model else None,
    )
    dataset = _dataset_facts(dataset_repo_id, dataset_meta)
    context = {
        "policy_repo_id": config.repo_id,
        "paper_title": PAPER_TITLE,
        "paper_arxiv_id": PAPER_ARXIV_ID,
        "base": config.base_type,
        "base_model": base_model,
        "local_base": local_base,
        "use_peft": config.use_peft,
        "config": config,
        "gaze_boxes": gaze_boxes_per_camera(config, dataset_meta),
        "dataset": dataset,
        "training": _training_facts(cfg),
        "evaluation": _evaluation(config, dataset),
        "plugin_version": importlib.metadata.version("lerobot_policy_reconvla"),
        "lerobot_version": lerobot_version,
    }
    template = files("lerobot_policy_reconvla").joinpath("assets", TEMPLATE).read_text(encoding="utf-8")
    card = ModelCard.from_template(card_data, template_str=template, **context)
    if not constants.is_offline_mode():  # the Hub's own check, as LeRobot runs it before every push
        card.validate()
    return card


# --------------------------------------------------------------------------------------------------
# Which LeRobot writes the card, and reconvla-model-card for the one that leaves no hook


def lerobot_asks_the_policy_for_its_card() -> bool:
    """True on LeRobot 0.6.1, whose ``push_model_to_hub`` calls ``policy.generate_model_card`` (ReconVLAPolicy
    overrides it, so a push carries this card). LeRobot's next release renders one template for every
    policy in a free function, ``lerobot.common.train_utils.generate_model_card``, with no hook a policy
    can use: there the card comes from ``reconvla-model-card`` after the push."""
    from lerobot.policies.pretrained import PreTrainedPolicy

    return hasattr(PreTrainedPolicy, "generate_model_card")


def card_of_checkpoint(checkpoint: Path) -> ModelCard:
    """The card of a saved ReconVLA policy (a checkpoint's ``pretrained_model`` directory): its config, and
    when lerobot-train saved it, its ``train_config.json`` and the dataset's metadata if the dataset is on
    this machine."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.configs.train import TrainPipelineConfig

    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").is_file():
        raise UsageError(f"--checkpoint={checkpoint} holds no config.json: not a saved policy")
    config = PreTrainedConfig.from_pretrained(checkpoint)
    if not isinstance(config, ReconSettings):
        raise UsageError(f"--checkpoint={checkpoint} is a {config.type!r} policy, not a ReconVLA one")
    train_cfg = dataset_meta = None
    if (checkpoint / "train_config.json").is_file():
        train_cfg = TrainPipelineConfig.from_pretrained(checkpoint)
        root = train_cfg.dataset.root
        if root is not None and (Path(root) / "meta" / "info.json").is_file():
            from lerobot.datasets import LeRobotDatasetMetadata

            dataset_meta = LeRobotDatasetMetadata(train_cfg.dataset.repo_id, root=root)
    repo_id = train_cfg.dataset.repo_id if train_cfg is not None else None
    return reconvla_model_card(
        config, repo_id, config.license, config.tags, cfg=train_cfg, dataset_meta=dataset_meta
    )
