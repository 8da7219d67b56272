"""The results page and the Markdown summary, rendered from the run model, and `multiarch
summary --format`."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pytest_multiarch.cli import main
from pytest_multiarch.model.records import (
    BuildRecord,
    EngineFacts,
    PlatformFacts,
    Publication,
    RunReport,
)
from pytest_multiarch.reports.html import render_html, write_html
from pytest_multiarch.reports.summary import headline, markdown


def populated() -> RunReport:
    report = RunReport(
        run_id="r1",
        platforms=[
            PlatformFacts("linux/amd64", "amd64", True, "native"),
            PlatformFacts(
                "linux/arm64",
                "arm64",
                False,
                "qemu-aarch64 enabled, flags PF, QEMU 7.2.22",
                "7.2.22",
            ),
        ],
        engine=EngineFacts("unix:///run/d.sock", "26.1.5", "1.45", "containerd", "linux", "x86_64"),
    )
    for plat in ("amd64", "arm64"):
        report.record_phase(f"t.py::test_ok[{plat}]", "web", plat, "call", "passed", 1.0, False)
    report.builds.append(
        BuildRecord("web", "linux/arm64", "t", "sha256:abc", 3.5, False, "", "metadata+uname")
    )
    report.builds.append(BuildRecord("web", "linux/amd64", "t", "sha256:def", 0.0, True))
    bad = report.record_phase("t.py::test_bad[arm64]", "web", "arm64", "call", "failed", 2.0, False)
    bad.message = "def test_bad():\n>       assert f() == '<b>&'\nE       AssertionError: <script>x"
    bad.logs = "--- container logs [arm64]\nlistening <on> 8080"
    bad.commands = ["docker run --rm --platform linux/arm64 t sh -c 'exit 3'  # exit 3"]
    crash = report.record_phase("t.py::test_crash[arm64]", "web", "arm64", "call", "failed", 1, 0)
    crash.mark_emulator_fault("qemu: uncaught target signal 4 (Illegal instruction) [QEMU 7.2.22]")
    crash.retries = 2
    report.record_span("arm64", 10.0, 14.0)
    report.publish.append(Publication("web", "127.0.0.1:5000/web:latest", "refused", detail="x"))
    return report


class Collect(HTMLParser):
    """Tags and attributes of a page, to check its structure without a browser."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> list[tuple[str, dict[str, str | None]]]:
    collector = Collect()
    collector.feed(html)
    return collector.tags


def test_page_is_self_contained() -> None:
    html = render_html(populated())
    tags = parse(html)
    assert not [a for t, a in tags if t == "script" and a.get("src")]
    assert not [a for t, a in tags if t == "link" and a.get("rel") == "stylesheet"]
    assert not [a for t, a in tags if t == "img"]
    csp = next(a["content"] for t, a in tags if a.get("http-equiv") == "Content-Security-Policy")
    assert csp is not None
    assert "default-src 'none'" in csp
    assert not re.search(r"https?://", html)


def test_matrix_cells_carry_their_outcome() -> None:
    tags = parse(render_html(populated()))
    cells = {
        (a["data-image"], a["data-platform"]): a
        for t, a in tags
        if t == "td" and a.get("data-image")
    }
    arm = cells[("web", "arm64")]
    assert arm["class"] == "cell outcome-emulator_fault"  # the worst outcome colours the cell
    assert arm["data-failures"] == "2"
    amd = cells[("web", "amd64")]
    assert amd["class"] == "cell outcome-passed"
    assert "data-failures" not in amd


def test_failures_are_escaped_and_complete() -> None:
    html = render_html(populated())
    assert "<script>x" not in html
    assert "AssertionError: &lt;script&gt;x" in html
    assert "listening &lt;on&gt; 8080" in html
    assert "sh -c &#x27;exit 3&#x27;  # exit 3" in html
    assert "qemu: uncaught target signal 4 (Illegal instruction)" in html
    assert "run 2 more time(s)" in html
    failures = [a for t, a in parse(html) if t == "details" and "failure" in (a.get("class") or "")]
    assert [a["data-nodeid"] for a in failures] == [
        "t.py::test_bad[arm64]",
        "t.py::test_crash[arm64]",
    ]


def test_platforms_builds_engine_and_publish() -> None:
    html = render_html(populated())
    assert "qemu-aarch64 enabled, flags PF, QEMU 7.2.22" in html
    assert "<td>7.2.22</td>" in html
    assert "<td>4.0s</td>" in html  # wall time of arm64
    assert "sha256:abc" in html
    assert "metadata+uname" in html
    assert "Docker 26.1.5" in html
    assert "REFUSED" in html


def test_write_html_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "page.html"
    write_html(populated(), target)
    write_html(RunReport(run_id="empty"), target)
    assert "No test used an image." in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["page.html"]


def test_markdown_has_platform_rows_and_the_failures() -> None:
    text = markdown(populated())
    assert "| web | 1 passed | 1 passed, 1 failed, 1 emulator fault |" in text
    assert "| platform | amd64 | arm64 |" in text
    assert "| runs | native | emulated: qemu-aarch64 enabled, flags PF, QEMU 7.2.22 |" in text
    assert "| wall | - | 4.0s |" in text
    assert "- `t.py::test_bad[arm64]` **failed**: AssertionError: \\<script\\>x" in text
    assert "- `t.py::test_crash[arm64]` **emulator fault**: qemu: uncaught target signal 4" in text
    assert text.endswith("**FAILED**")


@pytest.mark.parametrize(
    ("message", "line"),
    [
        ("def t():\n>   assert x\nE   assert 1 == 2\nE   more", "assert 1 == 2"),
        ("container exited with code 7\nlast lines", "container exited with code 7"),
        ("", ""),
    ],
)
def test_headline(message: str, line: str) -> None:
    assert headline(message) == line


def test_summary_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "arm64.json"
    path.write_text(json.dumps(populated().to_json()))
    outputs = {}
    for form in ("markdown", "terminal", "html", "json"):
        assert main(["summary", "--format", form, str(path)]) == 1  # the run failed
        outputs[form] = capsys.readouterr().out
    assert outputs["markdown"].startswith("## pytest-multiarch: results per platform")
    assert outputs["terminal"].startswith("image")
    assert "emulator faults (the emulator failed here, not the test):" in outputs["terminal"]
    assert outputs["html"].startswith("<!DOCTYPE html>")
    assert json.loads(outputs["json"])["run_id"] == "merged"
    assert main(["summary", "--json", str(path)]) == 1
    assert json.loads(capsys.readouterr().out) == json.loads(outputs["json"])


def test_the_page_says_which_platform_each_service_ran_on() -> None:
    report = populated()
    for plat in ("amd64", "arm64"):
        test = report.record_phase(f"t.py::test_s[{plat}]", "app", plat, "call", "passed", 1, 0)
        test.services = {"db": "linux/amd64", "cache": f"linux/{plat}"}
    html = render_html(report)
    assert "<h2>Services</h2>" in html
    table = html[html.index('id="services"') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == 1 + 4  # header, then app x (amd64, arm64) x (db, cache)
    assert "<td>cache</td><td><code>linux/arm64</code></td>" in table
    assert "Services" not in render_html(populated())  # no stack, no section
