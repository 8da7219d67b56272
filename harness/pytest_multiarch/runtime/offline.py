"""Why a build could not have its base image or ``ref``, told plainly: a registry that cannot be
reached (offline, with what the engine's registry mirror holds instead), or a published index
without the requested platform. BuildKit says the first as a DNS or TCP error about a host the
user never named, and the second as ``no match for platform in manifest``."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pytest_multiarch.core.errors import EngineUnavailable
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.core.published import not_published_for
from pytest_multiarch.engine.docker import engine_info
from pytest_multiarch.engine.endpoints import EngineRef
from pytest_multiarch.provision.bases import BASE_IMAGES, SEED_NAMESPACE
from pytest_multiarch.publish.registry import RegistryReadError, listed_platforms, registry_catalog

# BuildKit's words for a reference it could not resolve, and what followed.
_UNRESOLVED = re.compile(r"failed to resolve source metadata for (?P<ref>\S+?): (?P<why>[^\n]*)")
# A registry that cannot be reached at all (as opposed to one that answered "no"), most telling
# first: BuildKit says "dial tcp: lookup HOST ...: no such host".
_UNREACHABLE = (
    "no such host",
    "connection refused",
    "network is unreachable",
    "i/o timeout",
    "TLS handshake timeout",
    "server misbehaving",
    "dial tcp",
)
_NO_PLATFORM = "no match for platform in manifest"


def explain(log: str, spec: ImageSpec, platform: Platform, engine: EngineRef | None = None) -> str:
    """The first line of a failed build's error when ``log`` shows that a base image (FROM) or
    the image's ``ref`` could not be had, else "". ``engine``: the engine that built it (its
    registry mirrors are listed)."""
    for found in _UNRESOLVED.finditer(log):
        reference, why = found.group("ref"), found.group("why")
        how = next((marker for marker in _UNREACHABLE if marker in why), "")
        if how:
            return _unreachable(reference, how, spec, platform, engine)
        if _NO_PLATFORM in why and spec.ref:
            return _no_platform(spec, platform)
    return ""


def _unreachable(
    reference: str, how: str, spec: ImageSpec, platform: Platform, engine: EngineRef | None
) -> str:
    what = f"its ref {spec.ref}" if spec.ref else f"its base image {reference} (FROM)"
    head = (
        f"image {spec.name!r} for {platform.name}: {what} cannot be had: its registry cannot be "
        f"reached ({how}; offline?)"
    )
    try:
        mirrors = engine_info(timeout=10, engine=engine).registry_mirrors
    except EngineUnavailable:
        return head
    if not mirrors:
        return f"{head}, and the engine has no registry mirror (`multiarch host up` makes one)"
    held = [f"registry mirror {mirror.rstrip('/')} {mirror_holdings(mirror)}" for mirror in mirrors]
    use = (
        "Take one of those as ref"
        if spec.ref
        else f"Build FROM one of those, or push {_repository(reference)} to the mirror"
    )
    return f"{head}; the engine's {'; '.join(held)}. {use}"


def _repository(reference: str) -> str:
    """``host/path:tag`` without its registry host, as a mirror stores it."""
    first, _, rest = reference.partition("/")
    return rest if rest and ("." in first or ":" in first or first == "localhost") else reference


def mirror_holdings(mirror: str) -> str:
    """``holds: busybox (latest, 1.35, stable), debian (...)``: each repository of ``mirror``
    (``library/`` left out, as FROM names it) with its tags; or why it cannot be listed. The
    per-platform pieces of ``multiarch host up``'s seeding are left out."""
    try:
        catalog = registry_catalog(mirror)
    except RegistryReadError as exc:
        return f"cannot be listed: {exc}"
    shown = [
        _holding(repository, tags)
        for repository, tags in sorted(catalog.items())
        if not repository.startswith(f"{SEED_NAMESPACE}/")
    ]
    return f"holds: {', '.join(shown)}" if shown else "holds nothing"


def _holding(repository: str, tags: Sequence[str]) -> str:
    """``debian:bookworm-slim (also bookworm, 12-slim, 12)``: a seeded base's tags in its own
    order (its main tag first), others' "latest" first."""
    seeded = {base.repository: base.tags for base in BASE_IMAGES.values()}.get(repository, ())
    order = {tag: index for index, tag in enumerate(seeded)}
    ordered = sorted(tags, key=lambda tag: (order.get(tag, len(order)), tag != "latest", tag))
    name = repository.removeprefix("library/")
    return f"{name}:{ordered[0]}" + (f" (also {', '.join(ordered[1:])})" if ordered[1:] else "")


def _no_platform(spec: ImageSpec, platform: Platform) -> str:
    listed = listed_platforms(spec.ref, timeout=30)
    return not_published_for(spec, platform.name, platform.short, listed)
