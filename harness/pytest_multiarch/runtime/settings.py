"""The run's settings as every process of it sees them: resolved once on the controller (from
the option table, by ``pytest_multiarch.run.settings``) and shipped to every xdist worker
through ``workerinput``, so every process collects exactly the same tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.docker import default_endpoint
from pytest_multiarch.engine.endpoints import EngineEndpoint
from pytest_multiarch.model.codec import dump, load
from pytest_multiarch.model.records import BuilderFacts
from pytest_multiarch.runtime.build import BuildMode
from pytest_multiarch.runtime.build_cache import BuildCache

# What a platform without a usable emulator does: stop the run, or skip its tests.
MissingEmulator = Literal["error", "skip"]
MISSING_EMULATOR_MODES: tuple[MissingEmulator, ...] = get_args(MissingEmulator)
# In which order xdist's workers get the tests: longest first by earlier runs, or as collected.
DispatchOrder = Literal["longest", "collection"]
DISPATCH_ORDERS: tuple[DispatchOrder, ...] = get_args(DispatchOrder)


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
    # With -n: hand out tests longest first (by earlier runs' durations), or in collection order.
    order: DispatchOrder = "longest"
    # --build-cache: where BuildKit's cache is read and written (a local DIR made absolute).
    build_cache: BuildCache | None = None
    # Platform name -> the platform on each engine of its pool (``--engine amd64=a,b``), in
    # the order named, for platforms of more than one engine. Each xdist worker works for one
    # engine of each pool (:meth:`for_engines`); ``platforms`` carry the first.
    pools: dict[str, tuple[Platform, ...]] = field(default_factory=dict)

    def endpoint(self, platform: Platform) -> EngineEndpoint | None:
        """The mapped engine of ``platform``; None for the default engine."""
        return self.endpoints.get(platform.engine) if platform.engine else None

    def engine_endpoint(self, platform: Platform) -> EngineEndpoint:
        """The engine that builds and runs ``platform``, the default engine included."""
        return self.endpoint(platform) or default_endpoint()

    def pool(self, platform: Platform) -> tuple[Platform, ...]:
        """``platform`` on each engine of its pool; itself alone for a platform of one engine."""
        return self.pools.get(platform.name, (platform,))

    def for_engines(self, assigned: Mapping[str, str]) -> Settings:
        """These settings as a process that works for engine ``assigned[name]`` of each pooled
        platform ``name`` sees them: its platforms are on those engines."""
        chosen = {
            name: next(p for p in self.pools[name] if p.engine == spec)
            for name, spec in assigned.items()
            if name in self.pools
        }
        platforms = tuple(chosen.get(p.name, p) for p in self.platforms)
        engines = {name: spec for name, spec in self.engines.items() if name not in chosen}
        engines.update({name: p.engine for name, p in chosen.items() if p.engine})
        return replace(self, platforms=platforms, engines=engines)

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
