"""`multiarch host up` on the real host: idempotent, honest when it cannot act, and the offline
base images it seeds work unchanged in a Dockerfile."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pytest_multiarch.core.platforms import parse_platforms
from pytest_multiarch.provision.bases import BASE_IMAGES
from pytest_multiarch.provision.host import HostSetup

# These tests change, or depend on, the machine's binfmt_misc handlers (see binfmt_lock).
pytestmark = pytest.mark.usefixtures("root_host", "binfmt_lock")


BINFMT = Path("/proc/sys/fs/binfmt_misc")


def test_second_run_changes_nothing() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_multiarch.cli",
            "host",
            "up",
            "--platforms",
            "amd64,arm64",
            "--bases",
            "busybox",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert steps, result.stdout
    assert all("skipped]" in line for line in steps), result.stdout
    assert "host ready for amd64, arm64" in result.stdout


def test_without_root_it_lists_the_remedy_and_changes_nothing(ppc64le_disabled: Path) -> None:
    lines: list[str] = []
    setup = HostSetup(
        parse_platforms("ppc64le", source="test"),
        [BASE_IMAGES["busybox"]],
        log=lines.append,
        is_root=False,
    )
    report = setup.run()
    assert not report.ok
    assert any("ppc64le" in line and "echo 1 >" in line for line in lines), lines
    assert {step.status for step in report.steps} <= {"skipped", "needs-root"}
    assert [step.name for step in report.pending] == ["ppc64le"]
    assert "enabled" not in ppc64le_disabled.read_text().splitlines()[0]


def test_debian_base_builds_offline_for_arm64(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\nRUN uname -m > /m\n")
    tag = f"multiarch-offline-check:{uuid.uuid4().hex[:12]}"
    try:
        subprocess.run(
            [
                "docker",
                "buildx",
                "build",
                "--platform",
                "linux/arm64",
                "--load",
                "-t",
                tag,
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        out = subprocess.run(
            ["docker", "run", "--rm", "--platform", "linux/arm64", tag, "cat", "/m"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert out.stdout.strip() == "aarch64"
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)
