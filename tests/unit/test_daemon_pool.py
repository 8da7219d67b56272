"""The daemon pool: work runs in the background and never holds up the process's exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest
from pytest_multiarch.core.daemon_pool import DaemonPool


def test_work_runs_and_its_result_or_error_reaches_the_future() -> None:
    pool = DaemonPool(2, "test-pool")
    assert pool.submit(lambda a, b: a + b, 2, 40).result(timeout=10) == 42

    def fails() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        pool.submit(fails).result(timeout=10)
    pool.shutdown()


def test_at_most_the_given_number_of_threads_run_at_once() -> None:
    pool = DaemonPool(2, "test-pool")
    release = threading.Event()
    running: list[int] = []
    peak: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        with lock:
            running.append(1)
            peak.append(len(running))
        release.wait(10)
        with lock:
            running.pop()

    futures = [pool.submit(work) for _ in range(5)]
    time.sleep(0.2)
    release.set()
    for future in futures:
        future.result(timeout=10)
    assert max(peak) == 2
    pool.shutdown()


def test_shutdown_cancels_queued_work() -> None:
    pool = DaemonPool(1, "test-pool")
    release = threading.Event()
    first = pool.submit(release.wait, 10)
    queued = pool.submit(lambda: None)
    pool.shutdown()
    assert queued.cancelled()
    release.set()
    assert first.result(timeout=10) is True
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)


def test_the_process_exits_while_work_is_stuck() -> None:
    """A removal stuck on a frozen engine: the interpreter exits at once all the same (a
    ThreadPoolExecutor would join its thread at exit)."""
    script = textwrap.dedent(
        """
        import threading
        from pytest_multiarch.core.daemon_pool import DaemonPool

        pool = DaemonPool(2, "stuck")
        pool.submit(threading.Event().wait, 60)
        print("submitted", flush=True)
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "submitted"
    assert time.monotonic() - started < 30
