"""Podman as an engine: its CLI (remote mode, ``podman --url``) for what its Docker-compatible API
does not serve the way buildx needs it (builds), and the facts a Podman engine must meet.

Everything else on a Podman engine goes through the same docker CLI and docker SDK calls as on
Docker, against Podman's API socket (``podman system service``).
"""

from __future__ import annotations

import os
import re
import shutil

from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.engine.docker import endpoint
from pytest_multiarch.engine.endpoints import EngineRef
from pytest_multiarch.engine.resolve import resolve_context

PODMAN = os.environ.get("MULTIARCH_PODMAN", "podman")
DEFAULT_SOCKET = "unix:///run/podman/podman.sock"
# Builds need `podman build --platform` over the remote API with `--secret id=...,env=...`.
MINIMUM_VERSION = (4, 0)
INSTALL_HINT = (
    "install Podman >= 4.0 from the distribution and start its API service: "
    "`multiarch host up --podman` (as root)"
)


def podman(*args: str, url: str) -> list[str]:
    """A podman CLI command line that runs against the engine at ``url`` (remote mode)."""
    return [PODMAN, "--url", url, *args]


def version_tuple(version: str) -> tuple[int, ...]:
    """``4.3.1`` -> (4, 3, 1); ``5.0.0-rc1`` -> (5, 0, 0); () when it does not start with one."""
    found = re.match(r"^v?(\d+(?:\.\d+)*)", version.strip())
    return tuple(int(part) for part in found.group(1).split(".")) if found else ()


def too_old(version: str) -> bool:
    """Whether Podman ``version`` is older than what builds on it need (an unreadable version
    is let through: Podman itself then says what it lacks)."""
    parsed = version_tuple(version)
    return bool(parsed) and parsed < MINIMUM_VERSION


def podman_url(engine: EngineRef | None) -> str:
    """Where ``podman --url`` reaches the engine ``engine`` names (None: the default engine,
    ``DOCKER_HOST`` or the default socket; a Docker context: its endpoint). Raises ConfigError
    for an endpoint podman cannot reach (TLS over tcp://: Podman's remote client speaks plain
    TCP or SSH only)."""
    if engine is None or engine.is_default:
        url = endpoint()
    elif engine.is_context:
        url = resolve_context(engine.spec, f"the engine of a Podman build ({engine.spec})")[0]
    else:
        url = engine.spec
    if url.startswith("tcp://") and os.environ.get("DOCKER_TLS_VERIFY"):
        raise ConfigError(
            f"Podman engine at {url}: the podman client does not speak TLS to an API service; "
            "reach it over ssh://user@host/run/podman/podman.sock, or a local unix:// socket"
        )
    return url


def podman_binary() -> str | None:
    """The podman client's path, or None when it is not installed here."""
    return shutil.which(PODMAN)
