"""The per-platform result matrix: collected from test reports (which xdist carries from the
workers to the controller), printed as a terminal section and written as JSON."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("passed", "failed", "skipped", "error", "xfailed", "xpassed")


@dataclass
class TestResult:
    nodeid: str
    image: str
    platform: str
    outcome: str
    seconds: float


@dataclass
class Results:
    platforms: list[str] = field(default_factory=list)
    tests: dict[str, TestResult] = field(default_factory=dict)
    builds: list[dict[str, Any]] = field(default_factory=list)
    run_id: str = ""
    engine: dict[str, str] = field(default_factory=dict)
    emulators: dict[str, str] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    publications: list[dict[str, Any]] = field(default_factory=list)

    def record_phase(
        self,
        nodeid: str,
        image: str,
        platform: str,
        when: str,
        outcome: str,
        seconds: float,
        wasxfail: bool,
    ) -> None:
        entry = self.tests.get(nodeid)
        if entry is None:
            entry = TestResult(nodeid, image, platform, "passed", 0.0)
            self.tests[nodeid] = entry
        entry.seconds += seconds
        if outcome == "passed" and wasxfail and when == "call":
            entry.outcome = "xpassed"
        elif outcome == "skipped" and wasxfail:
            entry.outcome = "xfailed"
        elif outcome == "skipped" and entry.outcome == "passed":
            entry.outcome = "skipped"
        elif outcome == "failed":
            if when == "call":
                entry.outcome = "failed"
            elif entry.outcome not in ("failed",):
                entry.outcome = "error"

    def matrix(self) -> dict[tuple[str, str], dict[str, int]]:
        cells: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(OUTCOMES, 0)
        )
        for test in self.tests.values():
            cells[(test.image, test.platform)][test.outcome] += 1
        return cells

    def record_span(self, platform: str, start: float, stop: float) -> None:
        """Widen ``platform``'s wall-clock span to cover one test phase (epoch seconds)."""
        if start <= 0 or stop < start:
            return
        first, last = self.spans.get(platform, (start, stop))
        self.spans[platform] = (min(first, start), max(last, stop))

    def platform_wall_seconds(self) -> dict[str, float]:
        """From the first test phase of a platform to its last: wall time, whatever -n is."""
        return {plat: last - first for plat, (first, last) in self.spans.items()}

    def platform_seconds(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for test in self.tests.values():
            totals[test.platform] += test.seconds
        return totals

    def format_lines(self) -> list[str]:
        if not self.tests and not self.builds:
            return []
        cells = self.matrix()
        images = sorted({image for image, _ in cells})
        platforms = [p for p in self.platforms if any(p == plat for _, plat in cells)]
        platforms += sorted({plat for _, plat in cells} - set(platforms))
        header = ["image", *platforms]
        rows = [header]
        for image in images:
            row = [image or "(no image)"]
            for plat in platforms:
                counts = cells.get((image, plat))
                row.append(_cell(counts) if counts else "-")
            rows.append(row)
        seconds = self.platform_seconds()
        rows.append(["time", *(f"{seconds.get(p, 0.0):.1f}s" for p in platforms)])
        if self.spans:
            wall = self.platform_wall_seconds()
            rows.append(["wall", *(f"{wall.get(p, 0.0):.1f}s" for p in platforms)])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)) for r in rows]
        if self.builds:
            lines.append("")
            lines.append("builds:")
            for build in sorted(self.builds, key=lambda b: (b["image"], b["platform"])):
                if build.get("error"):
                    state = "FAILED"
                elif build["cached"]:
                    state = "cached"
                else:
                    state = f"built in {build['seconds']:.1f}s"
                lines.append(f"  {build['image']:<20} {build['platform']:<16} {state}")
        if self.emulators:
            lines.append("")
            lines.append("emulators: " + "; ".join(f"{k}: {v}" for k, v in self.emulators.items()))
        return lines

    def to_json(self) -> dict[str, Any]:
        cells = self.matrix()
        return {
            "run_id": self.run_id,
            "platforms": self.platforms,
            "engine": self.engine,
            "emulators": self.emulators,
            "builds": sorted(self.builds, key=lambda b: (b["image"], b["platform"])),
            "tests": [vars(t) for t in sorted(self.tests.values(), key=lambda t: t.nodeid)],
            "matrix": [
                {"image": image, "platform": plat, **counts}
                for (image, plat), counts in sorted(cells.items())
            ],
            "platform_seconds": self.platform_seconds(),
            "platform_wall_seconds": self.platform_wall_seconds(),
            "images": self.images,
            "publish": self.publications,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def _cell(counts: dict[str, int]) -> str:
    parts = [f"{counts[o]} {o}" for o in OUTCOMES if counts[o]]
    return ", ".join(parts) if parts else "0"
