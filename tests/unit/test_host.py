"""desired_daemon_json, registry_address, pid files and the foreign-engine refusal: the parts
of ``multiarch host up`` that need no root."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.cli import main
from pytest_multiarch.core import processes
from pytest_multiarch.provision import daemons, host
from pytest_multiarch.provision.host import (
    DEFAULT_REGISTRY_PORT,
    EngineTarget,
    ForeignEngine,
    desired_daemon_json,
    engine_target,
    foreign_engine_problem,
    refuse_foreign_engine,
    registry_address,
)
from pytest_multiarch.provision.steps import Step

MIRROR = "http://127.0.0.1:5000"


@pytest.mark.parametrize(("store", "expected"), [("containerd", True), ("classic", False)])
def test_adds_snapshotter_when_absent(store: str, expected: bool) -> None:
    assert desired_daemon_json({}, store, None) == {
        "features": {"containerd-snapshotter": expected}
    }


@pytest.mark.parametrize("users_choice", [True, False])
@pytest.mark.parametrize("store", ["containerd", "classic"])
def test_keeps_users_explicit_snapshotter_choice(users_choice: bool, store: str) -> None:
    current = {"features": {"containerd-snapshotter": users_choice}}
    wanted = desired_daemon_json(current, store, None)
    assert wanted["features"]["containerd-snapshotter"] is users_choice


def test_keeps_other_settings_and_features() -> None:
    current = {
        "log-driver": "json-file",
        "features": {"buildkit": True},
        "registry-mirrors": ["http://cache.example"],
    }
    wanted = desired_daemon_json(current, "containerd", MIRROR)
    assert wanted == {
        "log-driver": "json-file",
        "features": {"buildkit": True, "containerd-snapshotter": True},
        "registry-mirrors": ["http://cache.example", MIRROR],
    }


def test_adds_mirror_once() -> None:
    once = desired_daemon_json({}, "containerd", MIRROR)
    assert once["registry-mirrors"] == [MIRROR]
    twice = desired_daemon_json(once, "containerd", MIRROR)
    assert twice["registry-mirrors"] == [MIRROR]
    assert twice == once


@pytest.mark.parametrize("mirror", [None, ""])
def test_no_mirror_adds_no_mirror_key(mirror: str | None) -> None:
    assert "registry-mirrors" not in desired_daemon_json({}, "containerd", mirror)


def test_is_idempotent() -> None:
    first = desired_daemon_json({"debug": True}, "classic", MIRROR)
    assert desired_daemon_json(first, "containerd", MIRROR) == first


def test_does_not_mutate_its_input() -> None:
    current: dict[str, Any] = {
        "features": {"buildkit": True},
        "registry-mirrors": ["http://cache.example"],
    }
    before = copy.deepcopy(current)
    wanted = desired_daemon_json(current, "containerd", MIRROR)
    assert current == before
    assert wanted is not current
    assert wanted["features"] is not current["features"]
    assert wanted["registry-mirrors"] is not current["registry-mirrors"]
    wanted["features"]["x"] = 1
    assert current == before


def test_unchanged_config_compares_equal() -> None:
    # host up writes daemon.json only when the result differs from what is there
    current = {"features": {"containerd-snapshotter": False}, "registry-mirrors": [MIRROR]}
    assert desired_daemon_json(current, "containerd", MIRROR) == current


# ---- registry_address ----------------------------------------------------------------------------


def test_registry_address_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MULTIARCH_REGISTRY_PORT", raising=False)
    assert DEFAULT_REGISTRY_PORT == 5000
    assert registry_address() == "127.0.0.1:5000"


def test_registry_address_explicit_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIARCH_REGISTRY_PORT", "6000")
    assert registry_address(5999) == "127.0.0.1:5999"


def test_registry_address_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIARCH_REGISTRY_PORT", "6000")
    assert registry_address() == "127.0.0.1:6000"
    assert registry_address(None) == "127.0.0.1:6000"


def _zombie() -> subprocess.Popen[bytes]:
    """A child that has exited but is not reaped yet: what a killed daemon leaves behind when
    its parent never waits for it."""
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return child


def test_a_zombie_is_not_a_running_daemon() -> None:
    child = _zombie()
    try:
        assert processes.alive(child.pid) is False
        assert processes.alive(os.getpid()) is True
    finally:
        child.wait()
    assert processes.alive(child.pid) is False


OWN_COMMAND = Path("/proc/self/comm").read_text().strip()


def test_stale_pidfile_is_removed_but_a_live_one_is_kept(tmp_path: Path) -> None:
    pidfile = tmp_path / "docker.pid"
    child = _zombie()
    try:
        pidfile.write_text(f"{child.pid}\n")
        assert daemons.remove_stale_pidfile(pidfile, "true") is True
        assert not pidfile.exists()
    finally:
        child.wait()
    pidfile.write_text(str(os.getpid()))
    assert daemons.remove_stale_pidfile(pidfile, OWN_COMMAND) is False
    assert pidfile.exists()
    assert daemons.remove_stale_pidfile(tmp_path / "absent.pid", "dockerd") is False


def test_a_pidfile_naming_another_program_is_stale(tmp_path: Path) -> None:
    # After a reboot or a crash the pid may belong to some other live process.
    pidfile = tmp_path / "docker.pid"
    pidfile.write_text(str(os.getpid()))
    assert daemons.live_pid(pidfile, OWN_COMMAND) == os.getpid()
    assert daemons.live_pid(pidfile, "dockerd") is None
    assert daemons.remove_stale_pidfile(pidfile, "dockerd") is True
    assert not pidfile.exists()


# ---- the engine host up sets up ------------------------------------------------------------------


def no_context() -> tuple[str, str] | None:
    return None


def test_no_docker_host_and_no_context_is_this_machine() -> None:
    target = engine_target({}, no_context)
    assert target == EngineTarget(host.DEFAULT_ENGINE, "default")
    assert target.local
    assert foreign_engine_problem(target) == ""


@pytest.mark.parametrize("endpoint", ["unix:///var/run/docker.sock", "unix:///run/docker.sock"])
def test_docker_host_at_the_default_socket_is_this_machine(endpoint: str) -> None:
    assert foreign_engine_problem(engine_target({"DOCKER_HOST": endpoint}, no_context)) == ""


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://192.0.2.7:2376",
        "ssh://me@arm-box",
        "unix:///run/pytest-multiarch/second/docker.sock",
    ],
)
def test_docker_host_elsewhere_is_refused_naming_it(endpoint: str) -> None:
    problem = foreign_engine_problem(engine_target({"DOCKER_HOST": endpoint}, no_context))
    assert f"DOCKER_HOST={endpoint}" in problem
    assert "unset DOCKER_HOST" in problem
    assert "on the machine it runs on" in problem


def test_docker_host_wins_over_the_context() -> None:
    def remote() -> tuple[str, str] | None:
        raise AssertionError("the context is not asked when DOCKER_HOST is set")

    assert engine_target({"DOCKER_HOST": "unix:///var/run/docker.sock"}, remote).local


def test_a_context_at_another_engine_is_refused_naming_it() -> None:
    target = engine_target({}, lambda: ("arm-box", "ssh://me@arm-box"))
    assert target == EngineTarget("ssh://me@arm-box", "context", "arm-box")
    problem = foreign_engine_problem(target)
    assert "docker context 'arm-box' (ssh://me@arm-box)" in problem
    assert "docker context use default" in problem


def test_the_default_context_is_this_machine() -> None:
    assert engine_target({}, lambda: ("default", "unix:///var/run/docker.sock")).local


def test_refuse_foreign_engine_raises() -> None:
    with pytest.raises(ForeignEngine, match=re.escape("DOCKER_HOST=tcp://192.0.2.7:2376")):
        refuse_foreign_engine({"DOCKER_HOST": "tcp://192.0.2.7:2376"}, no_context)
    refuse_foreign_engine({}, no_context)


def test_host_up_with_docker_host_elsewhere_exits_2_before_any_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_step(self: host.HostSetup) -> Iterator[Step]:
        raise AssertionError("no step may run against another engine")

    monkeypatch.setattr(host.HostSetup, "steps", no_step)
    monkeypatch.setenv("DOCKER_HOST", "tcp://192.0.2.7:2376")
    assert main(["host", "up", "--platforms", "amd64", "--bases", "busybox"]) == 2
    captured = capsys.readouterr()
    assert "DOCKER_HOST=tcp://192.0.2.7:2376" in captured.err
    assert "sets up only this machine" in captured.err
    assert captured.out == ""
