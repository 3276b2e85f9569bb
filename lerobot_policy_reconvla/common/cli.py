"""Command-line entry points in LeRobot's style: a config dataclass parsed by draccus through LeRobot's
``parser.wrap()`` (``--field=value``, dotted for nested fields, ``--config_path`` for a file).

    def main(argv=None) -> int:
        return run_entry_point(annotate_command, argv, prog="reconvla-annotate")
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Sequence

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


# A full disk, a full quota, or a file-size limit (ulimit -f): the same remedy, the same one line.
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NO_SPACE_WORDS = ("No space left on device", "Disk quota exceeded", "File too large")


class OutOfSpace(OSError):
    """The disk filled up, said by a command that knows what it kept (printed as its one line)."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror


def out_of_space(error: BaseException) -> OSError | None:
    """The OSError in `error`'s chain that says the disk (or quota, or file-size limit) is full, else None.

    Libraries wrap it: pyarrow raises OSError with the errno only in its message, PyAV its own OSError
    subclass, others chain it as the cause of their own error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and (
            error.errno in NO_SPACE_ERRNOS or any(words in str(error) for words in NO_SPACE_WORDS)
        ):
            return error
        error = error.__cause__ or error.__context__
    return None


def run_entry_point(
    entry: Callable[[], object],
    argv: Sequence[str] | None,
    *,
    prog: str,
    refusals: tuple[type[Exception], ...] = (),
) -> int:
    """Runs a ``parser.wrap()``-decorated `entry` on `argv` (default: the process's arguments).

    Returns the entry's status if it returns an int, else 0; 2 with one line on stderr when the entry raises
    UsageError, ResumeRefused or one of `refusals` (bad input found before any work); 1 with the log's tail
    when a stage's command failed (CommandFailed); 1 with one line when the disk filled up (the commands
    that write keep what they committed and resume when run again); 130 on Ctrl-C. Anything else propagates
    with its traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
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
    except Exception as error:
        full = out_of_space(error)
        if full is None:
            raise
        if isinstance(full, OutOfSpace):
            print(f"{prog}: error: {full}", file=sys.stderr)
            return 1
        where = f" writing {full.filename}" if full.filename else ""
        print(
            f"{prog}: error: no space left{where} ({full.strerror or full}); free some space (or raise the "
            "file-size limit) and run the same command again",
            file=sys.stderr,
        )
        return 1
    finally:
        sys.argv = saved_argv
    return status if isinstance(status, int) else 0
