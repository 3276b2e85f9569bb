"""Writes docs/cli.md, the reference of every console script, from each script's own `--help`.

    python scripts/cli_reference.py           # rewrite docs/cli.md
    python scripts/cli_reference.py --check   # exit 1 if docs/cli.md is not what this would write

The commands are pyproject.toml's `[project.scripts]`; each one's help is captured by calling its entry
point in this process with `--help`, so the page changes whenever a flag, default or help line does, and
`tests/test_cli_reference.py` fails until it is rewritten.
"""

import argparse
import contextlib
import difflib
import importlib
import importlib.util
import io
import os
import sys
import tomllib
from pathlib import Path

# argparse wraps help at the terminal's width (COLUMNS): fixed, so the page is the same on every machine.
os.environ["COLUMNS"] = "100"

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"
REFERENCE = REPO / "docs" / "cli.md"
WRITER = "python scripts/cli_reference.py"
# Console scripts that run another project's parser: where their flags are documented.
EXTERNAL_PARSERS = {
    "reconvla-policy-server": (
        "LeRobot's own policy server (`lerobot.async_inference.policy_server`), run with "
        "every installed plugin imported: its flags are LeRobot's `PolicyServerConfig`."
    ),
}

HEADER = f"""# Command-line reference

Written by `{WRITER}` from each command's own `--help` (do not edit by hand;
`tests/test_cli_reference.py` fails when this page is out of date).

Every command takes LeRobot's flag syntax (draccus): `--field=value`, dotted for a nested field
(`--dataset.repo_id=local/x`), a list as `--cameras='[top,left_wrist]'`, a switch as `--images=true`,
and `--config_path=<file.json or .yaml>` for many fields at once.
"""


class HelpNotCaptured(RuntimeError):
    """An entry point that could not be imported, or whose `--help` did not print help and exit 0."""


def console_scripts() -> dict[str, str]:
    """{command: "module:function"} from pyproject.toml, in its order."""
    return tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]


def module_form(module_name: str) -> str | None:
    """The `python -m ...` spelling of a command, if its module (or its package) runs as a script."""
    module = sys.modules[module_name]
    if module.__file__ and 'if __name__ == "__main__":' in Path(module.__file__).read_text():
        return f"python -m {module_name}"
    package = module_name.rpartition(".")[0]
    if package and importlib.util.find_spec(f"{package}.__main__") is not None:
        return f"python -m {package}"
    return None


def captured_help(command: str, target: str) -> str:
    """What `<command> --help` prints, trailing spaces removed."""
    module_name, _, function_name = target.partition(":")
    try:
        entry = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise HelpNotCaptured(f"{command}: cannot load its entry point {target}: {error}") from error
    printed = io.StringIO()
    saved_argv = sys.argv
    # Entry points read sys.argv when called without arguments (LeRobot's own take no argv parameter).
    sys.argv = [command, "--help"]
    try:
        with contextlib.redirect_stdout(printed):
            entry()
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise HelpNotCaptured(f"{command} --help exited with {exit_.code!r}") from None
    finally:
        sys.argv = saved_argv
    text = "\n".join(line.rstrip() for line in printed.getvalue().splitlines()).strip("\n")
    if not text.startswith("usage:"):
        raise HelpNotCaptured(f"{command} --help printed no usage line: {text[:200]!r}")
    return text


def purpose(module_name: str) -> str:
    """The summary of the module's docstring (its first paragraph, on one line): what the command is for."""
    doc = sys.modules[module_name].__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def section(command: str, target: str) -> str:
    module_name = target.partition(":")[0]
    external = EXTERNAL_PARSERS.get(command)
    try:
        help_text = captured_help(command, target)
    except HelpNotCaptured:
        if external is None:
            raise
        help_text = None
    lines = [f"## {command}", "", purpose(module_name), ""]
    if external:
        lines += [external, ""]
    form = module_form(module_name)
    lines += ["```bash", f"{command} --help" + (f"   # or: {form} --help" if form else ""), "```", ""]
    if help_text is None:
        lines += ["(Its help could not be captured here: run the command above.)", ""]
    else:
        lines += ["```text", help_text, "```", ""]
    return "\n".join(lines)


def reference() -> str:
    scripts = console_scripts()
    contents = [f"- [{command}](#{command})" for command in scripts]
    sections = [section(command, target) for command, target in scripts.items()]
    return "\n".join([HEADER, *contents, "", *sections]).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if {REFERENCE.relative_to(REPO)} is out of date"
    )
    args = parser.parse_args(argv)
    try:
        text = reference()
    except HelpNotCaptured as error:
        print(f"cli_reference: error: {error}", file=sys.stderr)
        return 1
    if not args.check:
        REFERENCE.write_text(text)
        print(f"wrote {REFERENCE}")
        return 0
    current = REFERENCE.read_text() if REFERENCE.exists() else ""
    if current == text:
        return 0
    difference = difflib.unified_diff(
        current.splitlines(), text.splitlines(), "docs/cli.md", "expected", lineterm=""
    )
    print(f"{REFERENCE} is out of date: run {WRITER}", file=sys.stderr)
    print("\n".join(list(difference)[:60]), file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
