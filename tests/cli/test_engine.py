"""`multiarch host engine up|down NAME` on the real host: a second engine that runs containers
beside the default one, never disturbs it (docker0 stays), and goes away cleanly, even after
its dockerd was killed with containers running."""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_multiarch.provision.second_engines import engine_layout, shim_pids

pytestmark = pytest.mark.usefixtures("root_host")


def multiarch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_multiarch.cli", "host", "engine", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def docker(*args: str, host: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "DOCKER_HOST"}
    if host is not None:
        env["DOCKER_HOST"] = host
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def step_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[")]


def default_engine_works() -> None:
    result = docker("run", "--rm", "busybox", "true")
    assert result.returncode == 0, result.stderr
    assert subprocess.run(["ip", "link", "show", "docker0"], capture_output=True).returncode == 0


@pytest.fixture
def engine_name() -> Iterator[str]:
    name = f"cli{uuid.uuid4().hex[:6]}"
    try:
        yield name
    finally:
        multiarch("down", name, "--purge")


def test_second_engine_runs_beside_the_default_one(engine_name: str) -> None:
    layout = engine_layout(engine_name)
    up = multiarch("up", engine_name)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"export DOCKER_HOST={layout.docker_host}" in up.stdout
    assert all("done]" in line for line in step_lines(up.stdout)), up.stdout

    again = multiarch("up", engine_name)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all("skipped]" in line for line in step_lines(again.stdout)), again.stdout

    ran = docker("run", "--rm", "busybox", "uname", "-m", host=layout.docker_host)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == platform.machine()
    root = docker("info", "--format", "{{.DockerRootDir}}", host=layout.docker_host)
    assert root.stdout.strip() == str(layout.data_root)
    default_root = docker("info", "--format", "{{.DockerRootDir}}")
    assert default_root.stdout.strip() != str(layout.data_root)
    default_engine_works()

    down = multiarch("down", engine_name, "--purge")
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"engine {engine_name} stopped" in down.stdout
    assert not layout.run_dir.exists()
    assert not layout.data_dir.exists()
    bridge = subprocess.run(["ip", "link", "show", layout.bridge], capture_output=True)
    assert bridge.returncode != 0
    default_engine_works()


def test_down_after_the_engine_was_killed_leaves_nothing_running(engine_name: str) -> None:
    layout = engine_layout(engine_name)
    up = multiarch("up", engine_name)
    assert up.returncode == 0, up.stdout + up.stderr
    started = docker("run", "-d", "busybox", "sleep", "600", host=layout.docker_host)
    assert started.returncode == 0, started.stderr
    os.kill(int(layout.docker_pidfile.read_text()), signal.SIGKILL)

    down = multiarch("down", engine_name)
    assert down.returncode == 0, down.stdout + down.stderr
    assert re.search(r"done\] \S+ containers: killed", down.stdout), down.stdout
    assert shim_pids(layout.containerd_socket) == []
    mounts = Path("/proc/self/mounts").read_text()
    assert str(layout.run_dir) not in mounts
    assert str(layout.data_dir) not in mounts
    assert "kept" in down.stdout  # without --purge its images stay for the next `up`
    default_engine_works()
