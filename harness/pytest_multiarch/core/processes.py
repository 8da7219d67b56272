"""Facts about local processes, read from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """Fields 3 onwards of /proc/<pid>/stat (state first), or None when there is no such
    process. The command name before them may contain spaces, so the split is after its ')'."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def start_ticks(pid: int) -> str | None:
    """When ``pid`` started (field 22, clock ticks since boot): tells a reused pid apart."""
    fields = stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an exited daemon whose parent never reaped
    it still has a /proc entry, and pgrep still lists it)."""
    fields = stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] != "Z"


def children_of(pid: int) -> list[int]:
    """Every process whose parent is ``pid`` (from /proc; a snapshot)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is not None and len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def kill_descendants(pid: int) -> list[int]:
    """SIGKILL every descendant of ``pid`` (children first stopped, then their children found
    and killed too: a killed child's own children are re-parented, not gone). Returns the pids
    signalled."""
    killed: list[int] = []
    todo = children_of(pid)
    while todo:
        current = todo.pop()
        if current in killed:
            continue
        # Its children first: once it is killed they are re-parented and cannot be found.
        todo += children_of(current)
        with contextlib.suppress(OSError):
            os.kill(current, signal.SIGSTOP)
        killed.append(current)
    for current in killed:
        with contextlib.suppress(OSError):
            os.kill(current, signal.SIGKILL)
    return killed


def watch_parent(on_death: Callable[[], None], interval: float = 0.2) -> threading.Thread:
    """Call ``on_death`` (on a daemon thread) once this process's parent is gone: the process
    was re-parented (to init or a subreaper). A poll of ``getppid`` every ``interval`` seconds,
    not ``PR_SET_PDEATHSIG``: that fires when the parent *thread* that forked us exits, and it
    cannot run our own clean-up first."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        on_death()

    thread = threading.Thread(target=watch, name="multiarch-parent-watch", daemon=True)
    thread.start()
    return thread
