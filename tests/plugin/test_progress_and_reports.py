"""What a user sees while and after a run: live build progress in CI logs (with and without
xdist), JUnit properties, the Markdown step summary, the engine section of the JSON report, and
``-k <image>``."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from acceptance import BUSYBOX_IMAGE, Project, read_json


def slow_image() -> str:
    """A build with a step of four seconds that BuildKit's cache has never seen."""
    return f"""
        FROM busybox:latest
        RUN echo {uuid.uuid4().hex} > /nonce
        RUN sleep 4
        CMD ["sh", "-c", "echo ready; exec sleep 600"]
    """


ONE_TEST = """
    import pytest

    pytestmark = pytest.mark.image("slow")

    def test_runs(run, platform):
        assert run(["uname", "-m"]).stdout.strip() == platform.uname
"""


def progress_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if line.startswith("multiarch: ")]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_build_progress_in_ci_logs(project: Project, workers: list[str]) -> None:
    project.image("slow", slow_image())
    project.tests(ONE_TEST)
    result = project.run("--platforms", "amd64,arm64", *workers)
    result.assert_outcomes(passed=2)
    lines = progress_lines(result)
    text = "\n".join(lines)
    # Which image and platform, native or emulated, the elapsed time and the build step.
    for label in ("slow linux/amd64 \\(native\\)", "slow linux/arm64 \\(QEMU\\)"):
        assert re.search(rf"^multiarch: {label} \d+s \[3/3\] RUN sleep 4$", text, re.M), text
        assert re.search(rf"^multiarch: {label} built in \d+\.\ds$", text, re.M), text
    # A line per step change, not per log line: a handful per build.
    assert len(lines) <= 16, text

    again = project.run("--platforms", "amd64,arm64", *workers)
    again.assert_outcomes(passed=2)
    # Nothing builds: only "already built" lines (the platforms resolved at the same moment
    # share one; a test resolving its platform later may print its own).
    cached_lines = progress_lines(again)
    assert 1 <= len(cached_lines) <= 2, cached_lines
    assert all(line.startswith("multiarch: already built: ") for line in cached_lines)
    cached = " ".join(cached_lines)
    assert "slow linux/amd64 (native)" in cached
    assert "slow linux/arm64 (QEMU)" in cached


def test_quiet_silences_progress(project: Project) -> None:
    project.image("slow", slow_image())
    project.tests(ONE_TEST)
    result = project.run("--platforms", "amd64", "-q")
    result.assert_outcomes(passed=1)
    assert progress_lines(result) == []
    assert project.builds()  # it did build


def test_junit_properties_step_summary_and_engine(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.image("box")

        def test_ok(run, platform):
            assert run(["true"]).exit_code == 0

        def test_bad(run, platform):
            assert platform.short != "arm64", "fails on arm64"
        """
    )
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit = project.path / "junit.xml"
    report = project.path / "report.json"
    result = project.run(
        "--platforms",
        "amd64,arm64",
        "-n",
        "2",
        "--junitxml",
        str(junit),
        "--multiarch-json",
        str(report),
    )
    result.assert_outcomes(passed=3, failed=1)

    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(junit).getroot().iter("testcase")  # noqa: S314 - our own file
    }
    arm = cases["test_ok[arm64]"]
    assert arm["platform"] == "linux/arm64"
    assert arm["emulated"] == "true"
    assert re.fullmatch(
        r"qemu-aarch64 enabled, flags \w*F\w*, QEMU \d+\.\d+(\.\d+)?", arm["emulator"]
    )
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", arm["emulator_version"])
    assert arm["engine"].startswith(("unix://", "tcp://", "ssh://"))
    assert arm["image_id"].startswith("sha256:")
    amd = cases["test_ok[amd64]"]
    assert (amd["platform"], amd["emulated"], amd["emulator"]) == ("linux/amd64", "false", "native")
    assert amd["image_id"] != arm["image_id"]

    text = summary.read_text()
    assert text.startswith("# earlier step\n")  # appended, never replaced
    assert text.count("## pytest-multiarch: results per platform") == 1  # the controller's
    assert "| image | amd64 | arm64 |" in text
    assert "| box | 2 passed | 1 passed, 1 failed |" in text
    assert "emulated" in text
    assert "QEMU" in text

    engine = read_json(report)["engine"]
    assert engine["endpoint"] == arm["engine"]
    assert re.match(r"\d+\.\d+", engine["version"])
    assert re.match(r"1\.\d+", engine["api_version"])
    assert engine["image_store"] in ("containerd", "classic")
    assert (engine["os"], engine["architecture"]) == ("linux", "x86_64")


def test_k_selects_an_image_by_name(project: Project) -> None:
    project.image("alpha", BUSYBOX_IMAGE)
    project.image("beta", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        @pytest.mark.image("alpha")
        def test_one(run, platform):
            assert run(["true"]).exit_code == 0

        @pytest.mark.image("beta")
        def test_two(run, platform):
            assert run(["true"]).exit_code == 0
        """
    )
    result = project.run("--platforms", "amd64,arm64", "-k", "beta", "-v")
    result.assert_outcomes(passed=2, deselected=2)
    result.stdout.fnmatch_lines(["*test_two?amd64?*PASSED*", "*test_two?arm64?*PASSED*"])
    built = project.builds()
    assert built, "beta was built"
    assert not [call for call in built if "/alpha" in call or "images/alpha" in call]
