"""How fast could any runner do the checks of ``warm_run_vs_loop.py`` on this machine?

A lower bound, measured: the project needs 18 fresh containers (4 CLI checks and 2 service
checks on each of 3 platforms; one container per check, as the harness's ``run`` and
``container`` give every test its own). This script measures, on this engine:

- the cheapest one-shot container (create, attach, start, read the output, wait, remove, over
  the API, as the harness does it) and the cheapest service container (create with a port on
  127.0.0.1, start, poll ``/health``, remove), each at 1 to 4 at a time, taking the engine's
  best throughput (seconds per container);
- the start-up and end of a pytest-xdist session that runs nothing of ours (``pytest -n 2
  -p no:multiarch`` with one empty test): what any xdist run costs before and after its tests.

floor = start-up + 12 x (one-shot seconds) + 6 x (service seconds), at the engine's best
concurrency and at the concurrency ``-n`` gives (2 tests at a time), and each floor's ratio to
the plain loop (measured here too). No runner that starts a fresh container per check, removes it,
and runs under pytest-xdist can be faster on this engine, whatever it does in Python. A
measurement to read, not a test.

    python benchmarks/engine_floor.py --pytest .venv/bin/pytest
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from warm_run_vs_loop import SHORT_NAMES, clean_env, loop_run, write_project

LABEL = "pytest-multiarch-benchmark"
CLI_CHECKS = 4  # per platform, as in warm_run_vs_loop.py
SERVICE_CHECKS = 2


def one_shot(api: docker.APIClient, tag: str, platform: str) -> None:
    created = api.create_container(
        tag,
        command=["sum", "2", "40"],
        platform=platform,
        labels={LABEL: "1"},
        host_config=api.create_host_config(),
    )
    container = created["Id"]
    attached = api.attach_socket(container, params={"stdout": 1, "stderr": 1, "stream": 1})
    sock = getattr(attached, "_sock", attached)
    api.start(container)
    while sock.recv(65536):
        pass
    sock.close()
    api.wait(container)
    api.remove_container(container, v=True, force=True)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - 127.0.0.1
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def service(api: docker.APIClient, tag: str, platform: str) -> None:
    created = api.create_container(
        tag,
        platform=platform,
        labels={LABEL: "1"},
        ports=[8080],
        host_config=api.create_host_config(port_bindings={8080: ("127.0.0.1", None)}),
    )
    container = created["Id"]
    api.start(container)
    port = api.port(container, 8080)[0]["HostPort"]
    deadline = time.monotonic() + 60
    while not answers(f"http://127.0.0.1:{port}/health"):
        if time.monotonic() > deadline:
            sys.exit(f"service {tag} never answered")
        time.sleep(0.02)
    api.remove_container(container, v=True, force=True)


def best_seconds_each(
    work: Callable[[docker.APIClient, str, str], None],
    targets: list[tuple[str, str]],
    count: int,
) -> tuple[float, dict[int, float]]:
    """Seconds per container at the best of 1..4 at a time, and each concurrency's figure."""
    local = threading.local()

    def one(index: int) -> None:
        if not hasattr(local, "api"):
            local.api = docker.from_env().api
        tag, platform = targets[index % len(targets)]
        work(local.api, tag, platform)

    figures: dict[int, float] = {}
    for concurrency in (1, 2, 3, 4):
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(count)))
        figures[concurrency] = (time.perf_counter() - started) / count
    return min(figures.values()), figures


def bare_xdist_seconds(pytest_command: list[str], workers: str, runs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bare-xdist-") as tmp:
        Path(tmp, "test_empty.py").write_text("def test_empty():\n    pass\n")
        env = clean_env()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(
                [
                    *pytest_command,
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "-p",
                    "no:multiarch",
                    "-n",
                    workers,
                ],
                cwd=tmp,
                capture_output=True,
                env=env,
                timeout=600,
                check=True,
            )
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pytest", required=True, help="the pytest executable to start xdist")
    parser.add_argument("--platforms", default="amd64,arm64,s390x")
    parser.add_argument("-n", "--workers", default="2")
    parser.add_argument("--count", type=int, default=24, help="containers per concurrency level")
    parser.add_argument("--runs", type=int, default=3, help="rounds of the loop and of xdist")
    args = parser.parse_args()
    platforms = [SHORT_NAMES[name.strip()] for name in args.platforms.split(",")]
    pytest_command = [str(Path(args.pytest).absolute())]

    root = Path(tempfile.mkdtemp(prefix="engine-floor-"))
    write_project(root)
    prefix = f"bench-floor-{uuid.uuid4().hex[:8]}"
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    client = docker.from_env()
    try:
        loop_run(root, platforms, prefix, False)  # builds the tags, warms the caches
        loop = statistics.median(loop_run(root, platforms, prefix, False) for _ in range(args.runs))

        def tags(name: str) -> list[tuple[str, str]]:
            return [
                (f"{prefix}-{name}:{p.split('/', 1)[1].replace('/', '-')}", p) for p in platforms
            ]

        run_best, run_figures = best_seconds_each(one_shot, tags("cli"), args.count)
        service_best, service_figures = best_seconds_each(
            service, tags("service"), max(6, args.count // 2)
        )
        startup = bare_xdist_seconds(pytest_command, args.workers, args.runs)
    finally:
        for container in client.api.containers(all=True, filters={"label": LABEL}):
            client.api.remove_container(container["Id"], force=True)
        for name in ("cli", "service"):
            for platform in platforms:
                short = platform.split("/", 1)[1].replace("/", "-")
                subprocess.run(
                    ["docker", "image", "rm", "-f", f"{prefix}-{name}:{short}"],
                    capture_output=True,
                    check=False,
                )
    runs = CLI_CHECKS * len(platforms)
    services = SERVICE_CHECKS * len(platforms)
    floor = startup + runs * run_best + services * service_best
    # -n N runs N tests at a time: the engine's figures at that concurrency.
    at = min(int(args.workers), 4) if args.workers.isdigit() else 4
    floor_at = startup + runs * run_figures[at] + services * service_figures[at]

    def row(figures: dict[int, float]) -> str:
        return "  ".join(f"{n} at a time {s:.3f}s" for n, s in figures.items())

    print(f"one-shot container, seconds each: {row(run_figures)}")
    print(f"service container, seconds each:  {row(service_figures)}")
    print(f"bare pytest -n {args.workers} (one empty test, no plugin): {startup:.2f}s")
    print(
        f"floor = {startup:.2f} + {runs} x {run_best:.3f} + {services} x {service_best:.3f}"
        f" = {floor:.2f}s"
    )
    print(
        f"floor at {at} at a time (-n {args.workers}) = {startup:.2f} + {runs} x "
        f"{run_figures[at]:.3f} + {services} x {service_figures[at]:.3f} = {floor_at:.2f}s"
    )
    print(f"median plain loop: {loop:.2f}s")
    print(f"floor / loop: {floor / loop:.2f}x; at {at} at a time: {floor_at / loop:.2f}x")
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
