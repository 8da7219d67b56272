"""The warm run of ``warm_run_vs_loop.py``'s project on Podman against the same on Docker.

Both engines start warm (one untimed run each builds the images in its own store), then take
turns for ``--runs`` rounds: the same pytest session, once against the default Docker engine and
once with ``DOCKER_HOST`` at Podman's API service (``multiarch host up --podman``). The median
of each and their ratio are printed. A measurement to read, not a test: nothing asserts on time.

    python benchmarks/podman_vs_docker.py --pytest .venv/bin/pytest --platforms amd64,arm64
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from warm_run_vs_loop import clean_env, harness_run, write_project

PODMAN = "unix:///run/podman/podman.sock"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pytest", required=True, help="the pytest of the checkout to measure")
    parser.add_argument("--platforms", default="amd64,arm64,s390x")
    parser.add_argument("-n", "--workers", default="2", help="pytest-xdist workers (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--podman", default=PODMAN, help=f"Podman's endpoint ({PODMAN})")
    args = parser.parse_args()
    pytest_command = [str(Path(args.pytest).absolute())]
    docker_env = {k: v for k, v in clean_env().items() if k != "DOCKER_HOST"}
    podman_env = {**docker_env, "DOCKER_HOST": args.podman}
    root = Path(tempfile.mkdtemp(prefix="podman-vs-docker-"))
    write_project(root)
    print(f"project {root}; platforms {args.platforms}; -n {args.workers}; {args.runs} runs")
    engines = {"docker": docker_env, "podman": podman_env}
    times: dict[str, list[float]] = {name: [] for name in engines}
    try:
        for env in engines.values():  # untimed: builds the images in each engine's store
            harness_run(pytest_command, root, args.platforms, args.workers, env, [])
        for round_number in range(1, args.runs + 1):
            for name, env in engines.items():
                times[name].append(
                    harness_run(pytest_command, root, args.platforms, args.workers, env, [])
                )
            print(
                f"round {round_number}: docker {times['docker'][-1]:6.2f}s   "
                f"podman {times['podman'][-1]:6.2f}s"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    docker_median = statistics.median(times["docker"])
    podman_median = statistics.median(times["podman"])
    print(f"median warm run on Docker: {docker_median:6.2f}s")
    print(f"median warm run on Podman: {podman_median:6.2f}s")
    print(f"ratio Podman / Docker:     {podman_median / docker_median:6.2f}x")


if __name__ == "__main__":
    main()
