"""BuildKit's cache kept outside the engine (``--build-cache``), so a fresh machine (a CI runner)
builds from what an earlier run on another machine built.

A spec names where the cache lives: ``local:DIR`` (a directory, e.g. restored by CI's own cache
action), ``registry:REF`` (an image reference in a registry) or ``gha`` / ``gha:SCOPE`` (GitHub
Actions' cache service). Each (image, platform) gets a scope of its own there (a sub-directory,
a tag suffix, a gha scope), so platforms never evict each other's entries. An optional
``,mode=min`` exports only the final image's layers instead of every stage's (``mode=max``).

Reading a cache that is not there yet is a cold build; one that cannot be read is reported and
the build goes on without it. This module is the pure part: parsing, the buildx arguments,
whether a builder can export at all, and what buildx's plain progress output says.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from pytest_multiarch.core.errors import ConfigError

CacheKind = Literal["local", "registry", "gha"]
CACHE_KINDS: tuple[CacheKind, ...] = get_args(CacheKind)
CacheMode = Literal["min", "max"]
CACHE_MODES: tuple[CacheMode, ...] = get_args(CacheMode)
DEFAULT_GHA_SCOPE = "multiarch"
WITHOUT = (
    "to build without a cache, drop --build-cache, or unset MULTIARCH_BUILD_CACHE / the ini "
    "option multiarch_build_cache"
)
# Where buildx (0.13) says the builder cannot export a cache at all.
_EXPORT_UNSUPPORTED = "Cache export is not supported for the docker driver"
# GitHub Actions hands these to actions, not to `run:` steps, unless exposed.
_GHA_ENV = ("ACTIONS_RUNTIME_TOKEN",)
_GHA_URL_ENV = ("ACTIONS_CACHE_URL", "ACTIONS_RESULTS_URL")


@dataclass(frozen=True)
class BuildCache:
    """Where BuildKit's cache is read from and written to, for every (image, platform)."""

    kind: CacheKind
    location: str  # local: an absolute directory; registry: a reference; gha: a scope
    mode: CacheMode = "max"
    spec: str = ""  # as the user wrote it
    source: str = ""  # where it came from: "--build-cache", "environment variable ..."

    def describe(self) -> str:
        return f"{self.spec or self.kind} (from {self.source})" if self.source else self.spec


def parse_build_cache(text: str) -> BuildCache:
    """``local:DIR``, ``registry:REF``, ``gha`` or ``gha:SCOPE``, each optionally followed by
    ``,mode=min`` or ``,mode=max`` (the default). ConfigError says what is wrong and how to
    build without a cache. A relative DIR is kept relative (the caller anchors it)."""
    spec = text.strip()
    body, mode = spec, "max"
    head, sep, tail = spec.rpartition(",")
    if sep and tail.startswith("mode="):
        body, mode = head, tail.removeprefix("mode=")
        if mode not in CACHE_MODES:
            raise ConfigError(f"unknown cache mode {mode!r}: use mode=max or mode=min; {WITHOUT}")
    kind, _, value = body.partition(":")
    kind = kind.strip()
    if kind == "gha":
        scope = value.strip() or DEFAULT_GHA_SCOPE
        if not re.fullmatch(r"[A-Za-z0-9._-]+", scope):
            raise ConfigError(f"a gha scope is letters, digits, '.', '_' and '-'; {WITHOUT}")
        return BuildCache("gha", scope, _mode(mode), spec)
    if kind == "local":
        if not value.strip():
            raise ConfigError(f"local needs a directory: local:DIR; {WITHOUT}")
        return BuildCache("local", value.strip(), _mode(mode), spec)
    if kind == "registry":
        reference = value.strip()
        if not re.fullmatch(r"[a-z0-9][a-z0-9.:_/-]*(:[A-Za-z0-9_][A-Za-z0-9._-]*)?", reference):
            raise ConfigError(
                f"registry needs an image reference: registry:HOST[:PORT]/NAME[:TAG]; {WITHOUT}"
            )
        return BuildCache("registry", reference, _mode(mode), spec)
    raise ConfigError(
        f"unknown cache kind {kind!r}: use local:DIR, registry:REF, gha or gha:SCOPE; {WITHOUT}"
    )


def _mode(text: str) -> CacheMode:
    return "min" if text == "min" else "max"


def scope_name(image: str, platform_short: str) -> str:
    """The name of one (image, platform) in a cache: ``service-arm64``, ``app-arm-v7``."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", f"{image}-{platform_short}")


def local_scope(cache: BuildCache, image: str, platform_short: str) -> Path:
    """The directory of one (image, platform) under a ``local:`` cache."""
    return Path(cache.location) / image / platform_short


def registry_scope(cache: BuildCache, image: str, platform_short: str) -> str:
    """The reference of one (image, platform) under a ``registry:`` cache: the scope as the tag,
    after the given tag when there is one (``reg/cache:ci`` -> ``reg/cache:ci-service-arm64``)."""
    reference = cache.location
    name, _, tag = reference.rpartition(":")
    if name and "/" not in tag:
        return f"{name}:{tag}-{scope_name(image, platform_short)}"
    return f"{reference}:{scope_name(image, platform_short)}"


def where(cache: BuildCache, image: str, platform_short: str) -> str:
    """The place of one (image, platform) in the cache, for messages and the report."""
    if cache.kind == "local":
        return f"local:{local_scope(cache, image, platform_short)}"
    if cache.kind == "registry":
        return f"registry:{registry_scope(cache, image, platform_short)}"
    return f"gha:{cache.location}-{scope_name(image, platform_short)}"


def staging(cache: BuildCache, image: str, platform_short: str, stage: str) -> Path:
    """Where a build writes a ``local:`` scope's new cache before it replaces the old one."""
    directory = local_scope(cache, image, platform_short)
    return directory.with_name(f".{directory.name}.{stage}")


def cache_arguments(
    cache: BuildCache, image: str, platform_short: str, *, read: bool = True, stage: str = ""
) -> list[str]:
    """``--cache-from``/``--cache-to`` for one (image, platform). Without ``read`` (a retry
    after the cache could not be read), only the export, which replaces what is there. A
    ``local:`` scope that has no ``index.json`` yet is not read at all: a cold build. With
    ``stage``, a ``local:`` export goes to :func:`staging` (see :func:`replace_local`)."""
    mode = f"mode={cache.mode}"
    if cache.kind == "local":
        directory = local_scope(cache, image, platform_short)
        source = [f"type=local,src={directory}"] if (directory / "index.json").is_file() else []
        dest = staging(cache, image, platform_short, stage) if stage else directory
        target = f"type=local,dest={dest},{mode}"
    elif cache.kind == "registry":
        reference = registry_scope(cache, image, platform_short)
        source = [f"type=registry,ref={reference}"]
        target = f"type=registry,ref={reference},{mode}"
    else:
        scope = f"{cache.location}-{scope_name(image, platform_short)}"
        source = [f"type=gha,scope={scope}"]
        target = f"type=gha,scope={scope},{mode}"
    arguments = []
    if read:
        for item in source:
            arguments += ["--cache-from", item]
    return [*arguments, "--cache-to", target]


def replace_local(cache: BuildCache, image: str, platform_short: str, stage: str) -> None:
    """After a successful build: its staged export becomes the scope's cache, the old one goes.
    BuildKit's local exporter only adds blobs to a directory, never drops unused ones, so
    exporting over the old cache would grow it run after run (and a build killed mid-export
    would leave it half-written)."""
    directory = local_scope(cache, image, platform_short)
    staged = staging(cache, image, platform_short, stage)
    if not (staged / "index.json").is_file():
        shutil.rmtree(staged, ignore_errors=True)
        return
    old = directory.with_name(f".{directory.name}.{stage}.old")
    with contextlib.suppress(FileNotFoundError):
        directory.rename(old)
    try:
        staged.rename(directory)
    except OSError:
        # Another run put its own fresh export in place meanwhile: as good as this one.
        shutil.rmtree(staged, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def discard_stage(cache: BuildCache, image: str, platform_short: str, stage: str) -> None:
    """After a failed build: what it may have exported is dropped, the old cache kept."""
    if cache.kind == "local":
        shutil.rmtree(staging(cache, image, platform_short, stage), ignore_errors=True)


def reads(arguments: Iterable[str]) -> bool:
    return "--cache-from" in arguments


def export_problem(
    cache: BuildCache, builder: str, driver: str, image_store: str, remedy_builder: str = ""
) -> str:
    """Why ``builder`` (its buildx ``driver``, on an engine with ``image_store``) cannot export
    ``cache``; "" when it can. buildx's docker driver exports a cache only with the containerd
    image store (its CacheExport feature)."""
    if driver != "docker" or image_store != "classic":
        return ""
    return (
        f"--build-cache {cache.describe()}: builder {builder!r} (driver docker) cannot export a "
        "build cache on an engine with the classic image store. Turn on the containerd image "
        'store (daemon.json: {"features": {"containerd-snapshotter": true}}, then restart '
        "the engine), or build with a docker-container builder (`docker buildx create --driver "
        f"docker-container --name cachebuilder`, then `--builder "
        f"{remedy_builder or 'PLATFORM'}=cachebuilder`); {WITHOUT}"
    )


def export_refused(log: str) -> bool:
    """Whether buildx refused the build because its builder cannot export a cache."""
    return _EXPORT_UNSUPPORTED.lower() in log.lower()


def environment_problem(cache: BuildCache, environ: Mapping[str, str]) -> str:
    """Why ``cache`` cannot work in this environment; "" when it can (or cannot be told)."""
    if cache.kind != "gha":
        return ""
    if all(environ.get(name) for name in _GHA_ENV) and any(
        environ.get(name) for name in _GHA_URL_ENV
    ):
        return ""
    return (
        f"--build-cache {cache.describe()}: the gha cache needs ACTIONS_RUNTIME_TOKEN and "
        "ACTIONS_CACHE_URL (or ACTIONS_RESULTS_URL), which GitHub Actions gives to actions "
        "but not to `run:` steps: expose them (e.g. a step with crazy-max/ghaction-github-"
        f"runtime), or use local:DIR with actions/cache; {WITHOUT}"
    )


def directory_problem(cache: BuildCache) -> str:
    """For ``local:``: why the directory cannot hold a cache (made when missing); "" if it can."""
    if cache.kind != "local":
        return ""
    directory = Path(cache.location)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--build-cache {cache.describe()}: cannot create {directory}: {exc}; {WITHOUT}"
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        return (
            f"--build-cache {cache.describe()}: {directory} is not a writable directory; {WITHOUT}"
        )
    return ""


# ---- what buildx's plain progress output says ----------------------------------------------------

_VERTEX = re.compile(r"^#(\d+) \[(?P<name>[^\]]+)\] (?P<what>.*)$")
_STATUS = re.compile(r"^#(\d+) (CACHED|DONE\b|ERROR\b)")
_IMPORT = re.compile(r"^#(\d+) importing cache manifest from ")
_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")
_ABSENT_REF = re.compile(r"registry cache importer: [^ ]+: not found$")


@dataclass
class StepCount:
    """Build steps of one build, from buildx's plain progress lines: taken from the cache
    (``CACHED``) or run. Base images (``FROM``) and buildx's internal steps are not counted."""

    cached: int = 0
    run: int = 0
    unreadable: str = ""  # the first line saying the cache could not be read
    _steps: dict[str, str] = field(default_factory=dict)  # vertex number -> CACHED/DONE/ERROR
    _imports: set[str] = field(default_factory=set)  # vertices importing a cache

    def feed(self, line: str) -> None:
        text = line.rstrip()
        steps = self._steps
        vertex = _VERTEX.match(text)
        if vertex:
            name, what = vertex.group("name"), vertex.group("what")
            if not name.startswith("internal") and not what.startswith("FROM "):
                steps.setdefault(vertex.group(1), "")
            return
        status = _STATUS.match(text)
        if status and status.group(1) in steps and not steps[status.group(1)]:
            steps[status.group(1)] = status.group(2)
            self._recount()
            return
        self._watch_import(text)

    def _recount(self) -> None:
        states = list(self._steps.values())
        self.cached = states.count("CACHED")
        self.run = states.count("DONE")

    def _watch_import(self, text: str) -> None:
        importing = _IMPORT.match(text)
        if importing:
            self._imports.add(importing.group(1))
            return
        failed = _ERROR.match(text)
        if failed and failed.group(1) in self._imports and not self.unreadable:
            reason = failed.group(2).strip()
            # A registry reference nobody has written yet is an empty cache: a cold build.
            if not _ABSENT_REF.search(reason):
                self.unreadable = reason
            return
        lowered = text.lower()
        # "no such file" is an empty cache: a cold build, not a problem.
        if (
            "cache import" in lowered
            and "not found due to err" in lowered
            and "no such file or directory" not in lowered
            and not self.unreadable
        ):
            self.unreadable = text.removeprefix("WARNING: ").strip()
