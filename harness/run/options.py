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
from typing import Any, Literal, get_args

import pytest

from harness.errors import ConfigError

Source = str  # "--platforms", "environment variable MULTIARCH_PLATFORMS", "ini option ...", ...
Kind = Literal["value", "flag"]
MissingEmulator = Literal["error", "skip"]
MISSING_EMULATOR_MODES: tuple[MissingEmulator, ...] = get_args(MissingEmulator)
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

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def dest(self) -> str:
        """The ini key and the argparse dest: ``multiarch_`` + the name in snake case."""
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
        "bind-address",
        "host address that containers' published ports listen on",
        default="127.0.0.1",
        metavar="ADDRESS",
        check=bind_address,
    ),
    Option(
        "multiarch-json",
        "write the run report (builds, verification, per-platform results) to PATH as JSON",
        metavar="PATH",
    ),
    Option(
        "publish",
        "after the session, push every image whose tests all passed on every platform as one "
        "manifest list REGISTRY/NAMESPACE/<image>:<tag> of exactly the tested digests",
        metavar="REGISTRY[/NAMESPACE]",
    ),
    Option("publish-tag", "tag to publish", default="latest", metavar="TAG"),
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
