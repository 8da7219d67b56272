"""Prestarter: at most one container started ahead, taken by the test it was started for, and
removed when nobody takes it (no engine here: the starts are stand-ins)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.runtime.prestart import Prestarter, PrestartKey

SVC = PrestartKey("pytest-multiarch/svc:1-arm64", "sha256:1", "linux/arm64")
OTHER = PrestartKey("pytest-multiarch/other:2-arm64", "sha256:2", "linux/arm64")


class Starts:
    """Stand-in starts: each returns a new object; ``gate`` holds them until set."""

    def __init__(self) -> None:
        self.made: list[object] = []
        self.flags: list[threading.Event] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, cancelled: threading.Event) -> Any:
        self.flags.append(cancelled)
        self.gate.wait(10)
        made = object()
        self.made.append(made)
        return made


def failing_start(cancelled: threading.Event) -> Any:
    raise MultiarchError("container exited with code 3 before it was ready")


@pytest.fixture
def stopped() -> list[object]:
    return []


@pytest.fixture
def prestarter(stopped: list[object]) -> Prestarter:
    return Prestarter(stopped.append)


def test_the_test_it_was_started_for_takes_it(
    prestarter: Prestarter, stopped: list[object]
) -> None:
    starts = Starts()
    prestarter.begin(SVC, starts)
    future = prestarter.take(SVC)
    assert future is not None
    assert future.result(10) is starts.made[0]
    assert prestarter.take(SVC) is None  # taken once
    prestarter.close()
    assert stopped == []  # a test's container is the test's to remove
    assert (prestarter.started, prestarter.taken) == (1, 1)


def test_another_test_does_not_get_it_and_it_is_removed(
    prestarter: Prestarter, stopped: list[object]
) -> None:
    starts = Starts()
    prestarter.begin(SVC, starts)
    assert prestarter.take(OTHER) is None
    prestarter.close()
    assert stopped == starts.made
    assert starts.flags[0].is_set()  # told nobody wants it


def test_a_second_begin_for_the_same_key_keeps_the_first(prestarter: Prestarter) -> None:
    starts = Starts()
    prestarter.begin(SVC, starts)
    prestarter.begin(SVC, starts)
    future = prestarter.take(SVC)
    assert future is not None
    future.result(10)
    assert len(starts.made) == 1
    assert prestarter.started == 1


def test_a_begin_for_another_key_discards_the_pending_one(
    prestarter: Prestarter, stopped: list[object]
) -> None:
    starts = Starts()
    prestarter.begin(SVC, starts)
    prestarter.begin(OTHER, starts)
    future = prestarter.take(OTHER)
    assert future is not None
    taken = future.result(10)
    prestarter.close()
    assert stopped == [made for made in starts.made if made is not taken]
    assert len(stopped) == 1


def test_a_container_still_starting_when_discarded_is_removed_once_started(
    prestarter: Prestarter, stopped: list[object]
) -> None:
    starts = Starts()
    starts.gate.clear()
    prestarter.begin(SVC, starts)
    prestarter.discard()
    assert stopped == []
    starts.gate.set()
    prestarter.close()
    assert stopped == starts.made


def test_a_failed_start_reaches_the_test_that_takes_it(prestarter: Prestarter) -> None:
    prestarter.begin(SVC, failing_start)
    future = prestarter.take(SVC)
    assert future is not None
    with pytest.raises(MultiarchError, match="exited with code 3"):
        future.result(10)


def test_a_failed_start_nobody_takes_needs_no_removal(
    prestarter: Prestarter, stopped: list[object]
) -> None:
    prestarter.begin(SVC, failing_start)
    prestarter.close()
    assert stopped == []


def test_close_does_not_wait_longer_than_its_timeout(
    prestarter: Prestarter, stopped: list[object]
) -> None:
    starts = Starts()
    starts.gate.clear()
    prestarter.begin(SVC, starts)
    prestarter.close(timeout=0.05)
    assert stopped == []  # still starting: left to the run's sweep
    starts.gate.set()


def test_nothing_pending_takes_nothing(prestarter: Prestarter) -> None:
    assert prestarter.take(SVC) is None
    prestarter.close()
