"""Emulator faults told apart from test failures, provoked for real: a process under QEMU 7.2
that dies of SIGSEGV or SIGILL makes QEMU print ``qemu: uncaught target signal ...`` (natively
the same process just dies), and a binfmt_misc handler disabled mid-run makes the next
container fail with ``exec format error``. A plain non-zero exit stays a failure."""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from acceptance import BUSYBOX_IMAGE, Project, read_json

# The crashing process is not the container's PID 1: the kernel ignores a signal that PID 1
# of a namespace sends itself, and QEMU, re-raising it to die, would then wait forever.
CRASHES = """
    import pathlib
    import pytest

    pytestmark = pytest.mark.image("box")
    ATTEMPTS = pathlib.Path(__file__).parent / "attempts"

    def attempt(name):
        ATTEMPTS.mkdir(exist_ok=True)
        with open(ATTEMPTS / name, "a") as handle:
            handle.write("x")
        return len((ATTEMPTS / name).read_text())

    def test_segv(run, platform):
        attempt(f"segv-{platform.short}")
        result = run(["sh", "-c", 'sh -c "kill -SEGV \\\\$\\\\$"; exit $?'])
        assert result.exit_code == 0, result.stderr

    def test_ill(run, platform):
        result = run(["sh", "-c", 'sh -c "kill -ILL \\\\$\\\\$"; exit $?'])
        assert result.exit_code == 0, result.stderr

    def test_plain_exit(run, platform):
        attempt(f"plain-{platform.short}")
        result = run(["sh", "-c", "echo 'no config' >&2; exit 3"])
        assert result.exit_code == 0, result.stderr

    def test_fault_then_pass(run, platform):
        # The emulator fails the first time only: a retry shows the test itself is fine.
        signal = "SEGV" if attempt(f"flaky-{platform.short}") == 1 else "CONT"
        result = run(["sh", "-c", f'sh -c "kill -{signal} \\\\$\\\\$"; exit $?'])
        assert result.exit_code == 0, result.stderr
"""


def junit_properties(path: Path) -> dict[str, dict[str, str]]:
    root = ET.parse(path).getroot()  # noqa: S314 - written by the inner session
    return {
        str(case.get("name")): {
            str(p.get("name")): str(p.get("value")) for p in case.iter("property")
        }
        for case in root.iter("testcase")
    }


def test_emulator_faults_are_told_apart(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(CRASHES)
    report = project.path / "report.json"
    junit = project.path / "junit.xml"
    page = project.path / "page.html"
    result = project.run(
        "--platforms",
        "amd64,arm64",
        "-n",
        "2",
        "--multiarch-json",
        str(report),
        "--junitxml",
        str(junit),
        "--multiarch-html",
        str(page),
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    data = read_json(report)
    tests = {t["nodeid"].split("::")[1]: t for t in data["tests"]}
    version = next(p["qemu_version"] for p in data["platforms"] if p["short"] == "arm64")
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", version)

    segv = tests["test_segv[arm64]"]
    assert segv["outcome"] == "emulator_fault"
    assert segv["fault"].startswith(
        "qemu: uncaught target signal 11 (Segmentation fault) - core dumped ["
    )
    assert f"QEMU {version}" in segv["fault"]
    assert segv["commands"][0].startswith("docker run --rm --platform linux/arm64 ")
    assert segv["commands"][0].endswith("# exit 139")
    ill = tests["test_ill[arm64]"]
    assert ill["outcome"] == "emulator_fault"
    assert ill["fault"].startswith("qemu: uncaught target signal 4 (Illegal instruction)")
    # The same crash natively, and a plain non-zero exit anywhere, are failures.
    for name in ("test_segv[amd64]", "test_ill[amd64]", "test_plain_exit[arm64]"):
        assert (tests[name]["outcome"], tests[name]["fault"]) == ("failed", ""), name
    assert "no config" in tests["test_plain_exit[arm64]"]["message"]
    cells = {(m["image"], m["platform"]): m for m in data["summary"]["matrix"]}
    assert cells[("box", "arm64")]["emulator_fault"] == 3
    assert cells[("box", "arm64")]["failed"] == 1
    assert cells[("box", "amd64")]["emulator_fault"] == 0

    properties = junit_properties(junit)
    assert properties["test_segv[arm64]"]["emulator_fault"] == segv["fault"]
    assert properties["test_segv[arm64]"]["emulator_version"] == version
    assert "emulator_fault" not in properties["test_plain_exit[arm64]"]
    assert "emulator_fault" not in properties["test_segv[amd64]"]

    output = result.stdout.str()
    assert "emulator faults (the emulator failed here, not the test):" in output
    assert re.search(r"box\s+\S.*1 failed, 3 emulator fault", output)
    result.stdout.fnmatch_lines(["EMULATOR FAULT test_images.py::test_segv?arm64?*"])
    assert "emulator fault" in page.read_text()


def test_only_emulator_faults_are_run_again(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(CRASHES)
    report = project.path / "report.json"
    result = project.run(
        "--platforms",
        "arm64",
        "-n",
        "2",
        "--emulator-fault-retries",
        "2",
        "--multiarch-json",
        str(report),
    )
    attempts = {p.name: len(p.read_text()) for p in (project.path / "attempts").iterdir()}
    assert attempts == {"segv-arm64": 3, "plain-arm64": 1, "flaky-arm64": 2}
    tests = {t["nodeid"].split("::")[1]: t for t in read_json(report)["tests"]}
    assert (tests["test_segv[arm64]"]["outcome"], tests["test_segv[arm64]"]["retries"]) == (
        "emulator_fault",
        2,
    )
    assert (tests["test_fault_then_pass[arm64]"]["outcome"],) == ("passed",)
    assert tests["test_fault_then_pass[arm64]"]["retries"] == 1
    assert (
        tests["test_plain_exit[arm64]"]["outcome"],
        tests["test_plain_exit[arm64]"]["retries"],
    ) == (
        "failed",
        0,
    )
    outcomes = result.parseoutcomes()
    assert outcomes["rerun"] == 5  # segv twice, ill twice, the flaky one once
    assert outcomes["passed"] == 1
    assert outcomes["failed"] == 3


def test_bad_retry_count_is_a_usage_error(project: Project) -> None:
    project.tests("def test_it():\n    pass\n")
    result = project.run("--emulator-fault-retries", "-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*Invalid value '-1' from --emulator-fault-retries*"])


@pytest.fixture
def ppc64le_restored(binfmt_lock: None, unavailable: Callable[[str], NoReturn]) -> Iterator[Path]:
    """The machine's qemu-ppc64le handler, enabled again after the test (which disables it)."""
    handler = Path("/proc/sys/fs/binfmt_misc/qemu-ppc64le")
    if os.geteuid() != 0 or not handler.exists():
        unavailable("needs root and a registered qemu-ppc64le handler (scripts/bootstrap)")
    handler.write_text("1")
    try:
        yield handler
    finally:
        handler.write_text("1")


def test_a_vanished_handler_is_an_emulator_fault(project: Project, ppc64le_restored: Path) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        f"""
        import pathlib
        import pytest

        pytestmark = pytest.mark.image("box")

        def test_handler_vanishes(run, platform):
            assert run(["true"]).exit_code == 0  # the emulator works
            pathlib.Path("{ppc64le_restored}").write_text("0")  # and then it is gone
            run(["true"])
        """
    )
    report = project.path / "report.json"
    result = project.run("--platforms", "ppc64le", "--multiarch-json", str(report))
    assert ppc64le_restored.read_text().startswith("disabled")
    ppc64le_restored.write_text("1")
    result.assert_outcomes(failed=1)
    (test,) = read_json(report)["tests"]
    assert test["outcome"] == "emulator_fault"
    assert test["fault"].startswith(
        "exec format error: binfmt_misc handler qemu-ppc64le is disabled ["
    )
    # The handler as it is now, and the bracket plainly the state at the start (issue 21.5).
    assert "is disabled [at the start of the run: qemu-ppc64le enabled" in test["fault"], test


def test_a_recorded_run_with_input_gives_the_same_result_by_hand(project: Project) -> None:
    """The recorded ``docker run`` of ``run(cmd, stdin=...)`` keeps stdin open (``-i``) and
    pipes the same input in: pasted into a shell, it prints what the test got (issue 21.6)."""
    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.image("box")

        def test_it(run, platform):
            assert run(["tr", "a-z", "A-Z"], stdin="it's 100% \\\\ done\\n").stdout == "nope"
        """
    )
    report = project.path / "report.json"
    result = project.run("--platforms", "amd64", "--multiarch-json", str(report))
    result.assert_outcomes(failed=1)
    (test,) = read_json(report)["tests"]
    command, _, ended = test["commands"][0].rpartition("  # ")
    assert ended == "exit 0", test["commands"]
    rerun = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=300)
    assert (rerun.returncode, rerun.stdout) == (0, "IT'S 100% \\ DONE\n"), command
