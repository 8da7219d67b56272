"""How long each test took in earlier runs, for handing the long ones out first
(pytest_multiarch.run.scheduling). Kept in pytest's own cache (``.pytest_cache``, key
``multiarch/durations``), next to ``--lf``'s data: test id (platform included) -> seconds.

Recorded on the controller at the end of every run that has pytest's cache (each test that
finished: setup, call and teardown together, without the time spent waiting for its image's
build; a later run's figure replaces an earlier one; tests that did not run this time keep
theirs). With ``-p no:cacheprovider`` nothing is recorded and nothing is read: the user turned
off what carries data from one run to the next, so tests go out in collection order.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from pytest_multiarch.run.state import RETRIED

CACHE_KEY = "multiarch/durations"


def cache_of(config: pytest.Config) -> Any | None:
    """pytest's cache, or None under ``-p no:cacheprovider``."""
    return getattr(config, "cache", None)


def recorded_durations(config: pytest.Config) -> dict[str, float]:
    """Test id -> seconds, as earlier runs recorded them; empty without pytest's cache. Entries
    that are not a test id and a number of seconds (a cache edited by hand) are left out."""
    cache = cache_of(config)
    if cache is None:
        return {}
    return valid_durations(cache.get(CACHE_KEY, {}))


def valid_durations(data: object) -> dict[str, float]:
    if not isinstance(data, dict):
        return {}
    return {
        nodeid: float(seconds)
        for nodeid, seconds in data.items()
        if isinstance(nodeid, str)
        and isinstance(seconds, int | float)
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and seconds >= 0
    }


class DurationRecorder:
    """Controller-side: adds up each test's phases (local, or reported by an xdist worker) and
    writes them into pytest's cache at the end of the session."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.running: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.outcome == RETRIED:
            # The emulator failed this attempt: the test runs again, and that run is measured.
            self.running.pop(report.nodeid, None)
            return
        seconds = self.running.pop(report.nodeid, 0.0) + max(0.0, float(report.duration))
        if report.when == "teardown":
            self.finished[report.nodeid] = round(seconds, 3)
        else:
            self.running[report.nodeid] = seconds

    def pytest_sessionfinish(self) -> None:
        """Only tests that finished: one interrupted halfway would look short."""
        if not self.finished:
            return
        durations = valid_durations(self.cache.get(CACHE_KEY, {}))
        durations.update(self.finished)
        self.cache.set(CACHE_KEY, durations)


def register_recorder(config: pytest.Config) -> None:
    """On the controller, when pytest's cache is there."""
    cache = cache_of(config)
    if cache is not None:
        config.pluginmanager.register(DurationRecorder(cache), "multiarch-durations")
