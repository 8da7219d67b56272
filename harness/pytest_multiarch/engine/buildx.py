"""buildx as the docker CLI describes it: ``docker buildx inspect`` parsed in one place, for the
builder map of a run (pytest_multiarch.runtime.builders) and for ``multiarch doctor``."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.engine.docker import docker
from pytest_multiarch.engine.endpoints import EngineRef

# Seconds `docker buildx inspect` may take on the controller (it does not boot the builder).
INSPECT_TIMEOUT = 20.0
_HINT = "install the buildx plugin: `multiarch host up` (Debian package docker-buildx)"


@dataclass(frozen=True)
class BuilderNode:
    name: str
    endpoint: str  # driver docker: the Docker context; else where BuildKit is reached
    status: str
    platforms: tuple[str, ...]


@dataclass(frozen=True)
class BuilderInfo:
    name: str
    driver: str
    nodes: tuple[BuilderNode, ...]
    error: str = ""  # why buildx could not reach it (a docker-driver builder's engine is down)

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for node in self.nodes for p in node.platforms))


def parse_buildx_inspect(text: str) -> BuilderInfo:
    """The builder that ``docker buildx inspect NAME`` describes (its text form: buildx 0.13
    has no JSON form). Fields before ``Nodes:`` are the builder's, each ``Name:`` after it
    starts a node."""
    name = driver = error = ""
    nodes: list[dict[str, str]] = []
    in_nodes = False
    for line in text.splitlines():
        if line.startswith((" ", "\t")):
            continue  # a label of a node, or a wrapped value
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "Nodes":
            in_nodes = True
        elif not in_nodes and key == "Name":
            name = value
        elif not in_nodes and key == "Driver":
            driver = value
        elif not in_nodes and key == "Error":
            error = value
        elif in_nodes and key == "Name":
            nodes.append({"Name": value})
        elif in_nodes and nodes and key in ("Endpoint", "Status", "Platforms"):
            nodes[-1][key] = value
    return BuilderInfo(
        name,
        driver,
        tuple(
            BuilderNode(
                node["Name"],
                node.get("Endpoint", ""),
                node.get("Status", ""),
                tuple(p.strip() for p in node.get("Platforms", "").split(",") if p.strip()),
            )
            for node in nodes
        ),
        error,
    )


def inspect_builder(
    name: str, engine: EngineRef | None = None, *, timeout: float = INSPECT_TIMEOUT
) -> BuilderInfo:
    """``docker [engine flags] buildx inspect NAME`` (``name`` "": the builder buildx uses for
    that engine); CommandError when there is no such builder (or no buildx)."""
    command = docker("buildx", "inspect", *([name] if name else []), engine=engine)
    found = run_command(command, timeout=timeout, hint="" if name else _HINT)
    return parse_buildx_inspect(found.stdout)


@dataclass(frozen=True)
class BuildxInfo:
    """What ``multiarch doctor`` says of buildx: its version and the engine's builder."""

    version: str
    builder: BuilderInfo


def buildx_info(timeout: float = INSPECT_TIMEOUT, engine: EngineRef | None = None) -> BuildxInfo:
    """The buildx plugin's version and the builder it uses for ``engine`` (else the current
    builder). Raises CommandError when absent."""
    version = run_command(docker("buildx", "version", engine=engine), timeout=timeout, hint=_HINT)
    parts = version.stdout.split()
    return BuildxInfo(
        parts[1] if len(parts) > 1 else version.stdout.strip(),
        inspect_builder("", engine, timeout=timeout),
    )
