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

A measurement to read, not a test. Measured on the 2-core machine, Podman 4.3.1, 300 ballast
images, 60 s per mode (listings made / failed):

    raw listing:                   324 / 128 failed  (image not known)
    sweep on 847ee26:              309 / 122 failed  (raised into a test's setup)
    sweep, retried on 'image not known' only: 92 / 1 failed (`size is not known`)
    sweep, retried on both signs:  101 / 0 failed
"""

from __future__ import annotations

import argparse
import concurrent.futures
import subprocess
import time
import uuid

from pytest_multiarch.core.errors import CommandError
from pytest_multiarch.engine.docker import docker, engine_info
from pytest_multiarch.engine.endpoints import EngineRef
from pytest_multiarch.runtime.build import sweep_dead_private_tags

REPOSITORY = "pytest-multiarch-bench/churn"


def _quiet(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def _commit(engine: EngineRef, podman: bool, source: str, tag: str) -> list[str]:
    """A new image (a new id: its label differs) from container ``source``, as ``tag``. Podman's
    Docker-compatible API refuses ``docker commit`` (``Decode(): EOF``): its own client is used."""
    if podman:
        return ["podman", "--url", engine.spec, "commit", "-q", "-c", f"LABEL t={tag}", source, tag]
    return docker("commit", "-c", f"LABEL t={tag}", source, tag, engine=engine)


def churn(engine: EngineRef, podman: bool, source: str, until: float) -> int:
    """Make and remove images on ``engine`` until ``until`` (monotonic); returns how many."""
    made = 0
    while time.monotonic() < until:
        tag = f"{REPOSITORY}:{uuid.uuid4().hex[:12]}"
        if _quiet(_commit(engine, podman, source, tag)):
            made += 1
        _quiet(docker("rmi", tag, engine=engine))
    return made


def listing(engine: EngineRef) -> list[str]:
    command = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", engine=engine)
    return [*command, "--filter", "reference=pytest-multiarch/*:*-tmp-*"]


def measure(
    engine: EngineRef, podman: bool, source: str, mode: str, seconds: float
) -> tuple[int, int, int, str]:
    """(listings, failed listings, images made and removed meanwhile, the last failure)."""
    deadline = time.monotonic() + seconds
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        churned = pool.submit(churn, engine, podman, source, deadline)
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
    parser.add_argument("--ballast", type=int, default=300, help="images kept while listing")
    parser.add_argument("--modes", nargs="+", default=["raw", "sweep"])
    args = parser.parse_args()
    engine = EngineRef(args.engine if args.engine != "default" else "")
    podman = engine_info(engine=engine).kind == "podman"
    source = f"{REPOSITORY.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
    _quiet(docker("create", "--name", source, "busybox:latest", "true", engine=engine))
    ballast = [f"{REPOSITORY}:ballast-{n}" for n in range(args.ballast)]
    try:
        for tag in ballast:  # a longer listing: a wider window for a removal to fall into
            _quiet(_commit(engine, podman, source, tag))
        for mode in args.modes:
            made, failed, churned, last = measure(engine, podman, source, mode, args.seconds)
            told = f" (last: {last})" if last else ""
            print(f"{mode:5}: {made} listings, {failed} failed, {churned} images churned{told}")
    finally:
        for at in range(0, len(ballast), 100):
            _quiet(docker("rmi", *ballast[at : at + 100], engine=engine))
        _quiet(docker("rm", "-f", source, engine=engine))


if __name__ == "__main__":
    main()
