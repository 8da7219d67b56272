"""The Docker side of one test process of a run (:class:`ProcessRuntime`): its engines
(pytest_multiarch.runtime.engine), the verified images its tests get, and what a test holds of
them (:class:`BuiltImage`, :class:`Runner`). Nothing here touches Docker until a fixture asks
for an image."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from typing_extensions import Unpack

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.paths import private_dir, run_state_root
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.core.secrets import secret_values
from pytest_multiarch.engine.cleanup import owner_alive
from pytest_multiarch.engine.labels import Labels
from pytest_multiarch.model.progress import ProgressBoard
from pytest_multiarch.model.records import BuildRecord
from pytest_multiarch.runtime.build import (
    PRIVATE_TAGS_DIR,
    image_tag,
    inspect_platform,
    sweep_private_tags,
)
from pytest_multiarch.runtime.engine import Engine
from pytest_multiarch.runtime.image_fs import ImageFilesystems
from pytest_multiarch.runtime.oneshot import RunResult, run_once
from pytest_multiarch.runtime.prestart import CLOSE_WAIT, Prestarter
from pytest_multiarch.runtime.transfer import Content
from pytest_multiarch.runtime.verification import Verifier

if TYPE_CHECKING:
    from pytest_multiarch.runtime.settings import Settings


def run_state_dir(run_id: str) -> Path:
    """A directory shared by every process of run ``run_id`` (and by nothing else), inside this
    user's private state directory."""
    return run_state_root() / "runs" / f"run-{run_id}"


def progress_board(run_id: str) -> ProgressBoard:
    """Where the processes of run ``run_id`` tell what they are building and waiting for; the
    controller shows it (pytest_multiarch.model.progress)."""
    return ProgressBoard(run_state_dir(run_id) / "progress")


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


class ProcessRuntime:
    """The Docker side of one test process: one :class:`Engine` per engine its platforms use
    (the default engine included), the verification of what is built on them, the images its
    tests get, and the container started ahead. Made on first use; nothing touches Docker until
    an image is asked for."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.labels = Labels(settings.run_id, settings.owner, settings.keep_containers)
        # By engine spec ("": the default engine), in the order they were first used.
        self._engines: dict[str, Engine] = {}
        # The run's image exports, shared with the structure tests (one export per image).
        self.filesystems = ImageFilesystems(run_state_dir(settings.run_id), self.labels)
        self.verifier = Verifier(settings, self.labels, self.engine_for, self.filesystems)
        self._started = False
        self._prestarter: Prestarter | None = None
        # Platform name -> the platform on the engine of its pool this process works for since
        # the one it was given (Settings.for_engines) stopped answering (:meth:`fail_over`).
        self._serving: dict[str, Platform] = {}

    def serving(self, platform: Platform) -> Platform:
        """``platform`` on the engine of its pool that this process works for now: the one it
        was given, or the one it moved to when that engine stopped answering."""
        moved = self._serving.get(platform.name)
        if moved is None:
            return platform
        return replace(moved, timeout_factor=platform.timeout_factor)

    def fail_over(self, platform: Platform) -> Platform | None:
        """``platform``'s engine stopped answering: the next engine of its pool that answers,
        which this process works for from now on (its tests in flight on the lost engine have
        failed; the ones after go on here); None when its pool has no other engine left."""
        pool = self.settings.pool(platform)
        at = next((i for i, p in enumerate(pool) if p.engine == platform.engine), None)
        if at is None or len(pool) < 2:
            return None
        for candidate in pool[at + 1 :] + pool[:at]:
            engine = self.engine_for(candidate)
            if engine.unreachable(candidate) or engine.watch.preflight() is not None:
                continue
            self._serving[platform.name] = candidate
            return self.serving(platform)
        return None

    def engine_for(self, platform: Platform) -> Engine:
        """The engine that builds, verifies and runs ``platform``'s images (Platform.engine)."""
        endpoint = self.settings.engine_endpoint(platform)
        engine = self._engines.get(endpoint.spec)
        if engine is None:
            run_id = self.settings.run_id
            engine = Engine(endpoint, self.settings, run_state_dir(run_id), progress_board(run_id))
            self._engines[endpoint.spec] = engine
        return engine

    def engines(self) -> list[Engine]:
        """The engines of the run's platforms, each once, in platform order; every engine of a
        platform's pool."""
        pooled = [p for plat in self.settings.platforms for p in self.settings.pool(plat)]
        found = {id(engine): engine for engine in map(self.engine_for, pooled)}
        return list(found.values())

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
        # State of runs whose owner died (SIGKILL, a second Ctrl-C); never a live run's. Their
        # containers go with each engine's first use (Engine.sweep_once).
        _sweep_dead_run_dirs(state.parent)

    def image(self, spec: ImageSpec, platform: Platform) -> tuple[BuiltImage, BuildRecord | None]:
        """The verified image of ``spec`` for ``platform``, and the build record when this call
        produced it (so it is reported once per run). A platform of a pool: on the engine this
        process works for now (:meth:`serving`)."""
        platform = self.serving(platform)
        engine = self.engine_for(platform)
        unreachable = engine.unreachable(platform)
        if unreachable:
            raise ImageUnavailable(unreachable, None)
        try:
            with engine.watch.guard():
                self.start()
                engine.sweep_once()
                secrets = secret_values(spec.secrets, str(spec.directory / "image.toml"))
                outcome = engine.builds.get(
                    spec,
                    platform,
                    lambda record: self.verifier.check(record, spec, platform),
                    secrets,
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
            lost = engine.watch.alive()
            raise ImageUnavailable(str(lost or record.error or outcome.unusable), reported)
        return BuiltImage(spec.name, record.reference, record.image_id, platform, spec), reported

    def resolvable_at_once(self, spec: ImageSpec, platform: Platform) -> bool:
        """Whether :meth:`image` would cost no more than an API call and a file read or two: a
        process of this run already got it, or its tag is on the engine and its verification
        is cached. Work done ahead of the test that needs an image must never build, verify
        or wait behind another process's build."""
        platform = self.serving(platform)
        engine = self.engine_for(platform)
        if engine.unreachable(platform):
            return False
        if engine.builds.known(spec, platform):
            return True
        if self.settings.build_mode == "always" or spec.ref:
            return False  # built again, or resolved again, on every run
        found = inspect_platform(image_tag(spec, platform), engine.api.client)
        if found is None:
            return False
        return self.verifier.cached(found[0], spec, platform)

    @property
    def prestarter(self) -> Prestarter:
        """The next test's container, started ahead (pytest_multiarch.runtime.prestart)."""
        if self._prestarter is None:
            # Imported here: only a process that starts service containers pays for
            # testcontainers (services imports nothing of this module).
            from pytest_multiarch.runtime.services import stop_container

            self._prestarter = Prestarter(stop_container)
        return self._prestarter

    def close(self) -> None:
        """Finish this process's container removals (before the run's sweep) and disconnect.
        Nothing is waited for on an engine that stopped answering: the removals cannot happen."""
        engines = list(self._engines.values())
        if self._prestarter is not None:
            gone = any(engine.watch.dead() is not None for engine in engines)
            self._prestarter.close(0 if gone else CLOSE_WAIT)
        # Watches chain their signal handlers: closed in reverse order of creation.
        for engine in reversed(engines):
            engine.close()


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

    def __init__(
        self, runtime: ProcessRuntime, image: BuiltImage, platform: Platform, network: str = ""
    ) -> None:
        self._runtime = runtime
        self._image = image
        # A platform of a pool: on the engine the image is on (the one this process works for).
        self._platform = runtime.serving(platform)
        # The test's stack network (pytest_multiarch.runtime.stacks): its containers join it.
        self._network = network

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
        runtime = self._runtime
        settings = runtime.settings
        engine = runtime.engine_for(self._platform)
        env_all = {**self._image.spec.env, **(env or {})}
        with engine.watch.guard():
            return run_once(
                self._image.reference,
                self._platform,
                command,
                runtime.labels,
                timeout=settings.timeout(timeout or 60.0, self._platform),
                env=env_all,
                stdin=stdin,
                entrypoint=entry,
                user=user,
                workdir=workdir,
                engine=engine.api,
                files=files,
                collect=collect,
                network=self._network,
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


__all__ = ["BuiltImage", "ProcessRuntime", "Runner", "unusable_reasons"]
