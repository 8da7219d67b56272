"""desired_daemon_json and registry_address: the pure parts of ``multiarch host up``."""

from __future__ import annotations

import copy
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness import processes
from harness.provision import host
from harness.provision.host import DEFAULT_REGISTRY_PORT, desired_daemon_json, registry_address

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


def test_stale_pidfile_is_removed_but_a_live_one_is_kept(tmp_path: Path) -> None:
    pidfile = tmp_path / "docker.pid"
    child = _zombie()
    try:
        pidfile.write_text(f"{child.pid}\n")
        assert host._remove_stale_pidfile(pidfile) is True
        assert not pidfile.exists()
    finally:
        child.wait()
    pidfile.write_text(str(os.getpid()))
    assert host._remove_stale_pidfile(pidfile) is False
    assert pidfile.exists()
    assert host._remove_stale_pidfile(tmp_path / "absent.pid") is False
