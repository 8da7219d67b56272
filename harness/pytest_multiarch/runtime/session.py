"""What one test process of a run knows and owns: the resolved settings, and the lazily started
Docker side (builds, architecture checks, the sweep of dead runs). Nothing here touches Docker
until a fixture asks for an image."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from typing_extensions import Unpack

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.paths import private_dir, run_state_root
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.core.secrets import secret_values
from pytest_multiarch.core.version import __version__
from pytest_multiarch.engine.api import EngineApi, engine_info_over_api
from pytest_multiarch.engine.cleanup import owner_alive, sweep
from pytest_multiarch.engine.docker import EngineInfo, endpoint
from pytest_multiarch.engine.endpoints import EngineEndpoint
from pytest_multiarch.engine.health import ENGINE_DEAD_FILE, EngineWatch, ping
from pytest_multiarch.engine.health import EngineStoppedAnswering as EngineLost
from pytest_multiarch.engine.labels import Labels
from pytest_multiarch.model.progress import ProgressBoard
from pytest_multiarch.model.records import BuildRecord
from pytest_multiarch.runtime import verify_cache
from pytest_multiarch.runtime.build import (
    PRIVATE_TAGS_DIR,
    BuildCoordinator,
    Verdict,
    image_tag,
    inspect_platform,
    sweep_private_tags,
)
from pytest_multiarch.runtime.containers import (
    WrongArchitecture,
    check_uname,
    exec_uname,
    image_platform,
    make_container,
    metadata_problem,
    start_container,
    stop_container,
)
from pytest_multiarch.runtime.elf import ForeignBinary, format_wrong_architecture
from pytest_multiarch.runtime.image_fs import ImageFilesystems
from pytest_multiarch.runtime.oneshot import RunResult, probe_uname, run_once
from pytest_multiarch.runtime.prestart import CLOSE_WAIT, Prestarter
from pytest_multiarch.runtime.transfer import Content

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

    from pytest_multiarch.runtime.settings import Settings


def run_state_dir(run_id: str) -> Path:
    """A directory shared by every process of run ``run_id`` (and by nothing else), inside this
    user's private state directory."""
    return run_state_root() / "runs" / f"run-{run_id}"


def progress_board(run_id: str) -> ProgressBoard:
    """Where the processes of run ``run_id`` tell what they are building and waiting for; the
    controller shows it (pytest_multiarch.model.progress)."""
    return ProgressBoard(run_state_dir(run_id) / "progress")


def engine_watch(run_id: str, mapped: EngineEndpoint | None = None) -> EngineWatch:
    """Whether the default engine of run ``run_id`` (or the ``mapped`` engine of some of its
    platforms) still answers, as every process of it sees it: one marker file per engine, so
    an engine that dies fails its own platforms' tests and no others."""
    if mapped is None:
        return EngineWatch(endpoint(), run_state_dir(run_id) / ENGINE_DEAD_FILE)
    key = hashlib.sha256(mapped.spec.encode()).hexdigest()[:16]
    return EngineWatch(
        mapped.describe(),
        run_state_dir(run_id) / f"{ENGINE_DEAD_FILE}-{key}",
        pinger=functools.partial(ping, environment=mapped.sdk_environment()),
    )


def _sweep_dead_run_dirs(runs: Path) -> None:
    """State directories of runs whose owner died (SIGKILL) are removed by the next run."""
    for run_dir in runs.glob("run-*"):
        try:
            owner = (run_dir / OWNER_FILE).read_text().strip()
        except OSError:
            continue
        if owner_alive(owner) is False:
            sweep_private_tags(run_dir / PRIVATE_TAGS_DIR)
            shutil.rmtree(run_dir, ignore_errors=True)


OWNER_FILE = "owner"
# Bump when what verification checks, or how it decides, changes: outcomes cached by older
# logic are then verified afresh.
VERIFICATION_LOGIC = 1
# Foreign binaries a cached verification keeps (the message names the first few and a count).
FOREIGN_KEPT = 50


def verification_version() -> str:
    """The harness version part of a verification cache key."""
    return f"{__version__}+verification.{VERIFICATION_LOGIC}"


@dataclass(frozen=True)
class BuiltImage:
    """The image a test gets: a per-platform tag, its id, and the platform it was built for."""

    name: str
    reference: str
    id: str
    platform: Platform
    spec: ImageSpec


class ImageUnavailable(MultiarchError):
    """The image of a test cannot be used: its build failed or it is the wrong architecture."""

    def __init__(self, message: str, record: BuildRecord | None) -> None:
        super().__init__(message)
        self.record = record


class Harness:
    """The Docker side of one process. Created on first use of an image fixture."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.labels = Labels(settings.run_id, settings.owner, settings.keep_containers)
        self._builds: BuildCoordinator | None = None
        self._engine: EngineInfo | None = None
        self._started = False
        # The process's one API connection; removes finished containers off the critical path.
        self.api = EngineApi()
        self._emulators: dict[str, str] = {}
        self._watch: EngineWatch | None = None
        # The engines that platforms are mapped to (--engine), by engine: made on first use.
        self._mapped_apis: dict[str, EngineApi] = {}
        self._mapped_watches: dict[str, EngineWatch] = {}
        self._mapped_builds: dict[str, BuildCoordinator] = {}
        self._swept: set[str] = set()
        self._prestarter: Prestarter | None = None
        # The run's image exports, shared with the structure tests (one export per image).
        self.filesystems = ImageFilesystems(run_state_dir(settings.run_id), self.labels)

    @property
    def watch(self) -> EngineWatch:
        """Whether the engine still answers (see pytest_multiarch.engine.health)."""
        if self._watch is None:
            self._watch = engine_watch(self.settings.run_id)
        return self._watch

    @property
    def engine(self) -> EngineInfo:
        if self._engine is None:
            # Over the process's API connection, made anyway for its containers.
            self._engine = engine_info_over_api(self.api.client, endpoint())
        return self._engine

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        # A real directory of this user's, never a link to somewhere else (UnsafeStateDir).
        state = private_dir(run_state_dir(self.settings.run_id))
        # Once per run: the first process to get here does it, not every xdist worker.
        try:
            fd = os.open(state / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
        except FileExistsError:
            return
        with os.fdopen(fd, "w") as handle:
            handle.write(self.settings.owner)
        # Leftovers of runs whose owner died (SIGKILL, a second Ctrl-C); never a live run's.
        _sweep_dead_run_dirs(state.parent)
        if any(not plat.engine for plat in self.settings.platforms):
            sweep(None)  # the default engine's; a mapped engine's: _sweep_engine_once

    @property
    def builds(self) -> BuildCoordinator:
        """The builds on the default engine."""
        if self._builds is None:
            engine = self.engine
            self._builds = self._coordinator(engine.id, engine.image_store, self.api)
        return self._builds

    def _coordinator(self, engine_id: str, image_store: str, api: EngineApi) -> BuildCoordinator:
        # Builds of the same inputs by runs on the same engine share a lock, whichever way
        # each run names that engine: the lock directory is keyed on the engine's own id. The
        # build commands go to the engine of the platform they build (Platform.engine).
        engine_key = hashlib.sha256(engine_id.encode()).hexdigest()[:16]
        locks = run_state_root() / "engines" / engine_key
        locks.mkdir(mode=0o700, parents=True, exist_ok=True)
        return BuildCoordinator(
            run_state_dir(self.settings.run_id),
            locks,
            self.settings.build_mode,
            timeout=lambda p: self.settings.timeout(self.settings.build_timeout, p),
            classic_store=image_store == "classic",
            client=lambda: api.client,
            observe=progress_board(self.settings.run_id).build,
            builders=self.settings.builders,
        )

    # ---- per engine: a platform mapped to another engine is built, verified and run there ----

    def builds_for(self, platform: Platform) -> BuildCoordinator:
        mapped = self.settings.endpoint(platform)
        if mapped is None:
            return self.builds
        if mapped.spec not in self._mapped_builds:
            api = self.api_for(platform)
            engine_id = mapped.id or mapped.spec
            self._mapped_builds[mapped.spec] = self._coordinator(engine_id, mapped.image_store, api)
        return self._mapped_builds[mapped.spec]

    def api_for(self, platform: Platform) -> EngineApi:
        mapped = self.settings.endpoint(platform)
        if mapped is None:
            return self.api
        if mapped.spec not in self._mapped_apis:
            self._mapped_apis[mapped.spec] = EngineApi(mapped.sdk_environment())
        return self._mapped_apis[mapped.spec]

    def watch_for(self, platform: Platform) -> EngineWatch:
        """Whether ``platform``'s engine still answers."""
        mapped = self.settings.endpoint(platform)
        if mapped is None:
            return self.watch
        if mapped.spec not in self._mapped_watches:
            self._mapped_watches[mapped.spec] = engine_watch(self.settings.run_id, mapped)
        return self._mapped_watches[mapped.spec]

    def unreachable(self, platform: Platform) -> str:
        """Why ``platform``'s engine cannot be used at all ("" when it can): it did not answer
        when the run began, or it stopped answering since."""
        mapped = self.settings.endpoint(platform)
        if mapped is not None and mapped.problem:
            return (
                f"{platform.name} runs on engine {mapped.describe()} (from "
                f"{self.settings.sources.get(f'engine {platform.name}', 'the engine map')}), "
                f"which did not answer when the run began: {mapped.problem}"
            )
        lost = self.watch_for(platform).dead()
        return str(lost) if lost is not None else ""

    def _sweep_engine_once(self, platform: Platform) -> None:
        """Leftovers of dead runs on a mapped engine, removed by the first process of the run
        that uses that engine (the default engine's are removed by :meth:`start`)."""
        mapped = self.settings.endpoint(platform)
        if mapped is None or mapped.spec in self._swept:
            return
        self._swept.add(mapped.spec)
        key = hashlib.sha256(mapped.spec.encode()).hexdigest()[:16]
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            os.close(os.open(run_state_dir(self.settings.run_id) / f"swept-{key}", flags, 0o600))
        except FileExistsError:
            return
        sweep(None, engine=mapped.ref)

    def image(self, spec: ImageSpec, platform: Platform) -> tuple[BuiltImage, BuildRecord | None]:
        """The verified image of ``spec`` for ``platform``, and the build record when this call
        produced it (so it is reported once per run)."""
        unreachable = self.unreachable(platform)
        if unreachable:
            raise ImageUnavailable(unreachable, None)
        watch = self.watch_for(platform)
        try:
            with watch.guard():
                self.start()
                self._sweep_engine_once(platform)
                secrets = secret_values(spec.secrets, str(spec.directory / "image.toml"))
                outcome = self.builds_for(platform).get(
                    spec, platform, lambda record: self._check(record, spec, platform), secrets
                )
        except MultiarchError as exc:  # no engine, no docker CLI, ...
            raise ImageUnavailable(str(exc), None) from exc
        except OSError as exc:  # the run's state directory: a planted link, a full disk
            raise ImageUnavailable(
                f"cannot use this run's state directory ({exc}); it lives in "
                f"{run_state_root()}, which must be this user's own",
                None,
            ) from exc
        record = outcome.record
        reported = record if outcome.produced else None
        if record.error or outcome.unusable:
            # A build or check that failed because the engine went away says so.
            lost = watch.alive()
            raise ImageUnavailable(str(lost or record.error or outcome.unusable), reported)
        return BuiltImage(spec.name, record.reference, record.image_id, platform, spec), reported

    def resolvable_at_once(self, spec: ImageSpec, platform: Platform) -> bool:
        """Whether :meth:`image` would cost no more than an API call and a file read or two: a
        process of this run already got it, or its tag is on the engine and its verification
        is cached. Work done ahead of the test that needs an image must never build, verify
        or wait behind another process's build."""
        if self.unreachable(platform):
            return False
        builds = self.builds_for(platform)
        if builds.known(spec, platform):
            return True
        if self.settings.build_mode == "always" or spec.ref:
            return False  # built again, or resolved again, on every run
        found = inspect_platform(image_tag(spec, platform), self.api_for(platform).client)
        if found is None:
            return False
        return verify_cache.path_for(self._verification_key(found[0], spec, platform)).exists()

    @property
    def prestarter(self) -> Prestarter:
        """The next test's container, started ahead (pytest_multiarch.runtime.prestart)."""
        if self._prestarter is None:
            self._prestarter = Prestarter(stop_container)
        return self._prestarter

    def close(self) -> None:
        """Finish this process's container removals (before the run's sweep) and disconnect.
        Nothing is waited for when the engine stopped answering: the removals cannot happen."""
        if self._prestarter is not None:
            engines = [self._watch, *self._mapped_watches.values()]
            gone = any(watch is not None and watch.dead() is not None for watch in engines)
            self._prestarter.close(0 if gone else CLOSE_WAIT)
        # Watches chain their signal handlers: closed in reverse order of creation.
        for watch in reversed(list(self._mapped_watches.values())):
            watch.close()
        for spec, api in self._mapped_apis.items():
            mapped_watch = self._mapped_watches.get(spec)
            if mapped_watch is None or mapped_watch.dead() is None:
                api.close()
            else:
                api.abandon()
        if self._watch is not None:
            self._watch.close()
            if self._watch.dead() is not None:
                self.api.abandon()
                return
        self.api.close()

    def emulator(self, platform: Platform) -> str:
        """What runs ``platform`` here, as the verification cache key names it: "native", or
        the binfmt handler's state and the emulator file it runs (path, size, modification
        time: a new QEMU is a new file), read from files once per process: asking QEMU for its
        version would start one more process per platform in every test process."""
        if platform.name not in self._emulators:
            from pytest_multiarch.core.emulation import check_emulator

            status = check_emulator(platform, ask_version=False)
            identity = status.summary
            if status.handler is not None and status.handler.interpreter:
                real = os.path.realpath(status.handler.interpreter)
                try:
                    info = os.stat(real)
                    identity += f"; {real} {info.st_size} bytes, mtime {info.st_mtime_ns}"
                except OSError:
                    identity += f"; {real} unreadable"
            mapped = self.settings.endpoint(platform)
            if mapped is not None:
                # Verified on one engine is not verified on another: the engine is in the key.
                # A remote machine's emulators cannot be read from here; its engine stands in.
                how = "emulated" if platform.emulated else "native"
                engine = f"engine {mapped.id or mapped.spec} ({mapped.architecture})"
                identity = f"{identity}; {engine}" if mapped.is_local else f"{how} on {engine}"
            self._emulators[platform.name] = identity
        return self._emulators[platform.name]

    def _check(self, record: BuildRecord, spec: ImageSpec, platform: Platform) -> Verdict:
        """Architecture truth, once per image id: from the verification cache when this image
        id was verified before (same platform, emulator, harness and foreign-binaries globs),
        else verified now (:meth:`_verify`) and stored. A bad cache entry is a warning and a
        miss, never trusted."""
        key: verify_cache.VerificationKey | None = None
        if record.image_id:
            key = self._verification_key(record.image_id, spec, platform)
            cached = verify_cache.load(key)
            if cached is not None:
                return Verdict(cached.how, cached.problem, cached=True)
        verification, lasting = self._verify(record.reference, spec, platform)
        if key is not None and lasting:
            verify_cache.store(key, verification)
        return Verdict(verification.how, verification.problem)

    def _verification_key(
        self, image_id: str, spec: ImageSpec, platform: Platform
    ) -> verify_cache.VerificationKey:
        return verify_cache.VerificationKey(
            image_id=image_id,
            platform=platform.name,
            emulator=self.emulator(platform),
            harness_version=verification_version(),
            foreign_binaries=json.dumps(sorted(spec.foreign_binaries)),
        )

    def _verify(
        self, reference: str, spec: ImageSpec, platform: Platform
    ) -> tuple[verify_cache.Verification, bool]:
        """Verify ``reference`` for ``platform``: the image's recorded platform, the ELF header
        of every executable and shared object in its filesystem (read without starting it),
        then ``uname -m`` in a fresh container where the image has ELF files to run it. Returns
        the verification and whether it is a lasting property of the image (worth caching):
        an engine failure or a timeout is not."""
        started = time.monotonic()

        def outcome(
            how: str,
            problem: str = "",
            *,
            elf_files: int = 0,
            foreign: Sequence[ForeignBinary] = (),
            uname: str = "",
        ) -> verify_cache.Verification:
            seconds = round(time.monotonic() - started, 3)
            kept = tuple(foreign[:FOREIGN_KEPT])
            return verify_cache.Verification(
                how, not problem, problem, elf_files, kept, seconds, uname
            )

        try:
            image_id, recorded = image_platform(reference, self.api_for(platform).client)
            wrong_metadata = metadata_problem(reference, recorded, platform)
            scan = self.filesystems.scan(
                reference,
                image_id,
                platform,
                spec.foreign_binaries,
                self.api_for(platform),
                variant_of=recorded if wrong_metadata else "",
                # Kept for the image's structure tests, which read the same export.
                keep=bool(spec.structure_test_files()),
            )
        except MultiarchError as exc:
            return outcome("metadata", str(exc)), False
        how = "metadata+elf" if scan.has_elf else "metadata+scripts-only"
        if scan.foreign:
            problem = (
                f"{format_wrong_architecture(scan, platform)}; image {reference}: build them "
                f"for $TARGETPLATFORM (a cross compiler, or GOARCH from TARGETARCH), or allow "
                f"deliberate ones with foreign-binaries in {spec.directory / 'image.toml'}"
            )
            if wrong_metadata:
                problem += f"; its metadata says {recorded} too"
            return outcome(how, problem, elf_files=scan.elf_files, foreign=scan.foreign), True
        if wrong_metadata:
            problem = f"wrong architecture: {wrong_metadata}"
            return outcome(how, problem, elf_files=scan.elf_files), True
        if not scan.has_elf:
            return outcome(how), True  # no ELF file, so no uname to ask
        timeout = self.settings.timeout(60, platform)
        try:
            answer = probe_uname(reference, platform, self.labels, timeout, self.api_for(platform))
        except MultiarchError as exc:  # a timeout, a broken emulator, the engine
            return outcome(how, str(exc), elf_files=scan.elf_files), False
        if answer is None:
            return outcome(how, elf_files=scan.elf_files), True
        machine = answer.strip()
        problem = platform.machine_problem(machine, f"image {reference}")
        return outcome(
            "metadata+elf+uname",
            f"wrong architecture: {problem}" if problem else "",
            elf_files=scan.elf_files,
            uname=machine,
        ), True


def start_verified(
    image: BuiltImage,
    platform: Platform,
    harness: Harness,
    cancelled: threading.Event | None = None,
) -> DockerContainer:
    """A started, ready container of ``image`` that runs the very image verified for
    ``platform`` (its id; ``uname -m`` in it when the id is unknown); removed again when any of
    that fails, or when ``cancelled`` is set before it is ready."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError

    settings = harness.settings
    spec = image.spec
    mapped = settings.endpoint(platform)
    bind_address = settings.bind_address
    if mapped is not None:
        bind_address = mapped.publish_address(bind_address)
    started = make_container(
        image.reference, spec, platform, harness.labels, bind_address, harness.api_for(platform)
    )
    if mapped is not None:
        # Its published ports are on the engine's machine: testcontainers' host setting is one
        # for the whole process, so this container's client is told where that machine is.
        service_host = mapped.service_host(settings.bind_address)
        setattr(started.get_docker_client(), "host", lambda: service_host)  # noqa: B010
    timeout = settings.timeout(spec.wait.timeout, platform)
    try:
        start_container(started, spec.wait, timeout, cancelled)
    except EngineLost:
        raise
    except (MultiarchError, DockerException, RequestException, HTTPError, OSError) as exc:
        # An engine that died or froze says so (one line); anything else is the container's.
        lost = harness.watch_for(platform).translate(exc)
        raise lost or MultiarchError(
            f"container of {image.reference} ({platform.name}) failed to start: {exc}"
        ) from None
    try:
        # The image id was verified (metadata, ELF files, uname) once for this platform and
        # emulator; the same id is the same files, so no exec into the container is needed.
        ran = str(started.get_wrapped_container().attrs.get("Image") or "")
        if image.id and ran:
            if ran != image.id:
                raise WrongArchitecture(
                    f"container of {image.reference} runs image {ran}, not {image.id}, the image "
                    f"verified for {platform.name} (was the tag moved during the run?)"
                )
        else:
            answer = exec_uname(started)
            if answer is not None:
                check_uname(answer, platform, f"container of {image.reference}")
    except WrongArchitecture as exc:
        if not settings.keep_containers:
            stop_container(started)
        raise WrongArchitecture(f"wrong architecture: {exc}") from None
    return started


class RunOptions(TypedDict, total=False):
    """The keyword arguments of ``run(cmd, ...)``, for helpers that pass them on."""

    env: Mapping[str, str] | None
    stdin: str | bytes | None
    timeout: float | None
    entrypoint: str | Sequence[str] | None
    user: str | None
    workdir: str | None
    files: Mapping[str, Content] | None
    collect: Sequence[str]


class Runner:
    """``run(cmd, ...)``: a fresh one-shot container of the image, removed afterwards.
    ``timeout`` is in native seconds (default 60), scaled on emulated platforms; past it,
    ``harness.RunTimeout`` is raised. ``stdin`` takes bytes or str. ``files={"/in/x": bytes or
    pathlib.Path}`` are put into the container before it starts, ``collect=["/out/y"]`` are
    taken out after it ends: ``result.files["/out/y"]`` (or ``result.file("/out/y")``)."""

    def __init__(self, harness: Harness, image: BuiltImage, platform: Platform) -> None:
        self._harness = harness
        self._image = image
        self._platform = platform

    @property
    def image(self) -> BuiltImage:
        return self._image

    @property
    def platform(self) -> Platform:
        return self._platform

    def run(self, cmd: Sequence[str] = (), **options: Unpack[RunOptions]) -> RunResult:
        """The same as calling the runner: ``images["s390x"].run([...])``."""
        __tracebackhide__ = True
        return self(cmd, **options)

    def __call__(
        self,
        cmd: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        entrypoint: str | Sequence[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        files: Mapping[str, Content] | None = None,
        collect: Sequence[str] = (),
    ) -> RunResult:
        __tracebackhide__ = True  # a failure points at the test's line, not at ours
        if isinstance(cmd, str):
            raise TypeError("run() takes the command as a list of strings, not a shell string")
        command = list(cmd)
        entry: str | None
        if entrypoint is None or isinstance(entrypoint, str):
            entry = entrypoint
        else:
            parts = list(entrypoint)
            entry, command = parts[0], [*parts[1:], *command]
        harness = self._harness
        settings = harness.settings
        env_all = {**self._image.spec.env, **(env or {})}
        with harness.watch_for(self._platform).guard():
            return run_once(
                self._image.reference,
                self._platform,
                command,
                harness.labels,
                timeout=settings.timeout(timeout or 60.0, self._platform),
                env=env_all,
                stdin=stdin,
                entrypoint=entry,
                user=user,
                workdir=workdir,
                engine=harness.api_for(self._platform),
                files=files,
                collect=collect,
            )


def unusable_reasons(platforms: Sequence[Platform]) -> dict[str, str]:
    """Platforms whose emulator is missing or broken, with the problem and the remedy."""
    from pytest_multiarch.core.emulation import check_emulator

    reasons = {}
    for plat in platforms:
        status = check_emulator(plat, ask_version=False)
        if not status.usable:
            reasons[plat.name] = f"{status.problem}; remedy: {status.remedy}"
    return reasons


__all__ = ["BuiltImage", "Harness", "Runner", "unusable_reasons"]
