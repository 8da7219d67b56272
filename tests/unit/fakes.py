"""Stand-ins for the parts of pytest's Config that option and map resolution read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.runtime.settings import Settings


@dataclass
class FakeConfig:
    """Command line values by dest, ini values by name (a missing linelist ini is [])."""

    rootpath: Path
    options: dict[str, Any] = field(default_factory=dict)
    ini: dict[str, Any] = field(default_factory=dict)

    def getoption(self, dest: str) -> Any:
        return self.options.get(dest)

    def getini(self, dest: str) -> Any:
        return self.ini.get(dest, [])


def make_settings(platforms: tuple[Platform, ...], images_dir: Path, **changes: Any) -> Settings:
    """Settings as the defaults resolve them, for ``platforms``, with ``changes`` on top."""
    defaults: dict[str, Any] = {
        "build_mode": "auto",
        "build_timeout": 60.0,
        "missing_emulator": "error",
        "timeout_factor": 10.0,
        "keep_containers": False,
        "bind_address": "127.0.0.1",
        "json_path": None,
        "run_id": "r",
        "owner": "o",
    }
    return Settings(platforms=platforms, images_dir=images_dir, **(defaults | changes))
