"""Every option of the plugin, declared once: its command-line flag, ini twin, environment twin,
default, help and validation. ``pytest_addoption`` and the resolution of values are generated
from this table, and each resolved value carries where it came from as data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.runtime.build_cache import parse_build_cache
from pytest_multiarch.runtime.settings import DISPATCH_ORDERS, MISSING_EMULATOR_MODES

Source = str  # "--platforms", "environment variable MULTIARCH_PLATFORMS", "ini option ...", ...
# "append": repeatable on the command line (a list), a linelist (or comma list) in the ini file.
Kind = Literal["value", "flag", "append"]
DEFAULT_SOURCE = "the default"


@dataclass(frozen=True)
class Option:
    """One option. ``check`` turns the text into the value or raises ConfigError with why."""

    name: str  # flag without dashes: "emulation-timeout-factor"
    help: str
    default: str | None = None
    kind: Kind = "value"
    env: str | None = None
    metavar: str | None = None
    check: Callable[[str], object] = str
    key: str | None = None  # the ini key and argparse dest, when not derived from the name

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def dest(self) -> str:
        """The ini key and the argparse dest: ``multiarch_`` + the name in snake case."""
        if self.key:
            return self.key
        snake = self.name.replace("-", "_")
        return snake if snake.startswith("multiarch_") else f"multiarch_{snake}"


@dataclass(frozen=True)
class Resolved:
    """A value and where it came from."""

    value: Any
    source: Source

    @property
    def given(self) -> bool:
        return self.source != DEFAULT_SOURCE


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError("expected a positive number")
    return value


def whole_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError("expected a whole number, 0 or more")
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in allowed:
            raise ConfigError(f"use one of {', '.join(allowed)}")
        return text

    return check


def bind_address(text: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError("expected an IP address such as 127.0.0.1 or 0.0.0.0") from None
    return text


OPTIONS: tuple[Option, ...] = (
    Option(
        "platforms",
        "platforms to test, comma-separated: amd64, linux/arm64, arm/v7, s390x, aliases "
        "(aarch64, armhf, ...), 'native' or 'all'",
        default="native",
        env="MULTIARCH_PLATFORMS",
        metavar="LIST",
    ),
    Option(
        "images",
        "directory holding one sub-directory per image (default: images/ under rootdir)",
        metavar="DIR",
    ),
    Option(
        "build",
        "auto: build what changed; always: run buildx for every image; never: only use images "
        "built before",
        default="auto",
        check=choice("auto", "always", "never"),
    ),
    Option(
        "build-timeout",
        "seconds one build may take natively; multiplied by the emulation timeout factor on "
        "emulated platforms",
        default="3600",
        env="MULTIARCH_BUILD_TIMEOUT",
        metavar="SECONDS",
        check=positive_number,
    ),
    Option(
        "build-cache",
        "read and write BuildKit's cache at SPEC, one scope per image and platform, so a fresh "
        "machine builds from an earlier run's steps: local:DIR, registry:HOST[:PORT]/NAME[:TAG], "
        "gha or gha:SCOPE (GitHub Actions); add ,mode=min to export only the final image's "
        "layers (default mode=max: every stage's)",
        env="MULTIARCH_BUILD_CACHE",
        metavar="SPEC",
        check=parse_build_cache,
    ),
    Option(
        "missing-emulator",
        "error: a platform without a working emulator stops the session; skip: its tests are "
        "skipped with the reason",
        default="error",
        check=choice(*MISSING_EMULATOR_MODES),
    ),
    Option(
        "emulation-timeout-factor",
        "multiply wait, run and build timeouts by FACTOR on emulated platforms",
        default="10",
        metavar="FACTOR",
        check=positive_number,
    ),
    Option(
        "keep-containers",
        "leave started containers behind for debugging (prints how to remove them)",
        kind="flag",
    ),
    Option(
        "no-prestart",
        "start no test's container ahead: by default, while a test runs, the next test's "
        "`container` is started (when its image is already built and checked)",
        kind="flag",
    ),
    Option(
        "multiarch-order",
        "with -n, the order in which workers get the tests: longest: longest first by their "
        "durations in earlier runs (kept in pytest's cache; tests without one go first, in "
        "collection order); collection: in collection order",
        default="longest",
        env="MULTIARCH_ORDER",
        check=choice(*DISPATCH_ORDERS),
    ),
    Option(
        "bind-address",
        "host address that containers' published ports listen on",
        default="127.0.0.1",
        metavar="ADDRESS",
        check=bind_address,
    ),
    Option(
        "engine",
        "run PLATFORM's builds and containers on another Docker engine: a Docker context name "
        "or an endpoint (unix://, tcp://, ssh://); PLATFORM=ENDPOINT,ENDPOINT,... is a pool "
        "(each xdist worker works for one of its engines); repeatable, or comma-separated; "
        "merged over [tool.multiarch.engines] in pyproject.toml, the ini and the environment",
        kind="append",
        env="MULTIARCH_ENGINES",
        metavar="PLATFORM=ENDPOINT",
        key="multiarch_engines",
    ),
    Option(
        "builder",
        "build PLATFORM with the buildx builder BUILDER (`docker buildx ls`); its image is "
        "loaded into the engine that runs PLATFORM, or travels through REGISTRY "
        "(HOST[:PORT]/PATH: pushed, then pulled); repeatable, or comma-separated; merged over "
        "[tool.multiarch.builders] in pyproject.toml, the ini and the environment",
        kind="append",
        env="MULTIARCH_BUILDERS",
        metavar="PLATFORM=BUILDER[@REGISTRY]",
        key="multiarch_builders",
    ),
    Option(
        "multiarch-json",
        "write the run report (builds, verification, per-platform results) to PATH as JSON",
        metavar="PATH",
    ),
    Option(
        "multiarch-html",
        "write the run as one self-contained HTML page to PATH: the images x platforms matrix, "
        "platforms, builds, failures with their logs and commands, publish results",
        metavar="PATH",
    ),
    Option(
        "emulator-fault-retries",
        "run a test again up to N times when it failed because the emulator failed (QEMU's "
        "own crash or signal report), not the test; other failures are never run again",
        default="0",
        metavar="N",
        check=whole_number,
    ),
    Option(
        "publish",
        "after the session, push every image whose tests all passed on every platform as one "
        "manifest list REGISTRY/NAMESPACE/<image>:<tag> of exactly the tested digests",
        metavar="REGISTRY[/NAMESPACE]",
    ),
    Option("publish-tag", "tag to publish", default="latest", metavar="TAG"),
    Option(
        "verify-ref",
        "test the published image REF (a tag, or @sha256: of a manifest list or of one "
        "platform's manifest) in place of building image NAME: each platform is pulled by its "
        "own digest; NAME may be left out when the project has one image (what `multiarch "
        "verify` passes)",
        metavar="[NAME=]REF",
        key="multiarch_verify_ref",
    ),
    Option(
        "publish-overwrite", "replace a published tag that exists with other content", kind="flag"
    ),
)
BY_NAME = {option.name: option for option in OPTIONS}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("multiarch", "multi-architecture container tests (pytest-multiarch)")
    for option in OPTIONS:
        twins = f"ini {option.dest}" + (f", env {option.env}" if option.env else "")
        default = f"default: {option.default}; " if option.default else ""
        if option.kind == "flag":
            group.addoption(
                option.flag, dest=option.dest, action="store_true", default=None, help=option.help
            )
            parser.addini(option.dest, f"default for {option.flag}", type="bool", default=False)
            continue
        if option.kind == "append":
            group.addoption(
                option.flag,
                dest=option.dest,
                action="append",
                default=None,
                metavar=option.metavar,
                help=f"{option.help} ({twins})",
            )
            parser.addini(option.dest, f"default for {option.flag}", type="linelist", default=[])
            continue
        group.addoption(
            option.flag,
            dest=option.dest,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} ({default}{twins})",
        )
        parser.addini(option.dest, f"default for {option.flag}", default="")


def resolve(config: pytest.Config, name: str) -> Resolved:
    """The value of option ``name``: command line, then environment, then ini, then default.
    A bad value raises pytest.UsageError naming the value and where it came from."""
    option = BY_NAME[name]
    given = config.getoption(option.dest)
    if option.kind == "flag":
        if given:
            return Resolved(True, option.flag)
        if config.getini(option.dest):
            return Resolved(True, f"ini option {option.dest}")
        return Resolved(False, DEFAULT_SOURCE)
    if option.kind == "append":
        layers = resolve_layers(config, name)
        return layers[-1] if layers else Resolved([], DEFAULT_SOURCE)
    text: str | None
    if given is not None:
        text, source = str(given), option.flag
    elif option.env and os.environ.get(option.env):
        text, source = os.environ[option.env], f"environment variable {option.env}"
    elif config.getini(option.dest):
        text, source = str(config.getini(option.dest)), f"ini option {option.dest}"
    else:
        text, source = option.default, DEFAULT_SOURCE
    if text is None:
        return Resolved(None, source)
    try:
        return Resolved(option.check(text), source)
    except ConfigError as exc:
        raise pytest.UsageError(f"Invalid value {text!r} from {source}: {exc}") from None


def resolve_layers(config: pytest.Config, name: str) -> list[Resolved]:
    """An "append" option from every place that sets it, lowest priority first (ini file,
    environment, command line): each holds the list of texts given there, for the caller to
    merge (an engine map: a later place overrides a platform's entry, keeps the others)."""
    option = BY_NAME[name]
    layers = []
    ini = [str(line) for line in config.getini(option.dest) or [] if str(line).strip()]
    if ini:
        layers.append(Resolved(ini, f"ini option {option.dest}"))
    if option.env and os.environ.get(option.env, "").strip():
        layers.append(Resolved([os.environ[option.env]], f"environment variable {option.env}"))
    given = config.getoption(option.dest)
    if given:
        layers.append(Resolved([str(text) for text in given], option.flag))
    return layers


def resolve_path(config: pytest.Config, name: str) -> Resolved:
    """A path option: relative to where pytest was invoked when given on the command line or in
    the environment, relative to rootdir when it comes from the ini file."""
    found = resolve(config, name)
    if found.value is None:
        return found
    path = Path(str(found.value))
    if not path.is_absolute():
        base = config.rootpath if found.source.startswith("ini") else config.invocation_params.dir
        path = Path(base) / path
    return Resolved(path, found.source)
