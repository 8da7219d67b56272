"""A pool of engines for one platform, for real, on one machine: amd64 on the default engine and
this host's second engine (``multiarch host engine up e12``). Both engines receive tests, each
builds its own image, nothing of the run is left on either; killing one mid-run fails only the
tests in flight there, the rest run on the other, and the loss is reported."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from acceptance import (
    BUSYBOX_IMAGE,
    Project,
    docker_cli,
    finish_inner,
    read_json,
    start_inner,
    wait_until,
)
from pytest_multiarch.provision.second_engines import EngineLayout

RUN_LABEL = "pytest-multiarch.run"
TOML = '[wait]\nlog = "ready"\ntimeout = 30\n'

SLEEP_TESTS = """
    import pytest

    @pytest.mark.image("box")
    @pytest.mark.parametrize("step", range(STEPS))
    def test_step(run, platform, step, record_property):
        record_property("fixture_engine", platform.engine)
        assert run(["sleep", "1"]).exit_code == 0
"""

# The controller hears every worker's reports: each test's outcome, as it ends.
RECORDER = """
    import json

    class Recorder:
        def pytest_runtest_logreport(self, report):
            if report.when == "call" or report.failed:
                with open("phases.jsonl", "a") as handle:
                    message = str(report.longrepr)[-400:] if report.failed else ""
                    properties = dict(report.user_properties)
                    handle.write(json.dumps({
                        "nodeid": report.nodeid, "outcome": report.outcome,
                        "engine": properties.get("engine", ""),
                        "fixture_engine": properties.get("fixture_engine", ""),
                        "message": message,
                    }) + "\\n")

    def pytest_configure(config):
        if not hasattr(config, "workerinput"):
            config.pluginmanager.register(Recorder(), "recorder")
"""


def _read(phases: Path) -> list[dict[str, Any]]:
    if not phases.exists():
        return []
    return [json.loads(line) for line in phases.read_text().split("\n")[:-1] if line]


def _left(engine: str | None, run_id: str) -> str:
    return docker_cli(engine, "ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").stdout.strip()


def test_both_engines_of_a_pool_receive_tests_and_build_their_image(
    project: Project, second_engine: EngineLayout
) -> None:
    e12 = second_engine.docker_host
    project.image("box", BUSYBOX_IMAGE, TOML)
    project.tests(SLEEP_TESTS.replace("STEPS", "8"))
    run_id = uuid.uuid4().hex
    proc = start_inner(
        project,
        run_id,
        "-n",
        "2",
        "--platforms",
        "amd64",
        f"--engine=amd64=default,{e12}",
        "--multiarch-json",
        "r.json",
    )
    output = finish_inner(project, proc)
    assert proc.returncode == 0, output
    report = read_json(project.path / "r.json")
    tests = report["tests"]
    assert len(tests) == 8, tests
    assert {t["outcome"] for t in tests} == {"passed"}
    spread = Counter(t["engine"] for t in tests)
    # Two workers, one per engine of the pool: both engines ran tests.
    assert len(spread) == 2, spread
    assert spread[e12] >= 1, spread
    assert report["lost_engines"] == []
    # Each engine built (or found) the image itself: it is on both.
    references = {b["reference"] for b in report["builds"] if b["platform"] == "linux/amd64"}
    assert references, report["builds"]
    for reference in references:
        assert docker_cli(e12, "image", "inspect", reference).returncode == 0, reference
        assert docker_cli(None, "image", "inspect", reference).returncode == 0, reference
    for engine in (e12, None):
        assert not _left(engine, run_id), engine


def test_killing_an_engine_of_a_pool_mid_run_fails_only_its_tests_in_flight(
    project: Project, second_engine: EngineLayout
) -> None:
    e12 = second_engine.docker_host
    project.image("box", BUSYBOX_IMAGE, TOML)
    project.tests(SLEEP_TESTS.replace("STEPS", "12"))
    project.tests(RECORDER, name="conftest.py")
    run_id = uuid.uuid4().hex
    proc = start_inner(
        project,
        run_id,
        "-n",
        "2",
        "--platforms",
        "amd64",
        f"--engine=amd64=default,{e12}",
        "--multiarch-json",
        "r.json",
    )
    phases = project.path / "phases.jsonl"

    # Killed once a test has passed on e12 and another one's container runs there.
    def mid_run() -> bool:
        if proc.poll() is not None:
            return True  # too late: told by the assertion below
        passed = any(r["outcome"] == "passed" and r["engine"] == e12 for r in _read(phases))
        return passed and bool(_left(e12, run_id))

    log = project.path / "inner.log"
    wait_until(mid_run, 300, "a pass and a running container on e12", context=log.read_text)
    assert proc.poll() is None, log.read_text()
    before = len(_read(phases))
    os.kill(int(second_engine.docker_pidfile.read_text().strip()), signal.SIGKILL)
    output = finish_inner(project, proc)
    records = _read(phases)
    assert len(records) == 12, records
    failed = [r for r in records if r["outcome"] != "passed"]
    # At most the one test in flight on e12 failed (its container may have just ended), and
    # says why; every other test passed, the ones after the kill on the default engine.
    assert len(failed) <= 1, failed
    assert all("stopped answering" in r["message"] for r in failed), failed
    assert all(r["engine"] == e12 for r in failed), failed
    after = [r for r in records[before:] if r not in failed]
    assert after, records
    assert all(r["outcome"] == "passed" for r in after), after
    assert sum(r["engine"] != e12 for r in after) >= len(after) - 1, after
    # The test's own platform argument names the engine it ran on, after the move as before.
    moved = [r for r in after if r["engine"] != e12]
    assert all(r["fixture_engine"] != e12 for r in moved), moved
    on_e12 = [r for r in records if r["engine"] == e12 and r["outcome"] == "passed"]
    assert all(r["fixture_engine"] == e12 for r in on_e12), on_e12
    assert proc.returncode == (1 if failed else 0), output
    print(
        f"\n{before} tests ended before the kill, {len(failed)} failed in flight on e12, "
        f"{len(after)} passed after it ({Counter(r['engine'] == e12 for r in after)[False]} on "
        "the default engine)"
    )
    report = read_json(project.path / "r.json")
    assert len(report["lost_engines"]) == 1, report["lost_engines"]
    assert e12 in report["lost_engines"][0]
    assert "of a pool stopped answering during the run" in output
    assert not _left(None, run_id)
