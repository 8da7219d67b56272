"""An image's filesystem, read without running anything: a labelled container of the image is
created, never started (so never emulated), exported and removed.

One export per image and platform per run: the readers are verification (the ELF truth of every
executable, :meth:`ImageFilesystems.scan`) and the structure tests (files and directories,
:meth:`ImageFilesystems.tar`). When a later reader of the run may want the filesystem, the export
is kept as a tar in the run's state directory, written once under a file lock and renamed into
place whole, so every reader of every xdist worker of the run reads that file instead of
exporting again. The run's state directory goes at the run's end, and the tars with it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from filelock import FileLock

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.api import EngineApi
from pytest_multiarch.engine.labels import CALL_LABEL, Labels
from pytest_multiarch.runtime.elf import ElfScan, scan_tar, stream_from_chunks

# The entrypoint of containers that are created to read their filesystem and never started
# (an image without CMD or ENTRYPOINT cannot be created without one).
NEVER_STARTED = "/.pytest-multiarch-never-started"
# The folder of the run's state directory that holds the exported filesystems.
FOLDER = "filesystems"


class ImageFilesystems:
    """The exported filesystems of one run, in ``state_dir`` (the run's state directory)."""

    def __init__(self, state_dir: Path, labels: Labels) -> None:
        self.directory = state_dir / FOLDER
        self.labels = labels

    def _target(self, image_id: str, platform: Platform) -> Path:
        # The platform too: on the containerd image store one id can name a multi-platform image.
        name = f"{image_id}-{platform.name}".replace(":", "-").replace("/", "-")
        return self.directory / f"{name}.tar"

    def tar(
        self,
        reference: str,
        image_id: str,
        platform: Platform,
        engine: EngineApi,
        *,
        variant_of: str = "",
    ) -> Path:
        """The filesystem of ``reference`` (image ``image_id``) for ``platform`` as a tar file:
        exported now by the first reader of the run, read from the run's state directory by
        every other. ``variant_of``: the platform to create the container for when the image's
        metadata names another one than ``platform`` (the engine refuses the mismatch)."""
        target = self._target(image_id, platform)
        if target.exists():
            return target
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with FileLock(str(target.with_suffix(".lock"))):
            if not target.exists():  # another process may have exported it while we waited
                partial = target.with_name(f"{target.stem}.{os.getpid()}.partial")
                try:
                    with open(partial, "wb") as handle:
                        for chunk in _export(reference, platform, self.labels, engine, variant_of):
                            handle.write(chunk)
                    os.replace(partial, target)  # whole or not at all, for the other readers
                finally:
                    with contextlib.suppress(OSError):
                        partial.unlink()
        return target

    def scan(
        self,
        reference: str,
        image_id: str,
        platform: Platform,
        allowed_globs: Sequence[str],
        engine: EngineApi,
        *,
        variant_of: str = "",
        keep: bool = True,
    ) -> ElfScan:
        """The ELF truth of ``reference`` for ``platform``: every executable and shared object
        of its filesystem checked (:func:`pytest_multiarch.runtime.elf.scan_tar`). The export of
        the run is read when there is one; else, with ``keep`` (a later reader will want it),
        it is made and kept, and without, streamed and never written."""
        if image_id and (keep or self._target(image_id, platform).exists()):
            path = self.tar(reference, image_id, platform, engine, variant_of=variant_of)
            try:
                with open(path, "rb") as handle:
                    return scan_tar(handle, platform, allowed_globs)
            except OSError as exc:
                raise MultiarchError(
                    f"could not read the filesystem of {reference} ({platform.name}): {exc}"
                ) from None
        chunks = _export(reference, platform, self.labels, engine, variant_of)
        return scan_tar(stream_from_chunks(chunks), platform, allowed_globs)


def _export(
    reference: str, platform: Platform, labels: Labels, engine: EngineApi, variant_of: str
) -> Iterator[bytes]:
    """The chunks of ``docker export`` of a created, never started container of ``reference``;
    the container is removed (in the background) when they are read or abandoned."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    what = f"{reference} ({platform.name})"
    api = engine.client.api
    try:
        created = api.create_container(
            reference,
            entrypoint=[NEVER_STARTED],
            labels={**labels.as_dict(), CALL_LABEL: uuid.uuid4().hex},
            platform=variant_of or platform.name,
            network_disabled=True,
        )
    except (DockerException, RequestException, OSError) as exc:
        raise MultiarchError(f"could not read the filesystem of {what}: {exc}") from None
    container_id = str(created["Id"])
    try:
        yield from api.export(container_id)
    except (DockerException, RequestException, OSError) as exc:
        raise MultiarchError(f"could not read the filesystem of {what}: {exc}") from None
    finally:
        engine.remove_later(container_id)
