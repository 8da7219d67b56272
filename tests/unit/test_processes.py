"""Processes of this one: found from /proc, killed with their descendants, and a watch of the
parent's death (issue 21: orphaned xdist workers)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from pytest_multiarch.core.processes import alive, children_of, kill_descendants


def _wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [pid for pid in pids if alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [pid for pid in left if alive(pid)]
    return left


def test_children_and_grandchildren_are_killed() -> None:
    """The descendants of a process (a python whose child starts ``sleep``) are killed; the
    process itself is not."""
    inner = "import subprocess, time\nsubprocess.Popen(['sleep', '60'])\ntime.sleep(60)"
    outer = (
        "import subprocess, sys, time\n"
        f"c = subprocess.Popen([sys.executable, '-c', {inner!r}])\n"
        "print(c.pid, flush=True)\ntime.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", outer], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while not children_of(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        grandchildren = children_of(child)
        assert grandchildren
        assert children_of(parent.pid) == [child]
        killed = kill_descendants(parent.pid)
        assert set(killed) == {child, *grandchildren}
        assert _wait_gone([child, *grandchildren]) == []
        assert parent.poll() is None
    finally:
        parent.kill()
        parent.wait()


def test_an_orphan_notices_its_parents_death() -> None:
    """The middle process is killed; its child (watching its parent) kills its own child and
    exits without printing anything."""
    watcher = textwrap.dedent(
        """
        import os, subprocess, sys, time
        from pytest_multiarch.core.processes import kill_descendants, watch_parent

        def leave():
            kill_descendants(os.getpid())
            os._exit(9)

        watch_parent(leave, interval=0.05)
        sleeper = subprocess.Popen(["sleep", "60"])
        print(os.getpid(), sleeper.pid, flush=True)
        time.sleep(60)
        print("still here", flush=True)
        """
    )
    middle_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {watcher!r}])
        time.sleep(60)
        """
    )
    middle = subprocess.Popen(
        [sys.executable, "-c", middle_code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert middle.stdout is not None
        orphan, sleeper = (int(pid) for pid in middle.stdout.readline().split())
        middle.kill()
        middle.wait(timeout=10)
        assert _wait_gone([orphan, sleeper]) == []
        assert middle.stdout.read() == ""  # EOF: nobody holds the pipe, nothing was printed
    finally:
        if middle.poll() is None:
            middle.kill()
            middle.wait()
