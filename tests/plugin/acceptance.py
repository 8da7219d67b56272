"""Helpers for the plugin's acceptance tests: a throw-away project with tiny images, run by a
real inner pytest session (in a subprocess) against the real engine, buildx and QEMU."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

RUN_LABEL = "pytest-multiarch.run"


@pytest.fixture(autouse=True)
def needs_docker(docker_engine: None) -> None:
    """Every acceptance test runs real inner sessions against the real engine."""


def containers_of_run(run_id: str, *, all_states: bool = True) -> list[str]:
    args = ["docker", "ps", "-q", "--filter", f"label={RUN_LABEL}={run_id}"]
    if all_states:
        args.insert(2, "-a")
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.split()


@dataclass
class Project:
    """A directory with images/ and tests, plus a docker CLI shim that logs every call."""

    pytester: pytest.Pytester
    docker_log: Path

    @property
    def path(self) -> Path:
        return self.pytester.path

    def image(self, name: str, dockerfile: str, toml: str = "", *, unique: bool = True) -> Path:
        directory = self.path / "images" / name
        directory.mkdir(parents=True, exist_ok=True)
        body = textwrap.dedent(dockerfile).strip() + "\n"
        if unique:
            # A fresh input digest, so this test really builds instead of reusing another's tag.
            body += f"# nonce {uuid.uuid4().hex}\n"
        (directory / "Dockerfile").write_text(body)
        if toml:
            (directory / "image.toml").write_text(textwrap.dedent(toml))
        return directory

    def tests(self, source: str, name: str = "test_images.py") -> Path:
        path = self.path / name
        path.write_text(textwrap.dedent(source))
        return path

    def run(self, *args: str, timeout: float = 900) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)

    def docker_calls(self) -> list[str]:
        if not self.docker_log.exists():
            return []
        return self.docker_log.read_text().splitlines()

    def builds(self) -> list[str]:
        return [call for call in self.docker_calls() if call.startswith("buildx build")]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    for name in list(os.environ):
        if name.startswith("MULTIARCH_") or name.startswith("PYTEST_XDIST"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    log = pytester.path / "docker-calls.log"
    shim = pytester.path / "docker-shim"
    real = shutil.which("docker") or "docker"
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("MULTIARCH_DOCKER", str(shim))
    return Project(pytester, log)


def assert_outcome(result: pytest.RunResult, test_id: str, outcome: str) -> None:
    """``test_id`` shows ``outcome`` in verbose output, with or without xdist."""
    escaped = re.escape(test_id)
    pattern = re.compile(rf"{escaped}\s.*\b{outcome}\b|\b{outcome}\b.*\s\S*{escaped}(\s|$)")
    lines = result.stdout.lines
    assert any(pattern.search(line) for line in lines), (
        f"{test_id} not reported {outcome}:\n" + "\n".join(lines[-60:])
    )


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


BUSYBOX_IMAGE = """
    FROM busybox:latest
    ARG TARGETPLATFORM
    ARG TARGETARCH
    RUN echo "$TARGETPLATFORM" > /built-for && echo "$TARGETARCH" > /target-arch
    CMD ["sh", "-c", "echo ready; exec sleep 600"]
"""
