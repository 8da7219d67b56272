"""Longest first: earlier runs' durations decide the order in which xdist's workers get tests
(never measured first, in collection order; then longest first), recorded in pytest's cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_multiarch.run.durations import CACHE_KEY, DurationRecorder, valid_durations
from pytest_multiarch.run.options import DEFAULT_SOURCE, resolve
from pytest_multiarch.run.scheduling import dispatch_order, engine_grouper, make_scheduler

from tests.unit.test_engines import FakeNode, FakeXdistConfig
from tests.unit.test_options import FakeConfig as OptionsConfig

# ---- the order --------------------------------------------------------------------------------


def test_unknown_tests_first_in_collection_order_then_longest_first() -> None:
    nodeids = ["a", "b", "c", "d", "e", "f"]
    durations = {"a": 1.0, "c": 12.0, "d": 1.0, "f": 3.0}
    # b and e were never measured: they go first, as collected; a and d tie: as collected.
    assert dispatch_order(nodeids, durations) == [1, 4, 2, 5, 0, 3]


def test_without_durations_the_order_is_the_collection_order() -> None:
    assert dispatch_order(["x", "y", "z"], {}) == [0, 1, 2]
    assert dispatch_order([], {"x": 1.0}) == []


def test_durations_are_per_platform() -> None:
    nodeids = ["t.py::test_x[amd64]", "t.py::test_x[s390x]"]
    durations = {"t.py::test_x[amd64]": 0.5, "t.py::test_x[s390x]": 9.0}
    assert dispatch_order(nodeids, durations) == [1, 0]


# ---- the scheduler ----------------------------------------------------------------------------

# Twelve tests of 1 s, then one of 12 s: the suite of the issue and of
# benchmarks/longest_first.py.
SKEWED = [f"t.py::test_short[amd64-{n}]" for n in range(12)] + ["t.py::test_long[amd64]"]
COST = {nodeid: (12.0 if "long" in nodeid else 1.0) for nodeid in SKEWED}


def _run(scheduler: Any, collection: list[str]) -> tuple[float, dict[str, float]]:
    """Two workers run what they are sent, in order, and report each test when it ends (so the
    scheduler refills a worker then): (when the last one finished, when each test started)."""
    nodes = [FakeNode(), FakeNode()]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)
    scheduler.schedule()
    done = [0, 0]
    ends: dict[int, float] = {}  # worker -> when its running test ends
    started: dict[str, float] = {}
    now = 0.0

    def start_next(n: int) -> None:
        if done[n] < len(nodes[n].sent) and n not in ends:
            nodeid = collection[nodes[n].sent[done[n]]]
            assert nodeid not in started  # each test once
            started[nodeid] = now
            ends[n] = now + COST.get(nodeid, 1.0)  # a new test takes 1 s

    for n in range(2):
        start_next(n)
    while ends:
        n = min(ends, key=lambda k: (ends[k], k))
        now = ends.pop(n)
        index = nodes[n].sent[done[n]]
        done[n] += 1
        scheduler.mark_test_complete(nodes[n], index, COST.get(collection[index], 1.0))
        for k in range(2):
            start_next(k)
    return now, started


def test_the_long_test_goes_out_first_and_the_run_ends_near_the_ideal() -> None:
    ideal = sum(COST.values()) / 2
    long = "t.py::test_long[amd64]"
    in_collection_order, plain = _run(make_scheduler(FakeXdistConfig(), None), SKEWED)
    assert plain[long] == max(plain.values())  # the long test starts last
    assert in_collection_order >= 1.4 * ideal
    longest, started = _run(make_scheduler(FakeXdistConfig(), None, durations=COST), SKEWED)
    assert set(started) == set(SKEWED)
    assert started[long] == 0.0
    assert longest <= 1.15 * ideal


def test_a_test_never_measured_goes_out_before_the_long_one() -> None:
    collection = [*SKEWED, "t.py::test_new[amd64]"]
    _, started = _run(make_scheduler(FakeXdistConfig(), None, durations=COST), collection)
    assert started["t.py::test_new[amd64]"] == 0.0
    # Right after it, on the same worker; the other worker started with a short test.
    assert started["t.py::test_long[amd64]"] == 1.0
    assert sorted(started.values())[:3] == [0.0, 0.0, 1.0]


def test_with_engines_each_engine_gets_its_long_tests_first() -> None:
    collection = [f"t.py::test_x[s390x-{n}]" for n in range(4)] + [
        f"t.py::test_x[arm64-{n}]" for n in range(4)
    ]
    durations = {nodeid: float(n % 4) for n, nodeid in enumerate(collection)}
    scheduler = make_scheduler(
        FakeXdistConfig(), None, engine_grouper({"s390x": "", "arm64": "arm-box"}), durations
    )
    nodes = [FakeNode(), FakeNode()]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)
    scheduler.schedule()
    first = {collection[node.sent[0]] for node in nodes}
    # One worker per engine, each starting with its engine's longest test.
    assert first == {"t.py::test_x[s390x-3]", "t.py::test_x[arm64-3]"}
    for node in nodes:
        engines = {collection[i].split("[")[1].split("-")[0] for i in node.sent}
        assert len(engines) == 1


# ---- the record -------------------------------------------------------------------------------


@dataclass
class FakeCache:
    data: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value


@dataclass
class FakeReport:
    nodeid: str
    when: str
    duration: float
    outcome: str = "passed"


def _feed(recorder: DurationRecorder, nodeid: str, *phases: tuple[str, float, str]) -> None:
    for when, duration, outcome in phases:
        recorder.pytest_runtest_logreport(FakeReport(nodeid, when, duration, outcome))  # type: ignore[arg-type]


def test_a_finished_test_is_recorded_with_all_its_phases() -> None:
    cache = FakeCache({CACHE_KEY: {"old::test[amd64]": 4.0, "t::a[amd64]": 9.0}})
    recorder = DurationRecorder(cache)
    _feed(recorder, "t::a[amd64]", ("setup", 0.5, "passed"), ("call", 2.0, "failed"))
    _feed(recorder, "t::a[amd64]", ("teardown", 0.25, "passed"))
    # Interrupted in its call: no teardown report, so no figure that would look short.
    _feed(recorder, "t::b[amd64]", ("setup", 0.1, "passed"))
    # The emulator failed the first attempt; the second one is what the test takes.
    _feed(
        recorder,
        "t::c[s390x]",
        ("setup", 3.0, "passed"),
        ("call", 5.0, "rerun"),
        ("setup", 1.0, "passed"),
        ("call", 2.0, "passed"),
        ("teardown", 0.0, "passed"),
    )
    recorder.pytest_sessionfinish()
    assert cache.data[CACHE_KEY] == {
        "old::test[amd64]": 4.0,  # not run this time: kept
        "t::a[amd64]": 2.75,  # replaced
        "t::c[s390x]": 3.0,
    }


def test_a_run_that_finished_no_test_leaves_the_record_alone() -> None:
    cache = FakeCache()
    DurationRecorder(cache).pytest_sessionfinish()
    assert cache.data == {}


def test_a_record_edited_by_hand_keeps_only_what_makes_sense() -> None:
    assert valid_durations(["t::a"]) == {}
    assert valid_durations(None) == {}
    good = {"t::a": 1, "t::b": 2.5}
    bad = {"t::c": "slow", "t::d": -1.0, "t::e": float("nan"), "t::f": True, "t::g": None}
    assert valid_durations(good | bad) == {"t::a": 1.0, "t::b": 2.5}


# ---- the option -------------------------------------------------------------------------------


def test_the_order_option_defaults_to_longest_and_names_a_bad_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MULTIARCH_ORDER", raising=False)
    found = resolve(OptionsConfig(), "multiarch-order")  # type: ignore[arg-type]
    assert (found.value, found.source) == ("longest", DEFAULT_SOURCE)
    monkeypatch.setenv("MULTIARCH_ORDER", "collection")
    found = resolve(OptionsConfig(), "multiarch-order")  # type: ignore[arg-type]
    assert (found.value, found.source) == ("collection", "environment variable MULTIARCH_ORDER")
    given = OptionsConfig(options={"multiarch_order": "random"})
    with pytest.raises(pytest.UsageError) as raised:
        resolve(given, "multiarch-order")  # type: ignore[arg-type]
    assert str(raised.value).startswith(
        "Invalid value 'random' from --multiarch-order: use one of longest, collection"
    )
