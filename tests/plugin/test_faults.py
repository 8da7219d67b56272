"""Faults while a run is under way (issue 11): the engine killed or frozen mid-run, SIGTERM,
two runs of one project at once, a run() that times out, an emulator disabled mid-run.

The engine faults happen to the second engine of this machine (the ``second_engine`` fixture,
`multiarch host engine up`), never to the machine's own engine, which other tests and sessions
use."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from acceptance import (
    BUSYBOX_IMAGE,
    Project,
    assert_engine_loss_told,
    containers_of_run,
    read_json,
    run_through_engine_loss,
    wait_until,
)
from pytest_multiarch.provision.second_engines import EngineLayout


@pytest.mark.parametrize(
    ("fault", "workers"),
    [("kill", "0"), ("kill", "2"), ("freeze", "0"), ("freeze", "2")],
)
def test_engine_lost_mid_run_fails_its_tests_at_once_and_keeps_results(
    project: Project,
    second_engine: EngineLayout,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    workers: str,
) -> None:
    host = second_engine.docker_host
    monkeypatch.setenv("DOCKER_HOST", host)
    daemon: list[int] = []

    def fault_engine() -> None:
        daemon.append(int(second_engine.docker_pidfile.read_text().strip()))
        os.kill(daemon[0], signal.SIGKILL if fault == "kill" else signal.SIGSTOP)

    def thaw() -> None:
        if fault == "freeze" and daemon:
            os.kill(daemon[0], signal.SIGCONT)

    run = run_through_engine_loss(project, monkeypatch, workers, fault_engine, after=thaw)
    tests = assert_engine_loss_told(run, f"Docker engine at {host} stopped answering")
    assert {t["outcome"] for t in tests} >= {"passed", "failed"}, tests
    assert "could not remove this run's containers" in run.output


SIGTERM_TESTS = """
import os
import pathlib
import time

import pytest

pytestmark = pytest.mark.image("box")


@pytest.mark.parametrize("n", range(2))
def test_holds_a_container(container, platform, n):
    run_id = container.get_wrapped_container().labels["pytest-multiarch.run"]
    pathlib.Path(os.environ["TERM_PROGRESS"], f"{platform.short}-{n}").write_text(run_id)
    time.sleep(120)
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_sigterm_is_handled_like_ctrl_c(
    project: Project, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """CI systems and tox cancel with SIGTERM: fixtures are torn down and the run's containers
    removed, as after Ctrl-C. Sent to the pytest process only (not its xdist workers)."""
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(SIGTERM_TESTS)
    progress = project.path / "progress"
    progress.mkdir()
    monkeypatch.setenv("TERM_PROGRESS", str(progress))
    log = project.path / "out"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    command += ["--platforms", "amd64,arm64", "-n", workers]
    with log.open("w") as output:
        inner = subprocess.Popen(command, cwd=project.path, stdout=output, stderr=subprocess.STDOUT)
    try:
        # The file's content, not only the file: write_text creates it before it writes.
        def written() -> list[str]:
            return [text for path in progress.iterdir() if (text := path.read_text())]

        wait_until(
            written,
            600,
            "a test to hold a container",
            context=lambda: log.read_text()[-4000:],
        )
        run_id = written()[0]
        assert containers_of_run(run_id), "the test's container is not there"
        inner.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        returncode = inner.wait(timeout=120)
        seconds = time.monotonic() - signalled
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
    output = log.read_text()
    assert returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output, output
    assert "INTERNALERROR" not in output, output
    assert containers_of_run(run_id) == [], f"left after SIGTERM:\n{output}"
    assert seconds < 30, f"{seconds:.1f} s from SIGTERM to the end"


INTERRUPTED_TESTS = """
import os
import pathlib
import time

import pytest

pytestmark = pytest.mark.image("box")


def test_quick(run, platform):
    assert run(["true"]).exit_code == 0


@pytest.mark.parametrize("n", range(2))
def test_slow(run, platform, n):
    assert run(["true"]).exit_code == 0
    pathlib.Path(os.environ["TERM_PROGRESS"], f"{platform.short}-{n}").touch()
    time.sleep(120)
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_interrupted_tests_are_never_passed(
    project: Project, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """SIGTERM while tests run (issue 20.1): the tests it cut off have no call report, so they
    are "interrupted", never "passed"; the report says the session was interrupted, `multiarch
    summary` flags it and `multiarch publish --report` refuses it."""
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(INTERRUPTED_TESTS)
    progress = project.path / "progress"
    progress.mkdir()
    monkeypatch.setenv("TERM_PROGRESS", str(progress))
    log, report = project.path / "out", project.path / "report.json"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    command += ["--platforms", "amd64", "-n", workers, "--multiarch-json", str(report)]
    with log.open("w") as output:
        inner = subprocess.Popen(command, cwd=project.path, stdout=output, stderr=subprocess.STDOUT)
    try:
        # Every slow test is in its call (one at a time without xdist).
        wanted = 1 if workers == "0" else 2
        wait_until(
            lambda: len(list(progress.iterdir())) >= wanted,
            600,
            "slow tests",
            context=lambda: log.read_text()[-4000:],
        )
        inner.send_signal(signal.SIGTERM)
        returncode = inner.wait(timeout=120)
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
    output = log.read_text()
    assert returncode == pytest.ExitCode.INTERRUPTED, output
    data = read_json(report)
    outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in data["tests"]}
    cut = {name for name in outcomes if name.startswith("test_slow")}
    assert len(cut) >= wanted, outcomes
    assert {outcomes[name] for name in cut} == {"interrupted"}, outcomes
    for test in data["tests"]:
        if test["outcome"] == "passed":
            assert "call" in test["phases"], test
    assert data.get("interrupted") is True
    cli = [sys.executable, "-m", "pytest_multiarch.cli"]
    summary = subprocess.run(
        [*cli, "summary", str(report)], capture_output=True, text=True, timeout=120, check=False
    )
    assert summary.returncode == 1, summary.stdout + summary.stderr
    assert "**INTERRUPTED**" in summary.stdout
    assert "was interrupted" in summary.stderr
    assert "interrupted**" in summary.stdout  # the cut-off tests are listed as not passed
    publish = subprocess.run(
        [*cli, "publish", "--report", str(report), "--to", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert publish.returncode == 2, publish.stdout + publish.stderr
    assert "is the report of an interrupted session" in publish.stderr
    assert "nothing was published" in publish.stderr


CONCURRENT_TESTS = """
import pytest

pytestmark = pytest.mark.image("box")


def test_built_for(run, platform):
    assert run(["cat", "/built-for"]).stdout.strip() == platform.name
"""


def test_two_runs_of_one_project_at_once_never_collide(project: Project) -> None:
    """Two terminals (or two CI jobs on one runner) run one project at the same time, with
    fresh inputs each round, so both build the same (inputs, platform) at once."""
    project.tests(CONCURRENT_TESTS)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    command += ["--platforms", "amd64,arm64", "-n", "0"]
    failures = []
    for round_number in range(10):
        project.image("box", BUSYBOX_IMAGE)  # a fresh nonce: a real build this round
        runs = [
            subprocess.Popen(
                command,
                cwd=project.path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        for side, inner in zip("ab", runs, strict=True):
            output, _ = inner.communicate(timeout=600)
            if inner.returncode != 0 or "2 passed" not in output:
                failures.append(f"round {round_number} run {side}:\n{output[-3000:]}")
    assert not failures, "\n\n".join(failures)


def test_run_timeout_is_a_short_failure(project: Project) -> None:
    """A run() that times out fails with one message at the test's line, no internals."""
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.image("box")

        def test_slow(run):
            run(["sleep", "30"], timeout=1)

        def test_slow_in_assert(run):
            assert run(["sleep", "30"], timeout=1).ok
        """
    )
    result = project.run("--platforms", "amd64")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    start = output.index("= FAILURES =")
    end = output.index("= multiarch: results per platform =")
    failures = output[start:end].splitlines()
    assert len(failures) < 30, "\n".join(failures)
    assert "did not finish within 1s" in output
    for internal in ("harness/", "site-packages", "subprocess.py", "docker/api"):
        assert internal not in output[start:end], output[start:end]


@pytest.mark.usefixtures("binfmt_lock")
def test_emulator_disabled_mid_run_names_the_handler_and_the_remedy(
    project: Project, unavailable: Callable[[str], None]
) -> None:
    handler = Path("/proc/sys/fs/binfmt_misc/qemu-ppc64le")
    if os.geteuid() != 0 or not handler.exists():
        unavailable("needs root and a registered qemu-ppc64le handler (scripts/bootstrap)")
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(
        f"""
        import pathlib

        import pytest

        pytestmark = pytest.mark.image("box")

        def test_a_before(run):
            assert run(["true"]).exit_code == 0

        def test_b_disable():
            pathlib.Path("{handler}").write_text("0")

        def test_c_after(run):
            assert run(["true"]).exit_code == 0
        """
    )
    report = project.path / "report.json"
    try:
        result = project.run(
            "--platforms",
            "ppc64le",
            "-n",
            "0",
            "--multiarch-json",
            str(report),
        )
    finally:
        handler.write_text("1")
    output = result.stdout.str()
    result.assert_outcomes(passed=2, failed=1)
    assert "binfmt_misc handler qemu-ppc64le is disabled, though it worked when the run began" in (
        output
    ), output
    assert f"remedy: `echo 1 > {handler}`" in output, output
    # The summary and the report say how the emulators were at the end, not at the start.
    assert "ppc64le: binfmt_misc handler qemu-ppc64le is disabled" in output, output
    facts = {p["short"]: p for p in json.loads(report.read_text())["platforms"]}
    assert "disabled" in facts["ppc64le"]["emulator"], facts
