"""Faults on a Podman engine: Ctrl-C mid-test leaves nothing of the run on Podman, and a Podman
engine lost mid-run fails the tests that need it at once, with a message naming it, and the run
ends within seconds.

The engine that is lost is a Podman API service of the test's own (``podman system service``
on a socket in a temporary directory, over the machine's Podman storage), never the machine's
shared service at unix:///run/podman/podman.sock, which other tests and sessions use."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from acceptance import (
    BUSYBOX_IMAGE,
    Project,
    assert_engine_loss_told,
    docker_cli,
    run_through_engine_loss,
    wait_until,
)

RUN_LABEL = "pytest-multiarch.run"


def _podman(*args: str) -> str:
    """``podman ARGS`` on the machine's Podman storage (what every Podman service serves)."""
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


def _left_on_podman(run_id: str) -> dict[str, str]:
    """What carries the run's label on Podman: containers (any state), networks, images,
    volumes and pods; empty values when nothing."""
    label = f"label={RUN_LABEL}={run_id}"
    return {
        "containers": _podman("ps", "-aq", "--filter", label),
        "networks": _podman("network", "ls", "-q", "--filter", label),
        "images": _podman("images", "-q", "--filter", label),
        "volumes": _podman("volume", "ls", "-q", "--filter", label),
        "pods": _podman("pod", "ps", "-q", "--filter", label),
    }


def _remove_run(run_id: str) -> None:
    """Remove what a test's run left on Podman (after a lost engine the run cannot)."""
    ids = _podman("ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").split()
    if ids:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *ids], capture_output=True, check=False)


CTRL_C_TESTS = """
import os
import pathlib
import time

import pytest

pytestmark = pytest.mark.image("box")


@pytest.mark.parametrize("n", range(2))
def test_holds_a_container(container, run, platform, n):
    assert run(["true"]).exit_code == 0
    run_id = container.get_wrapped_container().labels["pytest-multiarch.run"]
    pathlib.Path(os.environ["CTRL_C_PROGRESS"], f"{platform.short}-{n}").write_text(run_id)
    time.sleep(300)
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_ctrl_c_on_podman_leaves_nothing(
    project: Project, podman_engine: str, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """Ctrl-C (SIGINT to the inner run's process group) while tests hold containers on Podman:
    the run ends interrupted and nothing with its label is left on Podman."""
    monkeypatch.setenv("DOCKER_HOST", podman_engine)
    project.image("box", BUSYBOX_IMAGE, '[wait]\nlog = "ready"\n', unique=False)
    project.tests(CTRL_C_TESTS)
    progress = project.path / "progress"
    progress.mkdir()
    monkeypatch.setenv("CTRL_C_PROGRESS", str(progress))
    run_id = "podman-ctrl-c-" + uuid.uuid4().hex
    log = project.path / "out"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s"]
    command += ["--platforms", "amd64,arm64", "-n", workers, f"--testrunuid={run_id}"]
    with log.open("w") as output:
        inner = subprocess.Popen(
            command,
            cwd=project.path,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # The file's content, not only the file: write_text creates it before it writes.
        def holding() -> list[str]:
            return [text for path in progress.iterdir() if (text := path.read_text())]

        wait_until(
            holding,
            600,
            "a test to hold a container on Podman",
            context=lambda: log.read_text()[-4000:],
        )
        assert holding()[0] == run_id
        assert _left_on_podman(run_id)["containers"], "the test's container is not on Podman"
        os.killpg(inner.pid, signal.SIGINT)
        signalled = time.monotonic()
        returncode = inner.wait(timeout=120)
        seconds = time.monotonic() - signalled
    finally:
        if inner.poll() is None:
            os.killpg(inner.pid, signal.SIGKILL)
            inner.wait()
    output = log.read_text()
    assert returncode == pytest.ExitCode.INTERRUPTED, output
    assert "INTERNALERROR" not in output, output
    assert _left_on_podman(run_id) == dict.fromkeys(
        ("containers", "networks", "images", "volumes", "pods"), ""
    ), output
    assert seconds < 30, f"{seconds:.1f} s from Ctrl-C to the end:\n{output}"
    # Docker's engine saw none of it.
    assert not docker_cli(None, "ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").stdout


class PodmanService:
    """A Podman API service of the test's own: ``url`` to reach it, ``kill`` to lose it."""

    def __init__(self, directory: Path) -> None:
        self.url = f"unix://{directory / 'podman.sock'}"
        self.log = directory / "service.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.url],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"podman system service exited: {self.log.read_text()[-2000:]}")
        found = docker_cli(self.url, "version", "--format", "{{json .Server.Components}}")
        return found.returncode == 0 and "Podman Engine" in found.stdout

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=60)


@pytest.fixture
def own_podman_service(
    podman_engine: str, unavailable: Callable[[str], NoReturn]
) -> Iterator[PodmanService]:
    """A Podman API service on a socket of its own, answering; always killed after the test."""
    if os.geteuid() != 0:
        unavailable("needs root: the service serves the machine's (root) Podman storage")
    # A short path: a unix socket's path is limited to about 100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="pm-svc-"))
    service = PodmanService(directory)
    try:
        wait_until(service.answers, 60, "the test's own Podman service to answer", interval=0.2)
        yield service
    finally:
        service.kill()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_podman_engine_lost_mid_run_fails_its_tests_at_once(
    project: Project,
    own_podman_service: PodmanService,
    monkeypatch: pytest.MonkeyPatch,
    workers: str,
) -> None:
    host = own_podman_service.url
    monkeypatch.setenv("DOCKER_HOST", host)
    run_id = "podman-loss-" + uuid.uuid4().hex
    run = run_through_engine_loss(
        project,
        monkeypatch,
        workers,
        own_podman_service.kill,
        f"--testrunuid={run_id}",
        after=lambda: _remove_run(run_id),
    )
    assert_engine_loss_told(run, f"Podman engine at {host} stopped answering")
