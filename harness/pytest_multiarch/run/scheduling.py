"""Sharing xdist workers between engines, so that a fast native engine never waits behind an
emulated one.

With platforms mapped to engines of their own (``--engine``), one run drives several machines:
say a native arm64 box and this host, which emulates s390x under QEMU ten times slower. xdist's
``load`` scheduler hands out tests in collection order, and a worker runs its queue in order:
a native test queued behind emulated ones waits for them, and with a module of emulated tests
first, the native engine idles until every emulated test has been handed out. Groups (``--dist
loadgroup``) would pin all of an engine's tests to one worker, and do not group at all with
pytest 9.2 and xdist 3.8 (pytest-dev/pytest-xdist#1386).

:class:`EngineScheduling` is xdist's ``load`` scheduler with one change in what it sends: a
worker is refilled from the engine it is working for while that engine has tests left, and a
worker with nothing queued joins the engine the fewest other workers are on. So from the start
every engine has workers, a worker's queue never mixes a fast engine's tests with a slow one's,
a worker whose engine runs out helps the others, and each engine's tests keep collection order.

Longest first (``--multiarch-order=longest``, the default): a worker runs its queue in order, so
a long test collected last starts last and the run ends with one worker busy while the others
idle. With the durations of earlier runs (pytest_multiarch.run.durations), the scheduler hands
tests out in :func:`dispatch_order` instead: tests never measured first, then the others longest
first; with engines of their own, within each engine.

Pools (``--engine amd64=a,b``): each worker works for one engine of each pool
(:func:`assign_engines`, decided on the controller and sent through ``workerinput``), so the
workers are spread over a pool's engines, and a pool is one group here: any of its workers may
take its tests. Staffing is counted per engine (:func:`staffing`): a worker with nothing queued
joins the group whose engine, as this worker would work on it, the fewest other workers are on.

Collection itself is untouched: every worker collects the same items in the same order (xdist
refuses to run otherwise); only the order in which the controller sends their indices changes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# The group of a test that names no platform in its id (or one of no mapped engine).
DEFAULT_GROUP = ""


def engine_grouper(engines: Mapping[str, str]) -> Callable[[str], str]:
    """``nodeid -> engine`` for a run whose platforms (short name -> engine, "" for the default
    engine) are ``engines``: the platform is the test id's token that names one
    (``test_x[arm64]``, ``test_y[arm-v7-2]``); a test without one belongs to the default engine."""
    tokens = sorted(engines, key=len, reverse=True)  # "arm-v7" before a shorter name
    if not tokens:
        return lambda _nodeid: DEFAULT_GROUP
    pattern = re.compile(r"(?:^|(?<=-))(" + "|".join(map(re.escape, tokens)) + r")(?=-|$)")

    def group_of(nodeid: str) -> str:
        _, bracket, ids = nodeid.partition("[")
        if not bracket:
            return DEFAULT_GROUP
        found = pattern.search(ids.removesuffix("]"))
        return engines[found.group(1)] if found else DEFAULT_GROUP

    return group_of


def assign_engines(pools: Mapping[str, Sequence[str]], worker: int) -> dict[str, str]:
    """The engine of each pool (platform name -> its engines, in the order named) that worker
    number ``worker`` (xdist's ``gw<N>``) works for: round robin, so that ``-n`` workers are
    spread evenly over every pool's engines, each engine getting the same share +- 1."""
    return {name: engines[worker % len(engines)] for name, engines in pools.items() if engines}


def worker_number(worker_id: str) -> int:
    """``gw3`` -> 3: xdist numbers its workers (a replacement for a crashed worker gets a new
    number); anything else counts as the first."""
    digits = worker_id.removeprefix("gw")
    return int(digits) if digits.isdigit() else 0


def pool_group(engines: Sequence[str]) -> str:
    """The scheduling group of a pool's tests (a pool is one group: any of its workers may take
    them); never an engine's own name."""
    return "pool " + ",".join(engines)


def staffing(groups: Iterable[str], mine: Mapping[str, str], busy: Counter[str]) -> Counter[str]:
    """For each of ``groups``, how many other workers are busy on the engine this worker would
    work on for it: ``busy`` counts the others by engine, ``mine`` maps each pool group to this
    worker's engine in that pool (any other group is an engine itself)."""
    return Counter({group: busy[mine.get(group, group)] for group in groups})


def choose_group(
    pending: Sequence[int],
    group: Callable[[int], str],
    current: str | None,
    staffed: Counter[str],
) -> int:
    """The position in ``pending`` of the next test to send to a worker: the first pending
    test of the worker's ``current`` engine while that engine has tests left; else of the engine
    the fewest other workers are busy with (``staffed``; ties: the engine whose first test
    comes first in ``pending``, which is in collection or dispatch order)."""
    first: dict[str, int] = {}
    for position, index in enumerate(pending):
        first.setdefault(group(index), position)
    if current is not None and current in first:
        return first[current]
    chosen = min(first, key=lambda name: (staffed[name], first[name]))
    return first[chosen]


def dispatch_order(nodeids: Sequence[str], durations: Mapping[str, float]) -> list[int]:
    """The order in which to hand out the tests ``nodeids`` (collection order), as their
    indices: tests without a recorded duration first, in collection order (so that they get
    measured, and a new slow test is not found out last), then the others longest first (ties
    in collection order)."""

    def key(index: int) -> tuple[bool, float, int]:
        seconds = durations.get(nodeids[index])
        return (seconds is not None, -(seconds or 0.0), index)

    return sorted(range(len(nodeids)), key=key)


def make_scheduler(
    config: Any,
    log: Any,
    group_of: Callable[[str], str] | None = None,
    durations: Mapping[str, float] | None = None,
    worker_engines: Callable[[Any], Mapping[str, str]] | None = None,
) -> Any:
    """xdist's ``load`` scheduling, changed in what it sends first: with ``group_of`` (test id
    -> engine), an :class:`EngineScheduling` that keeps each worker on one engine; with
    ``durations`` (test id -> seconds, of earlier runs), tests go out in :func:`dispatch_order`
    (within an engine, too); ``worker_engines`` (xdist node -> pool group -> the engine that
    worker works for in that pool) counts staffing per engine of a pool. xdist is imported only
    when a run uses it."""
    import importlib

    # xdist ships no type information: its scheduler is Any here.
    load_scheduling: Any = importlib.import_module("xdist.scheduler").LoadScheduling

    class EngineScheduling(load_scheduling):  # type: ignore[misc]
        """xdist's load scheduling; each worker is kept on one engine while it has tests, and
        known long tests go out first."""

        ordered = False

        def _group(self, index: int) -> str:
            return group_of(self.collection[index]) if group_of is not None else DEFAULT_GROUP

        def _order_pending(self) -> None:
            """Once, before the first tests are sent: every worker collected the same tests in
            the same order, and only which index goes out when changes."""
            if self.ordered or durations is None:
                return
            self.ordered = True
            order = dispatch_order(self.collection, durations)
            rank = {index: at for at, index in enumerate(order)}
            self.pending.sort(key=rank.__getitem__)

        def _send_tests(self, node: Any, num: int) -> None:
            self._order_pending()
            if group_of is None:
                super()._send_tests(node, num)
                return
            queued = self.node2pending[node]

            def engines(worker: Any) -> Mapping[str, str]:
                return worker_engines(worker) if worker_engines is not None else {}

            busy = Counter(
                engines(other).get(group, group)
                for other, others in self.node2pending.items()
                if others and other is not node
                for group in [self._group(others[-1])]
            )
            staffed = staffing(set(map(self._group, self.pending)), engines(node), busy)
            current = self._group(queued[-1]) if queued else None
            chosen: list[int] = []
            while self.pending and len(chosen) < num:
                position = choose_group(self.pending, self._group, current, staffed)
                index = self.pending.pop(position)
                current = self._group(index)
                chosen.append(index)
            if chosen:
                queued.extend(chosen)
                node.send_runtest_some(chosen)

    return EngineScheduling(config, log)
