"""The next test's ``container``, started while the current test runs.

A service container takes a large part of a second to start and answer (longer emulated); a
worker knows which test comes next (pytest passes ``nextitem``, and xdist keeps one test in
hand for that reason). While the current test runs, the next one's container is started in the
background, so that its ``container`` fixture finds it ready. The semantics do not change: it
is a fresh container of the same image for the same platform, labelled like every other, and
used by that one test. A prestarted container that its test does not take (the test was
skipped, failed earlier, or asked for another image) is removed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_multiarch.core.daemon_pool import DaemonPool

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

# How long the end of a session waits for a start still under way before leaving its container
# to the run's sweep (the start itself is bounded by the API timeout and the cancel flag).
CLOSE_WAIT = 30.0


@dataclass(frozen=True)
class PrestartKey:
    """What makes a prestarted container the one a test would have started itself."""

    reference: str
    image_id: str
    platform: str


Starter = Callable[[threading.Event], "DockerContainer"]
Stopper = Callable[["DockerContainer"], None]


class Prestarter:
    """At most one container started ahead, per process."""

    def __init__(self, stop: Stopper) -> None:
        self._stop = stop
        self._executor: DaemonPool | None = None
        self._pending: tuple[PrestartKey, Future[DockerContainer], threading.Event] | None = None
        self._discarded: set[Future[DockerContainer]] = set()
        self.started = 0  # how many were started ahead
        self.taken = 0  # how many of those a test used

    def begin(self, key: PrestartKey, start: Starter) -> None:
        """Start a container for ``key`` in the background (``start`` is given a flag that is
        set when nobody wants the container any more); one already pending for another key is
        discarded, one for the same key is kept."""
        if self._pending is not None:
            if self._pending[0] == key:
                return
            self.discard()
        if self._executor is None:
            # Two: the next test's start must not queue behind the current test's own, which
            # may still be under way when its test begins the next one.
            # Daemon threads: a start stuck on a frozen engine never holds up the exit.
            self._executor = DaemonPool(2, "multiarch-prestart")
        cancelled = threading.Event()
        self._pending = (key, self._executor.submit(start, cancelled), cancelled)
        self.started += 1

    def take(self, key: PrestartKey) -> Future[DockerContainer] | None:
        """The container started for ``key`` (its future: the start may still be under way, and
        may have failed), or None; a pending one for another key is discarded."""
        if self._pending is None:
            return None
        if self._pending[0] != key:
            self.discard()
            return None
        future = self._pending[1]
        self._pending = None
        self.taken += 1
        return future

    def discard(self) -> None:
        """Remove the pending container, now or as soon as its start ends."""
        if self._pending is None:
            return
        _key, future, cancelled = self._pending
        self._pending = None
        cancelled.set()
        self._discarded.add(future)
        future.add_done_callback(self._stop_started)

    def _stop_started(self, future: Future[DockerContainer]) -> None:
        # A start that failed (or was abandoned) removed its container itself.
        if not future.cancelled() and future.exception() is None:
            self._stop(future.result())
        self._discarded.discard(future)

    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Discard what is pending and wait (at most ``timeout`` seconds) until every discarded
        container was handed to its removal, so that the process's own removals come before
        the run's sweep; a start still under way then is left to that sweep (its label)."""
        self.discard()
        deadline = time.monotonic() + timeout
        for future in list(self._discarded):
            with contextlib.suppress(FutureTimeout):
                future.exception(timeout=max(0.0, deadline - time.monotonic()))
        # Callbacks run right after a future's waiters are woken: let them finish.
        while self._discarded and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
