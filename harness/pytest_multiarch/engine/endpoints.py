"""Which Docker engine runs which platform: the platform -> engine map of a run.

Engines are the ones users already run, named the way the docker CLI names them: a Docker
context (``arm-box``), or an endpoint (``unix:///run/d2.sock``, ``tcp://host:2376`` with TLS
from the environment, ``ssh://user@host``). A platform without an entry uses the default engine,
which follows ``DOCKER_HOST`` and the current context exactly as the docker CLI does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.platform_map import parse_platform_pools, tool_table
from pytest_multiarch.core.platforms import Platform

_SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://")
_CONTEXT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$")


@dataclass(frozen=True)
class EngineRef:
    """An engine as the user named it; ``""`` is the default engine."""

    spec: str = ""

    @property
    def is_default(self) -> bool:
        return not self.spec

    @property
    def is_context(self) -> bool:
        return bool(self.spec) and not self.spec.startswith(_SCHEMES)

    def cli_flags(self) -> list[str]:
        """Global docker CLI flags that select this engine (buildx honours them too)."""
        if self.is_default:
            return []
        return ["--context", self.spec] if self.is_context else ["--host", self.spec]

    @property
    def label(self) -> str:
        """A short name for matrix headers: the context name, or the endpoint's host/socket."""
        if self.is_default:
            return "default"
        if self.is_context:
            return self.spec
        rest = self.spec.split("://", 1)[1]
        if self.spec.startswith("unix://"):
            return Path(rest).parent.name or rest
        return rest.split("@")[-1].split(":")[0] or rest


def parse_endpoint(text: str, where: str) -> EngineRef:
    value = text.strip()
    if value.startswith(_SCHEMES):
        if not value.split("://", 1)[1].strip("/"):
            raise ConfigError(f"Invalid engine {text!r} from {where}: the endpoint has no address")
        return EngineRef(value)
    if value in ("", "default"):
        return EngineRef()
    if not _CONTEXT_NAME.match(value):
        raise ConfigError(
            f"Invalid engine {text!r} from {where}: expected a Docker context name or an "
            f"endpoint starting with {', '.join(_SCHEMES[:3])}"
        )
    return EngineRef(value)


_ENGINE_EXPECTED = (
    "PLATFORM=ENDPOINT or a pool PLATFORM=ENDPOINT,ENDPOINT,..., e.g. arm64=arm-box, "
    "s390x=tcp://z.example:2376 or amd64=default,unix:///run/e2/docker.sock"
)


def parse_engine_pools(items: Iterable[str], where: str) -> dict[str, tuple[EngineRef, ...]]:
    """``["arm64=arm-box", "amd64=default,tcp://x86b:2376"]`` -> {"linux/arm64":
    (EngineRef("arm-box"),), "linux/amd64": (EngineRef(), EngineRef("tcp://x86b:2376"))}: each
    platform's pool of engines (core.platform_map.parse_platform_pools)."""
    return parse_platform_pools(
        items,
        where,
        "engine",
        _ENGINE_EXPECTED,
        lambda endpoint, _part: parse_endpoint(endpoint, where),
    )


def parse_engine_map(items: Iterable[str], where: str) -> dict[str, EngineRef]:
    """``["arm64=arm-box", "s390x=tcp://z:2376"]`` -> {"linux/arm64": EngineRef(...), ...}: the
    first engine of each platform's pool."""
    return {name: pool[0] for name, pool in parse_engine_pools(items, where).items()}


def project_engine_pools(pyproject: Path) -> dict[str, tuple[EngineRef, ...]]:
    """``[tool.multiarch.engines]`` of ``pyproject``: ``arm64 = "arm-box"``, or a pool
    ``amd64 = ["default", "tcp://x86b:2376"]`` (or ``"default,tcp://x86b:2376"``); {} when
    absent."""
    table, where = tool_table(pyproject, "engines")
    if not isinstance(table, dict) or not all(
        isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(e, str) for e in v))
        for v in table.values()
    ):
        raise ConfigError(
            f'{where}: expected a table of platform = "endpoint" or platform = ["endpoint", '
            f'"endpoint", ...], got {table!r}'
        )
    pools: dict[str, tuple[EngineRef, ...]] = {}
    for key, value in table.items():
        text = value if isinstance(value, str) else ",".join(value)
        if not isinstance(value, str) and any("," in e or "=" in e for e in value):
            raise ConfigError(f"{where}: invalid engine in {key} = {value!r}: one endpoint each")
        pools.update(parse_engine_pools([f"{key}={text}"], where))
    return pools


def project_engine_map(pyproject: Path) -> dict[str, EngineRef]:
    """``[tool.multiarch.engines]`` of ``pyproject``: ``arm64 = "arm-box"``; {} when absent.
    The first engine of each platform's pool."""
    return {name: pool[0] for name, pool in project_engine_pools(pyproject).items()}


def engine_map_json(engines: Mapping[str, EngineRef]) -> str:
    return json.dumps({name: ref.spec for name, ref in sorted(engines.items())})


# ---- engines resolved on the controller --------------------------------------------------------

# Seconds the controller gives a mapped engine to say what it is before its platform's tests are
# failed as "not reachable": well inside the 30 s in which a dead engine must be reported.
RESOLVE_TIMEOUT = 8.0
_LOOPBACK_HOSTS = ("localhost", "127.", "[::1]", "::1")


@dataclass(frozen=True)
class EngineEndpoint:
    """An engine of the run: a mapped one as the controller found it at the start of the run,
    shipped to every worker: where the docker SDK connects (a context resolved to its host and
    TLS material), what the engine is, or why it did not answer (``problem``). The default
    engine is one too (spec ``""``: pytest_multiarch.engine.docker.default_endpoint), asked
    nothing at the start: what it is comes over its API connection when needed."""

    spec: str
    host: str  # unix:///..., tcp://host:port, ssh://user@host
    cert_path: str = ""  # a directory with ca.pem, cert.pem, key.pem; "" for none
    tls_verify: bool = False
    id: str = ""  # `docker info` ID: keys the per-engine build locks
    architecture: str = ""  # `docker info` Architecture (uname -m of the engine's machine)
    version: str = ""
    image_store: str = ""  # "containerd" or "classic"
    kind: str = ""  # "docker" or "podman", as its own /version said; "" when it did not answer
    problem: str = ""  # why it did not answer at the start; "" when it did

    @property
    def ref(self) -> EngineRef:
        return EngineRef(self.spec)

    @property
    def is_local(self) -> bool:
        """The engine runs on this machine: its emulators are this host's binfmt_misc handlers,
        and ports it publishes on loopback can be reached from here."""
        return host_is_local(self.host)

    def sdk_environment(self) -> dict[str, str] | None:
        """What ``docker.from_env(environment=...)`` needs to talk to this engine (the docker
        SDK and testcontainers both take it), TLS included; None for the default engine, which
        the SDK finds from the process's own environment as the docker CLI does."""
        if self.ref.is_default:
            return None
        environment = {"DOCKER_HOST": self.host}
        if self.cert_path:
            environment["DOCKER_CERT_PATH"] = self.cert_path
        if self.tls_verify:
            environment["DOCKER_TLS_VERIFY"] = "1"
        return environment

    def service_host(self, bind_address: str) -> str:
        """Where this process connects to a port that a container of this engine publishes."""
        if self.is_local:
            unspecified = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - an address to map
            return unspecified.get(bind_address, bind_address)
        return endpoint_hostname(self.host)

    def publish_address(self, bind_address: str) -> str:
        """The address published ports listen on: the run's bind address on this machine's
        engines; every address of a remote machine, whose loopback cannot be reached from here
        (unless the run's bind address already names a non-loopback address)."""
        if self.is_local or not bind_address.startswith(_LOOPBACK_HOSTS):
            return bind_address
        return "0.0.0.0"  # noqa: S104 - the remote machine's ports must be reachable from here

    def describe(self) -> str:
        """``e12 (unix:///run/.../docker.sock)`` or ``arm-box (context, ssh://ci@arm-box)``;
        the default engine by where it is alone (``unix:///var/run/docker.sock``)."""
        if self.ref.is_default:
            return self.host
        if self.ref.is_context:
            return f"{self.spec} (context, {self.host})"
        return f"{self.ref.label} ({self.host})"


def endpoint_hostname(host: str) -> str:
    """The machine of an endpoint: ``tcp://arm-box:2376`` -> ``arm-box``,
    ``ssh://ci@arm-box:22`` -> ``arm-box``, ``tcp://[fd00::1]:2376`` -> ``fd00::1``."""
    rest = host.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest


def host_is_local(host: str) -> bool:
    """Whether an endpoint (``unix://...``, ``tcp://host:port``, ...) is on this machine."""
    if host.startswith(("unix://", "npipe://")):
        return True
    return host.startswith("tcp://") and host.removeprefix("tcp://").startswith(_LOOPBACK_HOSTS)


def implicit_default_engine(environment: Mapping[str, str], home: Path | None = None) -> str:
    """The engine the docker CLI talks to when told nothing, as an engine map entry, when the
    docker SDK would not find it by itself: ``DOCKER_HOST`` naming another machine (the SDK
    reads it, but this host's uname and binfmt_misc say nothing of that machine), or the current
    context (``DOCKER_CONTEXT``, else ``currentContext`` in the CLI's config.json) unless it is
    ``default`` (the SDK knows no contexts). "" when it is this machine's own engine."""
    host = environment.get("DOCKER_HOST", "")
    if host:
        return "" if host_is_local(host) else host
    context = environment.get("DOCKER_CONTEXT", "")
    if not context:
        config_dir = Path(environment.get("DOCKER_CONFIG") or (home or Path.home()) / ".docker")
        try:
            data = json.loads((config_dir / "config.json").read_text())
        except (OSError, ValueError):
            data = {}
        context = str(data.get("currentContext") or "") if isinstance(data, dict) else ""
    return "" if context in ("", "default") else context


def engine_of(platform: Platform) -> EngineRef | None:
    """The engine that builds and runs ``platform`` in this run (None: the default engine),
    for ``docker(..., engine=engine_of(platform))``."""
    return EngineRef(platform.engine) if platform.engine else None


def remote_emulator(platform: Platform, mapped: EngineEndpoint) -> str:
    """What runs ``platform`` on a remote engine, as far as this machine can tell: its emulators
    (binfmt_misc there) cannot be read from here; the verification's probe runs there."""
    if mapped.problem:
        return f"unknown: engine {mapped.describe()} did not answer"
    machine = f"{mapped.ref.label}, {mapped.architecture or 'unknown architecture'}"
    if not platform.emulated:
        return f"native on {machine}"
    return f"emulated on {machine} (that machine's emulator; not visible from here)"
