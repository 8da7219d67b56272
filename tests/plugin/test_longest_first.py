"""Longest first under ``-n``: a run records each test's duration in pytest's cache, and the
next run hands the long test out first; ``--multiarch-order=collection`` keeps collection order.
The inner tests note when they start (and on which worker): the order is asserted, not the
wall time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from acceptance import Project

SUITE = """
    import os
    import time

    import pytest

    def _started(name):
        line = f"{time.monotonic()} {os.environ['PYTEST_XDIST_WORKER']} {name}\\n"
        with open(os.path.join(os.path.dirname(__file__), "starts.log"), "a") as log:
            log.write(line)

    @pytest.mark.parametrize("n", range(7))
    def test_short(platform, n):
        _started(f"short{n}")

    def test_long(platform):
        _started("long")
        time.sleep(1.0)
"""
SHORTS = [f"short{n}" for n in range(7)]


def _starts(project: Project) -> list[tuple[str, str]]:
    """(worker, test) in the order the tests started; the log is emptied for the next run."""
    log = project.path / "starts.log"
    lines = [line.split() for line in log.read_text().splitlines()]
    log.unlink()
    return [(worker, name) for _, worker, name in sorted(lines, key=lambda f: float(f[0]))]


def _per_worker(starts: list[tuple[str, str]]) -> list[list[str]]:
    workers = sorted({worker for worker, _ in starts})
    return [[name for worker, name in starts if worker == each] for each in workers]


def _run(project: Project, *args: str) -> list[tuple[str, str]]:
    # Without -p no:cacheprovider: the durations live in pytest's cache.
    result = project.pytester.runpytest_subprocess("-n", "2", *args, timeout=600)
    result.assert_outcomes(passed=8)
    return _starts(project)


def _in_collection_order(starts: list[tuple[str, str]]) -> None:
    for queue in _per_worker(starts):
        assert queue == [name for name in [*SHORTS, "long"] if name in queue], starts


def test_the_second_run_sends_the_long_test_first(project: Project) -> None:
    project.tests(SUITE)
    first = _run(project)
    _in_collection_order(first)  # nothing recorded yet: collection order
    cache = project.path / ".pytest_cache" / "v" / "multiarch" / "durations"
    recorded = json.loads(cache.read_text())
    long = next(nodeid for nodeid in recorded if "test_long[" in nodeid)
    assert long.startswith("test_images.py::test_long[")  # keyed by test id, platform included
    assert recorded[long] >= 1.0
    assert all(seconds < recorded[long] for nodeid, seconds in recorded.items() if nodeid != long)

    second = _run(project)
    # The first test its worker ran (in the first run, the last); when the other worker's first
    # tests start against it depends on how fast each worker came up, so that is not asserted.
    assert any(queue[0] == "long" for queue in _per_worker(second)), second


def test_collection_order_when_asked(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.tests(SUITE)
    _run(project)
    starts = _run(project, "--multiarch-order=collection")
    _in_collection_order(starts)
    assert any(queue[-1] == "long" for queue in _per_worker(starts)), starts
    monkeypatch.setenv("MULTIARCH_ORDER", "collection")
    _in_collection_order(_run(project))


def test_without_pytests_cache_nothing_is_recorded(project: Project) -> None:
    project.tests(SUITE)
    result = project.run("-n", "2")
    result.assert_outcomes(passed=8)
    _in_collection_order(_starts(project))
    assert not Path(project.path / ".pytest_cache").exists()
