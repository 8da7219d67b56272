"""What a run report looks like to people: the terminal section, Markdown for CI summaries, and
the lines of the publish section. Everything is rendered from the typed run model."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_multiarch.model.records import (
    OUTCOMES,
    BuildRecord,
    MatrixCell,
    Outcome,
    Publication,
    RunReport,
    TestRecord,
)


def outcome_label(outcome: Outcome) -> str:
    return outcome.replace("_", " ")  # "emulator_fault" -> "emulator fault"


def cell_text(cell: MatrixCell | None) -> str:
    if cell is None:
        return "-"
    parts = (f"{cell.count(o)} {outcome_label(o)}" for o in OUTCOMES if cell.count(o))
    return ", ".join(parts) or "0"


def headline(message: str) -> str:
    """The line of a pytest failure that says what went wrong: its first ``E`` line, else its
    first line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("E "):
            return line[1:].strip()
    return lines[0] if lines else ""


def why_not_passed(test: TestRecord) -> str:
    """The line that says why ``test`` did not pass: its recorded headline, else its message's."""
    return test.headline or headline(test.message)


def verdict(report: RunReport) -> str:
    """One word on the whole run: INTERRUPTED, FAILED, "no tests ran" or "all passed"."""
    if report.interrupted:
        return "INTERRUPTED"
    if report.failed:
        return "FAILED"
    return "all passed" if report.tests else "no tests ran"


INTERRUPTED_NOTE = (
    "The session was interrupted (Ctrl-C or SIGTERM) before it ended: the tests it cut off are "
    "marked interrupted, and those it never started are not in this report."
)


def not_passed(report: RunReport) -> list[TestRecord]:
    """Tests that failed, errored, passed unexpectedly, met an emulator fault or were cut off."""
    bad = ("failed", "error", "xpassed", "emulator_fault", "interrupted")
    return sorted((t for t in report.tests if t.outcome in bad), key=lambda t: t.nodeid)


def platform_rows(report: RunReport, platforms: Sequence[str]) -> list[list[str]]:
    """Rows per platform column: what runs it, summed and wall time, build time, slowdown."""
    facts = {p.short: p for p in report.platforms}
    seconds = report.platform_seconds()
    wall = report.platform_wall_seconds()
    built = report.build_seconds()
    slowdown = report.slowdown()

    def runs(short: str) -> str:
        fact = facts.get(short)
        if fact is None:
            return "-"
        return "native" if fact.native else f"emulated: {fact.emulator}"

    rows = [
        ["runs", *(runs(p) for p in platforms)],
        ["time", *(f"{seconds[p]:.1f}s" if p in seconds else "-" for p in platforms)],
        ["wall", *(f"{wall[p]:.1f}s" if p in wall else "-" for p in platforms)],
        ["build", *(f"{built[p]:.1f}s" if p in built else "-" for p in platforms)],
        ["slowdown", *(f"{slowdown[p]:.1f}x" if p in slowdown else "-" for p in platforms)],
    ]
    return rows


def column_title(report: RunReport, short: str) -> str:
    """A platform column's title: its short name, and when any platform of the run ran on an
    engine of its own, how and where it ran: ``arm64 native@arm-box``, ``s390x qemu@default``."""
    facts = {p.short: p for p in report.platforms}
    fact = facts.get(short)
    podman = any(p.engine_kind == "podman" for p in report.platforms)
    if fact is None or not (podman or any(p.engine for p in report.platforms)):
        return short
    from pytest_multiarch.engine.endpoints import EngineRef

    how = "native" if fact.native else "qemu"
    title = f"{short} {how}@{EngineRef(fact.engine).label}"
    # A run with Podman in it says which columns ran on Podman (Docker's stay as they were).
    if fact.engine_kind == "podman":
        title += f" (Podman {fact.engine_version})"
    return title


def _columns(report: RunReport, cells: Sequence[MatrixCell]) -> list[str]:
    present = {c.platform for c in cells}
    ordered = [p for p in report.platform_names if p in present]
    return ordered + sorted(present - set(ordered))


def format_lines(report: RunReport) -> list[str]:
    """The terminal section: images x platforms, time rows, builds, emulators."""
    if not report.tests and not report.builds:
        return [f"INTERRUPTED: {INTERRUPTED_NOTE}"] if report.interrupted else []
    cells = report.matrix()
    by_key = {(c.image, c.platform): c for c in cells}
    platforms = _columns(report, cells)
    header = ["image", *(column_title(report, p) for p in platforms)]
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
            lines.append(
                f"  {build.image:<20} {build.platform:<16} {build.state}{_cache_text(build)}{how}"
            )
            if build.cache_warning:
                lines.append(f"    WARNING: {build.cache_warning}")
            if build.published_ref:
                index = f" (index {build.published_index})" if build.published_index else ""
                tested = build.published_digest or "nothing: not published for it"
                lines.append(f"    published {build.published_ref}{index}, tested {tested}")
    if report.platforms:
        lines += [
            "",
            "emulators: " + "; ".join(f"{p.short}: {p.emulator}" for p in report.platforms),
        ]
    built_by = [f"{p.short}: {p.builder.describe()}" for p in report.platforms if p.builder]
    if built_by:
        lines.append("builders: " + "; ".join(built_by))
    faults = [t for t in not_passed(report) if t.outcome == "emulator_fault"]
    if faults:
        lines += ["", "emulator faults (the emulator failed here, not the test):"]
        for test in faults:
            retried = f" (after {test.retries} rerun(s))" if test.retries else ""
            lines.append(f"  {test.nodeid}: {test.fault}{retried}")
    if report.interrupted:
        lines += ["", f"INTERRUPTED: {INTERRUPTED_NOTE}"]
    return lines


def published_rows(report: RunReport) -> list[tuple[str, str, str, str, str]]:
    """(image, platform, published ref, index digest or "-", digest tested or "-") of every
    image taken from a published ref: what exactly each platform's tests ran on."""
    return [
        (
            build.image,
            build.platform,
            build.published_ref,
            build.published_index or "-",
            build.published_digest or "-",
        )
        for build in sorted(report.builds, key=lambda b: (b.image, b.platform))
        if build.published_ref
    ]


def _cache_text(build: BuildRecord) -> str:
    """`` (5 of 7 steps cached from local:DIR/app/arm64)`` for a build this run made."""
    if not build.cache_use:
        return ""
    return f" ({build.cache_use}" + (f" from {build.build_cache})" if build.build_cache else ")")


def cache_rows(report: RunReport) -> list[list[str]]:
    """Per (image, platform) built in this run: steps cached, steps run, the cache and why it
    was not used; empty when no build ran."""
    return [
        [
            build.image,
            build.platform,
            str(build.steps_cached),
            str(build.steps_run),
            build.build_cache or "-",
            build.cache_warning,
        ]
        for build in sorted(report.builds, key=lambda b: (b.image, b.platform))
        if build.cache_use or build.cache_warning
    ]


def markdown(report: RunReport) -> str:
    """The matrix as a Markdown table (CI job summaries, ``multiarch summary``)."""
    cells = report.matrix()
    by_key = {(c.image, c.platform): c for c in cells}
    platforms = _columns(report, cells)
    lines = [
        "## pytest-multiarch: results per platform",
        "",
        "| image | " + " | ".join(column_title(report, p) for p in platforms) + " |",
        "| --- |" + " --- |" * len(platforms),
    ]
    for image in sorted({c.image for c in cells}):
        row = [cell_text(by_key.get((image, p))) for p in platforms]
        lines.append(f"| {image or '(no image)'} | " + " | ".join(row) + " |")
    if platforms:
        lines += ["", "| platform | " + " | ".join(platforms) + " |"]
        lines.append("| --- |" + " --- |" * len(platforms))
        for row in platform_rows(report, platforms):
            lines.append("| " + " | ".join(_md(cell) for cell in row) + " |")
    builds = cache_rows(report)
    if builds:
        lines += ["", "| image | platform | steps cached | steps run | build cache |"]
        lines.append("| --- | --- | --- | --- | --- |")
        for image, plat, cached, run, where, warning in builds:
            cell = _md(where) + (f" (WARNING: {_md(warning)})" if warning else "")
            lines.append(f"| {_md(image)} | {plat} | {cached} | {run} | {cell} |")
    published = published_rows(report)
    if published:
        lines += ["", "| image | platform | published ref | index digest | digest tested |"]
        lines.append("| --- | --- | --- | --- | --- |")
        for image, plat, ref, index, digest in published:
            lines.append(f"| {_md(image)} | {plat} | `{ref}` | `{index}` | `{digest}` |")
    failures = not_passed(report)
    if failures:
        lines += ["", f"<details><summary>{len(failures)} test(s) did not pass</summary>", ""]
        for test in failures:
            why = test.fault if test.outcome == "emulator_fault" else why_not_passed(test)
            lines.append(
                f"- `{test.nodeid}` **{outcome_label(test.outcome)}**"
                + (f": {_md(why)}" if why else "")
            )
        lines += ["", "</details>"]
    if report.interrupted:
        lines += ["", INTERRUPTED_NOTE]
    lines += ["", f"**{verdict(report)}**"]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text for a Markdown table cell or list item: one line, pipes and markup escaped."""
    flat = " ".join(text.split())
    for char in "\\|`*_<>[]":
        flat = flat.replace(char, "\\" + char)
    return flat


def format_publications(publications: Sequence[Publication]) -> list[str]:
    """Lines of the publish summary: status and digest of each image, platform -> digest."""
    lines = []
    for pub in publications:
        lines.append(f"{pub.image}: {pub.status.upper()} {pub.reference}".rstrip())
        if pub.digest:
            lines.append(f"  index digest {pub.digest}")
        for plat, digest in pub.platforms.items():
            seen = pub.verified.get(plat, "")
            lines.append(f"  {plat:<14} {digest}" + (f"  (ran: {seen})" if seen else ""))
        if pub.detail:
            lines.append(f"  {pub.detail}")
        if pub.status == "published" and pub.path:
            lines.append(f"  path: {pub.path}")
    return lines
