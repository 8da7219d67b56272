"""Which buildx builder builds which platform: the platform -> builder map of a run, and how a
built image reaches the engine that runs its platform.

A platform without an entry is built by the builder of the engine that runs it (today's
``docker [engine] buildx build --load``). An entry names a builder that ``docker buildx ls``
lists: a Docker context's own builder (driver ``docker``), or one made with ``docker buildx
create`` (``docker-container``, ``remote``, ``kubernetes``), optionally with a registry that the
images travel through::

    [tool.multiarch.builders]
    arm64 = "arm-box"                                     # the docker driver of context arm-box
    s390x = { builder = "remote-z", registry = "127.0.0.1:5000/multiarch-transfer" }

On the command line: ``--builder arm64=arm-box``, ``--builder s390x=remote-z@127.0.0.1:5000/x``.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_multiarch.core.commands import CommandResult
from pytest_multiarch.core.errors import (
    CommandError,
    CommandTimeout,
    ConfigError,
    EngineUnavailable,
)
from pytest_multiarch.core.platform_map import parse_platform_map, platform_key, tool_table
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.buildx import INSPECT_TIMEOUT, BuilderInfo, inspect_builder
from pytest_multiarch.engine.endpoints import EngineRef, engine_of
from pytest_multiarch.model.records import BuilderFacts

# buildx names builders like Docker contexts (a context is the docker driver's builder).
_BUILDER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$")
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:\[[0-9a-fA-F:.]+\]|{_LABEL}(?:\.{_LABEL})*)"
# A repository path component as the distribution spec has it: lowercase, separated by . _ __ -
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = re.compile(
    rf"^(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?(?P<path>(?:/{_COMPONENT})*)$"
)
_LOOPBACK = ("localhost", "127.", "[::1]")
EXAMPLE_REGISTRY = "127.0.0.1:5000/multiarch-transfer"
_EXAMPLES = f"e.g. arm64=arm-builder or arm64=remote-arm@{EXAMPLE_REGISTRY}"


@dataclass(frozen=True)
class BuilderRef:
    """A builder as the user named it, with the registry its images travel through ("" for
    none); a ref without a name means the engine's own builder (an entry mapped back)."""

    name: str = ""
    registry: str = ""

    def __str__(self) -> str:
        return f"{self.name}@{self.registry}" if self.registry else self.name


def parse_registry(text: str, part: str, where: str) -> str:
    """``HOST[:PORT][/PATH]``: a registry host (with a dot or a port, or ``localhost``, so it
    cannot be read as a Docker Hub namespace) and lowercase repository path components."""
    value = text.strip().rstrip("/")
    found = _REGISTRY.match(value)
    host = found.group("host") if found else ""
    port = found.group("port") if found else None
    registry_host = "." in host or port is not None or host == "localhost" or host.startswith("[")
    if found is None or not registry_host or (port is not None and not 0 < int(port) < 65536):
        raise ConfigError(
            f"Invalid registry {text!r} in builder mapping {part!r} from {where}: expected "
            "HOST[:PORT][/PATH] with a registry host (a dot or a port in it, or localhost) and "
            f"a lowercase path, e.g. {EXAMPLE_REGISTRY}"
        )
    return value


def parse_builder(text: str, part: str, where: str) -> BuilderRef:
    """``NAME`` or ``NAME@REGISTRY``; ``""`` is the engine's own builder."""
    name, at, registry = text.strip().partition("@")
    name = name.strip()
    if not name and not at:
        return BuilderRef()
    if not _BUILDER_NAME.match(name):
        raise ConfigError(
            f"Invalid builder name {name!r} in builder mapping {part!r} from {where}: a buildx "
            "builder name starts with a letter or digit and holds only letters, digits and "
            f"'_', '.', '+', '-' (see `docker buildx ls`); {_EXAMPLES}"
        )
    return BuilderRef(name, parse_registry(registry, part, where) if at else "")


def parse_builder_map(items: Iterable[str], where: str) -> dict[str, BuilderRef]:
    """``["arm64=arm-box", "s390x=remote-z@127.0.0.1:5000/t"]`` -> {"linux/arm64": ...}."""
    return parse_platform_map(
        items,
        where,
        "builder",
        f"PLATFORM=BUILDER or PLATFORM=BUILDER@REGISTRY, {_EXAMPLES}",
        lambda builder, part: parse_builder(builder, part, where),
    )


def project_builder_map(pyproject: Path) -> dict[str, BuilderRef]:
    """``[tool.multiarch.builders]`` of ``pyproject``: ``arm64 = "arm-box"`` or ``arm64 =
    { builder = "remote-arm", registry = "127.0.0.1:5000/t" }``; {} when absent."""
    table, where = tool_table(pyproject, "builders")
    if not isinstance(table, dict):
        raise ConfigError(f'{where}: expected a table of platform = "builder", got {table!r}')
    found: dict[str, BuilderRef] = {}
    for key, value in table.items():
        part = f"{key} = {value!r}"
        if isinstance(value, str):
            found[platform_key(key, part, where, "builder")] = parse_builder(value, part, where)
            continue
        if not isinstance(value, dict) or not isinstance(value.get("builder"), str):
            raise ConfigError(
                f'{where}: entry {part}: expected "BUILDER" or {{ builder = "BUILDER", registry '
                f'= "HOST[:PORT]/PATH" }}, e.g. {key} = {{ builder = "remote-arm", registry = '
                f'"{EXAMPLE_REGISTRY}" }}'
            )
        unknown = sorted(set(value) - {"builder", "registry"})
        if unknown or not isinstance(value.get("registry", ""), str):
            what = f"unknown keys {', '.join(unknown)}" if unknown else "registry is not a string"
            raise ConfigError(f"{where}: entry {part}: {what}; the keys are builder, registry")
        ref = parse_builder(value["builder"], part, where)
        if not ref.name:
            raise ConfigError(f"{where}: entry {part}: builder is empty")
        registry = value.get("registry", "")
        found[platform_key(key, part, where, "builder")] = BuilderRef(
            ref.name, parse_registry(registry, part, where) if registry else ""
        )
    return found


def resolve_builder(
    ref: BuilderRef,
    platform: Platform,
    where: str,
    *,
    running_engine_id: Callable[[], str],
    timeout: float = INSPECT_TIMEOUT,
) -> BuilderFacts:
    """Builder ``ref`` of ``platform`` as it is, and how its images will reach the engine that
    runs ``platform`` (BuilderFacts.delivery). ConfigError (a usage error of the run) when it
    does not exist, or when its images have no way into that engine. ``running_engine_id``
    tells the ID (``docker info``) of the engine that runs ``platform``, "" if unknown."""
    engine = engine_of(platform)
    try:
        info = inspect_builder(ref.name, engine, timeout=timeout)
    except CommandError as exc:
        lines = (exc.stderr.strip() or exc.stdout.strip() or str(exc)).splitlines()
        raise ConfigError(
            f"Invalid builder {ref.name!r} for {platform.name} from {where}: "
            f"`docker buildx inspect {ref.name}` failed: {lines[-1] if lines else exc}; list "
            f"the builders with `docker buildx ls` (a Docker context is a builder of driver "
            f"docker: `docker context create {ref.name} --docker host=...`; others: `docker "
            f"buildx create --name {ref.name} ...`)"
        ) from None
    if info.error:
        # Listed, but its engine does not answer: only this platform's builds can fail.
        return BuilderFacts(
            ref.name,
            info.driver or "docker",
            "registry" if ref.registry else "load",
            ref.registry,
            ref.name,
            (),
            where,
            problem=_unanswered(ref.name, platform, info.error),
        )
    return plan_builder(ref, info, platform, where, running_engine_id=running_engine_id)


def _unanswered(name: str, platform: Platform, error: str) -> str:
    return (
        f"builder {name!r} of {platform.name} did not answer at the start of the run: {error}; "
        f"start its engine, or build {platform.short} elsewhere (`--builder {platform.short}=` "
        "builds it with the engine that runs it)"
    )


def plan_builder(
    ref: BuilderRef,
    info: BuilderInfo,
    platform: Platform,
    where: str,
    *,
    running_engine_id: Callable[[], str],
) -> BuilderFacts:
    """How images of builder ``info`` reach the engine that runs ``platform``: through the
    registry of ``ref`` when it has one; else loaded by a docker-driver builder into its own
    engine, which is the running one ("load") or another ("transfer": save, then load). A
    builder of another driver without a registry is a ConfigError that names the fix."""
    context = ""
    if info.driver == "docker" and info.nodes:
        context = info.nodes[0].endpoint or ref.name
    elif info.driver == "docker":
        context = ref.name
    if ref.registry:
        return BuilderFacts(
            ref.name, info.driver, "registry", ref.registry, context, info.platforms, where
        )
    if info.driver != "docker":
        short = platform.short
        runs_on = f"engine {platform.engine}" if platform.engine else "the default engine"
        raise ConfigError(
            f"Builder {ref.name!r} for {platform.name} from {where} has driver {info.driver!r}: "
            f"it has no engine to load into {platform.name}'s engine ({runs_on}); its images "
            f"can only leave it through a registry. Give one: {short} = {{ builder = "
            f'"{ref.name}", registry = "{EXAMPLE_REGISTRY}" }} in [tool.multiarch.builders], or '
            f"--builder {short}={ref.name}@{EXAMPLE_REGISTRY}"
        )
    try:
        same = _same_engine(context, platform, running_engine_id)
    except EngineUnavailable as exc:
        return BuilderFacts(
            ref.name,
            info.driver,
            "transfer",
            "",
            context,
            info.platforms,
            where,
            problem=_unanswered(ref.name, platform, str(exc)),
        )
    return BuilderFacts(
        ref.name,
        info.driver,
        "load" if same else "transfer",
        "",
        context,
        info.platforms,
        where,
    )


def _same_engine(context: str, platform: Platform, running_engine_id: Callable[[], str]) -> bool:
    """Whether the docker-driver builder on ``context`` is the engine that runs ``platform``:
    by the engines' own IDs, whichever way each is named. EngineUnavailable when the builder's
    engine does not answer."""
    from pytest_multiarch.engine.docker import engine_info

    builder_id = engine_info(timeout=INSPECT_TIMEOUT, engine=EngineRef(context)).id
    running = running_engine_id()
    if running:
        return builder_id == running
    # The running engine did not answer: its name is all there is to go by.
    return context == (platform.engine or "default")


# ---- the build's flags and where its image goes -------------------------------------------------


def builder_engine(builder: BuilderFacts, platform: Platform) -> EngineRef | None:
    """The engine flags of a build by ``builder``: a docker-driver builder is a Docker context,
    and buildx refuses it under any other (``use docker --context=NAME buildx``)."""
    if builder.context:
        return EngineRef(builder.context)
    return engine_of(platform)


def registry_reference(registry: str, tag: str) -> str:
    """Where a build for ``tag`` travels through ``registry``:
    ``pytest-multiarch/box:0123-arm64`` -> ``REGISTRY/pytest-multiarch-box:0123-arm64``."""
    repository, _, version = tag.rpartition(":")
    return f"{registry}/{repository.replace('/', '-')}:{version}"


def is_loopback(registry: str) -> bool:
    return registry.startswith(_LOOPBACK)


def registry_output(registry: str, tag: str) -> str:
    """buildx ``--output`` that pushes the build for ``tag`` through ``registry``. A registry
    on loopback is the host's own (plain HTTP, as Docker allows 127.0.0.0/8 by default)."""
    output = f"type=image,name={registry_reference(registry, tag)},push=true"
    return output + (",registry.insecure=true" if is_loopback(registry) else "")


def pipe_commands(
    producer: Sequence[str], consumer: Sequence[str], *, timeout: float, hint: str = ""
) -> CommandResult:
    """``producer | consumer`` without a shell: two processes, the first's stdout into the
    second's stdin, both within ``timeout``. CommandError names both commands, the exit code
    and output tail of the one that failed (the producer's first), and ``hint``."""
    first_args = [str(part) for part in producer]
    second_args = [str(part) for part in consumer]
    label = [*first_args, "|", *second_args]
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryFile() as producer_errors:
        try:
            first = subprocess.Popen(
                first_args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=producer_errors,
            )
        except OSError as exc:
            raise CommandError(label, 127, "", f"{first_args[0]}: {exc}", hint) from None
        try:
            second = subprocess.Popen(
                second_args,
                stdin=first.stdout,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
            )
        except OSError as exc:
            first.kill()
            first.wait()
            raise CommandError(label, 127, "", f"{second_args[0]}: {exc}", hint) from None
        finally:
            # Only the consumer reads it now: the producer sees a closed pipe if it dies.
            if first.stdout is not None:
                first.stdout.close()
        try:
            out, err = second.communicate(timeout=max(0.1, deadline - time.monotonic()))
            first_code = first.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for process in (first, second):
                process.kill()
                process.wait()
            producer_errors.seek(0)
            errors = producer_errors.read().decode(errors="replace")
            raise CommandTimeout(label, timeout, "", errors, hint) from None
        producer_errors.seek(0)
        first_err = producer_errors.read().decode(errors="replace")
    if first_code != 0:
        raise CommandError(label, first_code, "", first_err, hint)
    if second.returncode != 0:
        raise CommandError(label, second.returncode, out, err, hint)
    return CommandResult(label, 0, out, err)
