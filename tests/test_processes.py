"""Workers die with their parent (`processes.die_with_parent`); a command a test runs, as a process or in the
test's own, leaves nothing behind."""

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from lerobot_policy_reconvla.common import processes as common_processes
from tests.fixtures import processes
from tests.fixtures.cli import as_command

# A parent that starts one spawned worker (sleeping for good), prints the worker's pid, and dies by SIGKILL,
# as under the OOM killer: no cleanup of its own runs.
PARENT = """
import importlib.util, multiprocessing as mp, os, signal, sys, time

# The module alone, by its path: importing it through the package would first import the package root,
# LeRobot and torch (15 s, in the parent and again in the spawned worker); common/ imports nothing else.
spec = importlib.util.spec_from_file_location("processes", sys.argv[2])
processes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(processes)
die_with_parent = processes.die_with_parent

def worker(parent_pid, guarded):
    if guarded:
        die_with_parent(parent_pid)
    time.sleep(600)

if __name__ == "__main__":
    child = mp.get_context("spawn").Process(target=worker, args=(os.getpid(), sys.argv[1] == "guarded"))
    child.start()
    time.sleep(2)  # the worker is past its start-up
    print(child.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def gone(pid: int, within: float = 10) -> bool:
    """Whether `pid` ended (or is a zombie to be reaped) within `within` seconds: SIGKILL is asynchronous."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("guarded", [True, False])
def test_a_worker_dies_with_its_parent_killed_by_sigkill(guarded, tmp_path):
    script = tmp_path / "parent.py"  # a file: spawned workers import their function from it
    script.write_text(PARENT)
    mode = "guarded" if guarded else "unguarded"
    # Output to a file: a worker holding a pipe's end open would keep a reader of the pipe waiting.
    with (
        (tmp_path / "out.txt").open("w+") as out,
        processes.started(
            [sys.executable, str(script), mode, str(Path(common_processes.__file__))], stdout=out
        ) as parent,
    ):
        assert parent.wait(timeout=120) == -9
        worker = int((tmp_path / "out.txt").read_text().split()[-1])
        assert psutil.pid_exists(worker)  # it had started and was sleeping when its parent died
        alive = [p.pid for p in processes.wait_for_no_command_process(parent, within=15 if guarded else 3)]
        # Unguarded, the worker outlives its parent (killed on leaving this block).
        assert (worker in alive) is not guarded, (worker, alive)
    assert gone(worker)


def test_run_kills_what_the_command_left_behind_and_on_timeout():
    # The command starts a grandchild in a session of its own (as torch's launcher starts training ranks),
    # not holding the output pipe, and exits at once: the grandchild is killed all the same.
    script = (
        "import subprocess, sys; "
        "print(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True).pid)"
    )
    result = processes.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)
    grandchild = int(result.stdout)
    assert result.returncode == 0
    assert gone(grandchild)

    with pytest.raises(subprocess.TimeoutExpired):
        processes.run([sys.executable, "-c", "import time; time.sleep(600)"], timeout=1)


def test_a_command_run_in_this_process_leaves_the_process_as_it_was(caplog):
    """What LeRobot's scripts change for the rest of the process (`tests/fixtures/cli.py`) is put back: the
    root logger (init_logging replaces pytest's handlers with its own), signal handlers, torch's threads."""
    from lerobot.utils.process import ProcessSignalHandler
    from lerobot.utils.utils import init_logging

    root = logging.getLogger()
    handlers, level, threads = root.handlers[:], root.level, torch.get_num_threads()
    sigint, argv = signal.getsignal(signal.SIGINT), sys.argv
    with as_command("lerobot-eval", ["--eval.n_episodes=1"]) as output:
        assert sys.argv == ["lerobot-eval", "--eval.n_episodes=1"]
        init_logging()  # what lerobot-eval's main does first
        ProcessSignalHandler(use_threads=True)  # what lerobot-rollout does
        torch.set_num_threads(threads + 1)
        logging.getLogger("reconvla.test").info("logged by the command")
        print("printed by the command")
        assert signal.getsignal(signal.SIGINT) is not sigint
    assert "logged by the command" in output.getvalue() and "printed by the command" in output.getvalue()
    assert (root.handlers, root.level, torch.get_num_threads()) == (handlers, level, threads)
    assert signal.getsignal(signal.SIGINT) is sigint and sys.argv is argv
    logging.getLogger("reconvla.test").warning("logged after it")
    assert "logged after it" in caplog.text  # pytest's capture works again
