"""The variants check as a pytest item: one per image tested on two platforms or more.

Collected from the image's Dockerfile (from its image.toml when it has no Dockerfile: a
``ref`` image) whenever pytest's paths reach it, as structure-test files are: ``pytest images/
tests/``. The item carries the ``image`` marker and reaches every platform of its image
(``pytest_multiarch.run.items.set_every_platform_target``), so ``-k``, the matrix (its ``all``
column), the JSON report, JUnit and the publish gate treat it like a test of that image that
uses the ``images`` fixture. What it compares, and how, is pytest_multiarch.runtime.variants.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.images import IMAGE_TOML, ImageSpec
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.run.items import built_image, runtime_of, set_every_platform_target
from pytest_multiarch.run.state import IMAGES_KEY, SETTINGS_KEY
from pytest_multiarch.runtime.variants import (
    Ignore,
    Variant,
    VariantsError,
    checks_variants,
    compare_variants,
    read_variant,
    shown_differences,
    variant_platforms,
)

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TerminalRepr

# The name of the item (its node id: images/<name>/Dockerfile::variants[<name>]).
ITEM_NAME = "variants"


def collect_variants(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """The collector of an image's variants check when ``file_path`` is the image's Dockerfile
    (its image.toml when it has none) and the run tests it on two platforms or more."""
    directory = file_path.parent.resolve()
    settings = parent.config.stash[SETTINGS_KEY]
    for spec in parent.config.stash[IMAGES_KEY].values():
        if spec.directory.resolve() != directory:
            continue
        source = "Dockerfile" if spec.dockerfile.is_file() else IMAGE_TOML
        if file_path.name != source or not checks_variants(spec, settings.platforms):
            return None
        collector: VariantsFile = VariantsFile.from_parent(parent, path=file_path)
        collector.spec = spec
        return collector
    return None


class VariantsFile(pytest.File):
    """An image's Dockerfile (or image.toml), as the home of its variants check."""

    spec: ImageSpec | None = None

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        if self.spec is not None:
            yield VariantsItem.from_parent(
                self, name=f"{ITEM_NAME}[{self.spec.name}]", spec=self.spec
            )


class VariantsDiffer(MultiarchError):
    """The variants of an image differ: one line per difference."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        super().__init__("\n".join(differences))


class VariantsItem(pytest.Item):
    """Compares the variants of one image: config, file tree and installed packages."""

    def __init__(self, *, spec: ImageSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        settings = self.config.stash[SETTINGS_KEY]
        tested = variant_platforms(spec, settings.platforms)
        self.platforms = tuple(p for p in tested if p.name not in settings.unusable)
        self.exports: list[tuple[Platform, str, Path]] = []  # platform, reference, tar
        set_every_platform_target(self, spec.name)
        self.add_marker(pytest.mark.image(spec.name))
        # `-k <image>` selects it, as it selects the image's other tests.
        self.extra_keyword_matches.add(spec.name)
        if len(self.platforms) < 2:
            left_out = [
                f"{p.short} ({settings.unusable[p.name]})"
                for p in tested
                if p.name in settings.unusable
            ]
            self.add_marker(
                pytest.mark.skip(
                    reason=f"the variants check of image {spec.name!r} needs two platforms "
                    "that run here; left out: " + "; ".join(left_out)
                )
            )

    @property
    def where(self) -> str:
        return f"variants of image {self.spec.name!r} ({', '.join(p.name for p in self.platforms)})"

    def setup(self) -> None:
        """Every platform's image built (or reused) and verified as the ``images`` fixture
        does, and its filesystem export: the one verification made, else one made now."""
        problems: list[str] = []
        built = []
        for platform in self.platforms:
            found = built_image(self, self.config, self.spec, platform)
            if isinstance(found, str):
                problems.append(f"{platform.short}: {found}")
            else:
                built.append(found)
        if problems:
            pytest.fail(
                f"image {self.spec.name!r} is not usable on every platform:\n"
                + "\n".join(problems),
                pytrace=False,
            )
        runtime = runtime_of(self.config)
        for image in built:
            engine = runtime.engine_for(image.platform).api
            try:
                tar = runtime.filesystems.tar(image.reference, image.id, image.platform, engine)
            except MultiarchError as exc:
                pytest.fail(f"{self.where} could not be compared: {exc}", pytrace=False)
            self.exports.append((image.platform, image.reference, tar))

    def runtest(self) -> None:
        variants = [self._variant(*export) for export in self.exports]
        differences = compare_variants(variants, Ignore.parse(self.spec.variants_ignore))
        if differences:
            raise VariantsDiffer(differences)

    def _variant(self, platform: Platform, reference: str, tar: Path) -> Variant:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        engine = runtime_of(self.config).engine_for(platform).api
        try:
            inspected = engine.client.images.get(reference).attrs
        except (DockerException, RequestException, OSError) as exc:
            raise MultiarchError(
                f"could not inspect {reference} ({platform.name}): {exc}"
            ) from None
        config = inspected.get("Config") if isinstance(inspected, dict) else None
        try:
            with open(tar, "rb") as stream:
                return read_variant(
                    stream,
                    platform,
                    config if isinstance(config, dict) else {},
                    source=f"{tar} ({reference}, {platform.name})",
                )
        except OSError as exc:
            raise VariantsError(f"cannot read the exported filesystem {tar}: {exc}") from None

    def repr_failure(
        self, excinfo: ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, VariantsDiffer):
            toml = self.spec.directory / IMAGE_TOML
            lines = [f"{self.where} differ:"]
            lines += [f"  {line}" for line in shown_differences(excinfo.value.differences)]
            lines.append(
                f"Deliberate ones: variants = {{ ignore = [...] }} in {toml} (path globs, "
                "'env:NAME', 'label:NAME', 'package:NAME', 'config:Field'); variants = false "
                "turns the check off"
            )
            return "\n".join(lines)
        if isinstance(excinfo.value, MultiarchError):
            return f"{self.where} could not be compared: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # A line is needed: pytest reports a skip at its item's location (the Dockerfile's top).
        return self.path, 0, self.name


__all__ = ["ITEM_NAME", "VariantsItem", "collect_variants"]
