"""Loading a saved ReconVLA (or pi0) policy: its files, its config, its weights, each checked before use.

- `check_safetensors_file`: a save that was killed midway (or a partial copy) leaves ``model.safetensors``
  missing or cut short; safetensors then fails with ``SafetensorError: incomplete metadata`` without saying
  which file. This reads only the file's header (``safe_open`` memory-maps it and validates the header and
  that the tensors cover the file exactly), so it costs nothing next to building the model.
- `resolve_file`, `checkpoint_config_fields`, `parse_policy_config`: a local directory or a Hub repo id,
  its config.json parsed as LeRobot parses it (draccus); only the policy's own type and its base's fit
  (`reconvla` and `pi0`; `reconvla_pi05` and `pi05`).
- `load_checked`: every tensor must fit; nothing is ever left silently random.
"""

import json
import logging
import os
import tempfile
from pathlib import Path

import draccus
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HFValidationError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

logger = logging.getLogger(__name__)

SAFETENSORS_FILE = "model.safetensors"


class IncompleteCheckpointError(ValueError):
    """A checkpoint's weight file exists but is truncated or not a safetensors file."""


def check_safetensors_file(path: str | Path) -> Path:
    """Returns `path` if it is a complete safetensors file; else raises one line naming it.

    Raises FileNotFoundError when it is missing and IncompleteCheckpointError when it is truncated or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: {path.parent} is not a complete saved policy (its save was interrupted, or "
            "the directory was copied without it); save or copy the checkpoint again"
        )
    try:
        with safe_open(path, framework="pt"):
            pass
    except SafetensorError as error:
        raise IncompleteCheckpointError(
            f"{path} is truncated or corrupt ({path.stat().st_size} bytes; safetensors says: {error}); "
            "its save was interrupted or the copy is incomplete: save or copy the checkpoint again"
        ) from None
    return path


def load_checked(
    model: nn.Module, state_dict: dict[str, Tensor], source: str | Path, fresh_prefix: str | None
) -> None:
    """Loads `state_dict` into `model` (a ReconVLA policy), refusing any missing, unexpected or misshapen key;
    only keys under `fresh_prefix` may be missing (they start fresh, logged)."""
    own = model.state_dict(keep_vars=True)
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ]
    if mismatched:
        raise ValueError(
            f"checkpoint {source} does not fit this {model.config.type} config ({len(mismatched)} tensors of "
            f"another shape, e.g. {mismatched[:3]}). Check paligemma_variant / action_expert_variant "
            f"({model.config.paligemma_variant}/{model.config.action_expert_variant}), max_state_dim, "
            "max_action_dim and the recon_* sizes against the checkpoint's config.json."
        )
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    # Tied tensors (PaliGemma's lm_head / embed_tokens) are saved once: not missing.
    missing = [k for k in missing if not _is_tied_duplicate(own, k, state_dict)]
    fresh = [k for k in missing if fresh_prefix and k.startswith(fresh_prefix)]
    missing = [k for k in missing if k not in fresh]
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {source} does not match the model: {len(missing)} missing keys "
            f"{missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}"
        )
    if fresh:
        logger.warning(
            "Loaded every %s weight from %s; the recon head starts fresh (%d tensors under %s).",
            model.config.base_type,
            source,
            len(fresh),
            fresh_prefix,
        )


def _is_tied_duplicate(own: dict[str, Tensor], key: str, state_dict: dict[str, Tensor]) -> bool:
    """True if the model's `key` shares storage with another tensor that the checkpoint does provide."""
    pointer = own[key].data_ptr()
    return any(other != key and other in state_dict and t.data_ptr() == pointer for other, t in own.items())


def resolve_file(name_or_path: str | Path, filename: str, **hub_kwargs) -> str:
    """Path of `filename` in a saved policy: a local directory, else a Hub repo id."""
    if os.path.isdir(name_or_path):
        path = Path(name_or_path) / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: {name_or_path} is not a saved policy")
        return str(path)
    if os.path.exists(name_or_path):
        raise NotADirectoryError(f"{name_or_path} is a file; expected the directory of a saved policy")
    try:
        validate_repo_id(str(name_or_path))
    except HFValidationError:
        raise FileNotFoundError(
            f"{name_or_path} does not exist (no such local directory, and not a Hub repo id 'owner/name')"
        ) from None
    try:
        return hf_hub_download(repo_id=str(name_or_path), filename=filename, **hub_kwargs)
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise FileNotFoundError(
            f"{name_or_path} is not a local directory, and its {filename} could not be fetched from the Hub "
            f"({type(error).__name__}: {error})"
        ) from error


def checkpoint_config_fields(
    name_or_path: str | Path, accepted_types: tuple[str, str], **hub_kwargs
) -> tuple[str, dict]:
    """(type, fields) of a saved policy's config.json; only `accepted_types` (the policy's own type and its
    base's, e.g. ('reconvla', 'pi0')) fit."""
    with open(resolve_file(name_or_path, "config.json", **hub_kwargs)) as f:
        fields = json.load(f)
    source_type = fields.pop("type", None)
    if source_type not in accepted_types:
        raise ValueError(
            f"{name_or_path} holds a {source_type!r} policy; {accepted_types[0]} loads "
            f"{' or '.join(repr(t) for t in accepted_types)} checkpoints"
        )
    return source_type, fields


# The policy types this plugin registers, by the base each one adds the head to.
RECONVLA_TYPES = {"pi0": "reconvla", "pi05": "reconvla_pi05"}


def reconvla_policy_class(name_or_path: str | Path, **hub_kwargs) -> type:
    """The policy class of a saved ReconVLA checkpoint (`ReconVLAPolicy` or `ReconVLAPi05Policy`, by its
    config's type, found as LeRobot finds it); a checkpoint of another type is refused naming it."""
    from lerobot.policies.factory import get_policy_class

    with open(resolve_file(name_or_path, "config.json", **hub_kwargs)) as f:
        policy_type = json.load(f).get("type")
    if policy_type not in RECONVLA_TYPES.values():
        raise ValueError(
            f"{name_or_path} holds a {policy_type!r} policy; expected a ReconVLA checkpoint "
            f"({' or '.join(repr(t) for t in RECONVLA_TYPES.values())})"
        )
    return get_policy_class(policy_type)


def parse_policy_config(config_class: type, fields: dict):
    """Parses saved config fields as `config_class`, the way LeRobot parses config.json (draccus).

    A base's config (pi0's for ReconVLAConfig, pi05's for ReconVLAPi05Config) has a subset of the fields,
    so it parses with default recon settings (also for the `tiny` variant, which the base itself rejects).
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(fields, f)
    try:
        with draccus.config_type("json"):
            return draccus.parse(config_class, f.name, args=[])
    finally:
        os.unlink(f.name)
