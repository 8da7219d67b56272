"""Trying an action again after a pause: package mirrors and a fresh local registry fail
transiently ("File has unexpected size ... Mirror sync in progress?", HTTP 500 on a first push)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pytest_multiarch.core.errors import CommandError

T = TypeVar("T")

RetryHook = Callable[[int, BaseException, float], None]
"""Called before each pause with the attempt that failed (1-based), its error and the pause."""


def linear_pause(attempt: int) -> float:
    """10 s after the first failure, 20 s after the second: a mirror mid-sync usually recovers."""
    return 10.0 * attempt


def retrying(
    action: Callable[[], T],
    *,
    attempts: int = 3,
    retry_on: tuple[type[BaseException], ...] = (CommandError,),
    when: Callable[[BaseException], bool] = lambda _: True,
    pause: Callable[[int], float] = linear_pause,
    on_retry: RetryHook | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """The result of ``action``, run up to ``attempts`` times (at least once) while it raises
    one of ``retry_on`` that ``when`` accepts; the last such error propagates. Any other error
    propagates at once."""
    for attempt in range(1, attempts):
        try:
            return action()
        except retry_on as exc:
            if not when(exc):
                raise
            wait = pause(attempt)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            sleep(wait)
    return action()


__all__ = ["RetryHook", "linear_pause", "retrying"]
