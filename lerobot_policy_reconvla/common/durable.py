"""Crash-safe writing, one design for every long-running writer (dataset generator, annotator, latent cache,
demo).

The rules, whatever is written:
- an output is built in ``<output>.partial`` and renamed into place (``publish``) only when complete, so the
  output either does not exist or is whole;
- progress inside the staging directory is recorded by replacing one small JSON file
  (``write_json_atomically``): a kill leaves the old record or the new one, never half of one;
- a rerun resumes the staging directory only if it was started with the same settings
  (``refuse_other_settings``); otherwise it raises :class:`ResumeRefused`, one line naming what differs and
  what to do. Library functions raise; only command-line entry points turn errors into an exit status.

This guards against the process being killed, not against power loss (nothing is fsync'ed).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

STAGING_SUFFIX = ".partial"


class ResumeRefused(ValueError):
    """Existing output that this run must not resume or overwrite (one line: what differs, and the remedy)."""


def staging_path(output: Path) -> Path:
    """Where `output` is built before it is published: ``<output>.partial`` beside it."""
    output = Path(output)
    return output.with_name(output.name + STAGING_SUFFIX)


def write_json_atomically(path: Path, content: object) -> None:
    """Writes `content` as JSON to `path` by replacing it: a kill leaves the old file or the new one."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(content, indent=1))
    os.replace(temporary, path)


def read_json(path: Path) -> object | None:
    """The JSON at `path`, or None when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def changed_settings(recorded: Mapping | None, requested: Mapping) -> list[str]:
    """Names of the `requested` settings whose recorded value differs (all of them when nothing is
    recorded)."""
    if recorded is None:
        return sorted(requested)
    return sorted(name for name in requested if name not in recorded or recorded[name] != requested[name])


def refuse_other_settings(recorded: Mapping | None, requested: Mapping, *, what: str, remedy: str) -> None:
    """Raises ResumeRefused("<what> (differs in [...]); <remedy>") if `recorded` is not `requested`."""
    changed = changed_settings(recorded, requested)
    if changed:
        raise ResumeRefused(f"{what} (differs in {changed}); {remedy}")


def publish(staging: Path, output: Path) -> None:
    """Renames the finished `staging` directory to `output` (which may exist only as an empty directory)."""
    output = Path(output)
    if output.exists():
        output.rmdir()  # os.replace cannot replace a directory; a non-empty one raises here, nothing lost
    output.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, output)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done: a Ctrl-C never lands inside a save or a commit.

    The handlers are swapped, not the signal mask: Python runs handlers in the main thread whichever
    thread the signal reaches (LeRobot's image writer threads do not block it).
    """
    received = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: received.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])  # delivered now, to the handler that was in place
