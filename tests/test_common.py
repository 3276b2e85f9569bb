"""The shared plumbing of the command-line tools: crash-safe writes, settings checks, entry points."""

from dataclasses import dataclass

import pytest
from lerobot.configs import parser

from lerobot_policy_reconvla.common.cli import UsageError, run_entry_point
from lerobot_policy_reconvla.common.durable import (
    ResumeRefused,
    publish,
    read_json,
    refuse_other_settings,
    staging_path,
    write_json_atomically,
)


@dataclass
class ToolConfig:
    # Where the output goes.
    out: str
    images: bool = False
    steps: int = 1

    def __post_init__(self):
        if self.steps < 1:
            raise UsageError(f"--steps must be >= 1, got {self.steps}")


@parser.wrap()
def tool(cfg: ToolConfig):
    if cfg.out == "refuse":
        refuse_other_settings(
            {"steps": 1}, {"steps": cfg.steps}, what="out holds another run", remedy="delete it"
        )
    if cfg.out == "interrupt":
        raise KeyboardInterrupt
    return 7 if cfg.images else {"out": cfg.out}


def test_entry_points_return_the_status_and_refuse_in_one_line(capsys):
    assert run_entry_point(tool, ["--out=x"], prog="tool") == 0  # a non-int result means success
    assert run_entry_point(tool, ["--out=x", "--images=true"], prog="tool") == 7
    assert run_entry_point(tool, ["--out=x", "--steps=0"], prog="tool") == 2  # raised in __post_init__
    assert capsys.readouterr().err == "tool: error: --steps must be >= 1, got 0\n"
    assert run_entry_point(tool, ["--out=refuse", "--steps=3"], prog="tool") == 2
    assert capsys.readouterr().err == "tool: error: out holds another run (differs in ['steps']); delete it\n"
    assert run_entry_point(tool, ["--out=interrupt"], prog="tool") == 130


def test_staged_output_is_published_whole_and_records_are_replaced_atomically(tmp_path):
    output = tmp_path / "dataset"
    staging = staging_path(output)
    assert staging.name == "dataset.partial"
    staging.mkdir()
    write_json_atomically(staging / "progress.json", {"done": 1})
    write_json_atomically(staging / "progress.json", {"done": 2})
    assert read_json(staging / "progress.json") == {"done": 2} and read_json(staging / "missing.json") is None
    assert sorted(p.name for p in staging.iterdir()) == ["progress.json"]  # no temporary left behind
    output.mkdir()  # an empty directory may stand in the way (a user's mkdir), a full one may not
    publish(staging, output)
    assert not staging.exists() and read_json(output / "progress.json") == {"done": 2}
    other = staging_path(tmp_path / "other")
    other.mkdir()
    with pytest.raises(OSError):
        publish(other, output)
    assert other.exists() and read_json(output / "progress.json") == {"done": 2}  # nothing lost


def test_settings_check_names_every_difference_and_a_missing_record():
    refuse_other_settings({"a": 1, "b": 2}, {"a": 1, "b": 2}, what="w", remedy="r")
    with pytest.raises(ResumeRefused, match=r"^w \(differs in \['a', 'c'\]\); r$"):
        refuse_other_settings({"a": 0, "b": 2}, {"a": 1, "b": 2, "c": 3}, what="w", remedy="r")
    with pytest.raises(ResumeRefused, match=r"differs in \['a'\]"):
        refuse_other_settings(None, {"a": 1}, what="w", remedy="r")


def test_a_failed_stage_raises_with_its_log_tail_and_its_command_line_exits_1(tmp_path, capsys):
    import sys

    from lerobot_policy_reconvla.common.processes import CommandFailed, run_logged

    log = tmp_path / "stage.log"
    ok = [sys.executable, "-c", "print('first run')"]
    assert run_logged(ok, log, label="first") == "first run\n"
    failing = [sys.executable, "-c", "import sys; print('some output'); sys.exit(3)"]
    with pytest.raises(CommandFailed, match=r"(?s)\[second\] failed \(exit 3\).*last lines of .*some output"):
        run_logged(failing, log, label="second", append=True)
    assert log.read_text() == "first run\nsome output\n"  # appended after the first run's output

    @parser.wrap()
    def stages(cfg: ToolConfig):
        run_logged(failing, tmp_path / f"{cfg.out}.log", label=cfg.out)

    assert run_entry_point(stages, ["--out=train"], prog="tool") == 1
    assert capsys.readouterr().err.startswith("tool: [train] failed (exit 3)")
