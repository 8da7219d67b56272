"""An engine named by the user, resolved to where it is and what it is (its own answer), and the
platform facts that follow from it: native or emulated, and by which emulator."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.emulation import check_emulator
from pytest_multiarch.core.errors import CommandError, ConfigError, EngineUnavailable
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.docker import docker, engine_info
from pytest_multiarch.engine.endpoints import (
    RESOLVE_TIMEOUT,
    EngineEndpoint,
    EngineRef,
    remote_emulator,
)
from pytest_multiarch.model.records import BuilderFacts, PlatformFacts


def resolve_context(name: str, where: str) -> tuple[str, str, bool]:
    """(host, TLS directory, verify) of Docker context ``name``, as ``docker context inspect``
    tells. ConfigError when there is no such context (a usage error of the run)."""

    try:
        found = run_command(
            docker("context", "inspect", "--format", "{{json .}}", name), timeout=20
        )
    except CommandError as exc:
        detail = (exc.stderr.strip() or exc.stdout.strip() or str(exc)).splitlines()[-1]
        raise ConfigError(
            f"Invalid engine {name!r} from {where}: no Docker context of that name "
            f"(`docker context inspect {name}`: {detail}); create it with `docker context "
            f"create {name} --docker host=ssh://user@machine` or give an endpoint "
            "(unix://, tcp://, ssh://)"
        ) from None
    data = json.loads(found.stdout or "{}")
    endpoint = (data.get("Endpoints") or {}).get("docker") or {}
    host = str(endpoint.get("Host") or "")
    if not host:
        raise ConfigError(
            f"Invalid engine {name!r} from {where}: Docker context {name!r} has no docker "
            "endpoint (`docker context inspect` shows no Endpoints.docker.Host)"
        )
    tls_dir = Path(str((data.get("Storage") or {}).get("TLSPath") or "")) / "docker"
    has_tls = (tls_dir / "ca.pem").is_file() or (tls_dir / "cert.pem").is_file()
    verify = has_tls and not bool(endpoint.get("SkipTLSVerify"))
    return host, str(tls_dir) if has_tls else "", verify


def resolve_engine(
    ref: EngineRef,
    where: str,
    environment: Mapping[str, str],
    *,
    timeout: float = RESOLVE_TIMEOUT,
) -> EngineEndpoint:
    """``ref`` resolved to where it is and what it is. A context that does not exist is a
    ConfigError; an engine that does not answer is an endpoint with ``problem`` set (its
    platform's tests fail with it, the others run)."""

    if ref.is_context:
        host, cert_path, verify = resolve_context(ref.spec, where)
    else:
        # An endpoint takes its TLS material from the environment, as `docker --host` does.
        host = ref.spec
        cert_path = environment.get("DOCKER_CERT_PATH", "") if host.startswith("tcp://") else ""
        verify = bool(environment.get("DOCKER_TLS_VERIFY")) and host.startswith("tcp://")
        if verify and not cert_path:
            cert_path = str(Path.home() / ".docker")
    try:
        info = engine_info(timeout=timeout, engine=ref)
    except EngineUnavailable as exc:
        return EngineEndpoint(ref.spec, host, cert_path, verify, problem=str(exc))
    return EngineEndpoint(
        ref.spec,
        host,
        cert_path,
        verify,
        id=info.id,
        architecture=info.architecture,
        version=info.version,
        image_store=info.image_store,
        kind=info.kind,
    )


def platform_facts(
    platforms: Sequence[Platform],
    endpoints: Mapping[str, EngineEndpoint] | None = None,
    builders: Mapping[str, BuilderFacts] | None = None,
) -> list[PlatformFacts]:
    """PlatformFacts for harness Platforms, with each emulator's state read now (``endpoints``:
    the engines platforms are mapped to; a remote one's emulators cannot be read from here;
    ``builders``: platform name -> the builder named for it)."""

    facts = []
    for plat in platforms:
        mapped = (endpoints or {}).get(plat.engine) if plat.engine else None
        if mapped is not None and not mapped.is_local:
            summary, version = remote_emulator(plat, mapped), ""
        else:
            status = check_emulator(plat)
            summary, version = status.summary, status.qemu_version or ""
        facts.append(
            PlatformFacts(
                plat.name,
                plat.short,
                not plat.emulated,
                summary,
                version,
                plat.engine,
                (builders or {}).get(plat.name),
                mapped.kind if mapped is not None else "",
                mapped.version if mapped is not None else "",
            )
        )
    return facts
