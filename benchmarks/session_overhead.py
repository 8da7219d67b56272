"""What the plugin costs around the tests themselves, with every image already built.

Times `pytest tests/images` (warm: builds cached) for the given platforms with several worker
counts, and a session that uses no image fixture at all (the plugin must stay out of the way).
A measurement to read, not a test.

    .venv/bin/python benchmarks/session_overhead.py --platforms amd64,arm64
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MULTIARCH_")},
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    return time.perf_counter() - started, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platforms", default="amd64,arm64")
    parser.add_argument("--workers", default="0,2,4")
    args = parser.parse_args()
    timed(["tests/images", "--platforms", args.platforms, "-n", "2"], ROOT)  # warm the builds
    for workers in args.workers.split(","):
        seconds, summary = timed(
            ["tests/images", "--platforms", args.platforms, "-n", workers], ROOT
        )
        print(
            f"tests/images --platforms {args.platforms} -n {workers}: {seconds:6.1f}s  ({summary})"
        )
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_plain.py").write_text(
            "".join(f"def test_{i}():\n    pass\n" for i in range(200))
        )
        plain_with, _ = timed(["--platforms", args.platforms], Path(tmp))
        plain_without, _ = timed(["-p", "no:multiarch"], Path(tmp))
    print(f"200 plain tests: plugin loaded {plain_with:5.2f}s, disabled {plain_without:5.2f}s")


if __name__ == "__main__":
    main()
