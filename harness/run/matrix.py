"""The project's platform list (``[tool.multiarch] platforms`` in pyproject.toml) as a CI
matrix, and merging per-platform JSON reports back into one matrix."""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, PlatformError
from harness.platforms import lookup
from harness.run.report import OUTCOMES


def project_platforms(pyproject: Path) -> list[str]:
    """The platform names listed in ``[tool.multiarch] platforms``, validated."""
    try:
        data = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read it: {exc}") from None
    names = data.get("tool", {}).get("multiarch", {}).get("platforms")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"{pyproject}: key 'tool.multiarch.platforms': expected a non-empty list of "
            f"platform names, got {names!r}"
        )
    for name in names:
        try:
            lookup(name)
        except PlatformError:
            raise ConfigError(
                f"{pyproject}: key 'tool.multiarch.platforms': unknown platform {name!r}"
            ) from None
    return list(names)


def matrix_entries(names: Sequence[str]) -> list[dict[str, str]]:
    """One entry per platform: what a CI job needs to name, emulate and test it."""
    entries = []
    for name in names:
        plat = lookup(name)
        entries.append(
            {
                "name": plat.name,
                "short": plat.short,
                "tox_env": plat.short,
                "qemu": plat.arch if plat.arch != "amd64" else "",
            }
        )
    return entries


def merge_reports(paths: Sequence[Path]) -> dict[str, Any]:
    """Add up the ``matrix`` cells of several ``--multiarch-json`` reports."""
    cells: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    platforms: list[str] = []
    builds: list[dict[str, Any]] = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a pytest-multiarch JSON report: {exc}") from None
        for plat in data.get("platforms", []):
            if plat not in platforms:
                platforms.append(plat)
        builds.extend(data.get("builds", []))
        for cell in data.get("matrix", []):
            key = (str(cell["image"]), str(cell["platform"]))
            for outcome in OUTCOMES:
                cells[key][outcome] += int(cell.get(outcome, 0))
    return {
        "platforms": platforms,
        "builds": builds,
        "matrix": [
            {"image": image, "platform": plat, **counts}
            for (image, plat), counts in sorted(cells.items())
        ],
    }


def markdown_summary(merged: dict[str, Any]) -> str:
    platforms: list[str] = merged["platforms"]
    cells = {(c["image"], c["platform"]): c for c in merged["matrix"]}
    images = sorted({c["image"] for c in merged["matrix"]})
    lines = [
        "## pytest-multiarch: results per platform",
        "",
        "| image | " + " | ".join(platforms) + " |",
        "| --- |" + " --- |" * len(platforms),
    ]
    failed = False
    for image in images:
        row = []
        for plat in platforms:
            cell = cells.get((image, plat))
            if cell is None:
                row.append("-")
                continue
            failed = failed or bool(cell["failed"] or cell["error"])
            row.append(", ".join(f"{cell[o]} {o}" for o in OUTCOMES if cell[o]) or "0")
        lines.append(f"| {image or '(no image)'} | " + " | ".join(row) + " |")
    lines += ["", "**FAILED**" if failed else "**all passed**"]
    return "\n".join(lines)
