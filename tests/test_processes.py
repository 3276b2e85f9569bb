"""Workers die with their parent (`processes.die_with_parent`), and the test harness leaves nothing behind."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from lerobot_policy_reconvla.common import processes as common_processes
from tests.fixtures import processes, warm_python

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
    with (tmp_path / "out.txt").open("w+") as out, processes.started(
        [sys.executable, str(script), mode, str(Path(common_processes.__file__))], stdout=out
    ) as parent:
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
        "import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True).pid)"
    )
    result = processes.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)
    grandchild = int(result.stdout)
    assert result.returncode == 0
    assert gone(grandchild)

    with pytest.raises(subprocess.TimeoutExpired):
        processes.run([sys.executable, "-c", "import time; time.sleep(600)"], timeout=1)


# A command that reports where and with what it runs, leaves a sleeping child behind (in a session of its own,
# as torch's launcher starts ranks), and exits with status 3.
WARM_COMMAND = """
import os, subprocess, sys
print(os.getcwd(), os.environ["WARM_TEST_VALUE"], sys.argv[1:])
print("to stderr", file=sys.stderr)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
sys.exit(3)
"""


def test_a_warm_command_is_a_command_and_what_it_starts_is_found_and_killed(tmp_path):
    script, out, err = tmp_path / "command.py", tmp_path / "out.txt", tmp_path / "err.txt"
    script.write_text(WARM_COMMAND)
    env = dict(os.environ, WARM_TEST_VALUE="42")
    command_line = [sys.executable, script, "--flag=1"]
    with warm_python.started(command_line, stdout=out, stderr=err, env=env, cwd=tmp_path) as command:
        assert command.wait(timeout=300) == 3
        (sleeper,) = processes.command_processes(command)  # found by the token it inherited
        assert "time.sleep(600)" in " ".join(sleeper.cmdline())
    assert gone(sleeper.pid)
    assert out.read_text() == f"{tmp_path} 42 ['--flag=1']\n" and err.read_text() == "to stderr\n"
    # An uncaught exception: the traceback on stderr and status 1, as the interpreter gives them.
    script.write_text("raise ValueError('bad input')\n")
    result = warm_python.run([sys.executable, script], timeout=300)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == "ValueError: bad input"
