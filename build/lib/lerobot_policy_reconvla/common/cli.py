"""Command-line entry points in LeRobot's style: a config dataclass parsed by draccus through LeRobot's
``parser.wrap()`` (``--field=value``, dotted for nested fields, ``--config_path`` for a file), and the
spellings of the earlier argparse flags still accepted for one release, with a deprecation message.

    OLD_FLAGS = {"--output-root": OldFlag("new_root"), "--cameras": OldFlag("cameras", "list")}
    def main(argv=None) -> int:
        return run_entry_point(annotate_command, argv, prog="reconvla-annotate", old_flags=OLD_FLAGS)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from draccus.utils import ParsingError

from .durable import ResumeRefused
from .processes import CommandFailed


class UsageError(ValueError):
    """A flag's value that cannot work, found before any work (one line naming the flag and what it expects).

    Raised by a config's checks (``__post_init__`` or a check its library function calls first);
    :func:`run_entry_point` prints it as one line either way.
    """


def check_image_size(image_size: list[int], flag: str = "--image_size") -> None:
    """Raises UsageError unless `image_size` is [H, W], both positive (a camera image's height and width)."""
    if len(image_size) != 2 or min(image_size) <= 0:
        raise UsageError(f"{flag} takes [H,W] (positive), got {image_size}")


def report_old_spellings(prog: str, used: Sequence[str]) -> None:
    """One line on stderr naming each earlier spelling used and what it now reads ("old -> new")."""
    if used:
        print(
            f"{prog}: deprecated flag spelling(s), accepted in this release only: {'; '.join(used)}",
            file=sys.stderr,
        )


@dataclass(frozen=True)
class OldFlag:
    """An earlier argparse spelling and the draccus field that replaces it.

    kind: "value" (``--old X`` / ``--old=X``), "list" (``--old a b c``, argparse's nargs="+"), "true" / "false"
    (a switch that sets a boolean field).
    """

    field: str
    kind: Literal["value", "list", "true", "false"] = "value"


def translate_old_flags(argv: Sequence[str], old_flags: Mapping[str, OldFlag], prog: str) -> list[str]:
    """`argv` with every earlier spelling rewritten as ``--field=value``; says once which ones were used."""
    translated, used = [], []
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, has_value, inline = arg.partition("=")
        old = old_flags.get(name)
        # A flag whose name did not change is new-style when its value is given the new way.
        follows = argv[index + 1] if index + 1 < len(argv) else ""
        new_style = old is not None and name == f"--{old.field}" and (
            has_value or old.kind == "value" or (old.kind == "list" and follows.startswith("["))
        )
        if old is None or new_style:
            translated.append(arg)
            index += 1
            continue
        start = index
        index += 1
        if old.kind in ("true", "false"):
            translated.append(f"--{old.field}={old.kind}")
        else:
            values = [inline] if has_value else []
            while index < len(argv) and not argv[index].startswith("--") and (old.kind == "list" or not values):
                values.append(argv[index])
                index += 1
            joined = f"[{','.join(values)}]" if old.kind == "list" else (values[0] if values else "")
            translated.append(f"--{old.field}={joined}")
        used.append(f"{' '.join(argv[start:index])} -> {translated[-1]}")
    report_old_spellings(prog, used)
    return translated


def run_entry_point(
    entry: Callable[[], object],
    argv: Sequence[str] | None,
    *,
    prog: str,
    old_flags: Mapping[str, OldFlag] | None = None,
    refusals: tuple[type[Exception], ...] = (),
) -> int:
    """Runs a ``parser.wrap()``-decorated `entry` on `argv` (default: the process's arguments).

    Returns the entry's status if it returns an int, else 0; 2 with one line on stderr when the entry raises
    UsageError, ResumeRefused or one of `refusals` (bad input found before any work); 1 with the log's tail
    when a stage's command failed (CommandFailed); 130 on Ctrl-C. Anything else propagates with its traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if old_flags:
        args = translate_old_flags(args, old_flags, prog)
    saved_argv = sys.argv
    sys.argv = [prog, *args]  # parser.wrap() reads the command line from sys.argv
    one_line = (UsageError, ResumeRefused, *refusals)
    try:
        status = entry()
    except one_line as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except CommandFailed as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 1
    except ParsingError as error:
        # draccus reports what a config's __post_init__ raised as "Couldn't instantiate class ..."; the
        # refusal itself is the cause.
        if not isinstance(error.__cause__, one_line):
            raise
        print(f"{prog}: error: {error.__cause__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        sys.argv = saved_argv
    return status if isinstance(status, int) else 0
