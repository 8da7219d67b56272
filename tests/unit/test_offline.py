"""What a build whose base image or ref cannot be had says (issue 20.8): the image and reference,
that its registry cannot be reached, and what the engine's registry mirror holds instead."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.runtime import offline

DNS_LOG = """\
#2 [internal] load metadata for REGISTRY.example/library/python:3.12-slim
#2 ERROR: failed to do request: Head "https://REGISTRY.example/v2/library/python/manifests/3.12-slim": dial tcp: lookup REGISTRY.example on 10.0.0.53:53: no such host
ERROR: failed to solve: python:3.12-slim: failed to resolve source metadata for REGISTRY.example/library/python:3.12-slim: failed to do request: Head "https://REGISTRY.example/v2/library/python/manifests/3.12-slim": dial tcp: lookup REGISTRY.example on 10.0.0.53:53: no such host
"""  # noqa: E501 - BuildKit's lines as printed
NO_PLATFORM_LOG = (
    "ERROR: failed to solve: 127.0.0.1:5000/x:1: failed to resolve source metadata for "
    "127.0.0.1:5000/x:1: no match for platform in manifest: not found\n"
)
CATALOG = {
    "library/debian": ("12-slim", "bookworm-slim", "bookworm", "12"),
    "library/busybox": ("stable", "latest", "1.35"),
    "multiarch-seed/busybox": ("latest-amd64",),
}


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        offline,
        "engine_info",
        lambda **_: SimpleNamespace(registry_mirrors=("http://127.0.0.1:5000/",)),
    )
    monkeypatch.setattr(offline, "registry_catalog", lambda _mirror, **__: CATALOG)


def spec(tmp_path: Path, **changes: Any) -> ImageSpec:
    return ImageSpec("py", tmp_path, **changes)


@pytest.mark.usefixtures("mirror")
def test_an_unreachable_base_names_the_image_and_what_the_mirror_holds(tmp_path: Path) -> None:
    said = offline.explain(DNS_LOG, spec(tmp_path), lookup("amd64"))
    assert said == (
        "image 'py' for linux/amd64: its base image REGISTRY.example/library/python:3.12-slim "
        "(FROM) cannot be had: its registry cannot be reached (no such host; offline?); the "
        "engine's registry mirror http://127.0.0.1:5000 holds: "
        "busybox:latest (also 1.35, stable), debian:bookworm-slim (also bookworm, 12-slim, 12). "
        "Build FROM one of those, or push library/python:3.12-slim to the mirror"
    )


@pytest.mark.usefixtures("mirror")
def test_an_unreachable_ref_is_named_as_the_ref(tmp_path: Path) -> None:
    log = DNS_LOG.replace("REGISTRY.example/library/python:3.12-slim", "far.invalid/x:1")
    said = offline.explain(log, spec(tmp_path, ref="far.invalid/x:1"), lookup("arm64"))
    assert said.startswith(
        "image 'py' for linux/arm64: its ref far.invalid/x:1 cannot be had: its registry cannot "
        "be reached (no such host; offline?)"
    )
    assert said.endswith("Take one of those as ref")


def test_a_ref_without_the_platform_says_its_index_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offline, "listed_platforms", lambda *_, **__: {"linux/amd64"})
    said = offline.explain(
        NO_PLATFORM_LOG, spec(tmp_path, ref="127.0.0.1:5000/x:1"), lookup("s390x")
    )
    assert said.startswith(
        "image 'py' for linux/s390x: the published index 127.0.0.1:5000/x:1 has no linux/s390x "
        "(it has: linux/amd64). Take a ref published for linux/s390x, or leave s390x out"
    )
    # A base (FROM) without the platform keeps the hint to seed the mirror (build.py's).
    assert offline.explain(NO_PLATFORM_LOG, spec(tmp_path), lookup("s390x")) == ""


def test_other_failures_are_not_explained(tmp_path: Path) -> None:
    log = 'ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2\n'
    assert offline.explain(log, spec(tmp_path), lookup("amd64")) == ""
