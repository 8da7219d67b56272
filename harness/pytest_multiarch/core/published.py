"""A published image (``ref`` in ``image.toml``, or ``multiarch verify REF``) as plain data: its
reference's parts, the platforms of its manifest list with attestation entries left out, and
the one sentence that says a platform is not published. Nothing here reads a registry
(pytest_multiarch.runtime.published does, through pytest_multiarch.publish.registry)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.images import IMAGE_TOML, ImageSpec
from pytest_multiarch.core.platforms import oci_name

DOCKER_HUB = "docker.io"
# BuildKit marks the provenance/SBOM manifest of each platform so (and gives it platform
# unknown/unknown): it is no platform of the image, and it cannot run.
ATTESTATION_KEY = "vnd.docker.reference.type"
ATTESTATION = "attestation-manifest"
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Docker's reference grammar, loosely: lower-case path components, a tag of up to 128 word
# characters, dots and dashes.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


@dataclass(frozen=True)
class Reference:
    """``[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`` split. ``name`` is the part before the tag as the
    user wrote it (``busybox``, ``127.0.0.1:5000/team/app``): the engine resolves it the way
    it resolves the user's own pulls (Docker Hub names through the engine's registry mirror)."""

    text: str
    name: str
    registry: str  # docker.io for a name without a registry host
    repository: str  # library/busybox for busybox on Docker Hub
    tag: str
    digest: str

    def pinned(self, digest: str) -> str:
        """The reference to exactly ``digest`` of this repository: ``name@digest``."""
        return f"{self.name}@{digest}"

    def on(self, registry: str) -> str:
        """This reference in ``registry`` (``HOST:PORT``, e.g. a Docker Hub mirror)."""
        return f"{registry}/{self.repository}{self._suffix}"

    @property
    def _suffix(self) -> str:
        return f"@{self.digest}" if self.digest else f":{self.tag}"


def parse_reference(text: str, source: str) -> Reference:
    """``text`` split into a :class:`Reference`. Raises ConfigError naming ``text`` and
    ``source`` (where it was given) when it is not an image reference."""

    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"{text!r} from {source} is not an image reference ({why}); expected "
            "[REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST], e.g. registry.example/app:1.2"
        )

    rest, _, digest = text.strip().partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise bad(f"digest {digest!r} is not sha256: and 64 hex digits")
    head, _, last = rest.rpartition("/")
    tag = ""
    if ":" in last:
        last, _, tag = last.partition(":")
        if not _TAG.fullmatch(tag):
            raise bad(f"tag {tag!r}")
    name = f"{head}/{last}" if head else last
    first, _, remainder = name.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, name
    if not path or not all(_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise bad(f"repository {path!r}: lower-case letters, digits and separators")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    tag = tag or ("" if digest else "latest")
    return Reference(text.strip(), name, registry, path, tag, digest)


def is_index(manifest: Mapping[str, Any]) -> bool:
    """Whether ``manifest`` is a manifest list / OCI index (else one platform's manifest)."""
    return manifest.get("mediaType") in _INDEX_TYPES or (
        "manifests" in manifest and "config" not in manifest
    )


def is_attestation(entry: Mapping[str, Any]) -> bool:
    """Whether an index entry is an attestation manifest (provenance, SBOM), not a platform."""
    annotations = entry.get("annotations") or {}
    plat = entry.get("platform") or {}
    return annotations.get(ATTESTATION_KEY) == ATTESTATION or plat.get("os") == "unknown"


def index_platforms(manifest: Mapping[str, Any]) -> dict[str, str]:
    """``os/arch[/variant]`` -> digest of each platform of a manifest list, attestation entries
    left out; empty for a single-platform manifest."""
    entries = {}
    for entry in manifest.get("manifests", []):
        if is_attestation(entry):
            continue
        entries[_platform_name(entry.get("platform") or {})] = str(entry["digest"])
    return entries


def config_platform(config: Mapping[str, Any]) -> str:
    """``os/arch[/variant]`` of an image config (what a single-platform manifest is for)."""
    return _platform_name(config)


def _platform_name(fields: Mapping[str, Any]) -> str:
    """The OCI name of a manifest list entry's platform or an image config. ``arm64/v8`` is
    ``arm64``: the variant is optional there, and the engine treats both as one platform."""
    arch, variant = str(fields.get("architecture", "")), str(fields.get("variant", "") or "")
    if arch == "arm64" and variant == "v8":
        variant = ""
    return oci_name(str(fields.get("os", "")), arch, variant)


def not_published(
    ref: str, platform: str, listed: Iterable[str] | None, *, index: bool = True
) -> str:
    """``the published index REF has no linux/s390x (it has: linux/amd64, linux/arm64)``: the one
    wording of a platform missing from what ``ref`` names (``index``: a manifest list, else a
    single platform's manifest; ``listed``: its platforms, None when they could not be read)."""
    kind = "index" if index else "manifest"
    if listed is None:
        return f"the published {kind} {ref} has no {platform} (its platforms could not be listed)"
    has = ", ".join(sorted(listed)) or "no platform"
    return f"the published {kind} {ref} has no {platform} (it has: {has})"


def not_published_for(
    spec: ImageSpec,
    platform: str,
    short: str,
    listed: Iterable[str] | None,
    *,
    index: bool = True,
) -> str:
    """:func:`not_published` as the error of image ``spec``'s tests on ``platform``, with what
    to do."""
    missing = not_published(spec.ref, platform, listed, index=index)
    return (
        f"image {spec.name!r} for {platform}: {missing}. "
        f"Take a ref published for {platform}, or leave {short} out (--platforms, or "
        f"platforms = [...] in {spec.directory / IMAGE_TOML})"
    )


def parse_ref_override(text: str, source: str) -> tuple[str, str]:
    """``[NAME=]REF`` (``multiarch verify``'s override of an image's ``ref``) as (NAME or "",
    REF). Raises ConfigError naming the value and ``source`` when REF is not a reference."""
    name, sep, ref = text.strip().partition("=")
    if not sep:
        name, ref = "", text.strip()
    parse_reference(ref, source)
    return name.strip(), ref.strip()


def with_ref_override(
    images: Mapping[str, ImageSpec], name: str, ref: str, source: str
) -> dict[str, ImageSpec]:
    """``images`` with image ``name``'s ``ref`` replaced by ``ref``, so its tests run against
    that published image in place of a build. Without ``name``, the project must have exactly
    one image. Raises ConfigError saying which names there are."""
    names = ", ".join(sorted(images)) or "none"
    if not name:
        if len(images) != 1:
            raise ConfigError(
                f"{source} gives {ref} without an image name, but the project has "
                f"{len(images)} images ({names}): name the one REF replaces, as NAME={ref} "
                "(multiarch verify --image NAME)"
            )
        name = next(iter(images))
    if name not in images:
        raise ConfigError(
            f"{source} names image {name!r}, which the project does not have (images: {names})"
        )
    return {**images, name: replace(images[name], ref=ref)}
