"""What a run report looks like to people: the terminal section, Markdown for CI summaries, and
the lines of the publish section. Everything is rendered from the typed run model."""

from __future__ import annotations

from collections.abc import Sequence

from harness.run.model import OUTCOMES, MatrixCell, Publication, RunReport


def cell_text(cell: MatrixCell | None) -> str:
    if cell is None:
        return "-"
    return ", ".join(f"{cell.count(o)} {o}" for o in OUTCOMES if cell.count(o)) or "0"


def _columns(report: RunReport, cells: Sequence[MatrixCell]) -> list[str]:
    present = {c.platform for c in cells}
    ordered = [p for p in report.platform_names if p in present]
    return ordered + sorted(present - set(ordered))


def format_lines(report: RunReport) -> list[str]:
    """The terminal section: images x platforms, time rows, builds, emulators."""
    if not report.tests and not report.builds:
        return []
    cells = report.matrix()
    by_key = {(c.image, c.platform): c for c in cells}
    platforms = _columns(report, cells)
    header = ["image", *platforms]
    rows = [header]
    for image in sorted({c.image for c in cells}):
        rows.append(
            [image or "(no image)", *(cell_text(by_key.get((image, p))) for p in platforms)]
        )
    seconds = report.platform_seconds()
    rows.append(["time", *(f"{seconds.get(p, 0.0):.1f}s" for p in platforms)])
    if report.spans:
        wall = report.platform_wall_seconds()
        rows.append(["wall", *(f"{wall.get(p, 0.0):.1f}s" for p in platforms)])
    built = report.build_seconds()
    if built:  # builds are not in any test's time: shown apart, per platform
        rows.append(["build", *(f"{built[p]:.1f}s" if p in built else "-" for p in platforms)])
    slowdown = report.slowdown()
    if slowdown:
        rows.append(
            ["slowdown", *(f"{slowdown[p]:.1f}x" if p in slowdown else "-" for p in platforms)]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    if report.builds:
        lines += ["", "builds:"]
        for build in sorted(report.builds, key=lambda b: (b.image, b.platform)):
            how = f"  verified: {build.verified}" if build.verified and not build.error else ""
            if how and build.verification_cached:
                how += " (cached)"
            lines.append(f"  {build.image:<20} {build.platform:<16} {build.state}{how}")
    if report.platforms:
        lines += [
            "",
            "emulators: " + "; ".join(f"{p.short}: {p.emulator}" for p in report.platforms),
        ]
    return lines


def markdown(report: RunReport) -> str:
    """The matrix as a Markdown table (CI job summaries, ``multiarch summary``)."""
    cells = report.matrix()
    by_key = {(c.image, c.platform): c for c in cells}
    platforms = _columns(report, cells)
    lines = [
        "## pytest-multiarch: results per platform",
        "",
        "| image | " + " | ".join(platforms) + " |",
        "| --- |" + " --- |" * len(platforms),
    ]
    for image in sorted({c.image for c in cells}):
        row = [cell_text(by_key.get((image, p))) for p in platforms]
        lines.append(f"| {image or '(no image)'} | " + " | ".join(row) + " |")
    lines += ["", "**FAILED**" if report.failed else "**all passed**"]
    return "\n".join(lines)


def format_publications(publications: Sequence[Publication]) -> list[str]:
    """Lines of the publish summary: status and digest of each image, platform -> digest."""
    lines = []
    for pub in publications:
        lines.append(f"{pub.image}: {pub.status.upper()} {pub.reference}".rstrip())
        if pub.digest:
            lines.append(f"  index {pub.digest}")
        for plat, digest in pub.platforms.items():
            seen = pub.verified.get(plat, "")
            lines.append(f"  {plat:<14} {digest}" + (f"  (ran: {seen})" if seen else ""))
        if pub.detail:
            lines.append(f"  {pub.detail}")
        if pub.status == "published" and pub.path:
            lines.append(f"  path: {pub.path}")
    return lines
