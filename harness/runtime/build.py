"""Building an image for one platform with buildx: at most once per test run, whatever ``-n`` is.

Each (image, platform) gets its own tag derived from a hash of its inputs, so the classic image
store (one platform per tag) and the containerd store behave the same, and unchanged inputs are
found again on the next run without calling buildx at all. Across xdist workers a file lock per
(image, platform) makes one worker build while only the workers that need that image wait.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from filelock import FileLock

from harness.commands import run_command
from harness.runtime.engine import docker
from harness.errors import CommandError, MultiarchError
from harness.images import ImageSpec
from harness.platforms import Platform

TAG_REPOSITORY = "pytest-multiarch"
IMAGE_LABEL = "pytest-multiarch.image"
BUILD_TIMEOUT = float(os.environ.get("MULTIARCH_BUILD_TIMEOUT", "3600"))
BUILD_MODES = ("auto", "always", "never")


class BuildFailed(MultiarchError):
    """buildx failed for one (image, platform)."""


@dataclass(frozen=True)
class BuildRecord:
    image: str
    platform: str
    reference: str
    image_id: str
    seconds: float
    cached: bool
    error: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def input_digest(spec: ImageSpec, platform: Platform) -> str:
    """A hash of everything that goes into the build of ``spec`` for ``platform``."""
    digest = hashlib.sha256()
    digest.update(f"platform={platform.name}\0target={spec.target}\0ref={spec.ref}\0".encode())
    for key in sorted(spec.build_args):
        digest.update(f"arg {key}={spec.build_args[key]}\0".encode())
    if not spec.ref:
        for path in sorted(p for p in spec.directory.rglob("*") if p.is_file()):
            relative = path.relative_to(spec.directory).as_posix()
            if relative == "image.toml" or "__pycache__" in relative:
                continue
            digest.update(f"file {relative} {os.stat(path).st_mode & 0o111}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]


def image_tag(spec: ImageSpec, platform: Platform) -> str:
    return f"{TAG_REPOSITORY}/{spec.name}:{input_digest(spec, platform)}-{platform.short}"


def build_command(spec: ImageSpec, platform: Platform, tag: str) -> list[str]:
    """The buildx command line for ``spec`` on ``platform``. An image with ``ref`` is taken as a
    one-line ``FROM ref`` build, so BuildKit pulls it with an explicit platform."""
    command = docker(
        "buildx",
        "build",
        "--platform",
        platform.name,
        "--load",
        "--provenance=false",
        "--progress=plain",
        "--tag",
        tag,
        "--label",
        f"{IMAGE_LABEL}={spec.name}",
    )
    if spec.target:
        command += ["--target", spec.target]
    for key in sorted(spec.build_args):
        command += ["--build-arg", f"{key}={spec.build_args[key]}"]
    if spec.ref:
        command += ["-"]
    else:
        command += ["--file", str(spec.dockerfile), str(spec.directory)]
    return command


def inspect_platform(reference: str) -> tuple[str, str] | None:
    """(image id, os/arch[/variant]) of a local image, or None when absent."""
    result = run_command(
        docker("image", "inspect", "--format", "{{json .}}", reference), timeout=60, check=False
    )
    if not result.ok:
        return None
    data = json.loads(result.stdout)
    parts = (data.get("Os", ""), data.get("Architecture", ""), data.get("Variant", ""))
    return str(data.get("Id", "")), "/".join(p for p in parts if p)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def build_image(
    spec: ImageSpec, platform: Platform, mode: str, *, classic_store: bool = False
) -> BuildRecord:
    """Build (or find) ``spec`` for ``platform``. Never raises for a failed build: the record
    carries the error, so every test of that (image, platform) reports the same cause."""
    tag = image_tag(spec, platform)
    start = time.monotonic()
    if spec.ref and classic_store:
        return _take_ref_classic(spec, platform, tag, mode, start)
    existing = inspect_platform(tag)
    # A ref names an image that may move upstream: resolve it again on every run.
    if mode != "always" and existing is not None and not spec.ref:
        return BuildRecord(spec.name, platform.name, tag, existing[0], 0.0, True)
    if mode == "never":
        if existing is not None:
            return BuildRecord(spec.name, platform.name, tag, existing[0], 0.0, True)
        return _failed(
            spec,
            platform,
            tag,
            0.0,
            f"image {tag} is not built and --build=never was given; run with --build=auto",
        )
    command = build_command(spec, platform, tag)
    try:
        run_command(
            command,
            timeout=BUILD_TIMEOUT,
            input_text=f"FROM {spec.ref}\n" if spec.ref else None,
        )
    except CommandError as exc:
        return _failed(
            spec,
            platform,
            tag,
            time.monotonic() - start,
            f"build of image {spec.name!r} for {platform.name} failed "
            f"(exit {exc.returncode}); command: {' '.join(exc.command)}\n"
            f"last lines of the build log:\n{_tail(exc.stderr or exc.stdout)}"
            + _hint(exc.stderr + exc.stdout, platform),
        )
    return _found(spec, platform, tag, time.monotonic() - start)


def _hint(log: str, platform: Platform) -> str:
    if "no match for platform in manifest" in log:
        return (
            f"\nhint: a base image (FROM) has no {platform.name} variant. Offline, seed the "
            f"local mirror with it: `multiarch host up --platforms {platform.short}`"
        )
    return ""


def _failed(spec: ImageSpec, platform: Platform, tag: str, seconds: float, why: str) -> BuildRecord:
    return BuildRecord(spec.name, platform.name, tag, "", seconds, False, why)


def _found(spec: ImageSpec, platform: Platform, tag: str, seconds: float) -> BuildRecord:
    found = inspect_platform(tag)
    if found is None:
        return _failed(
            spec,
            platform,
            tag,
            seconds,
            f"{tag} is not in the engine's image store after it was made",
        )
    return BuildRecord(spec.name, platform.name, tag, found[0], seconds, False)


def _take_ref_classic(
    spec: ImageSpec, platform: Platform, tag: str, mode: str, start: float
) -> BuildRecord:
    """The classic store keeps one platform per tag, so pull ``ref`` for this platform and tag
    the result at once; the caller holds a lock per ref, so platforms do not interleave.
    BuildKit on this store does not see local images of another platform, hence no FROM."""
    pull_error = ""
    if mode != "never":
        pulled = run_command(
            docker("pull", "--quiet", "--platform", platform.name, spec.ref),
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        if not pulled.ok:
            pull_error = _tail(pulled.stderr or pulled.stdout, 5)
    local = inspect_platform(spec.ref)
    if local is None:
        return _failed(
            spec,
            platform,
            tag,
            time.monotonic() - start,
            f"image {spec.ref!r} (ref of {spec.name!r}) is not available for {platform.name}: "
            f"{pull_error or 'not in the local image store'}",
        )
    # Whatever the tag holds now is tagged for this platform; the architecture check that
    # follows refuses it if it is another platform (a pull that fell back, or failed).
    run_command(docker("tag", local[0], tag), timeout=60)
    return _found(spec, platform, tag, time.monotonic() - start)


# Checks a freshly made image for its platform: "" when it is right, else why it is not.
Verify = Callable[[BuildRecord], str]


@dataclass(frozen=True)
class BuildOutcome:
    record: BuildRecord
    produced: bool  # this call made the record, so it is the one that reports it
    unusable: str = ""  # why the built image must not be tested (e.g. the wrong architecture)


class BuildCoordinator:
    """Builds each (image, platform) once per run, shared by every process of the run.

    ``state_dir`` must be shared by all xdist workers of the run and unique to the run.
    """

    def __init__(self, state_dir: Path, mode: str, *, classic_store: bool = False) -> None:
        if mode not in BUILD_MODES:
            raise MultiarchError(f"invalid build mode {mode!r}; use one of {BUILD_MODES}")
        self.state_dir = state_dir
        self.mode = mode
        self.classic_store = classic_store
        self._seen: dict[tuple[str, str], BuildOutcome] = {}

    def get(self, spec: ImageSpec, platform: Platform, verify: Verify) -> BuildOutcome:
        """The build record of ``spec`` for ``platform``, made (and checked with ``verify``) by
        the first process of the run that asks; the others read what it found."""
        key = (spec.name, platform.name)
        if key in self._seen:
            return replace(self._seen[key], produced=False)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{spec.name}--{platform.short}"
        result_file = self.state_dir / f"{stem}.json"
        # A ref on the classic store moves one shared tag: serialize its platforms.
        lock_name = f"{spec.name}--ref" if spec.ref and self.classic_store else stem
        with FileLock(str(self.state_dir / f"{lock_name}.lock")):
            if result_file.exists():
                data = json.loads(result_file.read_text())
                outcome = BuildOutcome(BuildRecord(**data["record"]), False, data["unusable"])
            else:
                record = build_image(spec, platform, self.mode, classic_store=self.classic_store)
                unusable = "" if record.error else verify(record)
                result_file.write_text(
                    json.dumps({"record": record.to_dict(), "unusable": unusable})
                )
                outcome = BuildOutcome(record, True, unusable)
        self._seen[key] = outcome
        return outcome
