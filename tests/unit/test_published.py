"""A published image as data: references, a manifest list's platforms without its attestation
manifests, the wording of a platform that is not published, and the --verify-ref override."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.published import (
    config_platform,
    index_platforms,
    is_index,
    not_published,
    not_published_for,
    parse_ref_override,
    parse_reference,
    with_ref_override,
)
from pytest_multiarch.publish.registry import platform_digests
from pytest_multiarch.runtime.published import Published, published_tag, resolve_once

AMD = "sha256:" + "a" * 64
ARM = "sha256:" + "b" * 64
ATT = "sha256:" + "c" * 64

# What `docker buildx build --platform linux/amd64,linux/arm64 --provenance=true` pushes.
BUILDX_INDEX: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"digest": AMD, "platform": {"architecture": "amd64", "os": "linux"}},
        {"digest": ARM, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {
            "digest": ATT,
            "annotations": {
                "vnd.docker.reference.digest": AMD,
                "vnd.docker.reference.type": "attestation-manifest",
            },
            "platform": {"architecture": "unknown", "os": "unknown"},
        },
    ],
}


def test_attestation_manifests_are_no_platform() -> None:
    assert index_platforms(BUILDX_INDEX) == {"linux/amd64": AMD, "linux/arm64": ARM}
    assert platform_digests(BUILDX_INDEX) == index_platforms(BUILDX_INDEX)  # one home
    assert config_platform({"os": "linux", "architecture": "arm64", "variant": "v8"}) == (
        "linux/arm64"
    )


def test_an_attestation_is_known_by_its_annotation_alone() -> None:
    entry = {
        "digest": ATT,
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    assert index_platforms({"manifests": [entry]}) == {}


def test_index_or_single_manifest() -> None:
    assert is_index(BUILDX_INDEX)
    assert is_index({"manifests": [], "mediaType": ""})
    single = {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"digest": ATT},
        "layers": [],
    }
    assert not is_index(single)
    assert index_platforms(single) == {}
    assert config_platform({"os": "linux", "architecture": "arm", "variant": "v7"}) == (
        "linux/arm/v7"
    )
    assert config_platform({"os": "linux", "architecture": "s390x"}) == "linux/s390x"


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "name"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", "", "busybox"),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", "", "busybox"),
        ("team/app:v1", "docker.io", "team/app", "v1", "", "team/app"),
        ("127.0.0.1:5000/team/app:1.2", "127.0.0.1:5000", "team/app", "1.2", "", ""),
        ("registry.example/app@" + AMD, "registry.example", "app", "", AMD, ""),
        ("localhost/app:x@" + AMD, "localhost", "app", "x", AMD, "localhost/app"),
    ],
)
def test_parse_reference(
    text: str, registry: str, repository: str, tag: str, digest: str, name: str
) -> None:
    found = parse_reference(text, "test")
    assert (found.registry, found.repository, found.tag, found.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert found.name == (name or text.split("@")[0].rsplit(":", 1)[0])
    assert found.pinned(ARM) == f"{found.name}@{ARM}"


def test_a_docker_hub_name_in_a_mirror() -> None:
    assert parse_reference("busybox:latest", "t").on("127.0.0.1:5000") == (
        "127.0.0.1:5000/library/busybox:latest"
    )
    assert parse_reference(f"team/app@{AMD}", "t").on("m:1") == f"m:1/team/app@{AMD}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("App:1", "repository 'App'"),
        ("app@sha256:123", "digest 'sha256:123'"),
        ("app:bad tag", "tag 'bad tag'"),
        ("", "repository ''"),
        ("host.example/", "repository 'host.example/'"),
    ],
)
def test_a_bad_reference_is_named_with_where_it_came_from(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_reference(text, "multiarch verify")
    message = str(caught.value)
    assert message.startswith(f"{text!r} from multiarch verify is not an image reference ({why}")
    assert "[REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]" in message


def test_the_one_wording_of_a_platform_not_published(tmp_path: Path) -> None:
    listed = ["linux/arm64", "linux/amd64"]
    assert not_published("r.example/app:1", "linux/s390x", listed) == (
        "the published index r.example/app:1 has no linux/s390x (it has: linux/amd64, linux/arm64)"
    )
    assert not_published("app:1", "linux/arm64", ["linux/amd64"], index=False) == (
        "the published manifest app:1 has no linux/arm64 (it has: linux/amd64)"
    )
    assert "could not be listed" in not_published("app:1", "linux/arm64", None)
    spec = ImageSpec(name="app", directory=tmp_path, ref="r.example/app:1")
    said = not_published_for(spec, "linux/s390x", "s390x", listed)
    assert said.startswith(
        "image 'app' for linux/s390x: the published index r.example/app:1 has no linux/s390x "
        "(it has: linux/amd64, linux/arm64). Take a ref published for linux/s390x, or leave "
        "s390x out"
    )


def test_the_run_tag_of_a_published_platform_names_its_digest() -> None:
    tag = published_tag("pytest-multiarch/app:0123456789abcdef-arm64", ARM)
    assert tag == "pytest-multiarch/app:bbbbbbbbbbbbbbbb-0123456789abcdef-arm64"


def _images(tmp_path: Path, *names: str) -> dict[str, ImageSpec]:
    return {name: ImageSpec(name=name, directory=tmp_path / name) for name in names}


def test_the_override_replaces_the_one_images_ref(tmp_path: Path) -> None:
    assert parse_ref_override("r.example/app:1", "--verify-ref") == ("", "r.example/app:1")
    assert parse_ref_override("app=r.example/app:1", "--verify-ref") == ("app", "r.example/app:1")
    found = with_ref_override(_images(tmp_path, "app"), "", "r.example/app:1", "--verify-ref")
    assert found["app"].ref == "r.example/app:1"
    two = with_ref_override(_images(tmp_path, "app", "db"), "db", "r.example/db:2", "--verify-ref")
    assert (two["app"].ref, two["db"].ref) == ("", "r.example/db:2")


def test_the_override_needs_a_name_among_several_images(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        with_ref_override(_images(tmp_path, "app", "db"), "", "r.example/app:1", "--verify-ref")
    assert str(caught.value) == (
        "--verify-ref gives r.example/app:1 without an image name, but the project has 2 images "
        "(app, db): name the one REF replaces, as NAME=r.example/app:1 (multiarch verify --image "
        "NAME)"
    )
    with pytest.raises(ConfigError, match=r"names image 'web', which the project does not have"):
        with_ref_override(_images(tmp_path, "app"), "web", "r.example/app:1", "--verify-ref")
    with pytest.raises(ConfigError, match="not an image reference"):
        parse_ref_override("app=Not A Ref", "--verify-ref")


def test_a_ref_is_resolved_once_per_run(tmp_path: Path) -> None:
    """Every platform and worker of a run tests the index the first one found, even when the
    tag moves in between; "no registry serves it" is kept as well."""
    first = Published("r.example/app:1", AMD, True, {"linux/amd64": AMD, "linux/arm64": ARM})
    moved = Published("r.example/app:1", ATT, True, {"linux/amd64": ATT})
    path = tmp_path / "app.published.json"
    assert resolve_once(path, lambda: first) == first
    assert resolve_once(path, lambda: moved) == first
    unserved = tmp_path / "local.published.json"
    assert resolve_once(unserved, lambda: None) is None
    assert resolve_once(unserved, lambda: first) is None
