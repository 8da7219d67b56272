"""Helpers for the plugin's acceptance tests: a throw-away project with tiny images, run by a
real inner pytest session (in a subprocess) against the real engine, buildx and QEMU."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

RUN_LABEL = "pytest-multiarch.run"
# A local image for containers that are created and never started (the event stream's marker):
# the offline mirror's busybox, present on every machine `multiarch host up` made ready.
MARKER_IMAGE = "busybox:latest"
T = TypeVar("T")


@pytest.fixture(autouse=True)
def needs_docker(docker_engine: None) -> None:
    """Every acceptance test runs real inner sessions against the real engine."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    context: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that; fail the test,
    naming ``what`` (and ``context()``, e.g. the inner session's output), once ``timeout``
    seconds have passed. The one way this suite waits for an event: never a bare sleep."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            told = context()
            pytest.fail(
                f"timed out after {timeout:g}s waiting for {what}" + (f":\n{told}" if told else "")
            )
        time.sleep(interval)


class EngineEvents:
    """The default engine's container events of runs (``create``, ``export``, ...), taken live
    from ``docker events`` while a test's inner sessions run. A replay (``--since/--until``)
    reads the engine's bounded event buffer, which other work on the same engine overflows:
    events of the run go missing and a count comes out short."""

    FORMAT = (
        '{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "%s"}} {{.Actor.Attributes.image}}'
    )

    def __init__(self, *actions: str) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        command = ["docker", "events", "--filter", "type=container"]
        for action in {*actions, "create"}:  # create: the marker's event, see _mark
            command += ["--filter", f"event={action}"]
        command += ["--filter", f"label={RUN_LABEL}", "--format", self.FORMAT % RUN_LABEL]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._marker = self._mark()  # the stream is live once its own marker came through

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    def _mark(self) -> str:
        """A container of a run of its own, created (never started) and removed: its create
        event comes after every event the engine produced before it."""
        marker = f"events-marker-{uuid.uuid4().hex}"
        created = subprocess.run(
            ["docker", "create", "--label", f"{RUN_LABEL}={marker}", MARKER_IMAGE, "true"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        try:
            wait_until(
                lambda: any(line.split(" ")[2:3] == [marker] for line in self._snapshot()),
                120,
                "the engine's event stream to deliver its marker",
            )
        finally:
            subprocess.run(["docker", "rm", "-f", created.stdout.strip()], capture_output=True,
                           timeout=120, check=False)  # fmt: skip
        return marker

    def _snapshot(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def of_run(self, run_id: str, action: str) -> list[tuple[str, str]]:
        """(container id, image) of each ``action`` event of run ``run_id`` so far: every event
        the engine produced before this call (a fresh marker comes through first)."""
        self._mark()
        found = []
        for line in self._snapshot():
            parts = line.split(" ")
            if len(parts) >= 3 and parts[0] == action and parts[2] == run_id:
                found.append((parts[1], parts[3] if len(parts) > 3 else ""))
        return found

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=30)


@pytest.fixture
def engine_events() -> Iterator[Callable[..., EngineEvents]]:
    """``engine_events("create", "export")``: a live stream of those container events."""
    streams: list[EngineEvents] = []

    def start(*actions: str) -> EngineEvents:
        streams.append(EngineEvents(*actions))
        return streams[-1]

    yield start
    for stream in streams:
        stream.close()


def docker_cli(
    engine: str | None, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``docker [--host ENGINE] ARGS``: an independent look at an engine (None: the default)."""
    flags = ["--host", engine] if engine else []
    return subprocess.run(
        ["docker", *flags, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def containers_of_run(run_id: str, *, all_states: bool = True) -> list[str]:
    args = ["docker", "ps", "-q", "--filter", f"label={RUN_LABEL}={run_id}"]
    if all_states:
        args.insert(2, "-a")
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.split()


SDK_SPY = """
    # Loaded through PYTEST_PLUGINS by every process of the inner session (xdist workers too):
    # logs each HTTP request the docker SDK sends, as the shim logs each docker CLI call.
    import docker.api.client

    _send = docker.api.client.APIClient.send


    def _logged(self, request, **kwargs):
        with open(__LOG__, "a") as log:
            log.write(f"{request.method} {request.url}\\n")
        return _send(self, request, **kwargs)


    docker.api.client.APIClient.send = _logged
"""


@dataclass
class Project:
    """A directory with images/ and tests, plus a docker CLI shim that logs every call (and,
    after :meth:`watch_sdk`, a log of every docker SDK request)."""

    pytester: pytest.Pytester
    docker_log: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def path(self) -> Path:
        return self.pytester.path

    def image(
        self,
        name: str,
        dockerfile: str,
        toml: str = "",
        *,
        unique: bool = True,
        variants: bool = False,
    ) -> Path:
        """An image of the project. Its variants check is off unless ``variants`` (or ``toml``
        says otherwise): a test about something else counts only its own items."""
        directory = self.path / "images" / name
        directory.mkdir(parents=True, exist_ok=True)
        body = textwrap.dedent(dockerfile).strip() + "\n"
        if unique:
            # A fresh input digest, so this test really builds instead of reusing another's tag.
            body += f"# nonce {uuid.uuid4().hex}\n"
        (directory / "Dockerfile").write_text(body)
        toml = textwrap.dedent(toml)
        if not variants and "variants" not in toml:
            toml = "variants = false\n" + toml  # before any [table]
        if toml:
            (directory / "image.toml").write_text(toml)
        return directory

    def tests(self, source: str, name: str = "test_images.py") -> Path:
        path = self.path / name
        path.write_text(textwrap.dedent(source))
        return path

    def run(self, *args: str, timeout: float = 900) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)

    def docker_calls(self) -> list[str]:
        if not self.docker_log.exists():
            return []
        return self.docker_log.read_text().splitlines()

    @property
    def sdk_log(self) -> Path:
        return self.path / "sdk-requests.log"

    def watch_sdk(self) -> None:
        """Log every request the docker SDK sends in the inner sessions' processes."""
        spy = self.path / "sdk-spy"
        spy.mkdir(exist_ok=True)
        source = textwrap.dedent(SDK_SPY).replace("__LOG__", repr(str(self.sdk_log)))
        (spy / "multiarch_sdk_spy.py").write_text(source)
        path = os.pathsep.join(p for p in (str(spy), os.environ.get("PYTHONPATH", "")) if p)
        self.monkeypatch.setenv("PYTHONPATH", path)
        self.monkeypatch.setenv("PYTEST_PLUGINS", "multiarch_sdk_spy")

    def sdk_requests(self) -> list[str]:
        if not self.sdk_log.exists():
            return []
        return self.sdk_log.read_text().splitlines()

    def engine_calls(self) -> list[str]:
        """Every docker CLI call, and every docker SDK request once :meth:`watch_sdk` ran."""
        return self.docker_calls() + self.sdk_requests()

    def builds(self) -> list[str]:
        return [call for call in self.docker_calls() if call.startswith("buildx build")]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    for name in list(os.environ):
        if name.startswith("MULTIARCH_") or name.startswith("PYTEST_XDIST"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    log = pytester.path / "docker-calls.log"
    shim = pytester.path / "docker-shim"
    real = shutil.which("docker") or "docker"
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("MULTIARCH_DOCKER", str(shim))
    return Project(pytester, log, monkeypatch)


def assert_outcome(result: pytest.RunResult, test_id: str, outcome: str) -> None:
    """``test_id`` shows ``outcome`` in verbose output, with or without xdist."""
    escaped = re.escape(test_id)
    pattern = re.compile(rf"{escaped}\s.*\b{outcome}\b|\b{outcome}\b.*\s\S*{escaped}(\s|$)")
    lines = result.stdout.lines
    assert any(pattern.search(line) for line in lines), (
        f"{test_id} not reported {outcome}:\n" + "\n".join(lines[-60:])
    )


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


BUSYBOX_IMAGE = """
    FROM busybox:latest
    ARG TARGETPLATFORM
    ARG TARGETARCH
    RUN echo "$TARGETPLATFORM" > /built-for && echo "$TARGETARCH" > /target-arch
    CMD ["sh", "-c", "echo ready; exec sleep 600"]
"""


INDEX_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def manifest(address: str, repository: str, reference: str) -> tuple[str, dict[str, Any]] | None:
    """A registry's manifest (or index) and its digest, read over its HTTP API; None if absent."""
    request = urllib.request.Request(
        f"http://{address}/v2/{repository}/manifests/{reference}", headers={"Accept": INDEX_TYPES}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.headers["Docker-Content-Digest"], json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def junit_outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """nodeid-ish name -> (outcome, message) of every test case in a JUnit XML file."""
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314 - the inner run's own
        name = f"{case.get('classname')}.{case.get('name')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome, message = tag, f"{found.get('message', '')}\n{found.text or ''}"
                break
        outcomes.setdefault(name, (outcome, message))
        if outcome != "passed":  # a teardown error after a pass still counts
            outcomes[name] = (outcome, message)
    return outcomes


def _inner_command(run_id: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--testrunuid={run_id}",
        *args,
    ]


def start_inner(project: Project, run_id: str, *args: str) -> subprocess.Popen[str]:
    """An inner ``pytest -v`` of ``project`` with the run id ``run_id``, in a session of its own
    (so that it can be signalled as a group), its output in ``inner.log``."""
    log = (project.path / "inner.log").open("w")
    return subprocess.Popen(
        _inner_command(run_id, "-v", *args),
        cwd=project.path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def start_piped_inner(project: Project, run_id: str, *args: str) -> subprocess.Popen[str]:
    """An inner ``pytest -s`` of ``project`` as :func:`start_inner`, its output on the process's
    stdout pipe (read with ``communicate``)."""
    return subprocess.Popen(
        _inner_command(run_id, "-s", *args),
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish_inner(project: Project, proc: subprocess.Popen[str], timeout: float = 600) -> str:
    """The output of a :func:`start_inner` run once it ended; its group killed past ``timeout``."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return (project.path / "inner.log").read_text()


# ---- an engine lost mid-run (test_faults.py: Docker killed or frozen; test_podman_faults.py) --

# From the engine's loss to the end of the run (issue 11: 190 s after a freeze on the old main).
FAULT_TO_EXIT_LIMIT = 30.0

ENGINE_LOSS_TESTS = """
import os
import pathlib
import time

import pytest

pytestmark = pytest.mark.image("box")
PROGRESS = pathlib.Path(os.environ["FAULT_PROGRESS"])
FAULTED = PROGRESS.with_name("faulted")


def started(name):
    \"\"\"The first tests end on a sound engine; from the third on, each waits (its container
    started, a command run) until the outer test has faulted the engine, so the run has
    results from both sides of the fault.\"\"\"
    (PROGRESS / name).touch()
    if len(list(PROGRESS.iterdir())) < 3:
        return
    deadline = time.monotonic() + 600
    while not FAULTED.exists():
        assert time.monotonic() < deadline, "the outer test never faulted the engine"
        time.sleep(0.05)


@pytest.mark.parametrize("n", range(4))
def test_run(run, platform, n):
    assert run(["true"]).exit_code == 0
    started(f"run-{platform.short}-{n}")
    assert run(["cat", "/built-for"]).stdout.strip() == platform.name


@pytest.mark.parametrize("n", range(3))
def test_container(container, platform, n):
    started(f"container-{platform.short}-{n}")
    assert container.exec(["true"]).exit_code == 0
"""


@dataclass(frozen=True)
class EngineLossRun:
    """How an inner run of :data:`ENGINE_LOSS_TESTS` ended after its engine was faulted."""

    returncode: int
    seconds: float  # from the fault to the end of the run
    output: str
    junit: Path
    report: Path


def run_through_engine_loss(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    workers: str,
    fault: Callable[[], None],
    *args: str,
    after: Callable[[], None] = lambda: None,
) -> EngineLossRun:
    """An inner run of :data:`ENGINE_LOSS_TESTS` (box on amd64 and arm64, on the engine that
    DOCKER_HOST names) with ``-n workers``: ``fault`` is called once three tests have started,
    and the run is waited for (180 s at most); ``after`` is called in any case (un-freeze an
    engine, remove what the lost engine kept)."""
    project.image("box", BUSYBOX_IMAGE, unique=False)  # built once per engine for every case
    project.tests(ENGINE_LOSS_TESTS)
    progress = project.path / "progress"
    progress.mkdir()
    monkeypatch.setenv("FAULT_PROGRESS", str(progress))
    report, junit, log = (project.path / name for name in ("report.json", "junit.xml", "out"))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE", *args]
    command += ["--platforms", "amd64,arm64", "-n", workers]
    command += ["--multiarch-json", str(report), "--junitxml", str(junit)]
    with log.open("w") as output:
        inner = subprocess.Popen(command, cwd=project.path, stdout=output, stderr=subprocess.STDOUT)
    try:
        # Mid-run: tests have passed, others are running or still to come.
        wait_until(
            lambda: len(list(progress.iterdir())) >= 3,
            600,
            "3 tests to start",
            context=lambda: log.read_text()[-4000:],
        )
        faulted = time.monotonic()
        fault()
        (project.path / "faulted").touch()
        try:
            returncode = inner.wait(timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not end 180 s after the fault:\n{log.read_text()[-4000:]}")
        seconds = time.monotonic() - faulted
    finally:
        after()
        if inner.poll() is None:
            inner.kill()
            inner.wait()
    return EngineLossRun(returncode, seconds, log.read_text(), junit, report)


def assert_engine_loss_told(run: EngineLossRun, lost: str) -> list[dict[str, Any]]:
    """The run ended at once and plainly (rc 1, no traceback), every one of its 14 results in
    JUnit, the passes from before the loss kept (in the JSON report too), and every failure
    saying ``lost``. Returns the JSON report's tests."""
    output = run.output
    assert "INTERNALERROR" not in output, output
    assert "Traceback" not in output, output
    assert run.returncode == 1, output
    assert run.seconds < FAULT_TO_EXIT_LIMIT, f"{run.seconds:.1f} s from the fault:\n{output}"
    outcomes = junit_outcomes(run.junit)
    assert len(outcomes) == 14, outcomes
    passed = [name for name, (outcome, _) in outcomes.items() if outcome == "passed"]
    broken = {name: message for name, (outcome, message) in outcomes.items() if name not in passed}
    assert passed, f"no result from before the fault was kept:\n{output}"
    assert broken, f"nothing failed after the fault:\n{output}"
    for name, message in broken.items():
        assert lost in message, f"{name}: {message}"
    # What ran before the fault is in the run report, written at the end of the session.
    tests: list[dict[str, Any]] = read_json(run.report)["tests"]
    assert sum(t["outcome"] == "passed" for t in tests) == len(passed)
    assert lost in output
    return tests
