"""The Podman build path: its command line, and what stops a build on a Podman engine early."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.core.secrets import BuildSecret
from pytest_multiarch.engine.endpoints import EngineRef
from pytest_multiarch.engine.podman import podman_url, too_old, version_tuple
from pytest_multiarch.model.progress import BuildLogParser
from pytest_multiarch.model.records import BuilderFacts
from pytest_multiarch.runtime.build import IMAGE_LABEL, _podman_problem, podman_build_command
from pytest_multiarch.runtime.build_cache import BuildCache

SOCKET = "unix:///run/podman/podman.sock"
ARM64 = replace(lookup("arm64"), engine=SOCKET)


@pytest.fixture(autouse=True)
def plain_podman(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_multiarch.engine.podman.PODMAN", "podman")


def spec(tmp_path: Path, **changes: object) -> ImageSpec:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\n")
    return replace(ImageSpec(name="web", directory=tmp_path), **changes)  # type: ignore[arg-type]


def test_podman_build_command(tmp_path: Path) -> None:
    image = spec(
        tmp_path,
        target="final",
        build_args={"B": "2", "A": "1"},
        secrets=(BuildSecret("token", "MY_TOKEN"),),
    )
    command = podman_build_command(image, ARM64, "pytest-multiarch/web:x-arm64", SOCKET)
    assert command == [
        "podman",
        "--url",
        SOCKET,
        "build",
        "--platform",
        "linux/arm64",
        "--tag",
        "pytest-multiarch/web:x-arm64",
        "--label",
        f"{IMAGE_LABEL}=web",
        "--target",
        "final",
        "--build-arg",
        "A=1",
        "--build-arg",
        "B=2",
        # The secret's value stays in the environment, never on the command line.
        "--secret",
        "id=token,env=MY_TOKEN",
        "--file",
        str(tmp_path / "Dockerfile"),
        str(tmp_path),
    ]


def test_podman_build_of_a_ref_reads_from_stdin(tmp_path: Path) -> None:
    image = spec(tmp_path, ref="busybox:latest")
    command = podman_build_command(image, ARM64, "t", SOCKET, context="/tmp/empty")
    assert command[-3:] == ["--file", "-", "/tmp/empty"]


def test_version_parsing() -> None:
    assert version_tuple("4.3.1") == (4, 3, 1)
    assert version_tuple("5.0.0-rc1") == (5, 0, 0)
    assert version_tuple("?") == ()
    assert too_old("3.4.4")
    assert not too_old("4.3.1")
    assert not too_old("?")  # unreadable: Podman itself says what it lacks


def test_too_old_podman_is_named_with_what_to_do(tmp_path: Path) -> None:
    problem = _podman_problem(spec(tmp_path), ARM64, "3.4.4", None, None)
    assert f"Podman 3.4.4 at {SOCKET}" in problem
    assert "too old" in problem
    assert "multiarch host up --podman" in problem


def test_buildx_builder_on_podman_is_refused(tmp_path: Path) -> None:
    builder = BuilderFacts("remote-x", "remote", "registry", "127.0.0.1:5000/x")
    problem = _podman_problem(spec(tmp_path), ARM64, "4.3.1", builder, None)
    assert "buildx builder 'remote-x'" in problem
    assert "Podman 4.3.1" in problem
    assert "[tool.multiarch.builders]" in problem


def test_build_cache_on_podman_is_refused(tmp_path: Path) -> None:
    problem = _podman_problem(spec(tmp_path), ARM64, "4.3.1", None, BuildCache("local", "/c"))
    assert "--build-cache" in problem
    assert "Podman 4.3.1" in problem


def test_missing_podman_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_multiarch.engine.podman.PODMAN", "no-such-podman-client")
    problem = _podman_problem(spec(tmp_path), ARM64, "4.3.1", None, None)
    assert "podman client is not installed" in problem


def test_podman_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", SOCKET)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    assert podman_url(None) == SOCKET
    assert podman_url(EngineRef("ssh://ci@box/run/podman/podman.sock")).startswith("ssh://")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    with pytest.raises(ConfigError, match="does not speak TLS"):
        podman_url(EngineRef("tcp://box:2376"))


def test_progress_follows_podman_steps() -> None:
    parser = BuildLogParser()
    assert parser.feed("STEP 1/3: FROM busybox:latest") == "[1/3] FROM busybox:latest"
    assert parser.feed("Copying blob sha256:abc") == "[1/3] FROM busybox:latest"
    assert parser.feed("STEP 3/3: RUN make") == "[3/3] RUN make"


def test_secrets_go_to_podman_as_private_files(tmp_path: Path) -> None:
    from pytest_multiarch.runtime.build import _secret_files

    image = spec(tmp_path / "ctx", secrets=(BuildSecret("token", "MY_TOKEN"),))
    files = _secret_files({"token": "s3cret"}, str(tmp_path))
    assert Path(files["token"]).read_text() == "s3cret"
    assert Path(files["token"]).stat().st_mode & 0o777 == 0o600
    command = podman_build_command(image, ARM64, "t", SOCKET, secret_files=files)
    assert f"id=token,src={files['token']}" in command
    assert "s3cret" not in " ".join(command)
