"""The run as one self-contained HTML page (``--multiarch-html``, ``multiarch summary --format
html``): the images x platforms matrix coloured by outcome, the platforms with their emulators,
times and slowdown, the builds, every test that did not pass with its message, container logs and
commands, and what publishing did.

One file with inline CSS and JavaScript, and a Content-Security-Policy that forbids every fetch:
it works the same opened from a CI artifact, offline, or from disk. Rendered from the run model
only; every text is escaped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

from pytest_multiarch.model.records import OUTCOMES, MatrixCell, Outcome, RunReport, TestRecord
from pytest_multiarch.reports.summary import (
    INTERRUPTED_NOTE,
    cell_text,
    not_passed,
    outcome_label,
    platform_rows,
    published_rows,
    verdict,
    why_not_passed,
)

# The outcome a cell is coloured by: the worst it holds.
SEVERITY: tuple[Outcome, ...] = (
    "interrupted",
    "emulator_fault",
    "error",
    "failed",
    "xpassed",
    "passed",
    "xfailed",
    "skipped",
)

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; }
h1 { font-size: 1.5em; margin: 0 0 .2em; }
h2 { font-size: 1.2em; margin: 1.6em 0 .5em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .3em 0; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
code, pre { font: 12px/1.4 ui-monospace, monospace; }
pre { background: #f7f7f9; border: 1px solid #e2e2e6; padding: .6em; overflow-x: auto;
      white-space: pre-wrap; word-break: break-all; max-height: 30em; }
.verdict { font-weight: bold; padding: .1em .5em; border-radius: 3px; color: #fff; }
.verdict.bad { background: #c62828; } .verdict.good { background: #2e7d32; }
td.cell { text-align: center; min-width: 8em; }
td.cell[data-failures] { cursor: pointer; text-decoration: underline dotted; }
.outcome-passed { background: #dff3e0; } .outcome-failed { background: #fbd5d5; }
.outcome-error { background: #f9c0a8; } .outcome-emulator_fault { background: #e3d0f5; }
.outcome-xpassed { background: #fde7b0; } .outcome-xfailed { background: #ececec; }
.outcome-skipped { background: #f3f3f3; color: #666; }
.outcome-interrupted { background: #f7c6e0; } .outcome-none { color: #999; }
details.failure { border: 1px solid #ddd; border-left: 4px solid #c62828; margin: .4em 0;
                  padding: .2em .6em; }
details.failure.emulator_fault { border-left-color: #7b1fa2; }
details.failure summary { cursor: pointer; }
details.failure h4 { margin: .6em 0 .2em; }
.muted { color: #666; }
"""

SCRIPT = """
(function () {
  function openFailures(image, platform) {
    var first = null;
    document.querySelectorAll("details.failure").forEach(function (item) {
      if (item.dataset.image === image && item.dataset.platform === platform) {
        item.open = true;
        if (first === null) { first = item; }
      }
    });
    if (first !== null) { first.scrollIntoView({block: "start"}); }
  }
  document.querySelectorAll("td.cell[data-failures]").forEach(function (cell) {
    cell.addEventListener("click", function (event) {
      event.preventDefault();
      openFailures(cell.dataset.image, cell.dataset.platform);
    });
    cell.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        openFailures(cell.dataset.image, cell.dataset.platform);
      }
    });
  });
})();
"""

# No fetch of any kind: styles and the script are inline, the icon is empty.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _worst(cell: MatrixCell) -> str:
    return next((o for o in SEVERITY if cell.count(o)), "none")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], table_id: str = "") -> str:
    """A table of already-escaped cells."""
    ident = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _columns(report: RunReport, cells: Sequence[MatrixCell]) -> list[str]:
    present = {c.platform for c in cells}
    ordered = [p for p in report.platform_names if p in present]
    return ordered + sorted(present - set(ordered))


def _matrix(report: RunReport) -> str:
    cells = report.matrix()
    if not cells:
        return '<p class="muted">No test used an image.</p>'
    by_key = {(c.image, c.platform): c for c in cells}
    platforms = _columns(report, cells)
    rows = []
    for image in sorted({c.image for c in cells}):
        tds = [f"<th>{_e(image or '(no image)')}</th>"]
        for plat in platforms:
            cell = by_key.get((image, plat))
            if cell is None:
                tds.append('<td class="cell outcome-none">-</td>')
                continue
            attrs = f' data-image="{_e(image)}" data-platform="{_e(plat)}"'
            if cell.bad:
                bad = (
                    cell.failed + cell.error + cell.xpassed + cell.emulator_fault + cell.interrupted
                )
                attrs += f' data-failures="{bad}" tabindex="0" title="show the failures"'
            tds.append(f'<td class="cell outcome-{_worst(cell)}"{attrs}>{_e(cell_text(cell))}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    head = "".join(f"<th>{_e(p)}</th>" for p in ["image", *platforms])
    legend = " ".join(
        f'<span class="outcome-{o}">&nbsp;{_e(outcome_label(o))}&nbsp;</span>' for o in OUTCOMES
    )
    return (
        f'<table id="matrix"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
        f'</table><p class="muted">{legend} &middot; click a red or purple cell for its '
        "failures</p>"
    )


def _platforms(report: RunReport) -> str:
    names = report.platform_names or sorted({t.platform for t in report.tests})
    if not names:
        return ""
    facts = {p.short: p for p in report.platforms}
    rows = platform_rows(report, names)
    by_platform = {name: [row[i + 1] for row in rows] for i, name in enumerate(names)}
    table = []
    for name in names:
        fact = facts.get(name)
        runs, *figures = by_platform[name]
        table.append(
            [
                f"<code>{_e(fact.name if fact else name)}</code>",
                "native" if fact and fact.native else "emulated",
                _e(fact.emulator if fact else runs),
                _e(fact.qemu_version if fact and fact.qemu_version else "-"),
                *(_e(f) for f in figures),
            ]
        )
    header = ["platform", "runs", "emulator", "QEMU", "test time", "wall", "build", "slowdown"]
    note = (
        '<p class="muted">test time adds up the durations of a platform\'s tests; wall runs from '
        "its first test's start to its last test's end; slowdown is an emulated platform's time "
        "over the native platform's, on the tests that ran on both.</p>"
    )
    return "<h2>Platforms</h2>" + _table(header, table, "platforms") + note


def _builds(report: RunReport) -> str:
    if not report.builds:
        return ""
    rows = []
    for build in sorted(report.builds, key=lambda b: (b.image, b.platform)):
        verified = build.verified + (" (cached)" if build.verification_cached else "")
        state = _e(build.state)
        if build.error:
            state += f"<details><summary>why</summary><pre>{_e(build.error)}</pre></details>"
        cache = _e(build.cache_use or "-")
        if build.build_cache:
            cache += f"<br><code>{_e(build.build_cache)}</code>"
        if build.cache_warning:
            cache += f'<br><span class="warning">WARNING: {_e(build.cache_warning)}</span>'
        rows.append(
            [
                _e(build.image),
                f"<code>{_e(build.platform)}</code>",
                state,
                f"{build.seconds:.1f}s",
                f"<code>{_e(build.image_id or '-')}</code>",
                _e(verified or "-"),
                cache,
            ]
        )
    header = ["image", "platform", "state", "seconds", "image id", "verified", "build steps"]
    return "<h2>Builds</h2>" + _table(header, rows, "builds")


def _published(report: RunReport) -> str:
    """The published images tested: per platform, the index digest and the digest pulled."""
    rows = [
        [_e(image), f"<code>{_e(plat)}</code>", *(f"<code>{_e(v)}</code>" for v in rest)]
        for image, plat, *rest in published_rows(report)
    ]
    if not rows:
        return ""
    header = ["image", "platform", "published ref", "index digest", "digest tested"]
    return "<h2>Published images tested</h2>" + _table(header, rows, "published")


def _failure(test: TestRecord) -> str:
    why = test.fault if test.outcome == "emulator_fault" else why_not_passed(test)
    parts = []
    if test.outcome == "emulator_fault":
        retried = f" It was run {test.retries} more time(s)." if test.retries else ""
        parts.append(
            "<h4>Emulator fault</h4>"
            f"<pre>{_e(test.fault)}</pre><p>The emulator failed here, not (necessarily) the "
            f"test; the same test on the native platform tells.{_e(retried)}</p>"
        )
    if test.message:
        parts.append(f"<h4>Message</h4><pre>{_e(test.message)}</pre>")
    if test.logs:
        parts.append(f"<h4>Container logs</h4><pre>{_e(test.logs)}</pre>")
    if test.services:
        ran = ", ".join(f"{alias} on {platform}" for alias, platform in test.services.items())
        parts.append(f"<h4>Services</h4><p>{_e(ran)}</p>")
    if test.commands:
        parts.append(f"<h4>Commands</h4><pre>{_e(chr(10).join(test.commands))}</pre>")
    return (
        f'<details class="failure {test.outcome}" data-image="{_e(test.image)}" '
        f'data-platform="{_e(test.platform)}" data-nodeid="{_e(test.nodeid)}">'
        f"<summary><code>{_e(test.nodeid)}</code> &mdash; <strong>"
        f"{_e(outcome_label(test.outcome))}</strong>"
        + (f": {_e(why)}" if why else "")
        + "</summary>"
        + "".join(parts)
        + "</details>"
    )


def _services(report: RunReport) -> str:
    """Which platform each service of an image's stack ran on, per platform under test."""
    seen = sorted(
        {
            (test.image, test.platform, alias, ran_on)
            for test in report.tests
            for alias, ran_on in test.services.items()
        }
    )
    if not seen:
        return ""
    rows = [
        [_e(image), f"<code>{_e(platform)}</code>", _e(alias), f"<code>{_e(ran_on)}</code>"]
        for image, platform, alias, ran_on in seen
    ]
    header = ["image", "platform under test", "service", "service ran on"]
    return "<h2>Services</h2>" + _table(header, rows, "services")


def _failures(report: RunReport) -> str:
    failures = not_passed(report)
    if not failures:
        return ""
    return f"<h2>Did not pass ({len(failures)})</h2>" + "".join(_failure(t) for t in failures)


def _publications(report: RunReport) -> str:
    if not report.publish:
        return ""
    rows = []
    for pub in report.publish:
        digests = "<br>".join(
            f"<code>{_e(plat)}</code> {_e(digest)}"
            + (f" (ran: {_e(pub.verified[plat])})" if plat in pub.verified else "")
            for plat, digest in pub.platforms.items()
        )
        rows.append(
            [
                _e(pub.image),
                _e(pub.status.upper()),
                f"<code>{_e(pub.reference)}</code>",
                f"<code>{_e(pub.digest or '-')}</code>",
                digests or "-",
                _e(pub.detail),
            ]
        )
    header = ["image", "status", "reference", "index digest", "platforms", "detail"]
    return "<h2>Publish</h2>" + _table(header, rows, "publish")


def _engine(report: RunReport) -> str:
    engine = report.engine
    if engine is None:
        return ""
    return (
        f"engine <code>{_e(engine.endpoint)}</code> {_e(engine.kind.capitalize())} "
        f"{_e(engine.version)} (API "
        f"{_e(engine.api_version)}, {_e(engine.image_store)} image store, "
        f"{_e(engine.os)}/{_e(engine.architecture)})"
    )


def render_html(report: RunReport) -> str:
    """The page, as one string."""
    word = verdict(report)
    verdict_html = (
        f'<span class="verdict {"good" if word == "all passed" else "bad"}">{word}</span>'
    )
    note = f"<p><strong>{_e(INTERRUPTED_NOTE)}</strong></p>" if report.interrupted else ""
    counts = {o: sum(1 for t in report.tests if t.outcome == o) for o in OUTCOMES}
    totals = ", ".join(f"{n} {outcome_label(o)}" for o, n in counts.items() if n) or "no tests"
    meta = " &middot; ".join(
        part for part in (f"run <code>{_e(report.run_id)}</code>", _engine(report)) if part
    )
    body = (
        f"<h1>pytest-multiarch: results per platform {verdict_html}</h1>"
        f'<p class="muted">{meta}</p><p>{_e(totals)}</p>{note}'
        "<h2>Images &times; platforms</h2>"
        + _matrix(report)
        + _platforms(report)
        + _services(report)
        + _failures(report)
        + _builds(report)
        + _published(report)
        + _publications(report)
        + f'<p class="muted">report schema version {report.schema_version}</p>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>pytest-multiarch {_e(report.run_id)}</title>"
        f"<style>{STYLE}</style></head>\n<body>{body}\n<script>{SCRIPT}</script></body></html>\n"
    )


def write_html(report: RunReport, path: Path) -> None:
    """Write the page atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(render_html(report), encoding="utf-8")
    os.replace(partial, path)
