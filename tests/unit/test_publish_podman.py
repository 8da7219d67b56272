"""Publishing from Podman without an engine: what is refused, and how it is said."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pytest_multiarch.publish import push
from pytest_multiarch.publish.push import PublishError, Source, engine_source


def test_podman_without_its_client_names_the_engine_version_and_remedy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(push, "podman_binary", lambda: None)
    source = Source("unix:///run/podman/podman.sock", "podman", "4.3.1")
    with pytest.raises(PublishError) as raised:
        source.podman_url()
    message = str(raised.value)
    assert "Podman 4.3.1 (unix:///run/podman/podman.sock)" in message
    assert "podman client" in message
    assert "multiarch host up --podman" in message


def test_an_engine_that_does_not_answer_is_named(tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        pytest.skip("needs the docker CLI (no engine)")
    where = f"unix://{tmp_path}/nothing.sock"
    with pytest.raises(PublishError, match="did not answer") as raised:
        engine_source(where)
    assert where in str(raised.value)


def test_a_docker_source_needs_no_podman_client() -> None:
    assert Source().kind == "docker"
    assert Source().ref is None
    assert Source("unix:///run/d2.sock").ref is not None
