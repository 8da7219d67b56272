"""Per test item, on the process that runs it: what it targets (its platform and image, computed
once into the item's stash), what it built and started, and the process's runtime. The plugin's
hooks and fixtures and the structure-test items all go through these functions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from pytest_multiarch.core.images import ImageSpec, did_you_mean
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.model.records import BuildRecord
from pytest_multiarch.run.state import BROKEN_IMAGES_KEY, IMAGES_KEY, RUNTIME_KEY, SETTINGS_KEY
from pytest_multiarch.run.timeouts import timer_paused

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

    from pytest_multiarch.runtime.faults import RecordedRun
    from pytest_multiarch.runtime.process import BuiltImage, ProcessRuntime


ITEM_KEY = pytest.StashKey["ItemState"]()
# What a test item targets, computed once per item (collection, or the item's own maker).
TARGET_KEY = pytest.StashKey["ItemTarget"]()


@dataclass
class ItemState:
    """Per test item, on the process that runs it."""

    builds: list[BuildRecord] = field(default_factory=list)
    containers: list[tuple[str, DockerContainer]] = field(default_factory=list)
    build_wait_seconds: float = 0.0
    image_id: str = ""
    runs: list[RecordedRun] = field(default_factory=list)  # what its ``run`` calls did
    # Its stack's services: alias -> the platform each ran on (pytest_multiarch.runtime.stacks).
    services: dict[str, str] = field(default_factory=dict)


def item_state(node: pytest.Item | pytest.Collector) -> ItemState:
    """The state of a test item, or of a module whose tests share a fixture (shared_container)."""
    state = node.stash.get(ITEM_KEY, None)
    if state is None:
        state = node.stash[ITEM_KEY] = ItemState()
    return state


def image_spec(node: pytest.Item | pytest.Collector, config: pytest.Config) -> ImageSpec | None:
    marker = node.get_closest_marker("image")
    if marker is None:
        return None
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        pytest.fail(f"{node.nodeid}: @pytest.mark.image takes one image name", pytrace=False)
    images = config.stash[IMAGES_KEY]
    name = marker.args[0]
    broken = config.stash.get(BROKEN_IMAGES_KEY, {})
    if name in broken:  # that image's problem, not the whole session's
        pytest.fail(f"{node.nodeid}: image {name!r} is not valid: {broken[name]}", pytrace=False)
    if name not in images:
        settings = config.stash[SETTINGS_KEY]
        known = ", ".join(images) or "none"
        pytest.fail(
            f"{node.nodeid}: @pytest.mark.image({name!r}) names no image under "
            f"{settings.images_dir} (found: {known}){did_you_mean(name, images)}",
            pytrace=False,
        )
    return images[name]


def parametrizes_platform(node: pytest.Item) -> bool:
    """A test that parametrizes an argument called ``platform`` itself keeps its own values."""
    for marker in node.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "platform" in names:
            return True
    return False


@dataclass(frozen=True)
class ItemTarget:
    """What a test item targets: its platform (None for a test that is not one platform's:
    it uses the images fixture, or parametrizes ``platform`` itself), the name of its
    ``image`` marker ("" without one), and whether it reaches every platform of the run (the
    images fixture, a variants check)."""

    platform: Platform | None
    image: str
    every_platform: bool = False


def item_target(item: pytest.Item) -> ItemTarget:
    """The item's target, computed on first use and kept in its stash (as pytest's skipping
    plugin keeps its marks' evaluation): every hook and fixture asks this, none reads the
    callspec or the image marker again."""
    found = item.stash.get(TARGET_KEY, None)
    if found is None:
        marker = item.get_closest_marker("image")
        name = str(marker.args[0]) if marker is not None and marker.args else ""
        every = "images" in getattr(item, "fixturenames", ())
        found = item.stash[TARGET_KEY] = ItemTarget(_callspec_platform(item), name, every)
    return found


def set_item_target(item: pytest.Item, platform: Platform, image: str) -> None:
    """For items that are not parametrized functions (a structure-test check): their own."""
    item.stash[TARGET_KEY] = ItemTarget(platform, image)


def set_every_platform_target(item: pytest.Item, image: str) -> None:
    """For items that are not parametrized functions and compare every platform of ``image``
    (a variants check): their own."""
    item.stash[TARGET_KEY] = ItemTarget(None, image, every_platform=True)


def item_platform(item: pytest.Item) -> Platform | None:
    """The platform of a test item (see :func:`item_target`)."""
    return item_target(item).platform


def _callspec_platform(item: pytest.Item) -> Platform | None:
    callspec = getattr(item, "callspec", None)
    plat = callspec.params.get("platform") if callspec is not None else None
    if not isinstance(plat, Platform) or parametrizes_platform(item):
        return None
    return plat


def runtime_of(config: pytest.Config) -> ProcessRuntime:
    """The Docker side of this test process, made on first use (it touches no engine yet)."""
    runtime = config.stash.get(RUNTIME_KEY, None)
    if runtime is None:
        # The runtime starts (imports) in the first test of a process to use it: not that
        # test's time.
        with timer_paused(config):
            from pytest_multiarch.runtime.process import ProcessRuntime

            runtime = ProcessRuntime(config.stash[SETTINGS_KEY])
        config.stash[RUNTIME_KEY] = runtime
    return runtime


def built_image(
    node: pytest.Item | pytest.Collector, config: pytest.Config, spec: ImageSpec, plat: Platform
) -> BuiltImage | str:
    """The verified image of ``spec`` for ``plat``, or why there is none. Build records and the
    time spent waiting for a build go to ``node``'s state: they are the build's, reported apart
    from the test's own time."""
    from pytest_multiarch.runtime.process import ImageUnavailable

    state = item_state(node)
    started = time.monotonic()
    try:
        with timer_paused(config):  # the test's time limit is not the build's
            built, record = runtime_of(config).image(spec, plat)
    except ImageUnavailable as exc:
        if exc.record is not None:
            state.builds.append(exc.record)
        return str(exc)
    else:
        if record is not None:
            state.builds.append(record)
        return built
    finally:
        state.build_wait_seconds += time.monotonic() - started
