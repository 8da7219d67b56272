"""What the plugin keeps on pytest's config, and what a test's reports carry from the process
that ran it (an xdist worker, or the controller itself) to the controller's run report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.model.records import BuildRecord, RunReport

if TYPE_CHECKING:
    from pytest_multiarch.runtime.process import ProcessRuntime
    from pytest_multiarch.runtime.settings import Settings

SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
REPORT_KEY = pytest.StashKey[RunReport]()
IMAGES_KEY = pytest.StashKey[dict[str, ImageSpec]]()
# Image directories whose image.toml (or name) is not valid: why, by name. Their tests fail.
BROKEN_IMAGES_KEY = pytest.StashKey[dict[str, str]]()
RUNTIME_KEY: pytest.StashKey[ProcessRuntime] = pytest.StashKey()
# The attribute xdist carries from a worker's test report to the controller: ItemFacts as JSON.
REPORT_ATTRIBUTE = "multiarch"
# The outcome of a report whose test is run again after an emulator fault.
RETRIED = "rerun"


@dataclass
class ItemFacts:
    """What the controller learns about a test item from its reports."""

    platform: str
    image: str
    builds: list[BuildRecord] = field(default_factory=list)
    build_wait_seconds: float = 0.0
    every_platform: bool = False  # it used the images fixture
    # The endpoint of the engine it ran on (of its setup); "" until then.
    engine: str = ""
    # Of a failed phase: the commands its ``run`` calls made, and the emulator's fault if any.
    commands: list[str] = field(default_factory=list)
    fault: str = ""
    # Its stack's services (setup): alias -> the platform each ran on.
    services: dict[str, str] = field(default_factory=dict)
