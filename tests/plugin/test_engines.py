"""Platforms on engines of their own, for real, on one machine: a second Docker engine of this
host (``multiarch host engine up e12``: its own socket, data root, bridge) stands in for a
native machine. One platform is mapped to it; every container and build of that platform must
be there and none on the default engine; killing it mid-run fails only that platform's tests,
with the error, in time; an engine that is down from the start, or a context that does not
exist, is told at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest
from acceptance import (
    BUSYBOX_IMAGE,
    Project,
    assert_outcome,
    docker_cli,
    finish_inner,
    read_json,
    start_inner,
    wait_until,
)
from pytest_multiarch.provision.second_engines import EngineLayout

RUN_LABEL = "pytest-multiarch.run"
TOML = '[wait]\nlog = "ready"\ntimeout = 30\n'


def _running(engine: str | None, run_id: str) -> dict[str, str]:
    """Short id -> image of every running container of run ``run_id`` on ``engine``."""
    listed = docker_cli(
        engine,
        "ps",
        "--filter",
        f"label={RUN_LABEL}={run_id}",
        "--format",
        "{{.ID}} {{.Image}}",
    )
    return dict(line.split(" ", 1) for line in listed.stdout.splitlines() if line)


def _created_images(engine: str | None, run_id: str, since: float) -> list[str]:
    """The image of every container of run ``run_id`` created on ``engine`` since ``since``."""
    events = docker_cli(
        engine,
        "events",
        "--since",
        f"{since:.0f}",
        "--until",
        f"{time.time() + 1:.0f}",
        "--filter",
        "type=container",
        "--filter",
        "event=create",
        "--filter",
        f"label={RUN_LABEL}={run_id}",
        "--format",
        "{{json .}}",
    )
    assert events.returncode == 0, events.stderr
    return [
        json.loads(line)["Actor"]["Attributes"]["image"]
        for line in events.stdout.split("\n")
        if line
    ]


PLACEMENT_TESTS = """
    import time
    from pathlib import Path

    import pytest

    LISTED = Path(__file__).with_name("listed-ids")

    pytestmark = pytest.mark.image("box")

    def test_run(run, platform):
        assert run(["uname", "-m"]).stdout.strip() == platform.uname

    def test_container(container, platform):
        out = container.exec(["cat", "/built-for"]).output.decode().strip()
        assert out == platform.name
        # Held until the outer test (one that lists containers) has listed this one.
        mine = container.get_wrapped_container().id
        deadline = time.monotonic() + 120
        while LISTED.exists() and not any(mine.startswith(s) for s in LISTED.read_text().split()):
            assert time.monotonic() < deadline, "the outer test never listed this container"
            time.sleep(0.1)

    def test_where(platform):
        print(f"PLATFORM {platform.short} engine={platform.engine!r} emulated={platform.emulated}")
"""


def test_every_container_and_build_of_a_mapped_platform_is_on_its_engine(
    project: Project, second_engine: EngineLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    e12 = second_engine.docker_host
    # Mapped through a Docker context (in a private docker config): the docker CLI and buildx
    # get --context, the docker SDK and testcontainers the context's endpoint.
    config = project.path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    made = docker_cli(None, "context", "create", "e12ctx", "--docker", f"host={e12}")
    assert made.returncode == 0, made.stderr
    project.image("box", BUSYBOX_IMAGE, TOML)
    project.tests(PLACEMENT_TESTS)
    (project.path / "pyproject.toml").write_text('[tool.multiarch.engines]\narm64 = "e12ctx"\n')
    run_id = uuid.uuid4().hex
    since = time.time() - 1
    proc = start_inner(
        project, run_id, "--platforms", "amd64,arm64", "-s", "--multiarch-json", "r.json"
    )
    seen: dict[str, set[str]] = {"default": set(), "e12": set()}
    listed = project.path / "listed-ids"
    listed.touch()

    def look() -> bool:
        for name, engine in (("default", None), ("e12", e12)):
            running = _running(engine, run_id)
            seen[name] |= set(running.values())
            with listed.open("a") as out:
                out.write("".join(f"{short}\n" for short in running))
        return proc.poll() is not None

    log = project.path / "inner.log"
    wait_until(look, 600, "the inner run to end", context=lambda: log.read_text()[-4000:])
    output = finish_inner(project, proc)
    assert proc.returncode == 0, output
    assert "PLATFORM arm64 engine='e12ctx' emulated=True" in output
    assert "PLATFORM amd64 engine='' emulated=False" in output
    assert "arm64 qemu@e12ctx" in output  # the matrix header: how and where it ran

    # While it ran: the arm64 containers were running on the second engine, none on the default.
    assert seen["e12"], seen
    assert all(image.endswith("-arm64") for image in seen["e12"]), seen
    assert not any(image.endswith("-arm64") for image in seen["default"]), seen
    # Every container the run created (verification, run, container), from the engines' logs.
    on_e12 = _created_images(e12, run_id, since)
    on_default = _created_images(None, run_id, since)
    assert len(on_e12) >= 3, on_e12
    assert all(image.endswith("-arm64") for image in on_e12), on_e12
    assert on_default, on_default
    assert all(image.endswith("-amd64") for image in on_default), on_default

    # The arm64 image was built there (buildx of that engine) and only there.
    report = read_json(project.path / "r.json")
    built = {b["platform"]: b["reference"] for b in report["builds"]}
    assert docker_cli(e12, "image", "inspect", built["linux/arm64"]).returncode == 0
    assert docker_cli(None, "image", "inspect", built["linux/arm64"]).returncode != 0
    assert docker_cli(None, "image", "inspect", built["linux/amd64"]).returncode == 0
    assert docker_cli(e12, "image", "inspect", built["linux/amd64"]).returncode != 0
    builds = [call for call in project.docker_calls() if "buildx build" in call]
    arm64_builds = [call for call in builds if "--platform linux/arm64" in call]
    assert arm64_builds
    assert all(call.startswith("--context e12ctx ") for call in arm64_builds)
    assert not any(call.startswith("--") for call in builds if call not in arm64_builds)
    facts = {p["short"]: p for p in report["platforms"]}
    assert (facts["arm64"]["engine"], facts["arm64"]["native"]) == ("e12ctx", False)
    assert (facts["amd64"]["engine"], facts["amd64"]["native"]) == ("", True)
    # Nothing of the run is left on either engine.
    for engine in (e12, None):
        left = docker_cli(engine, "ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").stdout
        assert not left.strip(), (engine, left)


NATIVE_TESTS = """
    import pytest

    @pytest.mark.requires_native(reason="reads performance counters")
    def test_counters(platform):
        assert not platform.emulated

    def test_factor(platform):
        print(f"FACTOR {platform.short} {platform.timeout_factor:g}")
"""


def test_native_or_emulated_is_measured_on_each_platforms_engine(
    project: Project, second_engine: EngineLayout
) -> None:
    e12 = second_engine.docker_host
    # amd64 on the second engine (an x86_64 machine: native there), arm64 on the default one.
    project.tests(NATIVE_TESTS)
    result = project.run(
        "-v",
        "-s",
        "-rs",
        "--platforms",
        "amd64,arm64",
        f"--engine=amd64={e12}",
        "--junitxml=junit.xml",
        "--multiarch-json=r.json",
    )
    assert result.ret == 0, result.stdout.str()
    assert_outcome(result, "test_counters[amd64]", "PASSED")
    assert_outcome(result, "test_counters[arm64]", "SKIPPED")
    result.stdout.fnmatch_lines(
        ["*reads performance counters (@pytest.mark.requires_native): arm64 runs under QEMU*"]
    )
    result.stdout.fnmatch_lines(["*FACTOR amd64 1", "*FACTOR arm64 10"])
    result.stdout.fnmatch_lines(["*amd64 native@e12*arm64 qemu@default*"])
    facts = {p["short"]: p for p in read_json(project.path / "r.json")["platforms"]}
    assert (facts["amd64"]["engine"], facts["amd64"]["native"]) == (e12, True)
    junit = (project.path / "junit.xml").read_text()
    assert f'<property name="engine" value="{e12}" />' in junit
    assert '<property name="engine_label" value="e12" />' in junit


def test_an_engine_down_from_the_start_fails_only_its_platforms_tests(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE, TOML)
    project.tests(PLACEMENT_TESTS)
    nowhere = f"unix://{project.path}/no-engine/docker.sock"
    started = time.monotonic()
    result = project.run("-v", "--platforms", "amd64,arm64", f"--engine=arm64={nowhere}")
    assert result.ret == 1, result.stdout.str()
    for name in ("test_run", "test_container"):
        assert_outcome(result, f"{name}[amd64]", "PASSED")
        assert_outcome(result, f"{name}[arm64]", "ERROR")
    assert_outcome(result, "test_where[arm64]", "PASSED")  # uses no engine
    result.stdout.fnmatch_lines(
        [f"*linux/arm64 runs on engine no-engine ({nowhere}) (from --engine), which did not*"]
    )
    assert time.monotonic() - started < 120


def test_a_context_that_does_not_exist_is_a_usage_error(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(project.path / "docker-config"))
    monkeypatch.setenv("MULTIARCH_ENGINES", "arm64=arm-box")
    project.tests(PLACEMENT_TESTS)
    result = project.run("--platforms", "amd64,arm64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*Invalid engine 'arm-box' from environment variable MULTIARCH_ENGINES: no Docker "
            "context of that name*"
        ]
    )


def _read(phases: Path) -> list[dict[str, Any]]:
    """The phases the inner run's controller recorded (RECORDER): complete lines only."""
    if not phases.exists():
        return []
    lines = phases.read_text().split("\n")[:-1]
    return [json.loads(line) for line in lines if line]


KILL_TESTS = """
    import pytest

    @pytest.mark.image("box")
    @pytest.mark.parametrize("step", range(10))
    def test_step(run, platform, step):
        assert run(["sleep", "1"]).exit_code == 0
"""

RECORDER = """
    import json
    import time

    class Recorder:
        def pytest_runtest_logreport(self, report):
            if report.when == "call" or report.failed:
                with open("phases.jsonl", "a") as handle:
                    message = str(report.longrepr)[-400:] if report.failed else ""
                    handle.write(json.dumps({
                        "nodeid": report.nodeid, "when": report.when,
                        "outcome": report.outcome, "stop": report.stop, "message": message,
                    }) + "\\n")

    def pytest_configure(config):
        if not hasattr(config, "workerinput"):  # the controller hears every worker's reports
            config.pluginmanager.register(Recorder(), "recorder")
"""


def test_killing_the_mapped_engine_mid_run_fails_only_its_platform_in_time(
    project: Project, second_engine: EngineLayout
) -> None:
    e12 = second_engine.docker_host
    project.image("box", BUSYBOX_IMAGE, TOML)
    project.tests(KILL_TESTS)
    project.tests(RECORDER, name="conftest.py")
    run_id = uuid.uuid4().hex
    proc = start_inner(
        project,
        run_id,
        "-n",
        "2",
        "--platforms",
        "amd64,arm64",
        f"--engine=arm64={e12}",
        "--multiarch-json",
        "r.json",
    )
    # Killed once an arm64 test has passed on it and another one's container runs there.
    phases = project.path / "phases.jsonl"

    def mid_run() -> bool:
        if proc.poll() is not None:
            return True  # too late: told by the assertion below
        passed = any(r["outcome"] == "passed" and "arm64" in r["nodeid"] for r in _read(phases))
        running = docker_cli(e12, "ps", "-q", "--filter", f"label={RUN_LABEL}={run_id}").stdout
        return passed and bool(running.strip())

    log = project.path / "inner.log"
    wait_until(mid_run, 300, "an arm64 pass and a running arm64 container", context=log.read_text)
    assert proc.poll() is None, log.read_text()
    # Taken before the signal: a test may fail (and stamp its report) before os.kill returns.
    killed = time.time()
    os.kill(int(second_engine.docker_pidfile.read_text().strip()), signal.SIGKILL)
    output = finish_inner(project, proc)
    finished = time.time()
    assert proc.returncode == 1, output
    records = _read(phases)
    amd64 = [p for p in records if "amd64" in p["nodeid"]]
    arm64 = [p for p in records if "arm64" in p["nodeid"]]
    # The default engine's platform ran to the end.
    assert [p["outcome"] for p in amd64] == ["passed"] * 10, amd64
    # arm64 passed before the kill, failed after it: each failure names the stopped engine.
    before = [p for p in arm64 if p["stop"] < killed]
    after = [p for p in arm64 if p["stop"] >= killed]
    assert before, arm64
    assert all(p["outcome"] == "passed" for p in before), before
    assert after, arm64
    assert all(p["outcome"] == "failed" for p in after), after
    assert all(f"{second_engine.name} ({e12})" in p["message"] for p in after), after
    assert all("stopped answering" in p["message"] for p in after), after
    last_failure = max(p["stop"] for p in after) - killed
    assert last_failure < 30, f"arm64's tests failed until {last_failure:.1f}s after the kill"
    print(
        f"\nkill -> first arm64 failure {min(p['stop'] for p in after) - killed:.1f}s, "
        f"last arm64 failure {last_failure:.1f}s, run exit {finished - killed:.1f}s"
    )
    report = read_json(project.path / "r.json")
    assert {t["outcome"] for t in report["tests"] if t["platform"] == "amd64"} == {"passed"}
    assert "stopped answering" in output


PUBLISH_TESTS = """
    import pytest

    pytestmark = pytest.mark.image("box")

    def test_arch(run, platform):
        assert run(["uname", "-m"]).stdout.strip() == platform.uname
"""


def test_publish_pushes_each_platform_from_the_engine_that_tested_it(
    project: Project, second_engine: EngineLayout, registry: str
) -> None:
    e12 = second_engine.docker_host
    project.image("box", BUSYBOX_IMAGE)
    project.tests(PUBLISH_TESTS)
    result = project.run(
        "--platforms",
        "amd64,arm64",
        f"--engine=arm64={e12}",
        "--multiarch-json=r.json",
        "--publish",
        f"{registry}/team",
        "--publish-tag",
        "v1",
    )
    assert result.ret == 0, result.stdout.str()
    published = read_json(project.path / "r.json")["publish"]
    assert [p["status"] for p in published] == ["published"], published
    assert published[0]["verified"] == {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
    # The arm64 image exists only on the second engine: it is pushed from there, and the
    # published tag is pulled and run there; amd64's on the default engine.
    calls = project.docker_calls()
    pushes = [call for call in calls if " push --quiet " in f" {call}"]
    assert {call.endswith("-arm64") for call in pushes if call.startswith(f"--host {e12} ")} == {
        True
    }
    assert {call.endswith("-amd64") for call in pushes if not call.startswith("--")} == {True}
    checks = [call for call in calls if "run --rm --pull always" in call]
    assert any(c.startswith(f"--host {e12} ") and "linux/arm64" in c for c in checks), checks
    assert any(not c.startswith("--") and "linux/amd64" in c for c in checks), checks


def test_dead_owners_private_tags_are_swept_from_every_engine_of_the_run(
    project: Project, second_engine: EngineLayout
) -> None:
    """Issue 21 point 1: the first use of each engine of a run removes the private build tags
    there whose owner (named in the tag) is dead; a live owner's stay, on either engine."""
    from pytest_multiarch.engine.cleanup import owner_id
    from pytest_multiarch.runtime.build import private_tag

    e12 = second_engine.docker_host
    victim = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=PIPE)
    dead_owner = owner_id(victim.pid)
    victim.kill()
    victim.wait(timeout=30)
    shared = f"pytest-multiarch/leftover:{uuid.uuid4().hex[:16]}-amd64"
    tags: dict[str | None, tuple[str, str]] = {}
    for engine in (None, e12):
        pulled = docker_cli(engine, "pull", "--quiet", "busybox:latest", timeout=300)
        assert pulled.returncode == 0, pulled.stderr
        dead, live = private_tag(shared, dead_owner), private_tag(shared, owner_id())
        for tag in (dead, live):
            assert docker_cli(engine, "tag", "busybox:latest", tag).returncode == 0
        tags[engine] = (dead, live)
    try:
        project.image("box", BUSYBOX_IMAGE, TOML)
        project.tests(
            """
            import pytest

            @pytest.mark.image("box")
            def test_quick(run, platform):
                assert run(["true"]).exit_code == 0
            """
        )
        result = project.run("--platforms", "amd64,arm64", f"--engine=arm64={e12}")
        result.assert_outcomes(passed=2)
        for engine, (dead, live) in tags.items():
            assert docker_cli(engine, "image", "inspect", dead).returncode != 0, (engine, dead)
            assert docker_cli(engine, "image", "inspect", live).returncode == 0, (engine, live)
    finally:
        for engine, named in tags.items():
            docker_cli(engine, "image", "rm", *named)
