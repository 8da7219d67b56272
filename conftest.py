# The plugin itself is loaded once, through its pytest11 entry point; never list it here.
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from filelock import FileLock

pytest_plugins = ["pytester"]


@pytest.fixture
def binfmt_lock() -> Iterator[None]:
    """Held by every test that changes the machine's binfmt_misc handlers or needs the ones
    others change (s390x, ppc64le), so xdist workers never interleave them. A file lock, not
    xdist_group: --dist loadgroup silently stopped grouping with pytest 9.2 (xdist#1386)."""
    with FileLock(str(Path(tempfile.gettempdir()) / "pytest-multiarch-tests-binfmt.lock")):
        yield


@pytest.fixture
def ppc64le_disabled(binfmt_lock: None) -> Iterator[Path]:
    """The machine's real qemu-ppc64le handler, disabled for one test and enabled after it."""
    handler = Path("/proc/sys/fs/binfmt_misc/qemu-ppc64le")
    if os.geteuid() != 0 or not handler.exists():
        _unavailable("needs root and a registered qemu-ppc64le handler (scripts/bootstrap)")
    handler.write_text("0")
    try:
        yield handler
    finally:
        handler.write_text("1")


def _unavailable(reason: str) -> NoReturn:
    # In CI the bootstrap has run, so a missing piece is a failure, never a quiet skip.
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def unavailable() -> Callable[[str], NoReturn]:
    """Call with the reason when a test's host requirement is missing: a skip on a developer's
    machine, a failure in CI (where scripts/bootstrap has installed everything)."""
    return _unavailable


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A reachable Docker engine (scripts/bootstrap starts one)."""
    answered = subprocess.run(
        ["docker", "version"], capture_output=True, timeout=60, check=False
    ).returncode
    if answered != 0:
        _unavailable("no Docker engine: run scripts/bootstrap first")


@pytest.fixture(scope="session")
def root_host(docker_engine: None) -> None:
    """Root on a bootstrapped host: tests that change binfmt_misc or run `multiarch host up`."""
    if os.geteuid() != 0:
        _unavailable("needs root on a bootstrapped host (scripts/bootstrap)")


PODMAN_SOCKET = "unix:///run/podman/podman.sock"


@pytest.fixture(scope="session")
def podman_engine(docker_engine: None) -> str:
    """Podman's Docker-compatible API service (`multiarch host up --podman`, which
    scripts/bootstrap runs), answering as Podman; its endpoint."""
    answered = subprocess.run(
        ["docker", "--host", PODMAN_SOCKET, "version", "--format", "{{json .Server.Components}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if answered.returncode != 0 or "Podman Engine" not in answered.stdout:
        _unavailable(
            f"needs Podman's API service at {PODMAN_SOCKET} (`multiarch host up --podman`, "
            f"which scripts/bootstrap runs): {answered.stderr.strip() or answered.stdout.strip()}"
        )
    if shutil.which("podman") is None:
        _unavailable("needs the podman client (`multiarch host up --podman`)")
    return PODMAN_SOCKET
