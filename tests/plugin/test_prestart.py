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

TIMELINE_TEMPLATE = """
    import json
    import os
    import time
    from pathlib import Path

    import pytest

    TIMELINE = Path(__file__).with_name("timeline.jsonl")


    @pytest.mark.image("__IMAGE__")
    @pytest.mark.parametrize("n", range(__TESTS__))
    def test_service(container, platform, n):
        called = time.time()
        attrs = container.get_wrapped_container().attrs
        time.sleep(__PAUSE__)
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


def timeline_tests(image: str, tests: int, pause: float) -> str:
    """``tests`` tests of ``image``'s container, each ``pause`` seconds long, that log their
    container and when their call began and ended to timeline.jsonl."""
    return (
        TIMELINE_TEMPLATE.replace("__IMAGE__", image)
        .replace("__TESTS__", str(tests))
        .replace("__PAUSE__", str(pause))
    )


# Long enough for the next test's container to be started meanwhile, even emulated.
TIMELINE_TESTS = timeline_tests("svc", 3, 1.5)


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
    project.tests(TIMELINE_TESTS)
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
    project.tests(
        f"""
        import subprocess
        import time

        import pytest


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
            time.sleep(1.5)


        @pytest.mark.image("svc")
        def test_skips(skipped, container, platform):
            pass


        @pytest.mark.image("svc")
        def test_before_other(container, platform):
            time.sleep(1.5)


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
    project.tests(
        """
        import time

        import pytest


        @pytest.mark.image("svc")
        def test_first(container, platform):
            time.sleep(1.5)


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
