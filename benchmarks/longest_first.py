"""Collection order against longest first (``--multiarch-order``) on a skewed suite under ``-n``.

Generates a suite of SHORT tests of 1 s followed by one LONG test of 12 s (the shape of an
emulated suite whose slow group is collected last), runs it with ``-n 2`` in collection order and
longest first (the durations recorded by the runs before), several rounds, and prints the
medians against the ideal: the floor (the same suite with no sleeps: start-up, collection,
workers) plus the tests' time divided among the workers; and, for a machine whose start-up
time is noisy, each run's time beyond the floor against that division (what the order can
change). A measurement to read, not a test: nothing asserts on time. The sleeps are the
workload.

    PYTHONPATH=harness .venv/bin/python benchmarks/longest_first.py --rounds 3

``--baseline`` times plain runs only, for code from before ``--multiarch-order`` (e.g.
``git worktree add /tmp/before fca081f`` and ``PYTHONPATH=/tmp/before/harness``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SUITE = """
import time

import pytest

SHORT, LONG = {short}, {long}


@pytest.mark.parametrize("n", range({count}))
def test_short(platform, n):
    time.sleep(SHORT)


def test_long(platform):
    time.sleep(LONG)
"""


def write_suite(directory: Path, count: int, short: float, long: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text("[pytest]\n")
    source = SUITE.format(count=count, short=short, long=long)
    (directory / "test_skewed.py").write_text(textwrap.dedent(source))


def timed_run(directory: Path, workers: int, *extra: str) -> float:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MULTIARCH_", "PYTEST_XDIST")) and name != "PYTEST_ADDOPTS"
    }
    command = [sys.executable, "-m", "pytest", "-q", "-n", str(workers), *extra]
    started = time.perf_counter()
    subprocess.run(
        command, cwd=directory, env=environment, check=True, capture_output=True, timeout=600
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--short-tests", type=int, default=12)
    parser.add_argument("--short", type=float, default=1.0, help="seconds of each short test")
    parser.add_argument("--long", type=float, default=12.0, help="seconds of the long test")
    parser.add_argument(
        "--baseline", action="store_true", help="plain runs only (code without --multiarch-order)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="longest-first-") as scratch:
        floor_suite, suite = Path(scratch) / "floor", Path(scratch) / "skewed"
        write_suite(floor_suite, args.short_tests, 0, 0)
        write_suite(suite, args.short_tests, args.short, args.long)
        timed_run(floor_suite, args.workers)  # warm up: imports paged in
        first = timed_run(suite, args.workers)  # nothing recorded yet: collection order
        floor: list[float] = []
        collection: list[float] = []
        longest: list[float] = []
        # Each round runs all three, so that a busy spell of the machine hits them alike.
        for _ in range(args.rounds):
            floor.append(timed_run(floor_suite, args.workers))
            if args.baseline:
                collection.append(timed_run(suite, args.workers))
                continue
            collection.append(timed_run(suite, args.workers, "--multiarch-order=collection"))
            longest.append(timed_run(suite, args.workers, "--multiarch-order=longest"))
    work = args.short_tests * args.short + args.long
    spread = max(work / args.workers, args.long)
    base = statistics.median(floor)
    ideal = base + spread
    print(
        f"{args.short_tests} tests of {args.short:g} s then one of {args.long:g} s, "
        f"-n {args.workers}, median of {args.rounds} rounds"
    )
    print(f"{'':<30} {'wall':>7}  {'/ideal':>6}   {'beyond the floor':>16}")
    print(f"{'floor (same suite, no sleeps)':<30} {base:6.2f}s")
    print(f"{'ideal (floor + work/workers)':<30} {ideal:6.2f}s  {1:5.2f}x   {spread:6.2f}s  1.00x")
    rows = [("first run (nothing recorded)", [first])]
    rows += [("collection order", collection), ("longest first", longest)]
    for name, times in rows:
        if not times:
            continue
        median = statistics.median(times)
        print(
            f"{name:<30} {median:6.2f}s  {median / ideal:5.2f}x   "
            f"{median - base:6.2f}s  {(median - base) / spread:5.2f}x"
        )


if __name__ == "__main__":
    main()
