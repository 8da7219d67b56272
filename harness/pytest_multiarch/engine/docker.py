"""Facts about the Docker engine and buildx, asked through the docker CLI with time limits."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.errors import CommandError, EngineUnavailable
from pytest_multiarch.core.platforms import KNOWN_PLATFORMS
from pytest_multiarch.engine.endpoints import EngineEndpoint
from pytest_multiarch.model.records import EngineFacts

if TYPE_CHECKING:
    from pytest_multiarch.engine.endpoints import EngineRef

DOCKER = os.environ.get("MULTIARCH_DOCKER", "docker")
START_HINT = "start it with `multiarch host up` (or as root: `containerd &` then `dockerd &`)"


def docker(*args: str, engine: EngineRef | None = None) -> list[str]:
    """A docker CLI command line; with ``engine``, for that engine (``--context NAME`` or
    ``--host URL``, which buildx honours too); without, for the default engine."""
    return [DOCKER, *(engine.cli_flags() if engine is not None else []), *args]


ImageStore = Literal["containerd", "classic"]
# Which engine answers on the socket: Docker, or Podman's Docker-compatible API service.
EngineKind = Literal["docker", "podman"]
PODMAN_COMPONENT = "Podman Engine"


def endpoint() -> str:
    """Where the docker CLI talks to: DOCKER_HOST, else the default socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def default_endpoint() -> EngineEndpoint:
    """The default engine as an endpoint like a mapped engine's (spec ``""``), where the docker
    CLI talks to; nothing is asked of it here."""
    return EngineEndpoint("", endpoint())


@dataclass(frozen=True)
class EngineInfo:
    id: str
    endpoint: str
    version: str
    api_version: str
    image_store: ImageStore
    storage_driver: str
    registry_mirrors: tuple[str, ...]
    os: str
    architecture: str
    kind: EngineKind = "docker"
    rootless: bool = False  # /info's SecurityOptions name "rootless" (Podman or Docker)

    @property
    def name(self) -> str:
        """``Docker 26.1.5`` or ``Podman 4.3.1``: the engine as messages name it."""
        return f"{self.kind.capitalize()} {self.version}"

    def facts(self) -> EngineFacts:
        """What the run report records of the engine."""
        return EngineFacts(
            self.endpoint,
            self.version,
            self.api_version,
            self.image_store,
            self.os,
            self.architecture,
            self.kind,
        )


def engine_info(timeout: float = 15, engine: EngineRef | None = None) -> EngineInfo:
    """Ask the engine (``engine``, else the default one) what it is. Raises EngineUnavailable,
    quickly, when it does not answer."""
    mapped = engine is not None and not engine.is_default
    try:
        version = run_command(
            docker("version", "--format", "{{json .}}", engine=engine), timeout=timeout
        )
        info = run_command(docker("info", "--format", "{{json .}}", engine=engine), timeout=timeout)
    except CommandError as exc:
        detail = (exc.stderr.strip() or exc.stdout.strip()).splitlines()
        reason = detail[-1] if detail else str(exc).splitlines()[0]
        if engine is not None and mapped:
            raise EngineUnavailable(
                f"Docker engine {engine.spec} not reachable: {reason}; start it, or check the "
                f"mapping (`docker {' '.join(engine.cli_flags())} info`); for Podman's API "
                "service on this machine, `multiarch host up --podman` starts it"
            ) from None
        raise EngineUnavailable(f"Docker engine not reachable: {reason}; {START_HINT}") from None
    version_data: dict[str, Any] = json.loads(version.stdout)
    where = engine.spec if engine is not None and mapped else endpoint()
    return engine_facts_of(version_data.get("Server") or {}, json.loads(info.stdout), where)


def engine_facts_of(
    server: Mapping[str, Any], info_data: Mapping[str, Any], where: str
) -> EngineInfo:
    """EngineInfo from the engine's answers to ``/version`` (``server``) and ``/info``: the
    same documents over the API as in ``docker version`` (its Server part) and ``docker info``."""
    kind, version = engine_kind(server)
    driver_status = info_data.get("DriverStatus") or []
    containerd_store = any(
        "containerd.snapshotter" in str(value) for pair in driver_status for value in pair
    )
    mirrors = tuple(str(m) for m in ((info_data.get("RegistryConfig") or {}).get("Mirrors") or []))
    engine_id = str(info_data.get("ID", "")) or where
    if kind == "podman":
        # Podman's /info answers a new random ID on every call; the ID keys the per-engine
        # build locks and tells engines apart, so it is made from what is stable: the
        # machine and the image store it serves (two sockets on one store are one engine).
        stable = f"{info_data.get('Name', '')}\0{info_data.get('DockerRootDir', '')}"
        engine_id = "podman-" + hashlib.sha256(stable.encode()).hexdigest()[:24]
    architecture = str(info_data.get("Architecture", "?"))
    if kind == "podman":
        # Podman names the machine as Go does (amd64), Docker as `uname -m` (x86_64), which is
        # what native-or-emulated compares with: one vocabulary for both.
        architecture = next(
            (p.uname for p in KNOWN_PLATFORMS if not p.variant and p.arch == architecture),
            architecture,
        )
    return EngineInfo(
        id=engine_id,
        endpoint=where,
        os=str(info_data.get("OSType", "linux")),
        version=version,
        api_version=str(server.get("ApiVersion", "?")),
        image_store="containerd" if containerd_store else "classic",
        storage_driver=str(info_data.get("Driver", "?")),
        registry_mirrors=mirrors,
        architecture=architecture,
        kind=kind,
        rootless=any("name=rootless" in str(o) for o in info_data.get("SecurityOptions") or []),
    )


def engine_kind(server: Mapping[str, Any]) -> tuple[EngineKind, str]:
    """(kind, version) from the engine's own ``/version`` answer (``server``): Podman's API
    service lists a component named ``Podman Engine`` (with Podman's version); Docker does not.
    Never guessed from the socket's path."""
    for component in server.get("Components") or []:
        if isinstance(component, Mapping) and component.get("Name") == PODMAN_COMPONENT:
            return "podman", str(component.get("Version") or server.get("Version") or "?")
    return "docker", str(server.get("Version", "?"))
