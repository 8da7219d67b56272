"""`multiarch doctor` against the real host: ready after bootstrap, and clear (and quick) when an
emulator or the engine is missing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# These tests change, or depend on, the machine's binfmt_misc handlers (see binfmt_lock).
pytestmark = pytest.mark.usefixtures("docker_engine", "binfmt_lock")


BINFMT = Path("/proc/sys/fs/binfmt_misc")
MULTIARCH = [sys.executable, "-m", "pytest_multiarch.cli"]


def doctor(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MULTIARCH, "doctor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_ready_after_bootstrap() -> None:
    result = doctor("--platforms", "amd64,arm64,s390x")
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in ("engine", "buildx", "containerd image store"):
        assert expected in result.stdout
    lines = result.stdout.splitlines()
    for short, machine in (("arm64", "aarch64"), ("s390x", "s390x")):
        assert any(
            line.startswith("probe") and f" {short} " in line and f"uname -m = {machine}" in line
            for line in lines
        ), result.stdout
        assert any(
            line.startswith("emulator")
            and f" {short} " in line
            and "flags PF" in line
            and "QEMU" in line
            for line in lines
        ), result.stdout
    assert result.stdout.rstrip().endswith("OK: amd64, arm64, s390x")


def test_json_output() -> None:
    result = doctor("--platforms", "arm64", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True
    probe = [c for c in data["checks"] if c["name"] == "probe" and c["platform"] == "arm64"]
    assert [c["status"] for c in probe] == ["ok"]


@pytest.fixture
def s390x_unregistered(unavailable: Callable[[str], None]) -> Iterator[None]:
    """Unregister the real s390x handler (as the issue describes), and register it again."""
    handler = BINFMT / "qemu-s390x"
    if os.geteuid() != 0 or not handler.exists():
        unavailable("needs root and a registered qemu-s390x handler (scripts/bootstrap)")
    handler.write_text("-1")
    try:
        yield
    finally:
        subprocess.run(
            ["update-binfmts", "--enable", "qemu-s390x"], check=False, capture_output=True
        )
        assert handler.exists(), "could not register qemu-s390x again"


def test_unregistered_emulator_names_platform_and_remedy(s390x_unregistered: None) -> None:
    started = time.monotonic()
    result = doctor("--platforms", "amd64,arm64,s390x", timeout=60)
    elapsed = time.monotonic() - started
    assert elapsed < 30
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    failing = [i for i, line in enumerate(lines) if " s390x " in line and "FAIL" in line]
    assert failing, result.stdout
    assert "no binfmt_misc handler qemu-s390x" in lines[failing[0]]
    assert "remedy:" in lines[failing[0] + 1]
    assert "update-binfmts --enable qemu-s390x" in lines[failing[0] + 1]
    assert "apt-get install qemu-user-static" in lines[failing[0] + 1]
    # The other platforms are still reported ready.
    assert any(line.startswith("probe") and " arm64 " in line and " OK " in line for line in lines)
    assert "NOT READY" in result.stdout


def test_engine_down_is_a_clear_line_not_a_hang(tmp_path: Path) -> None:
    # A socket path with nothing behind it: what the CLI sees when dockerd is stopped.
    started = time.monotonic()
    result = doctor(
        "--platforms",
        "amd64,arm64",
        env={"DOCKER_HOST": f"unix://{tmp_path}/docker.sock"},
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    engine_line = next(line for line in result.stdout.splitlines() if line.startswith("engine"))
    assert "FAIL" in engine_line
    assert "Docker engine not reachable" in engine_line
    assert "multiarch host up" in result.stdout


def test_hung_engine_times_out(tmp_path: Path) -> None:
    # A daemon that accepts connections and never answers must not hang doctor.
    path = str(tmp_path / "hung.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        result = doctor("--platforms", "amd64", env={"DOCKER_HOST": f"unix://{path}"}, timeout=90)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    assert result.returncode == 1
    assert elapsed < 40
    assert "did not finish within" in result.stdout or "not reachable" in result.stdout


def test_doctor_checks_every_image_toml(tmp_path: Path) -> None:
    """A bad image.toml is found before a run: the file, the key, a suggestion; others pass."""
    for name, toml in (("good", "platforms = ['amd64']\n"), ("bad", "[wait]\nlgo = 'ready'\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text("FROM busybox:latest\n")
        (tmp_path / name / "image.toml").write_text(toml)
    result = doctor("--platforms", "amd64", "--no-probe", "--images", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    bad = f"{tmp_path}/bad/image.toml: key 'wait.lgo': unknown key (did you mean 'log'?)"
    assert any(line.startswith("image") and "FAIL" in line and bad in line for line in lines), (
        result.stdout
    )
    assert any(line.startswith("image") and "OK" in line and "good:" in line for line in lines)
    assert result.stdout.rstrip().endswith("NOT READY: amd64")


def test_doctor_lists_what_the_registry_mirror_holds() -> None:
    """Offline, the mirror's images are the only bases there are: doctor names them, with their
    aliases (issue 20.8)."""
    result = doctor("--platforms", "amd64", "--no-probe")
    mirror = [line for line in result.stdout.splitlines() if line.startswith("mirror")]
    assert mirror, result.stdout
    assert "127.0.0.1:5000 holds: " in mirror[0], mirror
    assert "busybox:latest (also " in mirror[0], mirror
    assert "debian:bookworm-slim (also " in mirror[0], mirror
    assert "multiarch-seed" not in mirror[0], mirror


def test_doctor_checks_a_podman_engine(podman_engine: str) -> None:
    result = doctor("--platforms", "amd64,arm64", "--engine", f"arm64={podman_engine}", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {(c["name"], c["platform"]): c for c in json.loads(result.stdout)["checks"]}
    assert "Podman 4." in checks["engine", "arm64"]["detail"]
    podman = checks["podman", "arm64"]
    assert podman["status"] == "ok"
    assert "rootful" in podman["detail"]  # root's service on this machine
    assert checks["build", "arm64"]["status"] == "ok"
    assert "podman build" in checks["build", "arm64"]["detail"]
    assert "flags PF" in checks["emulator", "arm64"]["detail"]  # the F flag serves Podman
    # The probe pulls for the platform: Podman would otherwise run its last pull's architecture.
    assert checks["probe", "arm64"]["status"] == "ok"
    assert "uname -m = aarch64" in checks["probe", "arm64"]["detail"]
    assert ("buildx", "arm64") not in checks


def test_doctor_names_an_engine_on_podman(podman_engine: str) -> None:
    result = doctor("--platforms", "arm64", env={"DOCKER_HOST": podman_engine})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Podman 4." in result.stdout
    assert "rootful" in result.stdout
    assert "uname -m = aarch64" in result.stdout


def test_doctor_checks_every_engine_of_a_pool(podman_engine: str, tmp_path: Path) -> None:
    # Any engine of a pool may run the platform's tests: each one is checked and probed.
    result = doctor("--platforms", "arm64", "--engine", f"arm64=default,{podman_engine}", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = json.loads(result.stdout)["checks"]
    probes = [c for c in checks if c["name"] == "probe" and c["platform"] == "arm64"]
    assert len(probes) == 2, probes
    assert all("uname -m = aarch64" in c["detail"] for c in probes), probes
    engines = [c["detail"] for c in checks if c["name"] == "engine"]
    assert any("Podman 4." in detail for detail in engines), engines
    # A pool whose second engine is down is not ready, and the line names that engine.
    down = f"unix://{tmp_path}/gone.sock"
    result = doctor("--platforms", "arm64", "--no-probe", "--engine", f"arm64=default,{down}")
    assert result.returncode == 1, result.stdout + result.stderr
    failing = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert len(failing) == 1, result.stdout
    assert failing[0].startswith("engine"), result.stdout
    assert down in failing[0], result.stdout
    assert result.stdout.rstrip().endswith("NOT READY: arm64")
