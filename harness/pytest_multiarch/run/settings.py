"""The run's settings: resolved once on the controller from the option table, shipped to every
xdist worker through ``workerinput``, so every process collects exactly the same tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pytest_multiarch.core.errors import PlatformError
from pytest_multiarch.core.platform_map import merge_layers
from pytest_multiarch.core.platforms import Platform, parse_platforms
from pytest_multiarch.engine.endpoints import RESOLVE_TIMEOUT, EngineEndpoint, EngineRef
from pytest_multiarch.model.records import BuilderFacts
from pytest_multiarch.run.options import resolve, resolve_layers, resolve_path
from pytest_multiarch.runtime.build_cache import (
    BuildCache,
    directory_problem,
    environment_problem,
)
from pytest_multiarch.runtime.builders import BuilderRef
from pytest_multiarch.runtime.settings import MissingEmulator, Settings

Value = TypeVar("Value")


def resolve_settings(config: pytest.Config) -> Settings:
    """Every option, validated; pytest.UsageError names the bad value and its source."""
    from pytest_multiarch.core.emulation import check_emulator
    from pytest_multiarch.engine.cleanup import owner_id
    from pytest_multiarch.runtime.process import unusable_reasons

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
    engines, endpoints, pool_specs = _engines_of(config, platforms, sources)
    pools = {
        p.name: tuple(on_engine(p, spec, endpoints) for spec in pool_specs[p.name])
        for p in platforms
        if p.name in pool_specs
    }
    platforms = [on_engine(p, engines.get(p.name, ""), endpoints) for p in platforms]
    builders = _builders_of(config, platforms, sources, endpoints)
    pooled = sorted(set(builders) & set(pools))
    if pooled:
        raise pytest.UsageError(
            f"{pooled[0]} has a pool of engines ({sources[f'engine {pooled[0]}']}) and a "
            f"builder ({sources[f'builder {pooled[0]}']}): a builder delivers to one engine; "
            "drop the builder (each engine of the pool then builds its own image) or the pool"
        )

    images = resolve_path(config, "images")
    sources["images"] = images.source
    images_dir = images.value if images.value is not None else config.rootpath / "images"
    if images.given and not images_dir.is_dir():
        raise pytest.UsageError(
            f"Invalid images directory {images_dir} from {images.source}: not a directory"
        )
    build_cache = _build_cache_of(config, sources)
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
        order=value("multiarch-order"),
        build_cache=build_cache,
        pools=pools,
    )


def _build_cache_of(config: pytest.Config, sources: dict[str, str]) -> BuildCache | None:
    """--build-cache with where it came from; a ``local:`` directory made absolute (against
    where pytest was invoked, or rootdir for the ini value) and made if missing. A directory
    that cannot be written, or a gha cache outside GitHub Actions, is a usage error."""
    found = resolve(config, "build-cache")
    sources["build-cache"] = found.source
    cache = found.value
    if not isinstance(cache, BuildCache):
        return None
    cache = replace(cache, source=found.source)
    if cache.kind == "local":
        path = Path(cache.location).expanduser()
        if not path.is_absolute():
            base = (
                config.rootpath if found.source.startswith("ini") else config.invocation_params.dir
            )
            path = Path(base) / path
        cache = replace(cache, location=str(path))
    problem = directory_problem(cache) or environment_problem(cache, os.environ)
    if problem:
        raise pytest.UsageError(problem)
    return cache


def _engines_of(
    config: pytest.Config, platforms: list[Platform], sources: dict[str, str]
) -> tuple[dict[str, str], dict[str, EngineEndpoint], dict[str, tuple[str, ...]]]:
    """The platform -> engine map (the first engine of each pool), each
    engine of a selected platform's pool asked once what it is, and the pools of more than one
    engine (platform name -> engine specs, "" for the default engine). Where each mapping came
    from goes into ``sources`` (``engine linux/arm64``)."""
    from pytest_multiarch.core.errors import ConfigError
    from pytest_multiarch.engine.endpoints import implicit_default_engine
    from pytest_multiarch.engine.resolve import resolve_engine

    try:
        pools, where = engine_pools(config)
        implicit = implicit_default_engine(os.environ)
        if implicit:
            # The CLI's default engine is another machine, or a context the SDK cannot see:
            # what the run does on "the default engine" goes there, like a mapped engine's.
            origin = "DOCKER_HOST" if os.environ.get("DOCKER_HOST") else "the current context"
            for plat in platforms:
                if plat.name not in pools:
                    pools[plat.name] = (implicit,)
                    where[plat.name] = f"{origin} (the docker CLI's default engine)"
                else:
                    pools[plat.name] = tuple(spec or implicit for spec in pools[plat.name])
        sources.update({f"engine {name}": source for name, source in where.items()})
        endpoints: dict[str, EngineEndpoint] = {}
        for plat in platforms:
            for spec in pools.get(plat.name, ("",)):
                if spec and spec not in endpoints:
                    endpoints[spec] = resolve_engine(EngineRef(spec), where[plat.name], os.environ)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    engines = {name: pool[0] for name, pool in pools.items() if pool[0]}
    return engines, endpoints, {name: pool for name, pool in pools.items() if len(pool) > 1}


def engine_map(config: pytest.Config) -> tuple[dict[str, str], dict[str, str]]:
    """Platform name -> engine for the platforms mapped away from the default engine (the
    first of a pool: :func:`engine_pools`), and platform name -> where its entry came from.
    Read from ``[tool.multiarch.engines]`` of rootdir's pyproject.toml, then the ini option,
    the environment and ``--engine``: each overrides single platforms (``arm64=default`` maps
    one back). ConfigError names the bad entry and its source."""
    pools, where = engine_pools(config)
    return {name: pool[0] for name, pool in pools.items() if pool[0]}, where


def engine_pools(config: pytest.Config) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Platform name -> its pool of engines as named (``--engine amd64=default,tcp://b:2376``;
    "" is the default engine), for every platform the map names, and where each came from."""
    from pytest_multiarch.engine.endpoints import parse_engine_pools, project_engine_pools

    mapped, where = _layered_map(
        config, "engine", "engines", project_engine_pools, parse_engine_pools
    )
    return {name: tuple(ref.spec for ref in pool) for name, pool in mapped.items()}, where


def builder_map(config: pytest.Config) -> tuple[dict[str, BuilderRef], dict[str, str]]:
    """Platform name -> the builder named for it, and platform name -> where its entry came
    from: ``[tool.multiarch.builders]`` of rootdir's pyproject.toml, then the ini option, the
    environment and ``--builder``, each overriding single platforms (``arm64=`` maps one back to
    its engine's own builder). ConfigError names the bad entry and its source."""
    from pytest_multiarch.runtime.builders import parse_builder_map, project_builder_map

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

    from pytest_multiarch.core.errors import ConfigError, EngineUnavailable
    from pytest_multiarch.engine.docker import engine_info
    from pytest_multiarch.runtime.builders import resolve_builder

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
