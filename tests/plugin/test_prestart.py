"""The next test's ``container`` is started while the current test runs
(pytest_multiarch.runtime.prestart), seen from the engine's own clock: a prestarted container was
created before the test before it ended; without prestarting, a test's container is created in its
own
setup, after that. Still one fresh container per test; one that no test takes is removed during
the run."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from acceptance import BUSYBOX_IMAGE, Project, assert_outcome, containers_of_run

TOML = '[wait]\nlog = "ready"\ntimeout = 60\n'

# A module of the inner project, installed by its conftest: every service container this
# process creates (the docker SDK's one create call; one-shot runs carry a call label and are
# left out), and those its tests took. A test waits on it for the next test's container, one
# created but not taken yet, instead of sleeping and hoping it was begun meanwhile.
PROBE = """
    import os
    import time
    from pathlib import Path

    import docker.api.container

    _create = docker.api.container.ContainerApiMixin.create_container


    def _ids(kind):
        path = Path(__file__).with_name(f"{kind}-{os.getpid()}")
        return path, (path.read_text().split() if path.exists() else [])


    def _add(kind, container_id):
        with _ids(kind)[0].open("a") as out:
            out.write(container_id + "\\n")


    def _recording(self, *args, **kwargs):
        made = _create(self, *args, **kwargs)
        if "pytest-multiarch.call" not in (kwargs.get("labels") or {}):
            _add("created", made["Id"])
        return made


    def install():
        docker.api.container.ContainerApiMixin.create_container = _recording


    def next_container_created(mine, timeout):
        \"\"\"Note ``mine`` as taken, then wait until this process has created a container that
        no test took (the next test's, begun ahead); False once ``timeout`` seconds have passed
        without one.\"\"\"
        _add("taken", mine)
        deadline = time.monotonic() + timeout
        while True:
            if set(_ids("created")[1]) - set(_ids("taken")[1]):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
"""

PROBE_CONFTEST = "import prestart_probe\n\nprestart_probe.install()\n"

TIMELINE_TEMPLATE = """
    import json
    import os
    import time
    from pathlib import Path

    import pytest
    from prestart_probe import next_container_created

    TIMELINE = Path(__file__).with_name("timeline.jsonl")


    @pytest.mark.image("__IMAGE__")
    @pytest.mark.parametrize("n", range(__TESTS__))
    def test_service(container, platform, n, request):
        called = time.time()
        attrs = container.get_wrapped_container().attrs
        # The last test of a run without xdist has no next test to begin a container for.
        last = request.node is request.session.items[-1]
        next_container_created(attrs["Id"], 0 if last else __WAIT__)
        line = {
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "test": f"{n}-{platform.short}",
            "id": attrs["Id"],
            "created": attrs["Created"],
            "called": called,
            "ended": time.time(),
        }
        with TIMELINE.open("a") as handle:
            handle.write(json.dumps(line) + "\\n")
"""


def timeline_tests(image: str, tests: int, wait: float) -> str:
    """``tests`` tests of ``image``'s container that log their container and when their call
    began and ended to timeline.jsonl. Each ends once its process has created the next test's
    container, or after ``wait`` seconds (0: at once); call :func:`with_probe` first."""
    return (
        TIMELINE_TEMPLATE.replace("__IMAGE__", image)
        .replace("__TESTS__", str(tests))
        .replace("__WAIT__", str(wait))
    )


def with_probe(project: Project) -> None:
    """The inner project records the containers each of its processes creates."""
    project.tests(PROBE, name="prestart_probe.py")
    project.tests(PROBE_CONFTEST, name="conftest.py")


# Long enough for the next test's container to be begun meanwhile, even emulated and under
# load; a test without a next one in its process waits this long for nothing, and shows that
# nothing is begun for a next test that cannot have a container started ahead.
TIMELINE_TESTS = timeline_tests("svc", 3, 10)


def _engine_time(text: str) -> float:
    """The engine's RFC 3339 time with nanoseconds, as a POSIX timestamp."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(whole + "+00:00").timestamp()
    return moment + float(f"0.{fraction or '0'}")


def _timeline(project: Project) -> dict[str, list[dict[str, Any]]]:
    """Each process's tests in the order it ran them."""
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for line in (project.path / "timeline.jsonl").read_text().splitlines():
        entry = json.loads(line)
        by_worker.setdefault(entry["worker"], []).append(entry)
    return by_worker


def _created_before_previous_ended(timeline: dict[str, list[dict[str, Any]]]) -> list[bool]:
    return [
        _engine_time(current["created"]) < previous["ended"]
        for entries in timeline.values()
        for previous, current in itertools.pairwise(entries)
    ]


def test_a_cold_run_prestarts_only_containers_of_images_already_built(project: Project) -> None:
    """In file order: three amd64 tests, then three arm64 tests. The arm64 image is built by the
    first arm64 test, so nothing is started ahead for it while the last amd64 test runs."""
    project.image("svc", BUSYBOX_IMAGE, TOML)
    with_probe(project)
    project.tests(TIMELINE_TESTS)
    run_id = uuid.uuid4().hex
    result = project.run("-v", "--platforms", "amd64,arm64", f"--testrunuid={run_id}")
    result.assert_outcomes(passed=6)
    timeline = _timeline(project)
    assert [entry["test"] for entry in timeline["main"]] == [
        "0-amd64", "1-amd64", "2-amd64", "0-arm64", "1-arm64", "2-arm64"
    ]  # fmt: skip
    assert _created_before_previous_ended(timeline) == [True, True, False, True, True]
    assert len({entry["id"] for entry in timeline["main"]}) == 6  # a fresh one for each test
    assert containers_of_run(run_id) == []


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_a_warm_run_starts_every_next_container_while_the_current_test_runs(
    project: Project, workers: list[str]
) -> None:
    project.image("svc", BUSYBOX_IMAGE, TOML)
    with_probe(project)
    project.tests(TIMELINE_TESTS)
    project.run("--platforms", "amd64,arm64").assert_outcomes(passed=6)  # builds, verifies
    (project.path / "timeline.jsonl").unlink()
    run_id = uuid.uuid4().hex
    result = project.run("-v", "--platforms", "amd64,arm64", f"--testrunuid={run_id}", *workers)
    result.assert_outcomes(passed=6)
    timeline = _timeline(project)
    ids = [entry["id"] for entries in timeline.values() for entry in entries]
    assert len(set(ids)) == 6
    prestarted = _created_before_previous_ended(timeline)
    assert prestarted, timeline  # some process ran more than one test
    assert all(prestarted), timeline
    assert containers_of_run(run_id) == []


SLOW_SERVICE_IMAGE = """
    FROM busybox:latest
    CMD ["sh", "-c", "sleep 1; echo ready; exec sleep 600"]
"""

SETUP_OVERLAP_TESTS = timeline_tests("slow", 4, 0)


def test_a_test_that_waits_for_its_own_container_has_the_next_one_started_meanwhile(
    project: Project,
) -> None:
    """Short tests of a service that takes a second to be ready: the next test's container is
    begun as soon as the current test has taken its own, in its setup, so the two starts
    overlap; begun only once the current test's call begins (or not at all), every such test
    would wait a whole start of its own. The first test and the third wait for their own
    container (the first has none started ahead; the third's was begun while the second, whose
    container was ready, took no time), and their successors' containers exist before their
    calls begin. The second's successor may be begun a moment after its (immediate) call."""
    project.image("slow", SLOW_SERVICE_IMAGE, TOML)
    with_probe(project)
    project.tests(SETUP_OVERLAP_TESTS)
    project.run("--platforms", "amd64").assert_outcomes(passed=4)  # builds, verifies
    (project.path / "timeline.jsonl").unlink()
    run_id = uuid.uuid4().hex
    result = project.run("-v", "--platforms", "amd64", f"--testrunuid={run_id}")
    result.assert_outcomes(passed=4)
    entries = _timeline(project)["main"]
    assert [entry["test"] for entry in entries] == ["0-amd64", "1-amd64", "2-amd64", "3-amd64"]
    assert len({entry["id"] for entry in entries}) == 4
    created_before_previous_call = [
        _engine_time(current["created"]) < previous["called"]
        for previous, current in itertools.pairwise(entries)
    ]
    assert created_before_previous_call[0], entries
    assert created_before_previous_call[2], entries
    assert containers_of_run(run_id) == []


def test_no_prestart_starts_each_container_in_its_own_tests_setup(project: Project) -> None:
    project.image("svc", BUSYBOX_IMAGE, TOML)
    with_probe(project)
    # Each test but the last waits 3 s for a container begun ahead: none may come.
    project.tests(timeline_tests("svc", 3, 3))
    result = project.run("-v", "--platforms", "amd64", "--no-prestart")
    result.assert_outcomes(passed=3)
    prestarted = _created_before_previous_ended(_timeline(project))
    assert prestarted == [False, False]


def test_a_prestarted_container_no_test_takes_is_removed_during_the_run(project: Project) -> None:
    """The next test skips before it asks for its container, and the one after uses another
    image: the containers started ahead for them are removed while the run goes on, and every
    test's outcome is what it would be without prestarting."""
    project.image("svc", BUSYBOX_IMAGE, TOML)
    project.image("other", BUSYBOX_IMAGE, TOML)
    run_id = uuid.uuid4().hex
    with_probe(project)
    project.tests(
        f"""
        import subprocess
        import time

        import pytest
        from prestart_probe import next_container_created


        @pytest.fixture
        def skipped():
            pytest.skip("decided at run time, before the container is asked for")


        def running_of_run():
            listed = subprocess.run(
                ["docker", "ps", "-q", "--filter", "label=pytest-multiarch.run={run_id}"],
                capture_output=True, text=True, check=True,
            )
            return listed.stdout.split()


        @pytest.mark.image("svc")
        def test_first(container, platform):
            assert next_container_created(container.get_wrapped_container().id, 60)


        @pytest.mark.image("svc")
        def test_skips(skipped, container, platform):
            pass


        @pytest.mark.image("svc")
        def test_before_other(container, platform):
            # Takes the container begun for test_skips (the same image and platform). Nothing
            # is begun for test_other_image meanwhile: its image is not built yet.
            pass


        @pytest.mark.image("other")
        def test_other_image(container, platform):
            # The container started ahead was of "svc": not this test's; it goes away.
            deadline = time.monotonic() + 30
            while len(running_of_run()) > 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert running_of_run() == [container.get_wrapped_container().id[:12]]
        """
    )
    result = project.run("-v", "--platforms", "amd64", f"--testrunuid={run_id}")
    assert_outcome(result, "test_first[amd64]", "PASSED")
    assert_outcome(result, "test_skips[amd64]", "SKIPPED")
    assert_outcome(result, "test_before_other[amd64]", "PASSED")
    assert_outcome(result, "test_other_image[amd64]", "PASSED")
    assert containers_of_run(run_id) == []


def test_a_prestarted_container_that_fails_fails_its_own_test_with_the_same_message(
    project: Project,
) -> None:
    project.image("svc", BUSYBOX_IMAGE, TOML)
    project.image("broken", 'FROM busybox:latest\nCMD ["sh", "-c", "echo oops; exit 3"]\n', TOML)
    with_probe(project)
    project.tests(
        """
        import pytest
        from prestart_probe import next_container_created


        @pytest.mark.image("svc")
        def test_first(container, platform):
            # test_broken's container is begun (and fails) while this test runs.
            assert next_container_created(container.get_wrapped_container().id, 60)


        @pytest.mark.image("broken")
        def test_broken(container, platform):
            pass
        """
    )
    # test_broken's image is built by the time test_first runs only if a process has resolved
    # it: give it an earlier test of its own.
    Path(project.path / "test_a_build.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.image('broken')\n"
        "def test_build(image, platform):\n"
        "    pass\n"
    )
    result = project.run("-v", "--platforms", "amd64")
    assert_outcome(result, "test_build[amd64]", "PASSED")
    assert_outcome(result, "test_first[amd64]", "PASSED")
    assert_outcome(result, "test_broken[amd64]", "ERROR")
    result.stdout.fnmatch_lines(["*container exited with code 3 before it was ready*", "*oops*"])
