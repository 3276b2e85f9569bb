"""The lock two pytest workers share (tests/fixtures/scheduling.py): tests share the machine, an `alone` test
has it to itself, and one waiting for it is not overtaken. `flock` locks belong to each open of the file, so
threads stand in for the worker processes."""

import threading

from tests.fixtures.scheduling import cores_for_test

PATIENCE = 60  # seconds an expected entry may take on a busy machine
A_MOMENT = 0.5  # how long an entry that must not happen is watched for


class Holder(threading.Thread):
    """Holds the room for one test in a thread: `entered` when in, leaves when `leave` is set."""

    def __init__(self, lock_dir, alone: bool):
        super().__init__(daemon=True)
        self.lock_dir, self.alone = lock_dir, alone
        self.entered, self.leave = threading.Event(), threading.Event()

    def run(self):
        with cores_for_test(self.lock_dir, alone=self.alone):
            self.entered.set()
            self.leave.wait(PATIENCE)


def test_tests_share_the_room_and_an_alone_test_waits_for_it_empty_and_is_not_overtaken(tmp_path):
    first, second = Holder(tmp_path, alone=False), Holder(tmp_path, alone=False)
    first.start()
    second.start()
    assert first.entered.wait(PATIENCE) and second.entered.wait(PATIENCE)  # two tests at once

    alone = Holder(tmp_path, alone=True)
    alone.start()
    assert not alone.entered.wait(A_MOMENT)  # the room is not empty
    latecomer = Holder(tmp_path, alone=False)
    latecomer.start()
    assert not latecomer.entered.wait(A_MOMENT)  # queued behind the alone test, not beside the first two

    first.leave.set()
    second.leave.set()
    assert alone.entered.wait(PATIENCE)
    assert not latecomer.entered.wait(A_MOMENT)  # nothing beside the alone test
    alone.leave.set()
    assert latecomer.entered.wait(PATIENCE)
    latecomer.leave.set()
    for holder in (first, second, alone, latecomer):
        holder.join(PATIENCE)
        assert not holder.is_alive()
