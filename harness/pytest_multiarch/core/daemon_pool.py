"""A small pool of daemon threads, for background work a process must never wait for at exit.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter exits: one
that is stuck in a call to an engine that froze (a container removal, a container start ahead)
keeps the whole process alive until that call's time limit, after the run printed its summary.
The owners of this pool wait for its work themselves, with a deadline, when the engine answers
(EngineApi.close, Prestarter.close); when it does not, the process exits and the threads die
with it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

_Work = tuple[Future[object], Callable[[], object]]


class DaemonPool:
    """Up to ``workers`` daemon threads running submitted calls in order."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, call: Callable[..., T], *args: object) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name}: submit after shutdown")
            self._queue.put((future, lambda: call(*args)))  # type: ignore[arg-type]
            if len(self._threads) < self._workers:
                thread = threading.Thread(
                    target=self._run, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            future, call = work
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the future's owner
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, *, cancel_futures: bool = True) -> None:
        """No more work; queued work is cancelled (``cancel_futures``); running work is never
        waited for."""
        with self._lock:
            self._closed = True
            threads = len(self._threads)
        if cancel_futures:
            while True:
                try:
                    work = self._queue.get_nowait()
                except queue.Empty:
                    break
                if work is not None:
                    work[0].cancel()
        for _ in range(threads):
            self._queue.put(None)


__all__ = ["DaemonPool"]
