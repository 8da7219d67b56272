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
    entries = _entries(items, where, kind, expected, pools=False)
    return {name: parse_value(values[0], part) for name, (values, part) in entries.items()}


def parse_platform_pools(
    items: Iterable[str],
    where: str,
    kind: str,
    expected: str,
    parse_value: Callable[[str, str], Value],
) -> dict[str, tuple[Value, ...]]:
    """Like :func:`parse_platform_map`, where a platform may name several values, a pool:
    ``["amd64=a,b", "arm64=c"]`` or ``["amd64=a,b,arm64=c"]`` -> {"linux/amd64": (a, b),
    "linux/arm64": (c,)}. A comma-separated part with ``=`` begins an entry, one without joins
    the entry before it (no value of a pool, an endpoint or a context name, holds ``=``): every
    map of one value per platform reads as before. A value twice in one pool is an error."""
    found: dict[str, tuple[Value, ...]] = {}
    entries = _entries(items, where, kind, expected, pools=True)
    for name, (values, part) in entries.items():
        pool = tuple(parse_value(value, part) for value in values)
        for position, value in enumerate(pool):
            if value in pool[:position]:
                raise ConfigError(
                    f"Invalid {kind} mapping {part!r} from {where}: {values[position].strip()!r} "
                    f"is named twice in the pool of {name}; name each {kind} once"
                )
        found[name] = pool
    return found


def _entries(
    items: Iterable[str], where: str, kind: str, expected: str, *, pools: bool
) -> dict[str, tuple[list[str], str]]:
    """Platform name -> (its values, its entry as written); a later entry of a platform
    replaces an earlier one. Without ``pools`` every comma-separated part is an entry."""
    found: dict[str, tuple[list[str], str]] = {}
    for item in items:
        current: tuple[list[str], str] | None = None
        current_name = ""
        for part in (p.strip() for p in item.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep:
                if not pools or current is None:
                    raise ConfigError(
                        f"Invalid {kind} mapping {part!r} from {where}: expected {expected}"
                    )
                values, text = current
                current = ([*values, part], f"{text},{part}")
                found[current_name] = current
                continue
            current_name = platform_key(name, part, where, kind)
            current = ([value], part)
            found[current_name] = current
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
