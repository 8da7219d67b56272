"""What one test process of a run knows and owns: the resolved settings, and the lazily started
Docker side (builds, architecture checks, the sweep of dead runs). Nothing here touches Docker
until a fixture asks for an image."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import MultiarchError
from harness.images import ImageSpec
from harness.paths import run_state_root
from harness.platforms import Platform
from harness.run.model import BuildRecord
from harness.runtime.build import BuildCoordinator, Verdict
from harness.runtime.cleanup import owner_alive, sweep
from harness.runtime.containers import (
    Labels,
    RunResult,
    WrongArchitecture,
    check_image_platform,
    check_uname,
    probe_uname,
    run_once,
)
from harness.runtime.engine import EngineInfo, engine_info
from harness.secrets import secret_values

if TYPE_CHECKING:
    from harness.run.settings import Settings


def run_state_dir(run_id: str) -> Path:
    """A directory shared by every process of run ``run_id`` (and by nothing else), inside this
    user's private state directory."""
    return run_state_root() / "runs" / f"run-{run_id}"


def _sweep_dead_run_dirs(runs: Path) -> None:
    """State directories of runs whose owner died (SIGKILL) are removed by the next run."""
    for run_dir in runs.glob("run-*"):
        try:
            owner = (run_dir / OWNER_FILE).read_text().strip()
        except OSError:
            continue
        if owner_alive(owner) is False:
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


class Harness:
    """The Docker side of one process. Created on first use of an image fixture."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.labels = Labels(settings.run_id, settings.owner, settings.keep_containers)
        self._builds: BuildCoordinator | None = None
        self._engine: EngineInfo | None = None
        self._started = False

    @property
    def engine(self) -> EngineInfo:
        if self._engine is None:
            self._engine = engine_info()
        return self._engine

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        state = run_state_dir(self.settings.run_id)
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Once per run: the first process to get here does it, not every xdist worker.
        try:
            fd = os.open(state / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
        except FileExistsError:
            return
        with os.fdopen(fd, "w") as handle:
            handle.write(self.settings.owner)
        # Leftovers of runs whose owner died (SIGKILL, a second Ctrl-C); never a live run's.
        _sweep_dead_run_dirs(state.parent)
        sweep(None)

    @property
    def builds(self) -> BuildCoordinator:
        if self._builds is None:
            engine = self.engine
            engine_key = hashlib.sha256(engine.id.encode()).hexdigest()[:16]
            locks = run_state_root() / "engines" / engine_key
            locks.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._builds = BuildCoordinator(
                run_state_dir(self.settings.run_id),
                locks,
                self.settings.build_mode,
                timeout=lambda p: self.settings.timeout(self.settings.build_timeout, p),
                classic_store=engine.image_store == "classic",
            )
        return self._builds

    def image(self, spec: ImageSpec, platform: Platform) -> tuple[BuiltImage, BuildRecord | None]:
        """The verified image of ``spec`` for ``platform``, and the build record when this call
        produced it (so it is reported once per run)."""
        try:
            self.start()
            secrets = secret_values(spec.secrets, str(spec.directory / "image.toml"))
            outcome = self.builds.get(
                spec, platform, lambda record: self._check(record.reference, platform), secrets
            )
        except MultiarchError as exc:  # no engine, no docker CLI, ...
            raise ImageUnavailable(str(exc), None) from exc
        record = outcome.record
        reported = record if outcome.produced else None
        if record.error or outcome.unusable:
            raise ImageUnavailable(record.error or outcome.unusable, reported)
        return BuiltImage(spec.name, record.reference, record.image_id, platform, spec), reported

    def _check(self, reference: str, platform: Platform) -> Verdict:
        """Architecture truth, once per (image, platform) and run: the image's recorded platform,
        then ``uname -m`` in a fresh container when the image has ``uname``."""
        how = "metadata"
        try:
            check_image_platform(reference, platform)
            answer = probe_uname(
                reference, platform, self.labels, self.settings.timeout(60, platform)
            )
            if answer is not None:
                how += "+uname"
                check_uname(answer, platform, f"image {reference}")
        except WrongArchitecture as exc:
            return Verdict(how, f"wrong architecture: {exc}")
        except MultiarchError as exc:
            return Verdict(how, str(exc))
        return Verdict(how)


class Runner:
    """``run(cmd, ...)``: a fresh one-shot container of the image, removed afterwards.
    ``timeout`` is in native seconds (default 60), scaled on emulated platforms; past it,
    ``harness.RunTimeout`` is raised. ``stdin`` takes bytes or str."""

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

    def run(
        self,
        cmd: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        entrypoint: str | Sequence[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
    ) -> RunResult:
        """The same as calling the runner: ``images["s390x"].run([...])``."""
        __tracebackhide__ = True
        return self(
            cmd,
            env=env,
            stdin=stdin,
            timeout=timeout,
            entrypoint=entrypoint,
            user=user,
            workdir=workdir,
        )

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
        settings = self._harness.settings
        env_all = {**self._image.spec.env, **(env or {})}
        return run_once(
            self._image.reference,
            self._platform,
            command,
            self._harness.labels,
            timeout=settings.timeout(timeout or 60.0, self._platform),
            env=env_all,
            stdin=stdin,
            entrypoint=entry,
            user=user,
            workdir=workdir,
        )


def unusable_reasons(platforms: Sequence[Platform]) -> dict[str, str]:
    """Platforms whose emulator is missing or broken, with the problem and the remedy."""
    from harness.emulation import check_emulator

    reasons = {}
    for plat in platforms:
        status = check_emulator(plat, ask_version=False)
        if not status.usable:
            reasons[plat.name] = f"{status.problem}; remedy: {status.remedy}"
    return reasons


__all__ = ["BuiltImage", "Harness", "Runner", "unusable_reasons"]
