"""The one inter-process lock (engine.store.locks): it excludes another process, gives up after its timeout, is free
again the moment its holder is killed, and never makes a folder it was told not to make."""

import re
import signal
import subprocess
import sys

import pytest
from conftest import ROOT

from engine.store import locks

_HOLD = """
import signal, sys
from engine.store.locks import exclusive
with exclusive(sys.argv[1]):
    print("held", flush=True)
    signal.pause()  # held until the test kills this process
"""


def test_a_held_lock_times_out_and_is_free_once_its_holder_is_killed(tmp_path):
    path = tmp_path / "deep" / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(locks.LockTimeout), locks.exclusive(path, timeout=0.2):
            pytest.fail("the lock was taken while another process held it")
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with locks.exclusive(path, timeout=10):  # the kernel let go of the dead holder's lock
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_lock_told_not_to_make_its_folder_does_not(tmp_path):
    gone = tmp_path / "deleted-workspace" / "runs" / ".scheduler.lock"
    with pytest.raises(FileNotFoundError), locks.exclusive(gone, create_folder=False):
        pass
    assert not (tmp_path / "deleted-workspace").exists()


def test_every_file_lock_of_the_studio_is_this_one():
    """The studio had two (fcntl in the scheduler, filelock for imports and migrations)."""
    offenders = [str(p.relative_to(ROOT)) for p in sorted([*(ROOT / "engine").rglob("*.py"), *(ROOT / "tests")
                                                           .rglob("*.py")])
                 if p.name not in ("locks.py", "test_locks.py")
                 and re.search(r"\bfcntl\.flock\b|\bfrom filelock\b|\bimport filelock\b", p.read_text("utf-8"))]
    assert not offenders, f"file locks outside engine.store.locks: {offenders}"
