"""How long does a run take to end once its engine froze (issue 21 point 3)?

A frozen engine (its dockerd stopped with SIGSTOP) accepts connections and never answers. The
run must notice, fail the tests that need the engine with a message naming it, keep the
results of the others, and exit, within seconds (the goal: <= 5 s from the freeze to exit).

The fault happens to a second engine of this machine (``multiarch host engine up e12``, as
tests/plugin/conftest.py does, under the same lock), never to the machine's own engine. Per
round, a small project (one busybox image, 14 tests on amd64 and arm64) is run with the second
engine as ``DOCKER_HOST``, and:

- ``mid``: the dockerd is frozen once 3 tests started; measured: seconds from SIGSTOP to the
  exit of the pytest process, and seconds from its last line of output to its exit (the
  linger after the final summary);
- ``before``: the dockerd is frozen before the run starts; measured: seconds from the start
  to the exit.

    PYTHONPATH=harness python benchmarks/frozen_engine.py --rounds 3 --workers 0 2

Prints one line per round and the median per (mode, workers). A measurement to read, not a
test.

Measured on the 2-core shared machine (3 rounds, medians, seconds from SIGSTOP to exit; the
"before" mode includes pytest's and xdist's own start-up, 2-5 s here):

    main d4bdc6b:  mid -n 0 10.4, mid -n 2 18.8, before -n 0 11.5, before -n 2 14.0
    issue 21:      mid -n 0  4.1, mid -n 2  4.3, before -n 0  4.6, before -n 2  9.0
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from filelock import FileLock

ENGINE = "e12"  # the acceptance tests' second engine (tests/plugin/conftest.py)
DOCKERFILE = """\
FROM busybox:latest
ARG TARGETPLATFORM
RUN echo "$TARGETPLATFORM" > /built-for
CMD ["sh", "-c", "echo ready; exec sleep 600"]
"""
TESTS = """
import os
import pathlib
import time

import pytest

pytestmark = pytest.mark.image("box")
PROGRESS = pathlib.Path(os.environ["FAULT_PROGRESS"])


@pytest.mark.parametrize("n", range(4))
def test_run(run, platform, n):
    assert run(["true"]).exit_code == 0
    (PROGRESS / f"run-{platform.short}-{n}").touch()
    time.sleep(1)
    assert run(["cat", "/built-for"]).stdout.strip() == platform.name


@pytest.mark.parametrize("n", range(3))
def test_container(container, platform, n):
    (PROGRESS / f"container-{platform.short}-{n}").touch()
    time.sleep(1)
    assert container.exec(["true"]).exit_code == 0
"""


def multiarch(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("multiarch")), "host", "engine", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def daemon_pid() -> int:
    from pytest_multiarch.provision.second_engines import engine_layout

    return int(engine_layout(ENGINE).docker_pidfile.read_text().strip())


def docker_host() -> str:
    from pytest_multiarch.provision.second_engines import engine_layout

    return engine_layout(ENGINE).docker_host


def make_project(root: Path) -> None:
    (root / "images" / "box").mkdir(parents=True)
    (root / "images" / "box" / "Dockerfile").write_text(DOCKERFILE)
    (root / "test_images.py").write_text(textwrap.dedent(TESTS))
    (root / "progress").mkdir()


def one_round(root: Path, mode: str, workers: str) -> tuple[float, float, int, str]:
    """(seconds from the freeze to exit, seconds from the last output to exit, return code,
    the run's output)."""
    progress = root / "progress"
    for done in progress.iterdir():
        done.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTIARCH_", "PYTEST_"))}
    env.update(DOCKER_HOST=docker_host(), FAULT_PROGRESS=str(progress))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    command += ["--platforms", "amd64,arm64", "-n", workers]
    # pytest's own: its shared temporary directory is pruned at the end of a session, seconds
    # on a machine where other sessions fill it; not the plugin's time, so kept out of it.
    command += ["--basetemp", str(root / "basetemp")]
    daemon = daemon_pid()
    last_output = [time.monotonic()]
    lines: list[str] = []
    try:
        if mode == "before":
            os.kill(daemon, signal.SIGSTOP)
            frozen = time.monotonic()
        inner = subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert inner.stdout is not None
        os.set_blocking(inner.stdout.fileno(), False)
        while inner.poll() is None:
            chunk = inner.stdout.read()
            if chunk:
                lines.append(chunk.decode(errors="replace"))
                last_output[0] = time.monotonic()
            if mode == "mid" and len(list(progress.iterdir())) >= 3:
                os.kill(daemon, signal.SIGSTOP)
                frozen = time.monotonic()
                mode = "mid-frozen"
            time.sleep(0.02)
        ended = time.monotonic()
        rest = inner.stdout.read()
        if rest:
            lines.append(rest.decode(errors="replace"))
            last_output[0] = min(ended, time.monotonic())
    finally:
        os.kill(daemon, signal.SIGCONT)
    return ended - frozen, max(0.0, ended - last_output[0]), inner.returncode, "".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", nargs="+", default=["0", "2"])
    parser.add_argument("--modes", nargs="+", default=["mid", "before"])
    parser.add_argument("--keep-engine", action="store_true", help="leave the engine up")
    args = parser.parse_args()
    # The lock the acceptance tests take to use the engine one test at a time.
    lock = FileLock(str(Path(tempfile.gettempdir()) / f"pytest-multiarch-tests-{ENGINE}.test.lock"))
    with lock, tempfile.TemporaryDirectory(prefix="frozen-engine-") as tmp:
        up = multiarch("up", ENGINE)
        if up.returncode != 0:
            sys.exit(f"multiarch host engine up {ENGINE} failed:\n{up.stdout}{up.stderr}")
        root = Path(tmp) / f"p{uuid.uuid4().hex[:8]}"
        root.mkdir()
        make_project(root)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        try:
            for mode in args.modes:
                for workers in args.workers:
                    for n in range(args.rounds):
                        to_exit, linger, code, output = one_round(root, mode, workers)
                        last = output.strip().splitlines()[-1:] or [""]
                        print(
                            f"{mode:6} -n {workers} round {n + 1}: {to_exit:5.1f} s to exit, "
                            f"{linger:4.1f} s after the last line, rc {code}: {last[0]}",
                            flush=True,
                        )
                        if "stopped answering" not in output:
                            print(textwrap.indent(output[-3000:], "    | "))
                        results.setdefault((mode, workers), []).append((to_exit, linger))
        finally:
            if not args.keep_engine:
                multiarch("down", ENGINE)
        for (mode, workers), figures in results.items():
            print(
                f"median {mode:6} -n {workers}: "
                f"{statistics.median(f[0] for f in figures):.1f} s to exit, "
                f"{statistics.median(f[1] for f in figures):.1f} s linger "
                f"({len(figures)} rounds)"
            )


if __name__ == "__main__":
    main()
