"""One engine against a pool of two for one platform (issue 25 point 5).

16 tests of one second each (``run(["sleep", "1"])``: a fresh container per test) on amd64 with
``-n 4``: once on the default engine alone, once with ``--engine amd64=default,E12`` where E12
is this machine's second engine (``multiarch host engine up e12``, as tests/plugin/conftest.py
starts it, under the same users' lock: the engine is left up while other sessions use it).
Each configuration runs once to build its images (not measured), then ``--rounds`` times,
alternating; printed: the median wall time of the pytest process, the tests' summed time and
how the tests were spread over the engines (from the JSON report's per-test ``engine``).

    PYTHONPATH=harness python benchmarks/engine_pool.py --rounds 3

A measurement to read, not a test. Both engines here share this machine's two cores, its disk
and its kernel: what a pool buys on separate machines (each engine's own cores for its
containers) cannot show here; see the README's "Pools of engines".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

from filelock import FileLock

ENGINE = "e12"  # the acceptance tests' second engine (tests/plugin/conftest.py)
# Shared with the acceptance tests' sessions: which processes still use the engine.
USERS = Path(tempfile.gettempdir()) / f"pytest-multiarch-tests-{ENGINE}"
DOCKERFILE = """\
FROM busybox:latest
CMD ["sh", "-c", "echo ready; exec sleep 600"]
"""
TESTS = """
import pytest

pytestmark = pytest.mark.image("box")


@pytest.mark.parametrize("n", range({count}))
def test_sleep(run, platform, n):
    assert run(["sleep", "{seconds}"]).exit_code == 0
"""


def multiarch(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("multiarch")), "host", "engine", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def docker_host() -> str:
    from pytest_multiarch.provision.second_engines import engine_layout

    return engine_layout(ENGINE).docker_host


def make_project(root: Path, count: int, seconds: float) -> None:
    (root / "images" / "box").mkdir(parents=True)
    (root / "images" / "box" / "Dockerfile").write_text(DOCKERFILE)
    (root / "test_pool.py").write_text(textwrap.dedent(TESTS.format(count=count, seconds=seconds)))


def one_run(root: Path, workers: int, *extra: str) -> tuple[float, float, Counter[str]]:
    """(wall seconds, summed test seconds, tests per engine) of one run; exits on a failure."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MULTIARCH_", "PYTEST_XDIST")) and name != "PYTEST_ADDOPTS"
    }
    report = root / "report.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n",
        str(workers),
        "--platforms",
        "amd64",
        "--multiarch-json",
        str(report),
        *extra,
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=root, env=environment, capture_output=True, text=True, timeout=900
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    tests = json.loads(report.read_text())["tests"]
    spread = Counter("e12" if test["engine"] == docker_host() else "default" for test in tests)
    return wall, sum(test["seconds"] for test in tests), spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tests", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds of each test")
    args = parser.parse_args()
    USERS.mkdir(exist_ok=True)
    me = USERS / str(os.getpid())
    with FileLock(str(USERS) + ".lock"):
        up = multiarch("up", ENGINE)
        if up.returncode != 0:
            sys.exit(f"multiarch host engine up {ENGINE} failed:\n{up.stdout}{up.stderr}")
        me.touch()
    configurations = {
        "one engine": (),
        "pool of two": (f"--engine=amd64=default,{docker_host()}",),
    }
    results: dict[str, list[tuple[float, float, Counter[str]]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="engine-pool-") as scratch:
            root = Path(scratch) / f"p{uuid.uuid4().hex[:8]}"
            root.mkdir()
            make_project(root, args.tests, args.seconds)
            for extra in configurations.values():  # builds the image on each engine
                one_run(root, args.workers, *extra)
            for round_number in range(args.rounds):
                for name, extra in configurations.items():
                    wall, summed, spread = one_run(root, args.workers, *extra)
                    results.setdefault(name, []).append((wall, summed, spread))
                    print(
                        f"round {round_number + 1} {name:12}: {wall:5.1f} s wall, tests "
                        f"{summed:5.1f} s summed, per engine {dict(sorted(spread.items()))}",
                        flush=True,
                    )
    finally:
        with FileLock(str(USERS) + ".lock"):
            me.unlink(missing_ok=True)
            for user in USERS.iterdir():  # a process that was killed never said goodbye
                if not Path(f"/proc/{user.name}").exists():
                    user.unlink(missing_ok=True)
            if not any(USERS.iterdir()):
                multiarch("down", ENGINE)
    print(
        f"\n{args.tests} tests of {args.seconds:g} s on amd64, -n {args.workers}, "
        f"median of {args.rounds} rounds (ideal: {args.tests * args.seconds / args.workers:.0f} s "
        "of tests per worker, plus start-up)"
    )
    for name, figures in results.items():
        wall = statistics.median(f[0] for f in figures)
        summed = statistics.median(f[1] for f in figures)
        print(f"{name:12}: {wall:5.1f} s wall, {summed:5.1f} s of tests summed")


if __name__ == "__main__":
    main()
