"""Reading manifests and manifest lists from a registry, through buildx (so the engine's
credentials and plain-HTTP rules for loopback registries apply)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.published import index_platforms
from pytest_multiarch.engine.docker import docker


class RegistryReadError(MultiarchError):
    """The registry could not be asked (other than: it has no such manifest)."""


def fetch_manifest(reference: str, *, timeout: float = 60) -> tuple[str, dict[str, Any]] | None:
    """(digest, manifest) of ``reference``; None when the registry has no such manifest."""
    result = run_command(
        docker("buildx", "imagetools", "inspect", "--raw", reference), timeout=timeout, check=False
    )
    if not result.ok:
        text = result.stderr.lower()
        if "not found" in text or "manifest unknown" in text:
            return None
        raise RegistryReadError(
            f"cannot read {reference} from its registry: {result.stderr.strip()[-400:]}"
        )
    raw = result.stdout.encode()  # imagetools prints the manifest's bytes as stored
    manifest: dict[str, Any] = json.loads(result.stdout)
    return "sha256:" + hashlib.sha256(raw).hexdigest(), manifest


def platform_digests(manifest: Mapping[str, Any]) -> dict[str, str]:
    """``os/arch[/variant]`` -> digest of each entry of a manifest list (attestation entries
    left out); empty for a single-platform manifest."""
    return index_platforms(manifest)


def fetch_config(reference: str, *, timeout: float = 60) -> dict[str, Any]:
    """The image config (``os``, ``architecture``, ``variant``, ...) of the single-platform
    manifest at ``reference``. Raises RegistryReadError when it cannot be had."""
    result = run_command(
        docker("buildx", "imagetools", "inspect", reference, "--format", "{{json .Image}}"),
        timeout=timeout,
        check=False,
    )
    try:
        config = json.loads(result.stdout) if result.ok else None
    except ValueError:
        config = None
    if not isinstance(config, dict):
        why = result.stderr.strip()[-400:] or "no image config"
        raise RegistryReadError(f"cannot read the image config of {reference}: {why}")
    return config


def listed_platforms(reference: str, *, timeout: float = 60) -> set[str] | None:
    """The platforms of the manifest list at ``reference``; None when it cannot be had."""
    try:
        found = fetch_manifest(reference, timeout=timeout)
    except RegistryReadError:
        return None
    return None if found is None else set(platform_digests(found[1]))


def registry_catalog(registry: str, *, timeout: float = 10) -> dict[str, tuple[str, ...]]:
    """Repository -> tags of everything ``registry`` holds (a mirror URL such as
    ``http://127.0.0.1:5000``, or ``HOST:PORT``: plain HTTP on loopback), from its
    ``/v2/_catalog`` and each repository's ``/v2/<name>/tags/list``. Raises RegistryReadError
    when it does not answer."""
    import urllib.parse

    base = registry.rstrip("/")
    if "://" not in base:
        host = base.split("/", 1)[0]
        loopback = host.startswith(("127.", "localhost", "[::1]"))
        base = f"{'http' if loopback else 'https'}://{host}"
    catalog = _get_json(f"{base}/v2/_catalog?n=1000", timeout)
    held: dict[str, tuple[str, ...]] = {}
    for repository in sorted(catalog.get("repositories") or []):
        listed = _get_json(f"{base}/v2/{urllib.parse.quote(repository)}/tags/list", timeout)
        held[str(repository)] = tuple(str(tag) for tag in listed.get("tags") or [])
    return held


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - its own URL
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RegistryReadError(f"{url} did not answer: {exc}") from None
    return data if isinstance(data, dict) else {}
