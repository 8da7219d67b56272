"""Background daemons without systemd: start detached, wait until they answer, tell a live
one from a stale pid file. Shared by the machine's own engine and second engines."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_multiarch.core.processes import alive


def start_background(command: Sequence[str], log_path: Path) -> int:
    """Start a daemon in its own session (it outlives this process), output appended to
    ``log_path``; its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return process.pid


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def live_pid(pidfile: Path, command_name: str) -> int | None:
    """The pid in ``pidfile`` when that process is alive and is ``command_name`` (a pid file
    outlives its daemon, and the pid may since belong to another program)."""
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    if not text.isdigit() or not alive(int(text)):
        return None
    try:
        comm = Path(f"/proc/{text}/comm").read_text().strip()
    except OSError:
        return None
    return int(text) if comm == command_name[:15] else None


def remove_stale_pidfile(pidfile: Path, command_name: str) -> bool:
    """Remove ``pidfile`` unless it names a live ``command_name``: dockerd refuses to start
    while the process of its pid file exists, even as a zombie or as another program."""
    if not pidfile.exists() or live_pid(pidfile, command_name) is not None:
        return False
    pidfile.unlink(missing_ok=True)
    return True


def socket_accepts(path: Path) -> bool:
    """Something listens on the unix socket ``path`` (connecting changes nothing)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def registry_answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
