"""What one test process of a run knows and owns: the resolved settings, and the lazily started
Docker side (builds, architecture checks, the sweep of dead runs). Nothing here touches Docker
until a fixture asks for an image."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.runtime.build import BuildCoordinator, BuildRecord
from harness.runtime.cleanup import sweep
from harness.runtime.containers import (
    Labels,
    RunResult,
    WrongArchitecture,
    check_image_platform,
    check_uname,
    probe_uname,
    run_once,
)
from harness.runtime.engine import engine_info
from harness.errors import MultiarchError
from harness.images import ImageSpec
from harness.platforms import Platform


@dataclass(frozen=True)
class Settings:
    """Options after validation. The controller resolves them once; workers get them through
    ``workerinput``, so every process collects exactly the same tests."""

    platforms: tuple[Platform, ...]
    images_dir: Path
    build_mode: str
    missing_emulator: str
    timeout_factor: float
    keep_containers: bool
    json_path: Path | None
    run_id: str
    owner: str
    unusable: Mapping[str, str] = field(default_factory=dict)  # platform name -> why + remedy

    def timeout(self, native_seconds: float, platform: Platform) -> float:
        return native_seconds * (self.timeout_factor if platform.emulated else 1.0)

    def to_workerinput(self) -> dict[str, Any]:
        return {
            "platforms": [p.name for p in self.platforms],
            "images_dir": str(self.images_dir),
            "build_mode": self.build_mode,
            "missing_emulator": self.missing_emulator,
            "timeout_factor": self.timeout_factor,
            "keep_containers": self.keep_containers,
            "json_path": str(self.json_path) if self.json_path else "",
            "run_id": self.run_id,
            "owner": self.owner,
            "unusable": dict(self.unusable),
        }

    @classmethod
    def from_workerinput(cls, data: Mapping[str, Any]) -> Settings:
        from harness.platforms import parse_platforms

        return cls(
            platforms=tuple(parse_platforms(data["platforms"], source="the controller")),
            images_dir=Path(data["images_dir"]),
            build_mode=data["build_mode"],
            missing_emulator=data["missing_emulator"],
            timeout_factor=float(data["timeout_factor"]),
            keep_containers=bool(data["keep_containers"]),
            json_path=Path(data["json_path"]) if data["json_path"] else None,
            run_id=data["run_id"],
            owner=data["owner"],
            unusable=dict(data["unusable"]),
        )


def run_state_dir(run_id: str) -> Path:
    """A directory shared by every process of run ``run_id`` (and by nothing else)."""
    return Path(tempfile.gettempdir()) / "pytest-multiarch" / f"run-{run_id}"


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
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        state = run_state_dir(self.settings.run_id)
        state.mkdir(parents=True, exist_ok=True)
        (state / "docker-used").touch()
        # Leftovers of runs whose owner died (SIGKILL, a second Ctrl-C); never a live run's.
        # Once per run: the first process to get here does it, not every xdist worker.
        try:
            (state / "swept").open("x").close()
        except FileExistsError:
            return
        sweep(None)

    @property
    def builds(self) -> BuildCoordinator:
        if self._builds is None:
            store = engine_info().image_store
            self._builds = BuildCoordinator(
                run_state_dir(self.settings.run_id) / "builds",
                self.settings.build_mode,
                classic_store=store == "classic",
            )
        return self._builds

    def image(self, spec: ImageSpec, platform: Platform) -> tuple[BuiltImage, BuildRecord | None]:
        """The verified image of ``spec`` for ``platform``, and the build record when this call
        produced it (so it is reported once per run)."""
        try:
            self.start()
            outcome = self.builds.get(
                spec, platform, lambda record: self._check(record.reference, platform)
            )
        except MultiarchError as exc:  # no engine, no docker CLI, ...
            raise ImageUnavailable(str(exc), None) from exc
        record = outcome.record
        reported = record if outcome.produced else None
        if record.error or outcome.unusable:
            raise ImageUnavailable(record.error or outcome.unusable, reported)
        return BuiltImage(spec.name, record.reference, record.image_id, platform, spec), reported

    def _check(self, reference: str, platform: Platform) -> str:
        """Architecture truth, once per (image, platform) and run: the image's recorded platform,
        then ``uname -m`` in a fresh container when the image has ``uname``."""
        try:
            check_image_platform(reference, platform)
            answer = probe_uname(
                reference, platform, self.labels, self.settings.timeout(60, platform)
            )
            if answer is not None:
                check_uname(answer, platform, f"image {reference}")
        except WrongArchitecture as exc:
            return f"wrong architecture: {exc}"
        except MultiarchError as exc:
            return str(exc)
        return ""


class Runner:
    """``run(cmd, ...)``: a fresh one-shot container of the image, removed afterwards."""

    def __init__(self, harness: Harness, image: BuiltImage, platform: Platform) -> None:
        self._harness = harness
        self._image = image
        self._platform = platform

    def __call__(
        self,
        cmd: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
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


__all__ = ["BuiltImage", "Harness", "Runner", "Settings", "unusable_reasons"]
