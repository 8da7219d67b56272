"""Hostile hosts and secrets (issue 11): a state directory another user controls, links planted
in a run's directory, build secrets that must never surface, and published ports that must not
be reachable from the network."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from acceptance import BUSYBOX_IMAGE, Project, read_json

ONE_TEST = """
import pytest

pytestmark = pytest.mark.image("box")


def test_it(run, platform):
    assert run(["cat", "/built-for"]).stdout.strip() == platform.name
"""


@pytest.mark.parametrize("hostile", ["foreign-owner", "open-to-others", "symlink"])
def test_a_state_dir_others_control_is_refused_before_anything_runs(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    hostile: str,
    unavailable: Callable[[str], None],
) -> None:
    """Whoever can write the state directory could hand a run a stale image or make it write
    through a link: refused, with the directory and what to do, before Docker is touched."""
    state_home = tmp_path / "state-home"
    state_home.mkdir()
    root = state_home / "pytest-multiarch"
    if hostile == "foreign-owner":
        if os.geteuid() != 0:
            unavailable("needs root to give a directory to another user")
        root.mkdir(mode=0o700)
        os.chown(root, 65534, 65534)  # nobody
    elif hostile == "open-to-others":
        root.mkdir()
        root.chmod(0o777)
    else:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        root.symlink_to(elsewhere)
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(ONE_TEST)
    project.watch_sdk()
    for workers in ("0", "2"):
        result = project.run("--platforms", "amd64", "-n", workers)
        message = result.stderr.str()
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + message
        assert f"state directory {root} " in message, message
        assert "Remove it" in message, message
        assert "MULTIARCH_RUN_STATE_DIR" in message, message
        assert "Traceback" not in message, message
    assert project.engine_calls() == [], "the engine was used before the state dir was checked"


@pytest.mark.parametrize("hostile", ["foreign-parent", "foreign-link"])
def test_a_parent_of_the_state_dir_others_control_is_refused(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    hostile: str,
    unavailable: Callable[[str], None],
) -> None:
    """The owner of XDG_STATE_HOME (or of a link on the way to it) could rename the run's 0700
    directory away and put one of theirs in its place: refused before anything runs."""
    if os.geteuid() != 0:
        unavailable("needs root to give a directory to another user")
    state_home = tmp_path / "state-home"
    if hostile == "foreign-parent":
        state_home.mkdir()
        state_home.chmod(0o777)
        os.chown(state_home, 65534, 65534)  # nobody
        culprit, inside = state_home, state_home
    else:
        inside = tmp_path / "mine"
        inside.mkdir(mode=0o700)
        state_home.symlink_to(inside)
        os.lchown(state_home, 65534, 65534)
        culprit = state_home
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(ONE_TEST)
    for workers in ("0", "2"):
        result = project.run("--platforms", "amd64", "-n", workers)
        message = result.stderr.str()
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + message
        assert f"{culprit}, on the way to the state directory" in message, message
        assert "is owned by uid 65534" in message, message
        assert "XDG_STATE_HOME or MULTIARCH_RUN_STATE_DIR" in message, message
        assert "Traceback" not in message, message
    assert list(inside.iterdir()) == [], "the run made its directory inside"
    assert project.docker_calls() == [], "the engine was used before the state dir was checked"


def test_a_state_dir_made_unsafe_mid_run_fails_its_tests_plainly(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Renamed away and replaced by a directory open to all while the run goes on: the tests
    that need it error with why, never an INTERNALERROR."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("MULTIARCH_RUN_STATE_DIR", str(state))
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(
        """
        import pytest

        @pytest.mark.image("box")
        @pytest.mark.parametrize("i", range(4))
        def test_it(run, platform, i):
            assert run(["true"]).exit_code == 0
        """
    )
    # Between the controller's check and the workers' first use of the state directory.
    project.pytester.makeconftest(
        f"""
        import os

        def pytest_collection_finish(session):
            if os.environ.get("PYTEST_XDIST_WORKER") == "gw0":
                os.rename({str(state)!r}, {str(state)!r} + ".gone")
                os.mkdir({str(state)!r})
                os.chmod({str(state)!r}, 0o777)
        """
    )
    result = project.run("--platforms", "amd64", "-n", "2")
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output, output
    result.assert_outcomes(errors=4)
    assert f"state directory {state} has mode 0777" in output, output


def test_links_planted_in_a_run_dir_are_never_written_through(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The run's own files (owner, build records, locks, the engine marker) exist already as
    links to files elsewhere: the run must neither write nor truncate those files."""
    state_home = tmp_path / "state-home"
    root = state_home / "pytest-multiarch"
    root.mkdir(parents=True, mode=0o700)
    run_id = uuid.uuid4().hex
    run_dir = root / "runs" / f"run-{run_id}"
    run_dir.mkdir(parents=True, mode=0o700)
    victims = tmp_path / "victims"
    victims.mkdir()
    planted = ["owner", "box--amd64.json", "box--amd64.lock", "engine-dead"]
    for name in planted:
        (victims / f"{name}.kept").write_text("precious\n")
        (run_dir / name).symlink_to(victims / f"{name}.kept")
        (run_dir / f"{name}-missing").symlink_to(victims / f"{name}.absent")
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(ONE_TEST)
    result = project.run("--platforms", "amd64", "-n", "0", "--testrunuid", run_id)
    output = result.stdout.str()
    assert "INTERNALERROR" not in output, output
    for name in planted:
        assert (victims / f"{name}.kept").read_text() == "precious\n", f"written through {name}"
        assert not (victims / f"{name}.absent").exists(), f"created through {name}-missing"
    # A planted run file is refused with a reason, not trusted or followed.
    result.assert_outcomes(errors=1)
    assert "cannot use this run's state directory" in output, output
    assert "symbolic links" in output, output


def test_a_run_dir_planted_as_a_link_is_refused(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state_home = tmp_path / "state-home"
    root = state_home / "pytest-multiarch"
    (root / "runs").mkdir(parents=True, mode=0o700)
    root.chmod(0o700)
    run_id = uuid.uuid4().hex
    victim = tmp_path / "victim-dir"
    victim.mkdir()
    (root / "runs" / f"run-{run_id}").symlink_to(victim)
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(ONE_TEST)
    result = project.run("--platforms", "amd64", "-n", "0", "--testrunuid", run_id)
    output = result.stdout.str()
    result.assert_outcomes(errors=1)
    assert f"run-{run_id} is a symbolic link to {victim}" in output, output
    assert list(victim.iterdir()) == [], "the run wrote into the directory the link points to"


SECRET_ENV = "MA_SECRET_TOKEN"
SECRET_TOML = f'secrets = {{ token = {{ env = "{SECRET_ENV}" }} }}\n'


def test_build_secrets_never_surface(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A declared secret reaches `RUN --mount=type=secret` and nothing else: not the image's
    history or config, not a docker command line, not the terminal, JUnit XML or run report,
    not even when the build or a test prints it. A build arg named like a secret is warned of."""
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv(SECRET_ENV, secret)
    project.image(
        "vault",
        """
        FROM busybox:latest
        ARG TARGETPLATFORM
        RUN --mount=type=secret,id=token test -s /run/secrets/token \\
            && echo "$TARGETPLATFORM" > /built-for
        CMD ["sh", "-c", "echo ready; exec sleep 600"]
        """,
        SECRET_TOML,
    )
    project.image(
        "leaky",
        """
        FROM busybox:latest
        RUN --mount=type=secret,id=token echo "token is $(cat /run/secrets/token)"; exit 3
        """,
        SECRET_TOML,
    )
    project.image(
        "argy",
        """
        FROM busybox:latest
        ARG API_TOKEN
        RUN echo built > /built
        """,
        '[build-args]\nAPI_TOKEN = "a-value-in-plain-sight"\n',
    )
    project.tests(
        f"""
        import os

        import pytest


        @pytest.mark.image("vault")
        def test_vault(run, platform):
            assert run(["cat", "/built-for"]).stdout.strip() == platform.name
            assert run(["cat", "/run/secrets/token"]).exit_code != 0  # the build's only


        @pytest.mark.image("leaky")
        def test_leaky(image):
            pass


        @pytest.mark.image("argy")
        def test_argy(image):
            assert image.id


        @pytest.mark.image("vault")
        def test_prints_it(image):
            token = os.environ["{SECRET_ENV}"]
            print("the token is", token)
            assert token == "something else"
        """
    )
    report = project.path / "report.json"
    junit = project.path / "junit.xml"
    result = project.run(
        "--platforms",
        "amd64,arm64",
        "-n",
        "0",
        "-rA",
        "--multiarch-json",
        str(report),
        "--junitxml",
        str(junit),
    )
    result.assert_outcomes(passed=4, failed=2, errors=2)
    terminal = result.stdout.str() + result.stderr.str()
    assert secret not in terminal, "secret in the terminal output"
    assert "***" in terminal, "the failing build's log should show the secret redacted"
    assert secret not in junit.read_text(), "secret in the JUnit XML"
    assert secret not in report.read_text(), "secret in the JSON report"
    assert not [call for call in project.docker_calls() if secret in call], "on a command line"

    built = [b for b in read_json(report)["builds"] if b["image"] == "vault"]
    assert {b["platform"] for b in built} == {"linux/amd64", "linux/arm64"}
    for build in built:
        history = ["docker", "history", "--no-trunc", build["reference"]]
        shown = subprocess.run(history, capture_output=True, text=True, check=True).stdout
        assert "/run/secrets/token" in shown, shown  # the step that used it is there...
        assert secret not in shown, "secret in `docker history`"  # ...its value is not
        inspect = ["docker", "image", "inspect", build["reference"]]
        shown = subprocess.run(inspect, capture_output=True, text=True, check=True).stdout
        assert secret not in shown, "secret in `docker image inspect`"

    warning = "images/argy/image.toml: build arg API_TOKEN looks like a secret"
    assert warning in terminal, terminal
    assert 'secrets = { api_token = { env = "API_TOKEN" } }' in terminal, terminal


PORT_TESTS = """
import os
import subprocess
import urllib.request

import pytest

pytestmark = pytest.mark.image("web")


def test_bound(container, platform):
    ident = container.get_wrapped_container().id
    shown = subprocess.run(
        ["docker", "port", ident, "8080"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert {line.rsplit(":", 1)[0] for line in shown} == {os.environ["EXPECTED_ADDRESS"]}, shown
    bindings = container.get_wrapped_container().attrs["HostConfig"]["PortBindings"]["8080/tcp"]
    assert {b["HostIp"] for b in bindings} == {os.environ["EXPECTED_ADDRESS"]}, bindings
    host = container.get_container_host_ip()
    port = container.get_exposed_port(8080)
    body = urllib.request.urlopen(f"http://{host}:{port}/built-for", timeout=10).read()
    assert body.decode().strip() == platform.name
"""


@pytest.mark.parametrize(
    ("options", "address"),
    [((), "127.0.0.1"), (("--bind-address", "0.0.0.0"), "0.0.0.0")],  # noqa: S104
    ids=["default", "bind-address"],
)
def test_published_ports_listen_on_loopback_unless_told_otherwise(
    project: Project, monkeypatch: pytest.MonkeyPatch, options: tuple[str, ...], address: str
) -> None:
    project.image(
        "web",
        """
        FROM busybox:latest
        ARG TARGETPLATFORM
        RUN echo "$TARGETPLATFORM" > /built-for
        CMD ["sh", "-c", "exec httpd -f -p 8080 -h /"]
        """,
        'ports = [8080]\n[wait]\nhttp = "/built-for"\nport = 8080\n',
        unique=False,
    )
    project.tests(PORT_TESTS)
    monkeypatch.setenv("EXPECTED_ADDRESS", address)
    result = project.run("--platforms", "amd64,arm64", *options)
    result.assert_outcomes(passed=2)
