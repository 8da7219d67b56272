"""pytest_multiarch.core.retry.retrying, as bases.py and aptsource.py use it (no real pauses)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_multiarch.core.errors import CommandError, MultiarchError
from pytest_multiarch.core.retry import linear_pause, retrying
from pytest_multiarch.provision.bases import logged_retry


def failing(times: int, error: BaseException | None = None) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def action() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= times:
            raise error or CommandError(["apt-get", "update"], 100, "", "E: Mirror sync")
        return "ok"

    return calls, action


def test_returns_at_once_when_it_works() -> None:
    calls, action = failing(0)
    slept: list[float] = []
    assert retrying(action, sleep=slept.append) == "ok"
    assert calls == [1]
    assert slept == []


def test_retries_command_errors_with_growing_pauses() -> None:
    calls, action = failing(2)
    slept: list[float] = []
    assert retrying(action, sleep=slept.append) == "ok"
    assert calls == [1, 2, 3]
    assert slept == [10.0, 20.0]


def test_the_last_error_propagates_after_all_attempts() -> None:
    calls, action = failing(5)
    slept: list[float] = []
    with pytest.raises(CommandError, match="Mirror sync"):
        retrying(action, attempts=2, sleep=slept.append)
    assert calls == [1, 2]
    assert slept == [10.0]


def test_other_errors_are_not_retried() -> None:
    calls, action = failing(1, MultiarchError("not a command"))
    with pytest.raises(MultiarchError, match="not a command"):
        retrying(action, sleep=lambda _: None)
    assert calls == [1]


def test_errors_that_when_refuses_are_not_retried() -> None:
    calls, action = failing(1)
    with pytest.raises(CommandError, match="Mirror sync"):
        retrying(action, when=lambda exc: "Mirror" not in str(exc), sleep=lambda _: None)
    assert calls == [1]


@pytest.mark.parametrize("attempts", [0, 1])
def test_runs_at_least_once(attempts: int) -> None:
    calls, action = failing(1)
    with pytest.raises(CommandError):
        retrying(action, attempts=attempts, sleep=lambda _: None)
    assert calls == [1]


def test_pauses() -> None:
    assert [linear_pause(n) for n in (1, 2)] == [10.0, 20.0]


def test_bases_log_each_retry_as_before() -> None:
    lines: list[str] = []
    _, action = failing(1)
    retrying(action, on_retry=logged_retry(lines.append), sleep=lambda _: None)
    assert lines == [
        "  attempt 1 failed (command 'apt-get update' exited with 100); retrying in 10s"
    ]
