"""Stacks (issue 25 part A): an image's services started beside it for each test and platform,
native or on the platform under test, reached by alias from ``run`` and ``container``, shown
in the reports, removed with their network (also after Ctrl-C), and their errors named."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
import xml.etree.ElementTree as ET

import pytest
from acceptance import (
    BUSYBOX_IMAGE,
    Project,
    containers_of_run,
    read_json,
    start_piped_inner,
    wait_until,
)

# A web server that says which architecture it was built for (its verified platform's).
WEB_IMAGE = """
    FROM busybox:latest
    ARG TARGETARCH
    RUN mkdir -p /www && echo "$TARGETARCH" > /www/arch
    CMD ["sh", "-c", "echo web-starting; exec httpd -f -v -p 8080 -h /www"]
"""
WEB_TOML = "ports = [8080]\n[wait]\nport = 8080\n"
NATIVE_AND_SAME_TOML = """
[wait]
log = "ready"

[services.web]
image = "web"

[services.same-web]
image = "web"
platform = "same"
"""
# A service taken as it is (a ref): resolved again on every run, so never started ahead in a
# run's first test.
APP_TOML = (
    NATIVE_AND_SAME_TOML
    + """
[services.files]
ref = "busybox:latest"
platform = "same"
env = { GREETING = "hello", SERVE = "httpd -f -p 9000 -h /w" }
command = ["sh", "-c", "mkdir -p /w && echo $GREETING > /w/g && uname -m > /w/m; exec $SERVE"]
"""
)

STACK_TESTS = """
    import time
    import urllib.request
    import pytest

    @pytest.mark.image("app")
    def test_run_reaches_services_by_alias(run, services, platform):
        assert run(["wget", "-qO-", "http://web:8080/arch"]).stdout.strip() == "amd64"
        same = run(["wget", "-qO-", "http://same-web:8080/arch"])
        assert same.stdout.strip() == platform.arch
        assert services["web"].platform.name == "linux/amd64"
        assert services["web"].native
        assert services["same-web"].platform.name == platform.name
        web = services["web"].container
        port = web.get_exposed_port(8080)
        assert web.get_container_host_ip() == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/arch").read()
        assert body == b"amd64\\n"
        out, err = web.get_logs()
        assert b"web-starting" in out + err
        answer = services["same-web"].container.exec(["uname", "-m"])
        assert answer.output.decode().strip() == platform.uname

    @pytest.mark.image("app")
    def test_a_ref_service_with_its_own_env_and_command(run, services, platform):
        # No [wait] for a ref: asked until it answers.
        deadline = time.monotonic() + 60
        while (got := run(["wget", "-qO-", "http://files:9000/g"])).exit_code != 0:
            assert time.monotonic() < deadline, got.stderr
            time.sleep(0.2)
        assert got.stdout == "hello\\n"
        assert run(["wget", "-qO-", "http://files:9000/m"]).stdout.strip() == platform.uname
        assert services["files"].platform.name == platform.name

    @pytest.mark.image("app")
    def test_container_reaches_services_by_alias(container, platform):
        result = container.exec(["wget", "-qO-", "http://same-web:8080/arch"])
        assert result.output.decode().strip() == platform.arch
"""


def networks_of_run(run_id: str) -> list[str]:
    found = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", f"label=pytest-multiarch.run={run_id}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return found.stdout.split()


def _stack_project(project: Project, toml: str = APP_TOML) -> None:
    project.image("web", WEB_IMAGE, WEB_TOML)
    project.image("app", BUSYBOX_IMAGE, toml)


def test_services_native_and_same_on_three_platforms(project: Project) -> None:
    _stack_project(project)
    project.tests(STACK_TESTS)
    run_id = uuid.uuid4().hex
    report = project.path / "report.json"
    html = project.path / "report.html"
    junit = project.path / "junit.xml"
    result = project.run(
        "--platforms",
        "amd64,arm64,s390x",
        "-n",
        "2",
        f"--testrunuid={run_id}",
        f"--multiarch-json={report}",
        f"--multiarch-html={html}",
        f"--junitxml={junit}",
    )
    result.assert_outcomes(passed=9)
    properties = {
        (p.get("name"), p.get("value"))
        for case in ET.parse(junit).getroot().iter("testcase")  # noqa: S314 - the inner run's own
        if case.get("name") == "test_run_reaches_services_by_alias[arm64]"
        for p in case.iter("property")
    }
    assert ("service", "web=linux/amd64") in properties
    assert ("service", "same-web=linux/arm64") in properties
    tests = read_json(report)["tests"]
    seen = {t["nodeid"].split("[")[-1].rstrip("]"): t["services"] for t in tests}
    for short, platform in (("amd64", "amd64"), ("arm64", "arm64"), ("s390x", "s390x")):
        assert seen[short] == {
            "web": "linux/amd64",
            "same-web": f"linux/{platform}",
            "files": f"linux/{platform}",
        }
    page = html.read_text()
    assert "same-web" in page
    assert "linux/s390x" in page
    assert containers_of_run(run_id) == []
    assert networks_of_run(run_id) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_no_service_and_no_network(
    project: Project, signum: signal.Signals
) -> None:
    _stack_project(project)
    project.tests(
        """
        import time
        import pytest

        @pytest.mark.image("app")
        def test_slow(run, services, platform):
            print("STACK-STARTED", flush=True)
            time.sleep(300)
        """
    )
    run_id = uuid.uuid4().hex
    inner = start_piped_inner(project, run_id, "--platforms", "amd64,arm64", "-n", "2")
    try:
        # Both platforms' stacks: two services each, running.
        wait_until(
            lambda: len(containers_of_run(run_id, all_states=False)) >= 4,
            180,
            f"the services of run {run_id}",
            interval=0.3,
        )
        assert len(networks_of_run(run_id)) == 2
        if signum == signal.SIGINT:
            os.killpg(inner.pid, signum)  # Ctrl-C: the terminal signals the whole group
        else:
            os.kill(inner.pid, signum)  # CI's cancel: the pytest process only
        output, _ = inner.communicate(timeout=120)
    finally:
        if inner.poll() is None:
            os.killpg(inner.pid, signal.SIGKILL)
    assert inner.returncode != 0, output
    assert containers_of_run(run_id) == [], output
    assert networks_of_run(run_id) == [], output


def test_stack_errors_name_what_went_wrong(project: Project) -> None:
    project.image("web", WEB_IMAGE, WEB_TOML)
    project.image("box", BUSYBOX_IMAGE, '[wait]\nlog = "ready"\n[services.db]\nimage = "wbe"\n')
    project.image("loop-a", BUSYBOX_IMAGE, '[services.b]\nimage = "loop-b"\n')
    project.image("loop-b", BUSYBOX_IMAGE, '[services.a]\nimage = "loop-a"\n')
    project.image(
        "mute",
        """
        FROM busybox:latest
        CMD ["sh", "-c", "echo mute-says-hello; exec sleep 600"]
        """,
        '[wait]\nlog = "never printed"\ntimeout = 2\n',
    )
    project.image("waits", BUSYBOX_IMAGE, '[services.mute]\nimage = "mute"\n')
    project.image("amd64-only", WEB_IMAGE, 'platforms = ["linux/amd64"]\n' + WEB_TOML)
    project.image(
        "wants-same", BUSYBOX_IMAGE, '[services.web]\nimage = "amd64-only"\nplatform = "same"\n'
    )
    project.image("talks", BUSYBOX_IMAGE, '[services.web]\nimage = "web"\n')
    project.tests(
        """
        import pytest

        @pytest.mark.image("box")
        def test_unknown(run, platform):
            pass

        @pytest.mark.image("loop-a")
        def test_cycle(run, platform):
            pass

        @pytest.mark.image("waits")
        def test_never_ready(run, platform):
            pass

        @pytest.mark.image("wants-same")
        def test_same_not_runnable(run, platform):
            pass

        @pytest.mark.image("talks")
        def test_fails_with_its_services_logs(run, platform):
            assert False, "deliberate"
        """
    )
    run_id = uuid.uuid4().hex
    result = project.run("--platforms", "arm64", f"--testrunuid={run_id}")
    out = result.stdout.str()
    result.assert_outcomes(errors=4, failed=1)
    assert "key 'services.db.image': no image 'wbe'" in out
    assert "(did you mean 'web'?)" in out
    assert "services form a cycle: loop-a -> loop-b -> loop-a" in out
    assert "service 'mute' of image 'waits'" in out
    assert "never became ready" in out
    assert "mute-says-hello" in out  # its logs
    assert "image 'amd64-only' is not built for linux/arm64" in out
    assert 'platform = "native"' in out
    # A failed test's report carries its services' logs.
    result.stdout.fnmatch_lines(["*container logs ?service web on amd64?*", "*web-starting*"])
    assert containers_of_run(run_id) == []
    assert networks_of_run(run_id) == []


PRESTART_TESTS = """
    import subprocess
    import time
    import pytest

    def networks(container):
        run_id = container.get_wrapped_container().labels["pytest-multiarch.run"]
        found = subprocess.run(
            ["docker", "network", "ls", "-q", "--filter", f"label=pytest-multiarch.run={run_id}"],
            capture_output=True, text=True, check=True,
        )
        return found.stdout.split()

    def wait_for(predicate, what):
        deadline = time.monotonic() + 90
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    @pytest.fixture
    def fails_first():
        raise RuntimeError("this test never takes its container")

    @pytest.mark.image("app")
    def test_1_next_stack_is_started_meanwhile(container, services, platform):
        # Its own stack's network, and the next test's, started while this one runs.
        wait_for(lambda: len(networks(container)) == 2, "the next test's stack")
        result = container.exec(["wget", "-qO-", "http://web:8080/arch"])
        assert result.output.decode().strip() == "amd64"

    @pytest.mark.image("app")
    def test_2_takes_nothing(fails_first, container, platform):
        pass

    @pytest.mark.image("box")
    def test_3_the_stack_nobody_took_is_removed(container, platform):
        wait_for(lambda: networks(container) == [], "the untaken stack's removal")
"""


def test_the_next_tests_stack_is_prestarted_and_removed_when_not_taken(project: Project) -> None:
    _stack_project(project, NATIVE_AND_SAME_TOML)
    project.image("box", BUSYBOX_IMAGE, '[wait]\nlog = "ready"\n')
    project.tests(PRESTART_TESTS)
    warm = project.tests(
        """
        import pytest

        @pytest.mark.image("app")
        def test_app(services, platform):
            pass

        @pytest.mark.image("box")
        def test_box(run, platform):
            pass
        """,
        name="test_warm.py",
    )
    # Built and checked first: work done ahead never builds.
    project.run("--platforms", "amd64", str(warm)).assert_outcomes(passed=2)
    run_id = uuid.uuid4().hex
    result = project.run("--platforms", "amd64", f"--testrunuid={run_id}", "test_images.py")
    result.assert_outcomes(passed=2, errors=1)
    assert containers_of_run(run_id) == []
    assert networks_of_run(run_id) == []


def test_a_killed_runs_services_and_network_are_reaped_by_the_next_run(project: Project) -> None:
    # SIGKILL (or an engine lost mid-run, whose removals cannot happen) leaves the stack
    # behind; the next run on that engine removes what a dead run left, networks included.
    _stack_project(project)
    project.tests(
        """
        import time
        import pytest

        @pytest.mark.image("app")
        def test_slow(run, services, platform):
            time.sleep(300)
        """
    )
    dead_id = uuid.uuid4().hex
    inner = start_piped_inner(project, dead_id, "--platforms", "amd64")
    try:
        wait_until(
            lambda: len(containers_of_run(dead_id, all_states=False)) >= 3,
            180,
            f"the services of run {dead_id}",
            interval=0.3,
        )
        os.killpg(inner.pid, signal.SIGKILL)
        inner.wait(timeout=60)
    finally:
        if inner.poll() is None:
            os.killpg(inner.pid, signal.SIGKILL)
    assert len(networks_of_run(dead_id)) == 1
    project.tests(
        """
        import pytest

        @pytest.mark.image("web")
        def test_quick(run, platform):
            assert run(["true"]).exit_code == 0
        """,
        name="test_quick.py",
    )
    project.run("--platforms", "amd64", "test_quick.py").assert_outcomes(passed=1)
    assert containers_of_run(dead_id) == []
    assert networks_of_run(dead_id) == []
