"""container-structure-test files as pytest items: one item per (check, platform).

An image's ``structure-tests.yaml`` (next to its Dockerfile) and the files its image.toml lists
under ``structure-tests`` are collected whenever pytest's paths reach them, like test modules.
Each item carries the ``image`` marker and its platform
(``pytest_multiarch.run.items.item_target``), so selection,
image.toml platform restrictions, unusable emulators, the report, JUnit and the publish gate
treat it exactly like a Python test of that image and platform.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.images import IMAGE_TOML, ImageSpec
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.run.items import built_image, item_state, runtime_of, set_item_target
from pytest_multiarch.run.state import IMAGES_KEY, SETTINGS_KEY
from pytest_multiarch.structure.checks import evaluate, platform_applies
from pytest_multiarch.structure.config import Check, StructureConfigError, load_structure_file

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TerminalRepr

    from pytest_multiarch.structure.access import EngineImageAccess, ImageCache
    from pytest_multiarch.structure.config import StructureFile

# Each command a check runs gets this long natively, scaled on emulated platforms.
COMMAND_TIMEOUT = 60.0

_CACHE_KEY: pytest.StashKey[ImageCache] = pytest.StashKey()
_SOURCES_KEY: pytest.StashKey[_Sources] = pytest.StashKey()


@dataclass(frozen=True)
class _Sources:
    """Which images each structure-test file belongs to (resolved path -> image names)."""

    images: dict[Path, tuple[str, ...]]
    names: frozenset[str]  # file names among them: a cheap first test for every collected file


def structure_sources(images: Mapping[str, ImageSpec]) -> dict[Path, tuple[str, ...]]:
    """Every image's structure-test files: its default file when present, and those its
    image.toml lists (whether or not they exist), resolved, each with the images using it."""
    owners: dict[Path, list[str]] = {}
    for name, spec in images.items():
        for path in spec.structure_test_files():
            users = owners.setdefault(path.resolve(), [])
            if name not in users:
                users.append(name)
    return {path: tuple(names) for path, names in owners.items()}


def _sources(config: pytest.Config) -> _Sources:
    found = config.stash.get(_SOURCES_KEY, None)
    if found is None:
        images = config.stash[IMAGES_KEY]
        by_path = structure_sources(images)
        found = _Sources(by_path, frozenset(path.name for path in by_path))
        config.stash[_SOURCES_KEY] = found
    return found


def collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """The collector for ``file_path`` when it is an image's structure-test file (or an
    image.toml listing structure-test files that do not exist); None for anything else."""
    sources = _sources(parent.config)
    if file_path.name == IMAGE_TOML:
        return _missing_files(file_path, parent)
    if file_path.name not in sources.names:
        return None
    owners = sources.images.get(file_path.resolve())
    if not owners:
        return None
    collector: StructureTestFile = StructureTestFile.from_parent(parent, path=file_path)
    collector.image_names = owners
    return collector


def _missing_files(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    directory = file_path.parent.resolve()
    for spec in parent.config.stash[IMAGES_KEY].values():
        if spec.directory.resolve() != directory:
            continue
        missing = [path for path in spec.structure_tests if not path.is_file()]
        if missing:
            collector: MissingStructureFiles = MissingStructureFiles.from_parent(
                parent, path=file_path
            )
            collector.missing = tuple(missing)
            return collector
    return None


class MissingStructureFiles(pytest.File):
    """An image.toml whose ``structure-tests`` names files that are not there."""

    missing: tuple[Path, ...] = ()

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        shown = ", ".join(str(path) for path in self.missing)
        raise self.CollectError(
            f"{self.nodeid}: key 'structure-tests': no such file: {shown}; paths are relative "
            "to the image's directory"
        )


class StructureTestFile(pytest.File):
    """One container-structure-test file: its checks, for each image using it and each
    platform of the run."""

    image_names: tuple[str, ...] = ()

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        try:
            structure = load_structure_file(self.path, display=self.nodeid or str(self.path))
        except StructureConfigError as exc:
            # CollectError is shown as its message alone: the file, check and key, no traceback.
            raise self.CollectError(str(exc)) from None
        settings = self.config.stash[SETTINGS_KEY]
        images = self.config.stash[IMAGES_KEY]
        lines = check_lines(self.path.read_bytes())
        several = len(self.image_names) > 1
        for check in structure.checks:
            for image_name in self.image_names:
                for platform in settings.platforms:
                    suffix = f"{image_name}-{platform.short}" if several else platform.short
                    yield StructureCheckItem.from_parent(
                        self,
                        name=f"{check.id}[{suffix}]",
                        structure=structure,
                        check=check,
                        spec=images[image_name],
                        platform=platform,
                        line=lines.get((check.SECTION, check.index), 0),
                    )


def check_lines(data: bytes) -> dict[tuple[str, int], int]:
    """Where each check starts in a structure-test file: (section, index) -> 0-based line;
    the metadataTest is (``metadataTest``, 0). Reports point there."""
    try:
        root = yaml.compose(data, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    found: dict[tuple[str, int], int] = {}
    if not isinstance(root, yaml.MappingNode):
        return found
    for key, value in root.value:
        section = str(key.value)
        if isinstance(value, yaml.SequenceNode):
            for index, entry in enumerate(value.value):
                found[(section, index)] = entry.start_mark.line
        else:
            found[(section, 0)] = key.start_mark.line
    return found


class StructureCheckFailed(MultiarchError):
    """A check did not hold: each failure says what was expected and what was found."""

    def __init__(self, failures: tuple[str, ...]) -> None:
        self.failures = failures
        super().__init__("\n".join(failures))


class StructureCheckItem(pytest.Item):
    """One check of a structure-test file on one platform of one image."""

    def __init__(
        self,
        *,
        structure: StructureFile,
        check: Check,
        spec: ImageSpec,
        platform: Platform,
        line: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.line = line
        self.structure = structure
        self.check = check
        self.spec = spec
        self.platform = platform
        self.access: EngineImageAccess | None = None
        # What the plugin reads of every item: its platform and its image (marker and keyword).
        set_item_target(self, platform, spec.name)
        self.add_marker(pytest.mark.image(spec.name))
        reason = platform_applies(check, platform)
        if reason is not None:
            self.add_marker(pytest.mark.skip(reason=reason))

    def setup(self) -> None:
        """Build (or reuse) the image variant exactly as the ``image`` fixture does: once per
        run, verified, and the wait counted as build time, not as the check's."""
        from pytest_multiarch.structure.access import EngineImageAccess, ImageCache

        found = built_image(self, self.config, self.spec, self.platform)
        if isinstance(found, str):
            pytest.fail(found, pytrace=False)
        item_state(self).image_id = found.id
        runtime = runtime_of(self.config)
        engine = runtime.engine_for(self.platform)
        cache = self.config.stash.get(_CACHE_KEY, None)
        if cache is None:
            cache = self.config.stash[_CACHE_KEY] = ImageCache()
        self.access = EngineImageAccess(
            found.reference,
            found.id,
            self.platform,
            runtime.labels,
            engine=engine.api,
            watch=engine.watch,
            filesystems=runtime.filesystems,
            cache=cache,
        )

    def runtest(self) -> None:
        if self.access is None:
            raise MultiarchError("the image was not set up (setup() did not run)")
        settings = self.config.stash[SETTINGS_KEY]
        timeout = settings.timeout(COMMAND_TIMEOUT, self.platform)
        outcome = evaluate(self.structure, self.check, self.access, timeout=timeout)
        if not outcome.passed:
            raise StructureCheckFailed(outcome.failures)

    def repr_failure(
        self, excinfo: ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        where = f"{self.check.id} on {self.platform.name} (image {self.spec.name!r})"
        if isinstance(excinfo.value, StructureCheckFailed):
            lines = [f"{where} failed:"]
            lines += [f"  {failure}" for failure in excinfo.value.failures]
            return "\n".join(lines)
        if isinstance(excinfo.value, MultiarchError):
            return f"{where} could not be checked: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # The domain is the item's name only: pytest shows it after the file's path, and would
        # turn a "." before the first "[" into "::".
        return self.path, self.line, self.name
