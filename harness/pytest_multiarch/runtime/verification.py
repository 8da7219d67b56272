"""Architecture truth about a built image, once per image id: the image's recorded platform, the
ELF header of every executable and shared object in its filesystem, and ``uname -m`` in a fresh
container where it has ELF files to run it; kept in the verification cache
(pytest_multiarch.runtime.verify_cache) for later processes and runs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pytest_multiarch.core.emulation import check_emulator
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.version import __version__
from pytest_multiarch.runtime import verify_cache
from pytest_multiarch.runtime.build import Verdict
from pytest_multiarch.runtime.containers import image_platform, metadata_problem
from pytest_multiarch.runtime.elf import ForeignBinary, format_wrong_architecture
from pytest_multiarch.runtime.oneshot import probe_uname
from pytest_multiarch.runtime.variants import checks_variants

if TYPE_CHECKING:
    from pytest_multiarch.core.images import ImageSpec
    from pytest_multiarch.core.platforms import Platform
    from pytest_multiarch.engine.labels import Labels
    from pytest_multiarch.model.records import BuildRecord
    from pytest_multiarch.runtime.engine import Engine
    from pytest_multiarch.runtime.image_fs import ImageFilesystems
    from pytest_multiarch.runtime.settings import Settings

# Bump when what verification checks, or how it decides, changes: outcomes cached by older
# logic are then verified afresh.
VERIFICATION_LOGIC = 1
# Foreign binaries a cached verification keeps (the message names the first few and a count).
FOREIGN_KEPT = 50


def verification_version() -> str:
    """The harness version part of a verification cache key."""
    return f"{__version__}+verification.{VERIFICATION_LOGIC}"


class Verifier:
    """Verifies the images one process builds or finds, each on the engine of its platform
    (``engine_for``), with the run's ``settings`` (time limits), ``labels`` (the probe's
    containers) and image exports (``filesystems``, shared with the structure tests)."""

    def __init__(
        self,
        settings: Settings,
        labels: Labels,
        engine_for: Callable[[Platform], Engine],
        filesystems: ImageFilesystems,
    ) -> None:
        self.settings = settings
        self.labels = labels
        self._engine_for = engine_for
        self._filesystems = filesystems
        self._emulators: dict[str, str] = {}

    def emulator(self, platform: Platform) -> str:
        """What runs ``platform`` here, as the verification cache key names it: "native", or
        the binfmt handler's state and the emulator file it runs (path, size, modification
        time: a new QEMU is a new file), read from files once per process: asking QEMU for its
        version would start one more process per platform in every test process; and the
        engine, when it is not this machine's own."""
        if platform.name not in self._emulators:
            status = check_emulator(platform, ask_version=False)
            identity = status.summary
            if status.handler is not None and status.handler.interpreter:
                real = os.path.realpath(status.handler.interpreter)
                try:
                    info = os.stat(real)
                    identity += f"; {real} {info.st_size} bytes, mtime {info.st_mtime_ns}"
                except OSError:
                    identity += f"; {real} unreadable"
            engine = self._engine_for(platform)
            self._emulators[platform.name] = engine.emulator_identity(platform, identity)
        return self._emulators[platform.name]

    def key(
        self, image_id: str, spec: ImageSpec, platform: Platform
    ) -> verify_cache.VerificationKey:
        """What a verification of ``image_id`` for ``platform`` is cached under."""
        return verify_cache.VerificationKey(
            image_id=image_id,
            platform=platform.name,
            emulator=self.emulator(platform),
            harness_version=verification_version(),
            foreign_binaries=json.dumps(sorted(spec.foreign_binaries)),
        )

    def cached(self, image_id: str, spec: ImageSpec, platform: Platform) -> bool:
        """Whether a verification of ``image_id`` for ``platform`` is cached (a file exists;
        whether it can be trusted is decided when it is read)."""
        return verify_cache.path_for(self.key(image_id, spec, platform)).exists()

    def check(self, record: BuildRecord, spec: ImageSpec, platform: Platform) -> Verdict:
        """Architecture truth, once per image id: from the verification cache when this image
        id was verified before (same platform, emulator, harness and foreign-binaries globs),
        else verified now (:meth:`verify`) and stored. A bad cache entry is a warning and a
        miss, never trusted."""
        key: verify_cache.VerificationKey | None = None
        if record.image_id:
            key = self.key(record.image_id, spec, platform)
            cached = verify_cache.load(key)
            if cached is not None:
                return Verdict(cached.how, cached.problem, cached=True)
        verification, lasting = self.verify(record.reference, spec, platform)
        if key is not None and lasting:
            verify_cache.store(key, verification)
        return Verdict(verification.how, verification.problem)

    def verify(
        self, reference: str, spec: ImageSpec, platform: Platform
    ) -> tuple[verify_cache.Verification, bool]:
        """Verify ``reference`` for ``platform``: the image's recorded platform, the ELF header
        of every executable and shared object in its filesystem (read without starting it),
        then ``uname -m`` in a fresh container where the image has ELF files to run it. Returns
        the verification and whether it is a lasting property of the image (worth caching):
        an engine failure or a timeout is not."""
        started = time.monotonic()

        def outcome(
            how: str,
            problem: str = "",
            *,
            elf_files: int = 0,
            foreign: Sequence[ForeignBinary] = (),
            uname: str = "",
        ) -> verify_cache.Verification:
            seconds = round(time.monotonic() - started, 3)
            kept = tuple(foreign[:FOREIGN_KEPT])
            return verify_cache.Verification(
                how, not problem, problem, elf_files, kept, seconds, uname
            )

        api = self._engine_for(platform).api
        try:
            image_id, recorded = image_platform(reference, api.client)
            wrong_metadata = metadata_problem(reference, recorded, platform)
            scan = self._filesystems.scan(
                reference,
                image_id,
                platform,
                spec.foreign_binaries,
                api,
                variant_of=recorded if wrong_metadata else "",
                # Kept for the image's structure tests and variants check, which read the
                # same export.
                keep=bool(spec.structure_test_files())
                or checks_variants(spec, self.settings.platforms),
            )
        except MultiarchError as exc:
            return outcome("metadata", str(exc)), False
        how = "metadata+elf" if scan.has_elf else "metadata+scripts-only"
        if scan.foreign:
            problem = (
                f"{format_wrong_architecture(scan, platform)}; image {reference}: build them "
                f"for $TARGETPLATFORM (a cross compiler, or GOARCH from TARGETARCH), or allow "
                f"deliberate ones with foreign-binaries in {spec.directory / 'image.toml'}"
            )
            if wrong_metadata:
                problem += f"; its metadata says {recorded} too"
            return outcome(how, problem, elf_files=scan.elf_files, foreign=scan.foreign), True
        if wrong_metadata:
            problem = f"wrong architecture: {wrong_metadata}"
            return outcome(how, problem, elf_files=scan.elf_files), True
        if not scan.has_elf:
            return outcome(how), True  # no ELF file, so no uname to ask
        timeout = self.settings.timeout(60, platform)
        try:
            answer = probe_uname(reference, platform, self.labels, timeout, api)
        except MultiarchError as exc:  # a timeout, a broken emulator, the engine
            return outcome(how, str(exc), elf_files=scan.elf_files), False
        if answer is None:
            return outcome(how, elf_files=scan.elf_files), True
        machine = answer.strip()
        problem = platform.machine_problem(machine, f"image {reference}")
        return outcome(
            "metadata+elf+uname",
            f"wrong architecture: {problem}" if problem else "",
            elf_files=scan.elf_files,
            uname=machine,
        ), True


__all__ = ["FOREIGN_KEPT", "VERIFICATION_LOGIC", "Verifier", "verification_version"]
