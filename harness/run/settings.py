"""The run's settings: resolved once on the controller from the option table, shipped to every
xdist worker through ``workerinput``, so every process collects exactly the same tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from harness.errors import PlatformError
from harness.platform_map import merge_layers
from harness.platforms import Platform, parse_platforms
from harness.run.codec import dump, load
from harness.run.model import BuilderFacts
from harness.run.options import MissingEmulator, resolve, resolve_layers, resolve_path
from harness.runtime.build import BuildMode
from harness.runtime.builders import BuilderRef
from harness.runtime.engines import RESOLVE_TIMEOUT, EngineEndpoint, EngineRef

Value = TypeVar("Value")


@dataclass(frozen=True)
class Settings:
    """Options after validation, with where each came from (``sources``: option -> source)."""

    platforms: tuple[Platform, ...]
    images_dir: Path
    build_mode: BuildMode
    build_timeout: float
    missing_emulator: MissingEmulator
    timeout_factor: float
    keep_containers: bool
    bind_address: str
    json_path: Path | None
    run_id: str
    owner: str
    unusable: dict[str, str] = field(default_factory=dict)  # platform name -> why + remedy
    sources: dict[str, str] = field(default_factory=dict)
    emulator_fault_retries: int = 0
    no_prestart: bool = False
    # Platform name -> the engine that builds and runs it (a context or an endpoint), for the
    # platforms mapped away from the default engine; each platform carries it too (.engine).
    engines: dict[str, str] = field(default_factory=dict)
    # Engine -> where it is and what it is, as the controller found it at the start.
    endpoints: dict[str, EngineEndpoint] = field(default_factory=dict)
    # Platform name -> the buildx builder named for it ([tool.multiarch.builders]), as the
    # controller found it at the start; a platform without one builds with its engine's own.
    builders: dict[str, BuilderFacts] = field(default_factory=dict)

    def endpoint(self, platform: Platform) -> EngineEndpoint | None:
        """The mapped engine of ``platform``; None for the default engine."""
        return self.endpoints.get(platform.engine) if platform.engine else None

    def timeout(self, native_seconds: float, platform: Platform) -> float:
        """A native time limit as it applies on ``platform`` (scaled when emulated)."""
        return native_seconds * self.factor(platform)

    def factor(self, platform: Platform) -> float:
        return self.timeout_factor if platform.emulated else 1.0

    def to_workerinput(self) -> dict[str, Any]:
        data: dict[str, Any] = dump(self)
        return data

    @classmethod
    def from_workerinput(cls, data: object) -> Settings:
        return load(cls, data, "workerinput['multiarch']")


def resolve_settings(config: pytest.Config) -> Settings:
    """Every option, validated; pytest.UsageError names the bad value and its source."""
    from harness.emulation import check_emulator
    from harness.runtime.cleanup import owner_id
    from harness.runtime.session import unusable_reasons

    sources: dict[str, str] = {}

    def value(name: str) -> Any:
        found = resolve(config, name)
        sources[name] = found.source
        return found.value

    spec = str(value("platforms"))
    try:
        platforms = parse_platforms(
            spec,
            source=sources["platforms"],
            can_run=lambda p: check_emulator(p, ask_version=False).usable,
        )
    except PlatformError as exc:
        raise pytest.UsageError(str(exc)) from None
    engines, endpoints = _engines_of(config, platforms, sources)
    platforms = [on_engine(p, engines.get(p.name, ""), endpoints) for p in platforms]
    builders = _builders_of(config, platforms, sources, endpoints)

    images = resolve_path(config, "images")
    sources["images"] = images.source
    images_dir = images.value if images.value is not None else config.rootpath / "images"
    if images.given and not images_dir.is_dir():
        raise pytest.UsageError(
            f"Invalid images directory {images_dir} from {images.source}: not a directory"
        )
    json_path = resolve_path(config, "multiarch-json")
    sources["multiarch-json"] = json_path.source

    missing: MissingEmulator = value("missing-emulator")
    # This host's binfmt_misc decides only for engines on this host; a remote engine's
    # emulators are checked by the probe of the verification, on that engine.
    unusable = unusable_reasons(
        [p for p in platforms if p.engine == "" or endpoints[p.engine].is_local]
    )
    if unusable and missing == "error":
        lines = [f"  {name}: {reason}" for name, reason in unusable.items()]
        raise pytest.UsageError(
            "cannot run these platforms here (checked binfmt_misc before running anything):\n"
            + "\n".join(lines)
            + "\nfix the emulator, drop the platform from --platforms, or pass "
            "--missing-emulator=skip to report their tests as skipped"
        )
    run_id = getattr(config.option, "testrunuid", None) or uuid.uuid4().hex
    if hasattr(config.option, "testrunuid"):
        # xdist hands this to every worker as testrun_uid: one id for the whole run.
        config.option.testrunuid = run_id
    return Settings(
        platforms=tuple(platforms),
        images_dir=images_dir,
        build_mode=value("build"),
        build_timeout=value("build-timeout"),
        missing_emulator=missing,
        timeout_factor=value("emulation-timeout-factor"),
        keep_containers=value("keep-containers"),
        bind_address=value("bind-address"),
        json_path=json_path.value,
        run_id=run_id,
        owner=owner_id(),
        unusable=unusable,
        sources=sources,
        emulator_fault_retries=int(value("emulator-fault-retries")),
        no_prestart=bool(value("no-prestart")),
        engines=engines,
        endpoints=endpoints,
        builders=builders,
    )


def _engines_of(
    config: pytest.Config, platforms: list[Platform], sources: dict[str, str]
) -> tuple[dict[str, str], dict[str, EngineEndpoint]]:
    """The platform -> engine map (:func:`engine_map`), and each engine that a selected
    platform is mapped to, asked once what it is. Where each mapping came from goes into
    ``sources`` (``engine linux/arm64``)."""
    from harness.errors import ConfigError
    from harness.runtime.engines import implicit_default_engine, resolve_engine

    try:
        engines, where = engine_map(config)
        implicit = implicit_default_engine(os.environ)
        if implicit:
            # The CLI's default engine is another machine, or a context the SDK cannot see:
            # what the run does on "the default engine" goes there, like a mapped engine's.
            origin = "DOCKER_HOST" if os.environ.get("DOCKER_HOST") else "the current context"
            for plat in platforms:
                if plat.name not in engines:
                    engines[plat.name] = implicit
                    where[plat.name] = f"{origin} (the docker CLI's default engine)"
        sources.update({f"engine {name}": source for name, source in where.items()})
        endpoints: dict[str, EngineEndpoint] = {}
        for plat in platforms:
            spec = engines.get(plat.name, "")
            if spec and spec not in endpoints:
                endpoints[spec] = resolve_engine(EngineRef(spec), where[plat.name], os.environ)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    return engines, endpoints


def engine_map(config: pytest.Config) -> tuple[dict[str, str], dict[str, str]]:
    """Platform name -> engine for the platforms mapped away from the default engine, and
    platform name -> where its entry came from. Read from ``[tool.multiarch.engines]`` of
    rootdir's pyproject.toml, then the ini option, the environment and ``--engine``: each
    overrides single platforms (``arm64=default`` maps one back). ConfigError names the bad
    entry and its source."""
    from harness.runtime.engines import parse_engine_map, project_engine_map

    mapped, where = _layered_map(config, "engine", "engines", project_engine_map, parse_engine_map)
    return {name: ref.spec for name, ref in mapped.items() if ref.spec}, where


def builder_map(config: pytest.Config) -> tuple[dict[str, BuilderRef], dict[str, str]]:
    """Platform name -> the builder named for it, and platform name -> where its entry came
    from: ``[tool.multiarch.builders]`` of rootdir's pyproject.toml, then the ini option, the
    environment and ``--builder``, each overriding single platforms (``arm64=`` maps one back to
    its engine's own builder). ConfigError names the bad entry and its source."""
    from harness.runtime.builders import parse_builder_map, project_builder_map

    mapped, where = _layered_map(
        config, "builder", "builders", project_builder_map, parse_builder_map
    )
    return {name: ref for name, ref in mapped.items() if ref.name}, where


def _layered_map(
    config: pytest.Config,
    option: str,
    table: str,
    from_project: Callable[[Path], dict[str, Value]],
    parse: Callable[[list[str], str], dict[str, Value]],
) -> tuple[dict[str, Value], dict[str, str]]:
    """A platform map's layers merged, each overriding single platforms: pyproject.toml's
    ``[tool.multiarch.<table>]``, then the option's ini, environment and command line values;
    and where each platform's entry came from."""
    pyproject = config.rootpath / "pyproject.toml"
    layers = [(from_project(pyproject), f"{pyproject} [tool.multiarch.{table}]")]
    for layer in resolve_layers(config, option):
        layers.append((parse(layer.value, layer.source), layer.source))
    return merge_layers(layers)


def _builders_of(
    config: pytest.Config,
    platforms: list[Platform],
    sources: dict[str, str],
    endpoints: dict[str, EngineEndpoint],
) -> dict[str, BuilderFacts]:
    """Each selected platform's builder (:func:`builder_map`), asked once what it is (``docker
    buildx inspect``) and how its images reach the engine that runs the platform. A builder
    that does not exist, or whose images cannot reach that engine, is a usage error."""
    from functools import partial

    from harness.errors import ConfigError, EngineUnavailable
    from harness.runtime.builders import resolve_builder
    from harness.runtime.engine import engine_info

    default_id: list[str] = []  # asked at most once, and only when a builder needs it

    def running_engine_id(plat: Platform) -> str:
        if plat.engine:
            return endpoints[plat.engine].id
        if not default_id:
            try:
                default_id.append(engine_info(timeout=RESOLVE_TIMEOUT).id)
            except EngineUnavailable:
                default_id.append("")
        return default_id[0]

    try:
        refs, where = builder_map(config)
        builders: dict[str, BuilderFacts] = {}
        for plat in platforms:
            ref = refs.get(plat.name)
            if ref is None:
                continue
            sources[f"builder {plat.name}"] = where[plat.name]
            builders[plat.name] = resolve_builder(
                ref, plat, where[plat.name], running_engine_id=partial(running_engine_id, plat)
            )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    return builders


def on_engine(plat: Platform, spec: str, endpoints: dict[str, EngineEndpoint]) -> Platform:
    """``plat`` as it runs on engine ``spec`` ("" keeps the default engine and this host's
    verdict): native exactly when that engine's machine is ``plat``'s (``docker info``
    Architecture against ``uname -m``); an engine that did not answer counts as emulated."""
    if not spec:
        return plat
    architecture = endpoints[spec].architecture
    return replace(plat, engine=spec, emulated=architecture != plat.uname)
