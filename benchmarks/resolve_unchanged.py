"""What resolving an unchanged (image, platform) costs a test process in a warm run.

"Resolving" is what the ``image`` fixture does before a test may use an image: find the built
image (by its tag) and establish that it is the requested architecture. The project: two small
BusyBox images on amd64, arm64 and s390x by default. One warm-up pytest run builds and verifies
everything; then each round starts a fresh process with a fresh run id (so nothing of an earlier
run's state is reused, only what lasts between runs: images and the verification cache) and
times ``ProcessRuntime.image(spec, platform)`` (``Harness.image`` in older checkouts) for every
(image, platform), after the process's one-time set-up (engine facts, the dead-run sweep, the
API connection), timed on its own.
Containers the rounds create are counted from the engine's events. A measurement to read, not
a test.

Any checkout can be measured (its harness is imported by its own python):

    .venv/bin/python benchmarks/resolve_unchanged.py
    python benchmarks/resolve_unchanged.py --python /other/checkout/.venv/bin/python --rounds 9
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

IMAGE = """\
FROM busybox:latest
ARG TARGETARCH
RUN echo "$TARGETARCH" > /target-arch
"""
TESTS = """\
import pytest


@pytest.mark.image("alpha")
def test_alpha(image, platform):
    assert image.id


@pytest.mark.image("beta")
def test_beta(image, platform):
    assert image.id
"""
RUN_LABEL = "pytest-multiarch.run"


def write_project(root: Path) -> None:
    for name in ("alpha", "beta"):
        directory = root / "images" / name
        directory.mkdir(parents=True)
        (directory / "Dockerfile").write_text(IMAGE + f"LABEL bench.image={name}\n")
    (root / "test_resolve.py").write_text(TESTS)


def clean_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MULTIARCH_", "PYTEST_XDIST"))
        # Python's default: compiled modules are kept between runs, as for a user.
        and key not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")
    }


# ---- the child: one fresh process of a warm run -------------------------------------------------


def _module(*names: str) -> Any:
    """The first of ``names`` that imports (the harness was reorganised over time)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise SystemExit(f"none of {names} imports with {sys.executable}")


def child(images_dir: Path, platforms: str, run_id: str) -> None:
    session = _module(
        "pytest_multiarch.runtime.process", "harness.runtime.session", "harness.session"
    )
    settings_module = _module(
        "pytest_multiarch.runtime.settings", "harness.run.settings", "harness.session"
    )
    images = _module("pytest_multiarch.core.images", "harness.images").discover_images(images_dir)
    platforms_module = _module("pytest_multiarch.core.platforms", "harness.platforms")
    cleanup = _module(
        "pytest_multiarch.engine.cleanup", "harness.runtime.cleanup", "harness.cleanup"
    )
    parsed = tuple(platforms_module.parse_platforms(platforms, source="benchmark"))
    candidates: dict[str, Any] = {
        "platforms": parsed,
        "images_dir": images_dir,
        "build_mode": "auto",
        "build_timeout": 3600.0,
        "missing_emulator": "error",
        "timeout_factor": 10.0,
        "keep_containers": False,
        "bind_address": "127.0.0.1",
        "json_path": None,
        "run_id": run_id,
        "owner": cleanup.owner_id(),
    }
    settings_type = settings_module.Settings
    names = [field.name for field in dataclasses.fields(settings_type)]
    settings = settings_type(**{name: candidates[name] for name in names if name in candidates})
    runtime_type = getattr(session, "ProcessRuntime", None)
    harness = runtime_type(settings) if runtime_type else session.Harness(settings)
    started = time.perf_counter()
    harness.start()
    if runtime_type:
        for platform in parsed:
            engine = harness.engine_for(platform)
            engine.sweep_once()  # the dead runs' leftovers: once per run and engine
            _ = engine.builds  # engine facts and build locks: once per process
            _ = engine.api.client  # the process's API connection (importing the docker SDK)
    else:
        _ = harness.builds  # engine facts and build locks: once per process
        api = getattr(harness, "api", None)
        if api is not None:
            _ = api.client  # the process's API connection (importing the docker SDK)
    setup = time.perf_counter() - started
    resolves: list[dict[str, Any]] = []
    for spec in images.values():
        for platform in parsed:
            started = time.perf_counter()
            _, record = harness.image(spec, platform)
            seconds = time.perf_counter() - started
            resolves.append(
                {
                    "image": spec.name,
                    "platform": platform.name,
                    "seconds": seconds,
                    "verified": getattr(record, "verified", ""),
                    "verification_cached": getattr(record, "verification_cached", False),
                }
            )
    close = getattr(harness, "close", None)
    if close is not None:
        close()
    print(json.dumps({"setup": setup, "resolves": resolves}))


# ---- the parent ---------------------------------------------------------------------------------


def containers_created(run_id: str, since: float, until: float) -> int:
    listed = subprocess.run(
        [
            "docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
            "--filter", "type=container", "--filter", "event=create",
            "--filter", f"label={RUN_LABEL}={run_id}", "--format", "{{.Actor.ID}}",
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return len(listed.stdout.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="python of the checkout")
    parser.add_argument("--platforms", default="amd64,arm64,s390x")
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes (default 5)")
    parser.add_argument("--child", nargs=3, metavar=("IMAGES", "PLATFORMS", "RUN_ID"))
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1], args.child[2])
        return
    if shutil.which("docker") is None:
        sys.exit("docker CLI not found on PATH")
    python = str(Path(args.python).absolute())
    root = Path(tempfile.mkdtemp(prefix="resolve-unchanged-"))
    try:
        write_project(root)
        warm = subprocess.run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--platforms", args.platforms],
            cwd=root, capture_output=True, text=True, timeout=3600, env=clean_env(), check=False,
        )  # fmt: skip
        if warm.returncode != 0:
            sys.exit(f"warm-up run failed:\n{warm.stdout[-3000:]}{warm.stderr[-2000:]}")
        print(f"python {python}; platforms {args.platforms}; {args.rounds} fresh processes")
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        setups: list[float] = []
        per_resolve: list[float] = []
        created = 0
        verified: set[tuple[str, bool]] = set()
        for _ in range(args.rounds):
            run_id = f"bench-{uuid.uuid4().hex}"
            since = time.time() - 1
            result = subprocess.run(
                [python, __file__, "--child", str(root / "images"), args.platforms, run_id],
                capture_output=True, text=True, timeout=600, env=clean_env(), check=False,
            )  # fmt: skip
            if result.returncode != 0:
                sys.exit(f"child failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
            data = json.loads(result.stdout.strip().splitlines()[-1])
            created += containers_created(run_id, since, time.time() + 1)
            setups.append(data["setup"])
            for resolve in data["resolves"]:
                per_resolve.append(resolve["seconds"])
                verified.add((resolve["verified"], resolve["verification_cached"]))
        print(f"process set-up (once per process): median {statistics.median(setups):.3f}s")
        print(
            f"resolve one unchanged (image, platform): median {statistics.median(per_resolve):.4f}s"
            f", max {max(per_resolve):.4f}s, over {len(per_resolve)} resolves"
        )
        print(f"containers created by the rounds: {created}")
        print(f"verified as (how, from cache): {sorted(verified)}")
        print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
