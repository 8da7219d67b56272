"""The run's settings: resolved once on the controller from the option table, shipped to every
xdist worker through ``workerinput``, so every process collects exactly the same tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.errors import PlatformError
from harness.platforms import Platform, parse_platforms
from harness.run.codec import dump, load
from harness.run.options import MissingEmulator, resolve, resolve_path
from harness.runtime.build import BuildMode


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
    unusable = unusable_reasons(platforms)
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
    )
