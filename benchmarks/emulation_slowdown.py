"""How much slower emulated platforms run here: the basis of --emulation-timeout-factor.

Runs the same BusyBox shell loop in a container of each platform (native first) and prints
seconds and the ratio to native. A measurement to read, not a test: nothing asserts on time.

    .venv/bin/python benchmarks/emulation_slowdown.py --platforms amd64,arm64,s390x,arm/v7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from pytest_multiarch.core.platforms import parse_platforms

LOOP = "i=0; while [ $i -lt {n} ]; do i=$((i+1)); done"


def timed_run(platform: str, iterations: int) -> float:
    command = [
        "docker",
        "run",
        "--rm",
        "--platform",
        platform,
        "busybox:latest",
        "sh",
        "-c",
        LOOP.format(n=iterations),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=900)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platforms", default="amd64,arm64,s390x")
    parser.add_argument("--iterations", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    platforms = parse_platforms(args.platforms, source="--platforms")
    baseline = 0.0
    print(f"busybox shell loop of {args.iterations} iterations, median of {args.repeat} runs")
    for plat in platforms:
        timed_run(plat.name, 1000)  # warm up: image present, emulator paged in
        seconds = statistics.median(
            timed_run(plat.name, args.iterations) for _ in range(args.repeat)
        )
        if not plat.emulated:
            baseline = seconds
        ratio = f"{seconds / baseline:5.1f}x" if baseline else "  n/a"
        kind = "emulated" if plat.emulated else "native"
        print(f"{plat.name:<14} {kind:<9} {seconds:7.2f}s  {ratio}")


if __name__ == "__main__":
    main()
