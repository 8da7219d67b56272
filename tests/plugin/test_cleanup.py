"""Nothing is left behind: after a failing run, after Ctrl-C, and (by the next run) after a
SIGKILL; a run that is still alive is never swept; --keep-containers keeps and says how."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from acceptance import BUSYBOX_IMAGE, Project, containers_of_run, start_piped_inner, wait_until

SLOW_TEST = """
    import time
    import pytest

    @pytest.mark.image("box")
    def test_slow(container, platform):
        print("CONTAINER-STARTED", flush=True)
        time.sleep(300)
"""

SERVER_IMAGE = """
    FROM busybox:latest
    RUN mkdir -p /www && echo hello > /www/index.html
    CMD ["sh", "-c", "echo starting; httpd -f -v -p 8080 -h /www"]
"""


def _wait_for_containers(run_id: str, timeout: float = 120) -> list[str]:
    return wait_until(
        lambda: containers_of_run(run_id, all_states=False),
        timeout,
        f"a running container of run {run_id}",
        interval=0.3,
    )


def test_failing_run_leaves_nothing(project: Project) -> None:
    project.image("web", SERVER_IMAGE, 'ports = [8080]\n[wait]\nhttp = "/"\nport = 8080\n')
    project.tests(
        """
        import urllib.request
        import pytest

        @pytest.mark.image("web")
        def test_serves_then_fails(container, run, platform):
            port = container.get_exposed_port(8080)
            host = container.get_container_host_ip()
            body = urllib.request.urlopen(f"http://{host}:{port}/index.html").read()
            assert body == b"hello\\n"
            assert run(["false"]).exit_code == 1
            assert False, "deliberate failure"
        """
    )
    run_id = uuid.uuid4().hex
    result = project.run("--platforms", "amd64,arm64", "-n", "2", f"--testrunuid={run_id}")
    result.assert_outcomes(failed=2)
    # The failing test's report carries its container's logs.
    result.stdout.fnmatch_lines(["*container logs ?arm64?*", "*starting*"])
    assert containers_of_run(run_id) == []


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_ctrl_c_leaves_nothing(project: Project, workers: list[str]) -> None:
    project.image("box", BUSYBOX_IMAGE, '[wait]\nlog = "ready"\n')
    project.tests(SLOW_TEST)
    run_id = uuid.uuid4().hex
    inner = start_piped_inner(project, run_id, "--platforms", "amd64,arm64", *workers)
    try:
        _wait_for_containers(run_id)
        os.killpg(inner.pid, signal.SIGINT)
        output, _ = inner.communicate(timeout=120)
    finally:
        if inner.poll() is None:
            os.killpg(inner.pid, signal.SIGKILL)
    assert inner.returncode != 0, output
    assert containers_of_run(run_id) == [], output


def test_killed_run_is_reaped_by_the_next_run_but_a_live_run_is_not(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE, '[wait]\nlog = "ready"\n')
    project.tests(SLOW_TEST)
    dead_id, live_id = uuid.uuid4().hex, uuid.uuid4().hex
    dead = start_piped_inner(project, dead_id, "--platforms", "amd64")
    live = start_piped_inner(project, live_id, "--platforms", "amd64")
    try:
        _wait_for_containers(dead_id)
        _wait_for_containers(live_id)
        os.killpg(dead.pid, signal.SIGKILL)
        dead.wait(timeout=60)

        project.tests(
            """
            import pytest

            @pytest.mark.image("box")
            def test_quick(run, platform):
                assert run(["true"]).exit_code == 0
            """,
            name="test_quick.py",
        )
        result = project.run("--platforms", "amd64", "test_quick.py")
        result.assert_outcomes(passed=1)
        assert containers_of_run(dead_id) == []
        assert containers_of_run(live_id, all_states=False), "a live run's container was swept"
    finally:
        for process in (dead, live):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                process.communicate(timeout=120)
    assert containers_of_run(live_id) == []


def test_keep_containers_keeps_them_and_says_how_to_remove(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE, '[wait]\nlog = "ready"\n')
    project.tests(
        """
        import pytest

        @pytest.mark.image("box")
        def test_it(container, platform):
            pass
        """
    )
    run_id = uuid.uuid4().hex
    try:
        result = project.run("--platforms", "amd64", "--keep-containers", f"--testrunuid={run_id}")
        result.assert_outcomes(passed=1)
        kept = containers_of_run(run_id)
        assert len(kept) == 1
        result.stdout.fnmatch_lines(
            [
                "*remove them with: docker rm -f $(docker ps -aq --filter "
                f"label=pytest-multiarch.run={run_id})*"
            ]
        )
        # A later run does not reap kept containers, even though their run has ended.
        project.run("--platforms", "amd64").assert_outcomes(passed=1)
        assert containers_of_run(run_id) == kept
    finally:
        ids = containers_of_run(run_id)
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)


def _has_image(reference: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", reference], capture_output=True)
    return found.returncode == 0


def test_private_build_tags_of_a_dead_run_are_removed_but_a_live_runs_are_kept(
    project: Project, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed between buildx's export and the retag leaves its private tag: the next run
    removes it (its owner is dead), never the private tag of a run that is still alive."""
    from pytest_multiarch.engine.cleanup import owner_id
    from pytest_multiarch.runtime.build import PRIVATE_TAGS_DIR, record_private_tag

    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("MULTIARCH_RUN_STATE_DIR", str(state))
    victim = subprocess.Popen(["sleep", "300"])
    dead_owner = owner_id(victim.pid)
    victim.kill()
    victim.wait(timeout=30)
    tags = {}
    for kind, owner in (("dead", dead_owner), ("live", owner_id())):
        run_dir = state / "runs" / f"run-{uuid.uuid4().hex}"
        run_dir.mkdir(parents=True, mode=0o700)
        (run_dir / "owner").write_text(owner)
        tag = f"pytest-multiarch/leftover:{uuid.uuid4().hex[:16]}-amd64-tmp-{uuid.uuid4().hex[:12]}"
        subprocess.run(["docker", "tag", "busybox:latest", tag], check=True)
        record_private_tag(run_dir / PRIVATE_TAGS_DIR, tag, {None})
        tags[kind] = tag
    try:
        project.image("box", BUSYBOX_IMAGE)
        project.tests(
            """
            import pytest

            @pytest.mark.image("box")
            def test_quick(run, platform):
                assert run(["true"]).exit_code == 0
            """
        )
        project.run("--platforms", "amd64").assert_outcomes(passed=1)
        assert not _has_image(tags["dead"]), "a dead run's private tag was left behind"
        assert _has_image(tags["live"]), "a live run's private tag was swept"
    finally:
        for tag in tags.values():
            subprocess.run(["docker", "image", "rm", tag], capture_output=True, check=False)


# A docker CLI that holds the retag of a private build tag (``docker tag <...-tmp-...> <tag>``)
# until the test says: it writes the private tag's name to $HOLD_DIR/held, then waits for a
# line on the FIFO $HOLD_DIR/release ("go": carry on; anything else: fail the call).
HOLDING_SHIM = """#!/bin/sh
previous=
for argument in "$@"; do
    if [ "$previous" = tag ]; then
        case "$argument" in
            *-tmp-*)
                echo "$argument" > "$HOLD_DIR/held.part"
                mv "$HOLD_DIR/held.part" "$HOLD_DIR/held"
                read -r answer < "$HOLD_DIR/release"
                [ "$answer" = go ] || exit 1
                ;;
        esac
    fi
    previous=$argument
done
exec "__REAL__" "$@"
"""

QUICK_TEST = """
    import pytest

    @pytest.mark.image("{image}")
    def test_quick(run, platform):
        assert run(["true"]).exit_code == 0
"""


def _held_run(project: Project, image: str, hold: Path) -> subprocess.Popen[str]:
    """An inner run of ``image``'s test, with a state directory of its own (somewhere no other
    run looks), held by the shim once its build made its private tag."""
    hold.mkdir()
    os.mkfifo(hold / "release")
    shim = hold / "docker"
    shim.write_text(HOLDING_SHIM.replace("__REAL__", shutil.which("docker") or "docker"))
    shim.chmod(0o755)
    project.image(image, BUSYBOX_IMAGE)
    project.tests(QUICK_TEST.format(image=image), name=f"test_{image}.py")
    environment = {
        **os.environ,
        "XDG_STATE_HOME": str(hold / "state"),
        "MULTIARCH_DOCKER": str(shim),
        "HOLD_DIR": str(hold),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--platforms",
            "amd64",
            f"test_{image}.py",
        ],
        cwd=project.path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _held_tag(process: subprocess.Popen[str], hold: Path) -> str:
    """The private tag of ``process``'s build, once it is on the engine and its retag held."""

    def held() -> str:
        if process.poll() is not None:
            pytest.fail(f"the held run ended (exit {process.returncode}):\n{process.stdout.read()}")
        marker = hold / "held"
        return marker.read_text().strip() if marker.exists() else ""

    return wait_until(held, 600, "the run's build to make its private tag")


def test_private_tag_of_a_killed_run_is_swept_from_the_engine_by_a_run_with_another_state_dir(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 21 point 1: a run SIGKILLed between buildx's export and the retag, whose state
    directory no later run reads, leaves its private tag; the next run finds it on the engine
    and removes it (its owner is dead), never the private tag of an owner that is alive.

    The live owner is this test's own process, not a second held run: a run held at its retag
    for longer than the retag's 60 s limit (the next run takes that long on a loaded machine)
    gives up and removes its own tag, which would read as a sweep."""
    from pytest_multiarch.engine.cleanup import owner_id
    from pytest_multiarch.runtime.build import private_tag

    dead_hold = tmp_path_factory.mktemp("held") / "dead"
    dead = _held_run(project, "doomed", dead_hold)
    tags: list[str] = []
    try:
        dead_tag = _held_tag(dead, dead_hold)
        tags.append(dead_tag)
        live_tag = private_tag(f"pytest-multiarch/alive:{uuid.uuid4().hex[:16]}-amd64", owner_id())
        subprocess.run(["docker", "tag", dead_tag, live_tag], check=True, timeout=120)
        tags.append(live_tag)
        assert _has_image(dead_tag)
        assert _has_image(live_tag)
        os.killpg(dead.pid, signal.SIGKILL)
        dead.wait(timeout=60)
        assert _has_image(dead_tag), "the killed run's private tag is its leftover"

        project.image("box", BUSYBOX_IMAGE, unique=False)
        project.tests(QUICK_TEST.format(image="box"), name="test_quick.py")
        result = project.run("--platforms", "amd64", "test_quick.py")
        result.assert_outcomes(passed=1)
        assert not _has_image(dead_tag), f"a dead run's private tag was left behind: {dead_tag}"
        assert _has_image(live_tag), f"a live owner's private tag was swept: {live_tag}"
    finally:
        if dead.poll() is None:
            os.killpg(dead.pid, signal.SIGKILL)
            dead.wait(timeout=60)
        for tag in tags:
            subprocess.run(["docker", "image", "rm", tag], capture_output=True, check=False)
