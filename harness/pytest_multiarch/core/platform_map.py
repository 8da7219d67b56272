"""``PLATFORM=VALUE`` maps (platform -> engine, platform -> builder): one grammar for the command
line flag, its ini and environment twins, and the ``[tool.multiarch.<table>]`` of
pyproject.toml, with errors that name the entry and where it came from."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from pytest_multiarch.core.errors import ConfigError, PlatformError
from pytest_multiarch.core.platforms import lookup

Value = TypeVar("Value")


def parse_platform_map(
    items: Iterable[str],
    where: str,
    kind: str,
    expected: str,
    parse_value: Callable[[str, str], Value],
) -> dict[str, Value]:
    """``["arm64=x", "s390x=y,ppc64le=z"]`` -> {"linux/arm64": parse_value("x", "arm64=x"),
    ...}; ``kind`` names the map in errors ("engine"), ``expected`` says what an entry looks
    like. ``parse_value`` gets the value and the whole entry (for its own errors)."""
    found: dict[str, Value] = {}
    for item in items:
        for part in (p.strip() for p in item.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ConfigError(
                    f"Invalid {kind} mapping {part!r} from {where}: expected {expected}"
                )
            found[platform_key(name, part, where, kind)] = parse_value(value, part)
    return found


def platform_key(name: str, part: str, where: str, kind: str) -> str:
    """The full platform name of an entry's platform (``arm64`` -> ``linux/arm64``)."""
    try:
        return lookup(name.strip()).name
    except PlatformError:
        raise ConfigError(
            f"Invalid platform {name.strip()!r} in {kind} mapping {part!r} from {where}"
        ) from None


def tool_table(pyproject: Path, table: str) -> tuple[object, str]:
    """``[tool.multiarch.<table>]`` of ``pyproject`` ({} when the file or the table is absent),
    and how errors name it."""
    where = f"{pyproject} [tool.multiarch.{table}]"
    try:
        data = tomllib.loads(pyproject.read_text())
    except FileNotFoundError:
        return {}, where
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read it: {exc}") from None
    return data.get("tool", {}).get("multiarch", {}).get(table, {}), where


def merge_layers(
    layers: Sequence[tuple[dict[str, Value], str]],
) -> tuple[dict[str, Value], dict[str, str]]:
    """Maps merged in order, each overriding single platforms of the ones before, and where
    each platform's entry came from (each layer comes with its source)."""
    mapped: dict[str, Value] = {}
    where: dict[str, str] = {}
    for found, source in layers:
        for name, value in found.items():
            mapped[name] = value
            where[name] = source
    return mapped, where
