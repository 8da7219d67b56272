"""Fixtures shared by the acceptance tests: the throw-away project, a real registry, and the
machine's second engine. Test modules never import fixtures from one another."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from acceptance import engine_events, needs_docker, project, wait_until
from filelock import FileLock
from pytest_multiarch.provision.second_engines import EngineLayout, engine_layout

__all__ = ["engine_events", "needs_docker", "project"]

# The second engine of this machine (`multiarch host engine up e12`): its own containerd,
# dockerd, socket, data root and bridge. Tests that map a platform to another engine, build
# with its builder, or kill and freeze an engine use this one, never the machine's own.
SECOND_ENGINE = "e12"
# Shared by the xdist workers of the outer session: which of them still use the engine.
_USERS = Path(tempfile.gettempdir()) / f"pytest-multiarch-tests-{SECOND_ENGINE}"


def _multiarch() -> str:
    found = Path(sys.executable).with_name("multiarch")
    return str(found) if found.exists() else (shutil.which("multiarch") or "multiarch")


def _engine_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_multiarch(), "host", "engine", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _engine_up(unavailable: Callable[[str], NoReturn]) -> None:
    up = _engine_command("up", SECOND_ENGINE)
    if up.returncode != 0:
        unavailable(f"`multiarch host engine up {SECOND_ENGINE}` failed:\n{up.stdout}{up.stderr}")


@pytest.fixture(scope="session")
def _second_engine_for_the_session(
    root_host: None, unavailable: Callable[[str], NoReturn]
) -> Iterator[None]:
    """Up for the session, down after its last user (every xdist worker counts)."""
    if shutil.which("dockerd") is None:
        unavailable("needs dockerd to start a second engine (scripts/bootstrap)")
    _USERS.mkdir(exist_ok=True)
    me = _USERS / str(os.getpid())
    with FileLock(str(_USERS) + ".lock"):
        _engine_up(unavailable)
        me.touch()
    yield
    with FileLock(str(_USERS) + ".lock"):
        me.unlink(missing_ok=True)
        for user in _USERS.iterdir():  # a worker that was killed never said goodbye
            if not Path(f"/proc/{user.name}").exists():
                user.unlink(missing_ok=True)
        if not any(_USERS.iterdir()):
            _engine_command("down", SECOND_ENGINE)


@pytest.fixture
def second_engine(
    _second_engine_for_the_session: None, unavailable: Callable[[str], NoReturn]
) -> Iterator[EngineLayout]:
    """The second engine, for one test at a time (some kill or freeze it), up and answering
    when the test starts, and thawed after it, whatever the test did to it."""
    layout = engine_layout(SECOND_ENGINE)
    with FileLock(str(_USERS) + ".test.lock"):
        _engine_up(unavailable)  # again: a test before may have killed it
        try:
            yield layout
        finally:
            # Killed by the test (no such process): the next `up` starts it again.
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(layout.docker_pidfile.read_text().strip()), signal.SIGCONT)


@pytest.fixture
def registry(tmp_path: Path, unavailable: Callable[[str], NoReturn]) -> Iterator[str]:
    """A real registry of this test's own (Debian's docker-registry) on a loopback port that it
    picks itself; its address."""
    binary = shutil.which("docker-registry")
    if binary is None:
        unavailable("needs Debian's docker-registry (scripts/bootstrap installs it)")
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        "  delete:\n    enabled: true\n"
        "http:\n  addr: 127.0.0.1:0\n"
    )
    log = tmp_path / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )

    def listening() -> str:
        found = re.search(r"listening on (127\.0\.0\.1:\d+)", log.read_text())
        if found is None and process.poll() is not None:
            pytest.fail(f"registry exited with {process.returncode}: {log.read_text()}")
        return found.group(1) if found else ""

    try:
        yield wait_until(listening, 30, "the registry to listen", context=log.read_text)
    finally:
        process.terminate()
        process.wait(timeout=30)
