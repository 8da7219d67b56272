"""Cold builds against builds restored from --build-cache, as a fresh CI machine sees them.

Each round, for a copy of this repository's ``images/service`` (a file of its own beside it
gives it tags of its own, so no one else's image is removed; its build steps are the same):

1. cold: the image removed, BuildKit's cache emptied (``docker buildx prune -af``), a run with
   ``--build-cache local:DIR`` on a new, empty DIR (which it fills);
2. restored: the image removed and BuildKit's cache emptied again, the same run with that DIR.

The build seconds come from the run's JSON report (``builds[].seconds``), per platform; the
medians are printed with restored / cold. A measurement to read, not a test.

CAREFUL: ``docker buildx prune -af`` empties BuildKit's cache for every user of the engine.

    PYTHONPATH=harness .venv/bin/python benchmarks/build_cache.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = """
    import pytest

    @pytest.mark.image("service")
    def test_built(run, platform):
        run(["cat", "/etc/debian_version"])
"""


def project(where: Path) -> Path:
    """A pytest project with a copy of images/service, tagged apart from the real one."""
    shutil.copytree(ROOT / "images" / "service", where / "images" / "service")
    (where / "images" / "service" / "benchmark-nonce").write_text(uuid.uuid4().hex)
    (where / "pytest.ini").write_text("[pytest]\n")
    (where / "test_service.py").write_text(textwrap.dedent(TESTS))
    return where


def fresh_engine(report: Path) -> None:
    """What a new machine has: no image of the run, no BuildKit cache."""
    if report.exists():
        tags = [build["reference"] for build in json.loads(report.read_text())["builds"]]
        subprocess.run(["docker", "image", "rm", *tags], capture_output=True, timeout=300)
    subprocess.run(
        ["docker", "buildx", "prune", "-af"], capture_output=True, timeout=600, check=True
    )


def build_seconds(
    directory: Path, cache: Path, report: Path, platforms: str
) -> dict[str, tuple[float, int, int]]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--rootdir",
        str(directory),
        "--platforms",
        platforms,
        "--build-cache",
        f"local:{cache}",
        "--multiarch-json",
        str(report),
    ]
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        sys.exit(f"run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    builds = json.loads(report.read_text())["builds"]
    for build in builds:
        if build["cached"]:
            sys.exit(f"{build['platform']}: the image was still there; not a fresh engine")
    return {
        build["platform"]: (build["seconds"], build["steps_cached"], build["steps_run"])
        for build in builds
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platforms", default="amd64,arm64")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cold: dict[str, list[float]] = {}
    restored: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="build-cache-bench-") as tmp:
        directory = project(Path(tmp) / "project")
        report = Path(tmp) / "report.json"
        for round_ in range(1, args.rounds + 1):
            cache = Path(tmp) / f"cache-{round_}"
            fresh_engine(report)
            first = build_seconds(directory, cache, report, args.platforms)
            fresh_engine(report)
            second = build_seconds(directory, cache, report, args.platforms)
            for name in first:
                cold.setdefault(name, []).append(first[name][0])
                restored.setdefault(name, []).append(second[name][0])
                print(
                    f"round {round_} {name:<12} cold {first[name][0]:6.1f}s "
                    f"({first[name][1]} cached / {first[name][2]} run)   restored "
                    f"{second[name][0]:6.1f}s ({second[name][1]} cached / {second[name][2]} run)",
                    flush=True,
                )
            shutil.rmtree(cache, ignore_errors=True)
        fresh_engine(report)
    print(f"\nimages/service, {args.rounds} rounds, medians (build seconds from the JSON report)")
    print(f"{'platform':<14}{'cold':>8}{'restored':>10}{'restored/cold':>15}")
    for name in cold:
        c, r = statistics.median(cold[name]), statistics.median(restored[name])
        print(f"{name:<14}{c:7.1f}s{r:9.1f}s{r / c:14.0%}")


if __name__ == "__main__":
    main()
