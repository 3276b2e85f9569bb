"""A saved policy's weight file, checked before any model is built.

A save that was killed midway (or a partial copy) leaves ``model.safetensors`` missing or cut short;
safetensors then fails with ``SafetensorError: incomplete metadata`` without saying which file. This
check reads only the file's header (``safe_open`` memory-maps it and validates the header and that the
tensors cover the file exactly), so it costs nothing next to building the model.
"""

from pathlib import Path

from safetensors import SafetensorError, safe_open


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
            f"{path} is truncated or corrupt ({path.stat().st_size} bytes; safetensors says: {error}); its save "
            "was interrupted or the copy is incomplete: save or copy the checkpoint again"
        ) from None
    return path
