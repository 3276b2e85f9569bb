"""Experiments that anyone reruns with one command and that write their own report (see `evidence`)."""

import subprocess


def checkout_commit() -> str:
    """The commit a report was written from, marked when tracked files differ from it."""
    git = dict(check=False, capture_output=True, text=True)
    commit = (
        subprocess.run(["git", "rev-parse", "HEAD"], **git).stdout.strip() or "unknown (not a git checkout)"
    )
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **git).stdout.strip():
        commit += " with uncommitted changes"
    return commit
