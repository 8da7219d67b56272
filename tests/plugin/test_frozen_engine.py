"""An engine frozen before the run begins (issue 21 point 3): like an engine that is down, it
fails the tests that need it at once, with a message that names it, and the run ends with its
report written. How fast is measured by benchmarks/frozen_engine.py, not here; a freeze in
the middle of a run is tests/plugin/test_faults.py's.

The engine frozen is the second engine of this machine (tests/plugin/conftest.py), never the
machine's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from acceptance import BUSYBOX_IMAGE, Project, junit_outcomes, read_json

if TYPE_CHECKING:
    from pytest_multiarch.provision.second_engines import EngineLayout

TESTS = """
import pytest

pytestmark = pytest.mark.image("box")


@pytest.mark.parametrize("n", range(3))
def test_run(run, platform, n):
    assert run(["true"]).exit_code == 0


@pytest.mark.parametrize("n", range(2))
def test_container(container, platform, n):
    assert container.exec(["true"]).exit_code == 0


def test_no_engine():
    pass
"""
# Generous: the run must end, not hang; its speed is the benchmark's.
RUN_LIMIT = 120


@pytest.mark.parametrize("workers", ["0", "2"])
def test_an_engine_frozen_before_the_run_fails_its_tests_and_the_run_ends(
    project: Project,
    second_engine: EngineLayout,
    monkeypatch: pytest.MonkeyPatch,
    workers: str,
) -> None:
    host = second_engine.docker_host
    monkeypatch.setenv("DOCKER_HOST", host)
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(TESTS)
    report, junit = project.path / "report.json", project.path / "junit.xml"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE"]
    command += ["--platforms", "amd64,arm64", "-n", workers]
    command += ["--multiarch-json", str(report), "--junitxml", str(junit)]
    daemon = int(second_engine.docker_pidfile.read_text().strip())
    os.kill(daemon, signal.SIGSTOP)
    try:
        inner = subprocess.run(
            command,
            cwd=project.path,
            capture_output=True,
            text=True,
            timeout=RUN_LIMIT,
            check=False,
        )
    finally:
        os.kill(daemon, signal.SIGCONT)
    output = inner.stdout + inner.stderr
    assert "INTERNALERROR" not in output, output
    assert "Traceback" not in output, output
    assert inner.returncode == 1, output
    lost = f"Docker engine at {host} stopped answering"
    outcomes = junit_outcomes(junit)
    assert len(outcomes) == 11, outcomes
    for name, (outcome, message) in outcomes.items():
        if name.endswith("test_no_engine"):
            assert outcome == "passed", (name, message)  # needs no engine: runs as ever
        else:
            assert outcome == "error", (name, message)
            assert lost in message, f"{name}: {message}"
    tests = read_json(report)["tests"]  # the tests of a platform: those that needed it
    assert len(tests) == 10, tests
    assert all(t["outcome"] != "passed" for t in tests), tests
    assert lost in output
