"""Building an image for one platform with buildx: at most once per test run, whatever ``-n`` is,
and safely when several runs build the same inputs on one engine at once.

Each (image, platform) gets its own tag derived from a hash of its inputs, so the classic image
store (one platform per tag) and the containerd store behave the same, and unchanged inputs are
found again on the next run without calling buildx at all. Within a run, a file lock per
(image, platform) makes one process build while only the processes that need that image wait.
Across runs, a lock per (engine, tag) in the user's state directory serializes the same build,
and buildx writes to a tag of its own that is renamed to the shared tag only when complete, so
no run ever sees (or collides with) an image another run is half-way through producing.

A platform may name a buildx builder of its own (pytest_multiarch.runtime.builders): the image is
then
built there and reaches the engine that runs the platform under the same tag, loaded, moved by
``docker save | docker load``, or pushed to and pulled from a registry (:func:`_deliver`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from filelock import FileLock

from pytest_multiarch.core.commands import run_command, stream_command
from pytest_multiarch.core.errors import CommandError, CommandTimeout, ConfigError, MultiarchError
from pytest_multiarch.core.images import IMAGE_TOML, ImageSpec
from pytest_multiarch.core.platforms import Platform, oci_name
from pytest_multiarch.core.published import DOCKER_HUB, parse_reference
from pytest_multiarch.core.retry import retrying
from pytest_multiarch.core.secrets import redact
from pytest_multiarch.engine.api import EngineApiError, engine_kind_over_api
from pytest_multiarch.engine.buildx import inspect_builder
from pytest_multiarch.engine.cleanup import owner_alive, owner_id
from pytest_multiarch.engine.docker import docker
from pytest_multiarch.engine.endpoints import EngineRef, engine_of
from pytest_multiarch.engine.podman import (
    INSTALL_HINT,
    podman,
    podman_binary,
    podman_url,
    too_old,
)
from pytest_multiarch.model.codec import dump, load
from pytest_multiarch.model.records import BuilderFacts, BuildRecord
from pytest_multiarch.runtime.build_cache import (
    WITHOUT,
    BuildCache,
    StepCount,
    cache_arguments,
    discard_stage,
    export_problem,
    export_refused,
    reads,
    replace_local,
    where,
)
from pytest_multiarch.runtime.builders import (
    builder_engine,
    pipe_commands,
    registry_output,
    registry_reference,
)
from pytest_multiarch.runtime.published import (
    Published,
    PublishedUnavailable,
    read_published,
    registry_mirrors,
    resolve_once,
    take_published,
)

if TYPE_CHECKING:
    from docker import DockerClient

TAG_REPOSITORY = "pytest-multiarch"
IMAGE_LABEL = "pytest-multiarch.image"
BuildMode = Literal["auto", "always", "never"]
BUILD_MODES: tuple[BuildMode, ...] = get_args(BuildMode)
DEFAULT_BUILD_TIMEOUT = 3600.0
# BuildKit after a SIGKILL mid-build: a cache record whose snapshot is gone fails every later
# build that reaches it, until the cache entry is dropped.
_POISONED_CACHE = ("failed to commit", "does not exist")


def input_digest(spec: ImageSpec, platform: Platform) -> str:
    """A hash of everything that goes into the build of ``spec`` for ``platform``."""
    digest = hashlib.sha256()
    digest.update(f"platform={platform.name}\0target={spec.target}\0ref={spec.ref}\0".encode())
    for key in sorted(spec.build_args):
        digest.update(f"arg {key}={spec.build_args[key]}\0".encode())
    if not spec.ref:
        for path in sorted(p for p in spec.directory.rglob("*") if p.is_file()):
            relative = path.relative_to(spec.directory).as_posix()
            if relative == "image.toml" or "__pycache__" in relative:
                continue
            digest.update(f"file {relative} {os.stat(path).st_mode & 0o111}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]


def image_tag(spec: ImageSpec, platform: Platform) -> str:
    return f"{TAG_REPOSITORY}/{spec.name}:{input_digest(spec, platform)}-{platform.short}"


def build_command(
    spec: ImageSpec,
    platform: Platform,
    tag: str,
    *,
    no_cache: bool = False,
    builder: BuilderFacts | None = None,
    cache: Sequence[str] = (),
) -> list[str]:
    """The buildx command line for ``spec`` on ``platform``. An image with ``ref`` is taken as a
    one-line ``FROM ref`` build, so BuildKit pulls it with an explicit platform. Without
    ``builder``, built on the engine that runs it, by that engine's buildx, into its store
    (``--load``); with one, by that builder: loaded into its engine, or (``registry``) pushed
    to the registry as ``registry_reference(registry, tag)``. ``cache``: the build cache's
    ``--cache-from``/``--cache-to`` (pytest_multiarch.runtime.build_cache.cache_arguments)."""
    if builder is None:
        engine, chosen = engine_of(platform), []
    else:
        engine, chosen = builder_engine(builder, platform), ["--builder", builder.name]
    if builder is not None and builder.delivery == "registry":
        load: list[str] = []
        output = ["--output", registry_output(builder.registry, tag)]
    else:
        load, output = ["--load"], ["--tag", tag]
    command = docker(
        "buildx",
        "build",
        *chosen,
        "--platform",
        platform.name,
        *load,
        "--provenance=false",
        "--progress=plain",
        *output,
        "--label",
        f"{IMAGE_LABEL}={spec.name}",
        engine=engine,
    )
    command += _target_and_args(spec)
    for secret in spec.secrets:
        # The value stays in the environment: never on the command line, in history or logs.
        command += ["--secret", f"id={secret.id},env={secret.env}"]
    command += list(cache)
    if no_cache:
        command += ["--no-cache"]
    if spec.ref:
        command += ["-"]
    else:
        command += ["--file", str(spec.dockerfile), str(spec.directory)]
    return command


def _target_and_args(spec: ImageSpec) -> list[str]:
    """``--target`` and the ``--build-arg``s: the same flags for buildx and podman."""
    flags = ["--target", spec.target] if spec.target else []
    for key in sorted(spec.build_args):
        flags += ["--build-arg", f"{key}={spec.build_args[key]}"]
    return flags


def podman_build_command(
    spec: ImageSpec,
    platform: Platform,
    tag: str,
    url: str,
    *,
    context: str = "",
    secret_files: Mapping[str, str] | None = None,
) -> list[str]:
    """The ``podman build`` command line for ``spec`` on ``platform``, run by the Podman engine
    at ``url`` into its own store (buildx does not work against Podman: it has no BuildKit).
    Podman sets TARGETPLATFORM/TARGETARCH from ``--platform`` as buildx does. An image with
    ``ref`` is a one-line ``FROM ref`` read from stdin, with ``context`` (an empty directory)
    as its build context. ``secret_files``: secret id -> a private file holding its value
    (:func:`_secret_files`)."""
    command = podman(
        "build",
        "--platform",
        platform.name,
        "--tag",
        tag,
        "--label",
        f"{IMAGE_LABEL}={spec.name}",
        url=url,
    )
    command += _target_and_args(spec)
    for secret in spec.secrets:
        # A remote podman client does not send ``env=`` secrets (the build reads an empty
        # file): the value goes in a file of the run's own, never on the command line.
        source = (secret_files or {}).get(secret.id)
        given = f"src={source}" if source else f"env={secret.env}"
        command += ["--secret", f"id={secret.id},{given}"]
    if spec.ref:
        command += ["--file", "-", context]
    else:
        command += ["--file", str(spec.dockerfile), str(spec.directory)]
    return command


def _secret_files(secrets: Mapping[str, str], directory: str) -> dict[str, str]:
    """Each secret's value (by id) in a file of ``directory`` (a private temporary directory,
    removed after the build), readable by this user only: what ``podman build --secret
    id=...,src=...`` reads."""
    files = {}
    for number, (secret_id, value) in enumerate(sorted(secrets.items())):
        path = os.path.join(directory, f"secret-{number}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        files[secret_id] = path
    return files


def _podman_problem(
    spec: ImageSpec,
    platform: Platform,
    version: str,
    builder: BuilderFacts | None,
    cache: BuildCache | None,
) -> str:
    """Why ``spec`` cannot be built for ``platform`` on the Podman engine (``version``) that
    runs it; "" when it can."""
    where = engine_of(platform)
    engine = f"Podman {version} at {where.spec if where is not None else podman_url(None)}"
    head = f"build of image {spec.name!r} for {platform.name} on {engine}"
    if too_old(version):
        return f"{head}: Podman {version} is too old to build for a platform; {INSTALL_HINT}"
    if builder is not None:
        return (
            f"{head}: buildx builder {builder.name!r} is named for {platform.name}, but buildx "
            "cannot build for a Podman engine (it has no BuildKit); remove the builder from "
            "[tool.multiarch.builders] to build with Podman itself"
        )
    if cache is not None:
        return (
            f"{head}: --build-cache is a buildx feature that Podman builds do not take; run "
            "without --build-cache, or map this platform to a Docker engine"
        )
    if podman_binary() is None:
        return f"{head}: the podman client is not installed on this machine; {INSTALL_HINT}"
    return ""


def inspect_platform(reference: str, client: DockerClient) -> tuple[str, str] | None:
    """(image id, os/arch[/variant]) of a local image, or None when absent: one API call (an
    image inspect over the engine's socket costs milliseconds, a CLI process far more).
    Raises EngineApiError when the engine fails the call."""
    from docker.errors import DockerException, ImageNotFound
    from requests.exceptions import RequestException

    try:
        data = client.images.get(reference).attrs
    except ImageNotFound:
        return None
    except (DockerException, RequestException) as exc:
        raise EngineApiError(f"could not inspect image {reference}: {exc}") from None
    parts = (data.get("Os", ""), data.get("Architecture", ""), data.get("Variant", ""))
    return str(data.get("Id", "")), oci_name(*(str(part or "") for part in parts))


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class BuildObserver(Protocol):
    """Told how one build goes, for live progress
    (pytest_multiarch.model.progress.BuildProgress)."""

    def building(self) -> None: ...
    def line(self, text: str) -> None: ...
    def verifying(self) -> None: ...
    def finished(self, record: BuildRecord, problem: str = "") -> None: ...


class _Unobserved:
    def building(self) -> None:
        pass

    def line(self, text: str) -> None:
        pass

    def verifying(self) -> None:
        pass

    def finished(self, record: BuildRecord, problem: str = "") -> None:
        pass


def build_image(
    spec: ImageSpec,
    platform: Platform,
    mode: BuildMode,
    *,
    timeout: float = DEFAULT_BUILD_TIMEOUT,
    classic_store: bool = False,
    secrets: Mapping[str, str] | None = None,
    client: DockerClient,
    observer: BuildObserver | None = None,
    builder: BuilderFacts | None = None,
    private_tags: Path | None = None,
    cache: BuildCache | None = None,
    cache_problem: str = "",
    run_dir: Path | None = None,
) -> BuildRecord:
    """Build (or find) ``spec`` for ``platform``. A failed build, a timeout or a failed engine
    call ends up in the record's ``error`` (every test of that (image, platform) reports the same
    cause); only a programming error raises. ``secrets`` are values to redact from messages;
    ``client`` finds images through the engine's API (the engine that runs ``platform``);
    ``builder`` is the buildx builder named for ``platform`` (None: that engine's own);
    ``private_tags`` is the run's directory of records of the build's private tag, which the
    next run removes when this one dies before its retag (:func:`sweep_private_tags`);
    ``cache`` the --build-cache to read and write, and ``cache_problem`` why that builder
    cannot export it (the build then fails with it); ``run_dir`` the run's directory, where a
    ``ref`` is resolved once for all platforms (:func:`resolve_once`)."""
    tag = image_tag(spec, platform)
    start = time.monotonic()
    try:
        if spec.ref:
            published = _published(spec, platform, client, timeout, run_dir)
            if published is not None:
                # Nothing to build, so no builder or cache either: each platform's manifest is
                # pulled by its digest where it runs, on either image store.
                return take_published(
                    spec,
                    platform,
                    published,
                    tag,
                    client=client,
                    timeout=timeout,
                    pull=mode != "never",
                )
        if spec.ref and classic_store:
            # Nothing to build (a pull of ``ref``), so no builder either: pulled where it runs.
            return _take_ref_classic(spec, platform, tag, mode, start, timeout, client)
        existing = inspect_platform(tag, client)
        # A ref names an image that may move upstream: resolve it again on every run.
        if mode != "always" and existing is not None and not spec.ref:
            return BuildRecord(spec.name, platform.name, tag, existing[0], 0.0, True)
        if mode == "never":
            if existing is not None:
                return BuildRecord(spec.name, platform.name, tag, existing[0], 0.0, True)
            return _failed(
                spec,
                platform,
                tag,
                0.0,
                f"image {tag} is not built and --build=never was given; run with --build=auto",
            )
        if builder is not None and builder.problem:
            message = f"build of image {spec.name!r} for {platform.name}: {builder.problem}"
            return _failed(spec, platform, tag, 0.0, message)
        if cache is not None and cache_problem:
            return _failed(
                spec,
                platform,
                tag,
                0.0,
                f"build of image {spec.name!r} for {platform.name}: {cache_problem}",
            )
        # Asked of the engine itself, only when a build is due: Podman builds with Podman.
        kind, version = engine_kind_over_api(client, _engine_name(platform))
        on_podman = kind == "podman"
        if on_podman:
            problem = _podman_problem(spec, platform, version, builder, cache)
            if problem:
                return _failed(spec, platform, tag, 0.0, problem)
        steps = StepCount()
        error = _run_build(
            spec,
            platform,
            tag,
            timeout,
            secrets or {},
            observer or _Unobserved(),
            builder,
            private_tags,
            cache=cache,
            steps=steps,
            on_podman=on_podman,
        )
        if error:
            record = _failed(spec, platform, tag, time.monotonic() - start, error)
        else:
            record = _found(spec, platform, tag, time.monotonic() - start, client, builder)
        return replace(
            record,
            steps_cached=steps.cached,
            steps_run=steps.run,
            build_cache=where(cache, spec.name, platform.short) if cache else "",
            cache_warning=steps.unreadable,
        )
    except (CommandError, EngineApiError) as exc:  # inspect, tag: the engine failed a call
        return _failed(spec, platform, tag, time.monotonic() - start, redact(str(exc), secrets))
    except ConfigError as exc:  # a Podman engine its client cannot reach
        return _failed(spec, platform, tag, time.monotonic() - start, str(exc))


def _published(
    spec: ImageSpec,
    platform: Platform,
    client: DockerClient,
    timeout: float,
    run_dir: Path | None = None,
) -> Published | None:
    """What ``spec.ref`` names in its registry, or None when no registry serves it: a local tag
    (or a registry that cannot be reached) is then taken as before, by a ``FROM ref`` build or
    the classic store's pull, whose failure says why. A Podman engine resolves through its own
    registries.conf, which this cannot read: None there too."""
    kind, _ = engine_kind_over_api(client, _engine_name(platform))
    if kind == "podman":
        return None
    reference = parse_reference(spec.ref, f"ref in {spec.directory / IMAGE_TOML}")

    def resolve() -> Published | None:
        mirrors = registry_mirrors(client) if reference.registry == DOCKER_HUB else ()
        try:
            return read_published(reference, mirrors, timeout=min(timeout, 120))
        except PublishedUnavailable:
            return None

    if run_dir is None:
        return resolve()
    # One answer per ref for the whole run (a Docker Hub name: the first engine's mirrors).
    key = hashlib.sha256(spec.ref.encode()).hexdigest()[:16]
    return resolve_once(run_dir / f"{spec.name}--{key}.published.json", resolve)


def _engine_name(platform: Platform) -> str:
    engine = engine_of(platform)
    return engine.spec if engine is not None else "the default engine"


def _run_build(
    spec: ImageSpec,
    platform: Platform,
    tag: str,
    timeout: float,
    secrets: Mapping[str, str],
    observer: BuildObserver,
    builder: BuilderFacts | None = None,
    private_tags: Path | None = None,
    *,
    cache: BuildCache | None = None,
    steps: StepCount | None = None,
    on_podman: bool = False,
) -> str:
    """Run buildx into a tag of this call's own, then move the shared tag onto the result (in
    the engine that runs ``platform``, wherever ``builder`` built it: :func:`_deliver`).
    Returns "" on success, else the error message (with the log tail, secrets redacted).
    ``steps`` is filled with the steps of the last attempt (cached, run) and, with ``cache``,
    why the cache could not be read (``unreadable``; a failed build then runs again without
    reading it). ``on_podman``: the engine that runs ``platform`` is Podman, which builds it
    itself (:func:`podman_build_command`)."""
    # Through a registry, the build's name is the registry's by content: pushes of the same
    # inputs by two runs write the same manifest, so no private name is needed there.
    through_registry = builder is not None and builder.delivery == "registry"
    private = tag if through_registry else private_tag(tag, owner_id())
    # Written before buildx may export the private tag, removed once it is gone: a run killed
    # in between leaves the record in its state directory for the next run's sweep.
    record = None
    if private_tags is not None and not through_registry:
        engines = {engine_of(platform)}
        if builder is not None:
            engines.add(builder_engine(builder, platform))
        record = record_private_tag(private_tags, private, engines)
    stdin = f"FROM {spec.ref}\n" if spec.ref else None
    failure: CommandError | None = None
    observer.building()
    counted = steps if steps is not None else StepCount()
    unreadable = ""
    read = True
    no_cache = False
    stage = uuid.uuid4().hex[:12]  # a local cache is written aside, then replaces the old one
    while True:
        attempt = StepCount()
        arguments = (
            cache_arguments(cache, spec.name, platform.short, read=read, stage=stage)
            if cache
            else []
        )

        def on_line(line: str, attempt: StepCount = attempt) -> None:
            attempt.feed(line)
            observer.line(redact(line, secrets))

        try:
            with (
                tempfile.TemporaryDirectory(prefix="multiarch-ref-") as empty,
                tempfile.TemporaryDirectory(prefix="multiarch-secrets-") as private_dir,
            ):
                if on_podman:
                    url = podman_url(engine_of(platform))
                    files = _secret_files(secrets, private_dir) if spec.secrets else {}
                    argv = podman_build_command(
                        spec, platform, private, url, context=empty, secret_files=files
                    )
                else:
                    argv = build_command(
                        spec, platform, private, no_cache=no_cache, builder=builder, cache=arguments
                    )
                stream_command(argv, timeout=timeout, input_text=stdin, on_line=on_line)
        except CommandError as exc:
            failure = exc
            log = exc.stderr + exc.stdout
            if reads(arguments) and attempt.unreadable and not isinstance(exc, CommandTimeout):
                # The cache could not be read and the build failed: once more, not reading it.
                unreadable, read = attempt.unreadable, False
                continue
            if not on_podman and not no_cache and all(m in log for m in _POISONED_CACHE):
                no_cache = True  # one retry without BuildKit's cache, which lost a snapshot
                continue
            break
        else:
            failure = None
            break
        finally:
            counted.cached, counted.run = attempt.cached, attempt.run
            if reads(arguments) and attempt.unreadable:
                unreadable = attempt.unreadable
    if unreadable and cache is not None:
        counted.unreadable = (
            f"the build cache {where(cache, spec.name, platform.short)} could not be read "
            f"({unreadable}); "
            "built without it"
        )
    if cache is not None and cache.kind == "local":
        if failure is None:
            replace_local(cache, spec.name, platform.short, stage)
        else:
            discard_stage(cache, spec.name, platform.short, stage)
    if failure is None:
        _deliver(private, tag, platform, builder, timeout, observer)
        if record is not None:
            record.unlink(missing_ok=True)
        return ""
    if record is not None:  # a build that failed late may have exported it all the same
        _remove_recorded(record, 60)
    command = redact(" ".join(failure.command), secrets)
    log = redact(_tail(failure.stderr or failure.stdout), secrets)
    if not isinstance(failure, CommandTimeout):
        # An unreachable registry or an index without the platform, said as such. Imported
        # here: it reads registries, which only a failed build needs.
        from pytest_multiarch.runtime.offline import explain

        built_on = builder_engine(builder, platform) if builder is not None else engine_of(platform)
        full_log = redact(failure.stderr + failure.stdout, secrets)
        plain = explain(full_log, spec, platform, built_on)
        if plain:
            return f"{plain}\ncommand: {command}\nlast lines of the build log:\n{log}"
    if isinstance(failure, CommandTimeout):
        what = (
            f"timed out after {failure.timeout:g}s (--build-timeout, scaled on emulated platforms)"
        )
    else:
        what = f"failed (exit {failure.returncode})"
    return (
        f"build of image {spec.name!r} for {platform.name} {what}; command: {command}\n"
        f"last lines of the build log:\n{log}"
        + _hint(failure.stderr + failure.stdout, platform, builder)
        + _cache_hint(failure.stderr + failure.stdout, cache, builder)
    )


PRIVATE_TAGS_DIR = "private-tags"
PRIVATE_TAG_SUFFIX = ".private-tag.json"


def record_private_tag(directory: Path, private: str, engines: set[EngineRef | None]) -> Path:
    """A record of ``private`` (a build's own tag) and the engines it may appear in."""
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / f"{private.rpartition('-tmp-')[2]}{PRIVATE_TAG_SUFFIX}"
    specs = sorted({engine.spec if engine is not None else "" for engine in engines})
    # O_EXCL|O_NOFOLLOW: never write through a link planted in the run directory.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"tag": private, "engines": specs}, handle)
    return path


def sweep_private_tags(directory: Path, timeout: float = 60) -> list[str]:
    """Remove the private build tags recorded in ``directory`` (records of a run whose owner
    died, or was interrupted, between buildx's export and the retag). Returns the tags removed;
    best effort: an engine that is gone keeps its tag, and a record that is not one is skipped."""
    removed = []
    for path in sorted(directory.glob(f"*{PRIVATE_TAG_SUFFIX}")):
        removed += _remove_recorded(path, timeout)
    return removed


def _remove_recorded(path: Path, timeout: float) -> list[str]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as handle:
            recorded = json.load(handle)
        tag, specs = recorded["tag"], recorded["engines"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    removed = []
    # Only a private tag of our own naming, whatever the record says.
    if isinstance(tag, str) and tag.startswith(f"{TAG_REPOSITORY}/") and "-tmp-" in tag:
        for spec in specs if isinstance(specs, list) else []:
            engine = EngineRef(spec) if isinstance(spec, str) and spec else None
            try:
                gone = run_command(
                    docker("image", "rm", tag, engine=engine), timeout=timeout, check=False
                )
            except CommandError:  # a timeout: the engine does not answer
                continue
            if gone.returncode == 0:
                removed.append(tag)
    path.unlink(missing_ok=True)
    return removed


# A private tag names its owner, the process that makes it and then removes it (a hash of its
# host, its pid and start time): one a dead run left on an engine is found there by the next
# run on that engine, wherever the dead run kept its state (:func:`sweep_dead_private_tags`).
# In the name, not in an image label: a label is the image's, and two runs (or a run and the
# shared tag) may name the same image, while each private tag has exactly one owner.
_PRIVATE_TAG = re.compile(
    r"-tmp-[0-9a-f]{12}-(?P<host>[0-9a-f]{8})-(?P<pid>[1-9][0-9]{0,9})-(?P<ticks>[0-9]{1,20}|u)$"
)
# Where the engine lists them: Docker by the name given, Podman under localhost/.
_PRIVATE_REPOSITORIES = (f"{TAG_REPOSITORY}/", f"localhost/{TAG_REPOSITORY}/")


def _host_key(host: str) -> str:
    return hashlib.sha256(host.encode()).hexdigest()[:8]


def private_tag(tag: str, owner: str) -> str:
    """A private twin of ``tag`` for one build (unique to it), naming ``owner``
    (``host:pid:starttime``, pytest_multiarch.engine.cleanup.owner_id)."""
    host, _, rest = owner.partition(":")
    pid, _, ticks = rest.partition(":")
    if not (pid.isascii() and pid.isdigit()):
        raise ValueError(f"not an owner id (host:pid:starttime): {owner!r}")
    ticks = ticks if ticks.isascii() and ticks.isdigit() else "u"  # "?": start time unknown
    return f"{tag}-tmp-{uuid.uuid4().hex[:12]}-{_host_key(host)}-{pid}-{ticks}"


def private_tag_owner(reference: str, host: str) -> str | None:
    """The owner id (``host:pid:starttime``) that private tag ``reference`` names, when it is a
    private tag of ours made on ``host``; else None (not ours to judge)."""
    repository, _, tag = reference.rpartition(":")
    if not repository.startswith(_PRIVATE_REPOSITORIES):
        return None
    found = _PRIVATE_TAG.search(tag)
    if found is None or found["host"] != _host_key(host):
        return None
    ticks = found["ticks"] if found["ticks"] != "u" else "?"
    return f"{host}:{found['pid']}:{ticks}"


def dead_private_tags(
    references: Iterable[str], host: str, alive: Callable[[str], bool | None]
) -> list[str]:
    """The private tags among ``references`` whose owner is provably dead (``alive`` of its
    owner id is False); never one of a live owner, of another host, or of no known owner."""
    dead = []
    for reference in references:
        owner = private_tag_owner(reference, host)
        if owner is not None and alive(owner) is False:
            dead.append(reference)
    return dead


# What an engine says when an image was removed while it listed its images (it reads each one
# after listing their ids, and one was gone by then): Podman 4.3 `locating image with ID ...:
# image not known` or `reading data blob size "manifest-sha256:..." for "...": size is not
# known` (benchmarks/listing_race.py), Docker's containerd store `content digest sha256:...: not
# found`. Another process's removal, not a fault of the engine: the listing is asked again.
_VANISHED_WHILE_LISTED = (
    "image not known",
    "layer not known",
    "size is not known",
    "content digest sha256:",
)
LISTING_ATTEMPTS = 5


def _vanished_while_listed(exc: BaseException) -> bool:
    return (
        isinstance(exc, CommandError)
        and not isinstance(exc, CommandTimeout)
        and any(sign in exc.stderr + exc.stdout for sign in _VANISHED_WHILE_LISTED)
    )


def sweep_dead_private_tags(
    engine: EngineRef | None,
    timeout: float = 60,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Remove from ``engine`` the private build tags whose owner is provably dead (a run killed
    between buildx's export and the retag); returns those removed. Raises CommandError when the
    engine cannot list its images. The sweep is housekeeping, so what another process does
    meanwhile fails nothing: a listing cut by an image removed while it was made is asked again
    (up to LISTING_ATTEMPTS times; if the engine's images keep changing, the next run sweeps),
    a tag gone meanwhile (another run's sweep) or an engine too slow to remove it is no failure
    of this run, and the image a removed tag named stays when another tag names it."""
    patterns = [f"reference={prefix}*:*-tmp-*" for prefix in _PRIVATE_REPOSITORIES]
    listing = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", engine=engine)
    for pattern in patterns:
        listing += ["--filter", pattern]
    try:
        listed = retrying(
            lambda: run_command(listing, timeout=timeout),
            attempts=LISTING_ATTEMPTS,
            when=_vanished_while_listed,
            pause=lambda attempt: 0.2 * attempt,
            sleep=sleep,
        )
    except CommandError as exc:
        if _vanished_while_listed(exc):
            return []  # the engine's images kept changing: the next run sweeps
        raise
    doomed = dead_private_tags(listed.stdout.split(), socket.gethostname(), owner_alive)
    if not doomed:
        return []
    try:
        gone = run_command(
            docker("image", "rm", *doomed, engine=engine), timeout=timeout, check=False
        )
    except CommandError:  # no answer in time (seen once under load): the next run tries again
        return []
    # "Untagged: NAME" per tag removed; Podman names it with docker.io/ in front.
    untagged = {
        line.partition(":")[2].strip().removeprefix("docker.io/")
        for line in gone.stdout.splitlines()
    }
    return [tag for tag in doomed if tag in untagged]


def _cache_hint(log: str, cache: BuildCache | None, builder: BuilderFacts | None) -> str:
    """What a build that failed because of --build-cache should do."""
    if cache is None:
        return ""
    if export_refused(log):
        name = builder.name if builder is not None else "(the engine's default)"
        return "\nhint: " + export_problem(cache, name, "docker", "classic")
    if "exporting cache" in log or "cache exporter" in log:
        return (
            f"\nhint: the build cache {cache.describe()} could not be written: check that "
            f"{cache.location} is reachable and writable; {WITHOUT}"
        )
    return ""


def _retag(built: str, tag: str, platform: Platform) -> None:
    """In the engine that runs ``platform``: the shared tag onto what the build named
    ``built``, then that name removed (the tag keeps the image)."""
    try:
        run_command(docker("tag", built, tag, engine=engine_of(platform)), timeout=60)
    finally:
        run_command(
            docker("image", "rm", built, engine=engine_of(platform)), timeout=60, check=False
        )


def _deliver(
    built: str,
    tag: str,
    platform: Platform,
    builder: BuilderFacts | None,
    timeout: float,
    observer: BuildObserver,
) -> None:
    """Put the image that the build named ``built`` into the engine that runs ``platform``, as
    ``tag``. Raises CommandError (command, exit code, output tail, hint) when a step fails."""
    if builder is None or builder.delivery == "load":
        _retag(built, tag, platform)
        return
    running = engine_of(platform)
    where = f"engine {running.spec}" if running is not None else "the default engine"
    source = builder_engine(builder, platform)
    if builder.delivery == "transfer":
        observer.line(
            f"multiarch: moving {built} from builder {builder.name} (context {builder.context}) "
            f"into {where}: docker save | docker load"
        )
        try:
            pipe_commands(
                docker("save", built, engine=source),
                docker("load", "--quiet", engine=running),
                timeout=timeout,
                hint=f"builder {builder.name} built {platform.name} on Docker context "
                f"{builder.context}, and the image moves into {where}, which runs it: check "
                f"that both engines answer and have disk space, or give the builder a "
                f"registry ({platform.short} = {{ builder = {builder.name!r}, registry = "
                f"'HOST:PORT/PATH' }})",
            )
        finally:
            # The builder's engine does not run it: only its build cache is worth keeping there.
            run_command(docker("image", "rm", built, engine=source), timeout=60, check=False)
        _retag(built, tag, platform)
        return
    reference = registry_reference(builder.registry, tag)
    observer.line(f"multiarch: pulling {reference} ({platform.name}) into {where}")
    try:
        run_command(
            docker("pull", "--quiet", "--platform", platform.name, reference, engine=running),
            timeout=timeout,
            hint=f"builder {builder.name} pushed {platform.name} to {builder.registry}: {where} "
            "must reach that registry too (plain HTTP is allowed by Docker only on 127.0.0.0/8; "
            "elsewhere list it in the engine's insecure-registries, or serve TLS)",
        )
        run_command(docker("tag", reference, tag, engine=running), timeout=60)
    finally:
        run_command(docker("image", "rm", reference, engine=running), timeout=60, check=False)
        if builder.context:
            # The docker driver names its result in its own engine's store as well.
            run_command(docker("image", "rm", reference, engine=source), timeout=60, check=False)


def _hint(log: str, platform: Platform, builder: BuilderFacts | None = None) -> str:
    if builder is not None and builder.delivery == "registry" and "push" in log.lower():
        return (
            f"\nhint: builder {builder.name} could not push to {builder.registry}: check that "
            f"the registry runs and that the builder reaches it (`curl http://"
            f"{builder.registry.split('/', 1)[0]}/v2/`); a registry on loopback is used over "
            "plain HTTP"
        )
    if "no match for platform in manifest" in log:
        return (
            f"\nhint: a base image (FROM) has no {platform.name} variant. Offline, seed the "
            f"local mirror with it: `multiarch host up --platforms {platform.short}`"
        )
    if all(marker in log for marker in _POISONED_CACHE) and "snapshot" in log:
        return (
            "\nhint: BuildKit's cache lost a snapshot (a build killed mid-way); it failed again "
            "without the cache. Clear it with `docker buildx prune --all --force` and run again"
        )
    return ""


def _failed(spec: ImageSpec, platform: Platform, tag: str, seconds: float, why: str) -> BuildRecord:
    return BuildRecord(spec.name, platform.name, tag, "", seconds, False, why)


def _found(
    spec: ImageSpec,
    platform: Platform,
    tag: str,
    seconds: float,
    client: DockerClient,
    builder: BuilderFacts | None = None,
) -> BuildRecord:
    found = inspect_platform(tag, client)
    if found is None:
        return _failed(
            spec,
            platform,
            tag,
            seconds,
            f"{tag} is not in the engine's image store after it was made",
        )
    if builder is not None and found[1] != platform.name:
        return _failed(
            spec,
            platform,
            tag,
            seconds,
            f"{tag} from builder {builder.describe()} is {found[1]} in the engine that runs "
            f"{platform.name}, not {platform.name}",
        )
    return BuildRecord(spec.name, platform.name, tag, found[0], seconds, False)


def _take_ref_classic(
    spec: ImageSpec,
    platform: Platform,
    tag: str,
    mode: BuildMode,
    start: float,
    timeout: float,
    client: DockerClient,
) -> BuildRecord:
    """The classic store keeps one platform per tag, so pull ``ref`` for this platform and tag
    the result at once; the caller holds a lock per ref, so platforms do not interleave.
    BuildKit on this store does not see local images of another platform, hence no FROM."""
    pull_error = ""
    if mode != "never":
        pulled = run_command(
            docker(
                "pull", "--quiet", "--platform", platform.name, spec.ref, engine=engine_of(platform)
            ),
            timeout=timeout,
            check=False,
        )
        if not pulled.ok:
            pull_error = _tail(pulled.stderr or pulled.stdout, 5)
    local = inspect_platform(spec.ref, client)
    if local is None:
        return _failed(
            spec,
            platform,
            tag,
            time.monotonic() - start,
            f"image {spec.ref!r} (ref of {spec.name!r}) is not available for {platform.name}: "
            f"{pull_error or 'not in the local image store'}",
        )
    # Whatever the tag holds now is tagged for this platform; the architecture check that
    # follows refuses it if it is another platform (a pull that fell back, or failed).
    run_command(docker("tag", local[0], tag, engine=engine_of(platform)), timeout=60)
    return _found(spec, platform, tag, time.monotonic() - start, client)


@dataclass(frozen=True)
class Verdict:
    """What verifying a built image found: how it was checked, and why it must not be used."""

    how: str
    problem: str = ""
    cached: bool = False


# Checks a freshly made image for its platform.
Verify = Callable[[BuildRecord], Verdict]


@dataclass(frozen=True)
class BuildOutcome:
    record: BuildRecord
    produced: bool  # this call made the record, so it is the one that reports it
    unusable: str = ""  # why the built image must not be tested (e.g. the wrong architecture)


@dataclass(frozen=True)
class _Stored:
    record: BuildRecord
    unusable: str


class BuildCoordinator:
    """Builds each (image, platform) once per run, shared by every process of the run.

    ``run_dir`` is shared by all xdist workers of the run and unique to it; ``engine_lock_dir``
    is shared by every run of this user on the same engine.
    """

    def __init__(
        self,
        run_dir: Path,
        engine_lock_dir: Path,
        mode: BuildMode,
        *,
        timeout: Callable[[Platform], float],
        classic_store: bool = False,
        client: Callable[[], DockerClient],
        observe: Callable[[str, Platform], BuildObserver] | None = None,
        builders: Mapping[str, BuilderFacts] | None = None,
        cache: BuildCache | None = None,
        namespace: str = "",
    ) -> None:
        if mode not in BUILD_MODES:
            raise MultiarchError(f"invalid build mode {mode!r}; use one of {BUILD_MODES}")
        self.run_dir = run_dir
        self.engine_lock_dir = engine_lock_dir
        self.mode = mode
        self.timeout = timeout
        self.classic_store = classic_store
        self.client = client  # the process's API client, made on first use
        self.observe = observe  # image name, platform -> live progress of a build made here
        # Platform name -> the buildx builder named for it ([tool.multiarch.builders]).
        self.builders = dict(builders or {})
        self.cache = cache  # --build-cache
        self._drivers: dict[str, str] = {}  # engine -> driver of its current buildx builder
        self._seen: dict[tuple[str, str], BuildOutcome] = {}
        # Told apart from the run's builds on other engines (the engines of a pool each build
        # the same image and platform): a suffix of its files in ``run_dir``.
        self.namespace = namespace

    def _stem(self, spec: ImageSpec, platform: Platform) -> str:
        stem = f"{spec.name}--{platform.short}"
        return f"{stem}--{self.namespace}" if self.namespace else stem

    def get(
        self,
        spec: ImageSpec,
        platform: Platform,
        verify: Verify,
        secrets: Mapping[str, str] | None = None,
    ) -> BuildOutcome:
        """The build record of ``spec`` for ``platform``, made (and checked with ``verify``) by
        the first process of the run that asks; the others read what it found. ``secrets`` are
        the values of the image's build secrets (redacted from every message)."""
        key = (spec.name, platform.name)
        if key in self._seen:
            return replace(self._seen[key], produced=False)
        stem = self._stem(spec, platform)
        result_file = self.run_dir / f"{stem}.json"
        # A ref on the classic store moves one shared tag: serialize its platforms.
        lock_name = f"{spec.name}--ref" if spec.ref and self.classic_store else stem
        with FileLock(str(self.run_dir / f"{lock_name}.lock")):
            stored = _read_stored(result_file)
            if stored is not None:
                outcome = BuildOutcome(stored.record, False, stored.unusable)
            else:
                outcome = self._produce(spec, platform, verify, secrets or {})
                _write_stored(result_file, _Stored(outcome.record, outcome.unusable))
        self._seen[key] = outcome
        return outcome

    def known(self, spec: ImageSpec, platform: Platform) -> bool:
        """Whether :meth:`get` would only read what a process of this run already found (no
        build, no verification, no wait behind another process's build)."""
        stem = self._stem(spec, platform)
        return (spec.name, platform.name) in self._seen or (self.run_dir / f"{stem}.json").exists()

    def export_problem_for(self, platform: Platform) -> str:
        """Why the builder of ``platform`` cannot export --build-cache; "" when it can. Only
        buildx's docker driver on a classic image store cannot; a builder on another engine
        is left to buildx to refuse (its words are turned into the same advice)."""
        if self.cache is None or not self.classic_store:
            return ""
        builder = self.builders.get(platform.name)
        if builder is not None:
            if builder.delivery != "load":
                return ""
            return export_problem(self.cache, builder.name, builder.driver, "classic", builder.name)
        engine = engine_of(platform)
        key = engine.spec if engine is not None else ""
        if key not in self._drivers:
            try:
                driver = inspect_builder("", engine, timeout=60).driver
            except CommandError:
                driver = "docker"  # no answer: the engine's own builder, as buildx defaults
            self._drivers[key] = driver
        return export_problem(self.cache, "default", self._drivers[key], "classic", platform.short)

    def _produce(
        self, spec: ImageSpec, platform: Platform, verify: Verify, secrets: Mapping[str, str]
    ) -> BuildOutcome:
        tag_lock = hashlib.sha256(image_tag(spec, platform).encode()).hexdigest()[:32]
        observer = self.observe(spec.name, platform) if self.observe else _Unobserved()
        with FileLock(str(self.engine_lock_dir / f"{tag_lock}.lock")):
            record = build_image(
                spec,
                platform,
                self.mode,
                timeout=self.timeout(platform),
                classic_store=self.classic_store,
                secrets=secrets,
                client=self.client(),
                observer=observer,
                builder=self.builders.get(platform.name),
                private_tags=self.run_dir / PRIVATE_TAGS_DIR,
                cache=self.cache,
                cache_problem=self.export_problem_for(platform),
                run_dir=self.run_dir,
            )
        if record.error:
            observer.finished(record)
            return BuildOutcome(record, True, "")
        observer.verifying()
        verdict = verify(record)
        record = replace(record, verified=verdict.how, verification_cached=verdict.cached)
        observer.finished(record, verdict.problem)
        return BuildOutcome(record, True, verdict.problem)


def _read_stored(path: Path) -> _Stored | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(fd) as handle:
        return load(_Stored, json.load(handle), str(path))


def _write_stored(path: Path, stored: _Stored) -> None:
    # O_EXCL|O_NOFOLLOW: never write through a link planted in the run directory.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(dump(stored), handle)
