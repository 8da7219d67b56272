"""How often does an engine's image listing fail because another process removed an image
while it listed, and does the dead-tag sweep (``sweep_dead_private_tags``, every run's first
use of an engine) still fail because of it?

Found in a full run of our suite (847ee26): a test's setup failed with ``docker --host
unix:///run/podman/podman.sock image ls ... exited with 1: Error response from daemon: reading
image "a3674c...": locating image with ID "a3674c...": image not known``. Podman lists image ids
and then reads each one; an image removed in between fails the whole listing. Docker's
containerd store does the same (``content digest sha256:...: not found``) under a mass ``rmi``.

Per round, for ``--seconds``: a churner thread makes and removes images on the engine as fast
as it can (``docker commit`` of one stopped busybox container with a new label, then ``docker
rmi``: a new image id each time), while this process lists in a loop, either the raw listing
the sweep makes (``raw``) or the sweep itself (``sweep``). Prints the listings made and the ones
that failed.

    PYTHONPATH=harness python benchmarks/listing_race.py --engine unix:///run/podman/podman.sock

A measurement to read, not a test. Measured on the 2-core machine, 60 s per mode, Podman 4.3.1:

    raw listing: see the closing note of this change
"""

from __future__ import annotations

import argparse
import concurrent.futures
import subprocess
import time
import uuid

from pytest_multiarch.core.errors import CommandError
from pytest_multiarch.engine.docker import docker
from pytest_multiarch.engine.endpoints import EngineRef
from pytest_multiarch.runtime.build import sweep_dead_private_tags

REPOSITORY = "pytest-multiarch-bench/churn"


def _quiet(command: list[str]) -> None:
    subprocess.run(command, capture_output=True, check=False)


def churn(engine: EngineRef, until: float) -> int:
    """Make and remove images on ``engine`` until ``until`` (monotonic); returns how many."""
    source = f"churn-src-{uuid.uuid4().hex[:8]}"
    _quiet(docker("create", "--name", source, "busybox:latest", "true", engine=engine))
    made = 0
    try:
        while time.monotonic() < until:
            made += 1
            tag = f"{REPOSITORY}:{uuid.uuid4().hex[:12]}"
            commit = docker("commit", "-c", f"LABEL churn={tag}", source, tag, engine=engine)
            _quiet(commit)
            _quiet(docker("rmi", tag, engine=engine))
    finally:
        _quiet(docker("rm", "-f", source, engine=engine))
    return made


def listing(engine: EngineRef) -> list[str]:
    command = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", engine=engine)
    return [*command, "--filter", "reference=pytest-multiarch/*:*-tmp-*"]


def measure(engine: EngineRef, mode: str, seconds: float) -> tuple[int, int, int, str]:
    """(listings, failed listings, images made and removed meanwhile, the last failure)."""
    deadline = time.monotonic() + seconds
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        churned = pool.submit(churn, engine, deadline)
        made = failed = 0
        last = ""
        while time.monotonic() < deadline:
            made += 1
            if mode == "raw":
                done = subprocess.run(listing(engine), capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    failed += 1
                    last = done.stderr.strip().splitlines()[-1]
            else:
                try:
                    sweep_dead_private_tags(engine)
                except CommandError as exc:
                    failed += 1
                    last = exc.stderr.strip().splitlines()[-1]
        return made, failed, churned.result(), last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="unix:///run/podman/podman.sock")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--modes", nargs="+", default=["raw", "sweep"])
    args = parser.parse_args()
    engine = EngineRef(args.engine if args.engine != "default" else "")
    for mode in args.modes:
        made, failed, churned, last = measure(engine, mode, args.seconds)
        told = f" (last: {last})" if last else ""
        print(f"{mode:5}: {made} listings, {failed} failed, {churned} images churned{told}")


if __name__ == "__main__":
    main()
