"""A published image tested exactly as users pull it: an image's ``ref`` (or ``multiarch verify
REF``) is resolved in its registry (a Docker Hub name through the engine's registry mirrors,
as the engine resolves it), and each platform is pulled by its own manifest's digest
(``repo@sha256:...``) into the engine that runs that platform, on either image store, so the
architecture checks and the tests run on those exact bytes. Nothing is built: BuildKit's
``FROM ref`` would test a copy, and the classic store's pull by tag overwrites one platform
with another."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.core.published import (
    DOCKER_HUB,
    Reference,
    config_platform,
    index_platforms,
    is_index,
    not_published_for,
    parse_reference,
)
from pytest_multiarch.engine.api import EngineApiError
from pytest_multiarch.engine.docker import docker
from pytest_multiarch.engine.endpoints import engine_of
from pytest_multiarch.model.codec import dump, load
from pytest_multiarch.model.records import BuildRecord
from pytest_multiarch.publish.registry import RegistryReadError, fetch_config, fetch_manifest

if TYPE_CHECKING:
    from docker import DockerClient


class PublishedUnavailable(MultiarchError):
    """No registry serves the reference (a local tag, a typo), or its registry cannot be read."""


@dataclass(frozen=True)
class Published:
    """What a published reference names, as its registry answered."""

    ref: str  # as given
    digest: str  # of what ``ref`` names: a manifest list, or one platform's manifest
    index: bool  # a manifest list (else a single platform's manifest)
    # os/arch[/variant] -> digest of that platform's manifest (attestations left out).
    platforms: dict[str, str] = field(default_factory=dict)


def registry_mirrors(client: DockerClient) -> tuple[str, ...]:
    """``HOST:PORT`` of each registry mirror of the engine behind ``client`` (where it resolves
    Docker Hub names first). Raises EngineApiError when the engine does not answer."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        info = client.info()
    except (DockerException, RequestException) as exc:
        raise EngineApiError(f"could not ask the engine for its registry mirrors: {exc}") from None
    mirrors = (info.get("RegistryConfig") or {}).get("Mirrors") or []
    return tuple(str(m).split("://", 1)[-1].strip("/") for m in mirrors)


def read_published(
    reference: Reference, mirrors: Sequence[str] = (), *, timeout: float = 60
) -> Published:
    """What ``reference`` names in its registry: a Docker Hub name in each of ``mirrors`` first,
    then in its own registry (as the engine pulls it). Raises PublishedUnavailable saying why
    when no registry serves it."""
    where = [reference.on(mirror) for mirror in mirrors] if reference.registry == DOCKER_HUB else []
    where.append(reference.text)
    why = []
    for source in where:
        try:
            found = fetch_manifest(source, timeout=timeout)
            if found is None:
                why.append(f"{source}: no such manifest")
                continue
            digest, manifest = found
            if is_index(manifest):
                return Published(reference.text, digest, True, index_platforms(manifest))
            plat = config_platform(fetch_config(source, timeout=timeout))
            return Published(reference.text, digest, False, {plat: digest})
        except RegistryReadError as exc:
            why.append(str(exc))
    raise PublishedUnavailable(f"no registry serves {reference.text}: {'; '.join(why)}")


def resolve_once(path: Path, resolve: Callable[[], Published | None]) -> Published | None:
    """What ``resolve()`` found, asked once per run: the first process of the run stores it at
    ``path`` (in the run's directory) and every other one (each platform, each xdist worker)
    reads it, so all platforms test the same index even when its tag moves mid-run."""
    with FileLock(f"{path}.lock"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            found = resolve()
            # O_EXCL|O_NOFOLLOW: never write through a link planted in the run directory.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"found": None if found is None else dump(found)}, handle)
            return found
        with os.fdopen(fd) as handle:
            stored = json.load(handle).get("found")
        return None if stored is None else load(Published, stored, str(path))


def published_tag(tag: str, digest: str) -> str:
    """The run's tag for the platform manifest ``digest``: ``tag`` (the image's tag for its
    inputs) with the digest in it, so a tag that moves upstream is a new local tag."""
    repository, _, version = tag.rpartition(":")
    return f"{repository}:{digest.removeprefix('sha256:')[:16]}-{version}"


def take_published(
    spec: ImageSpec,
    platform: Platform,
    published: Published,
    tag: str,
    *,
    client: DockerClient,
    timeout: float,
    pull: bool = True,
) -> BuildRecord:
    """Pull ``platform``'s manifest of ``published`` by its digest into the engine that runs
    ``platform`` and tag it ``published_tag(tag, digest)``; the record names the ref, the index
    digest and the digest pulled. A platform the ref does not publish, a failed pull, or bytes
    in the engine that are not that digest end up in the record's ``error``. ``pull``: False
    (--build=never) takes only what an earlier run pulled. Raises EngineApiError or
    CommandError when the engine fails a call."""
    start = time.monotonic()
    digest = published.platforms.get(platform.name, "")
    local = published_tag(tag, digest) if digest else tag
    record = BuildRecord(
        spec.name,
        platform.name,
        local,
        "",
        0.0,
        False,
        published_ref=published.ref,
        published_index=published.digest if published.index else "",
        published_digest=digest,
    )

    def failed(why: str) -> BuildRecord:
        return replace(record, seconds=time.monotonic() - start, error=why)

    if not digest:
        return failed(
            not_published_for(
                spec, platform.name, platform.short, published.platforms, index=published.index
            )
        )
    engine = engine_of(platform)
    pinned = parse_reference(spec.ref, "ref").pinned(digest)
    existing = _inspect(client, local)
    if existing is not None:  # the same digest, pulled by an earlier run: the same bytes
        return replace(record, image_id=str(existing.get("Id", "")), cached=True)
    if not pull:
        return failed(
            f"{pinned} ({spec.ref} for {platform.name}) is not pulled and --build=never was "
            "given; run with --build=auto"
        )
    pulled = run_command(
        docker("pull", "--quiet", "--platform", platform.name, pinned, engine=engine),
        timeout=timeout,
        check=False,
    )
    if not pulled.ok:
        tail = "\n".join((pulled.stderr or pulled.stdout).strip().splitlines()[-5:])
        return failed(
            f"image {spec.name!r} for {platform.name}: pulling {pinned} ({spec.ref} for "
            f"{platform.name}) failed: {tail}"
        )
    held = [str(found) for found in ((_inspect(client, pinned) or {}).get("RepoDigests") or [])]
    if not any(found.endswith(f"@{digest}") for found in held):
        return failed(
            f"image {spec.name!r} for {platform.name}: the engine pulled {pinned} but holds "
            f"{', '.join(held) or 'no digest'} for it: not the published bytes"
        )
    run_command(docker("tag", pinned, local, engine=engine), timeout=60)
    found = _inspect(client, local)
    if found is None:
        return failed(f"{local} is not in the engine's image store after it was pulled")
    return replace(record, image_id=str(found.get("Id", "")), seconds=time.monotonic() - start)


def _inspect(client: DockerClient, reference: str) -> dict[str, Any] | None:
    """The engine's inspect of a local image; None when it has none by that name."""
    from docker.errors import DockerException, ImageNotFound
    from requests.exceptions import RequestException

    try:
        attrs: dict[str, Any] = client.images.get(reference).attrs
    except ImageNotFound:
        return None
    except (DockerException, RequestException) as exc:
        raise EngineApiError(f"could not inspect image {reference}: {exc}") from None
    return attrs
