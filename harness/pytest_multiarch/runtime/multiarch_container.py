"""The container of the ``container`` fixture: testcontainers' DockerContainer, with file
helpers in the shapes of ``run``'s ``files`` and ``collect``. A module of its own because it
imports testcontainers, which processes that never start a container do not pay for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from testcontainers.core.container import DockerContainer

from pytest_multiarch.runtime.transfer import (
    Content,
    FileNotCollected,
    FileTransferError,
    checked_paths,
    file_archive,
    get_files,
    put_files,
)

if TYPE_CHECKING:
    from docker import APIClient


class MultiarchContainer(DockerContainer):
    """The ``container`` fixture's container: testcontainers' DockerContainer with
    ``put_files`` and ``get_files``, in the shapes of ``run``'s ``files`` and ``collect``."""

    def _engine(self) -> tuple[APIClient, str]:
        wrapped = self.get_wrapped_container() if self._container is not None else None
        if wrapped is None or wrapped.client is None or wrapped.id is None:
            raise FileTransferError(f"the container of {self.image} is not started")
        return wrapped.client.api, wrapped.id

    def put_files(self, files: Mapping[str, Content]) -> None:
        """Put ``{"/in/data.bin": bytes_or_path}`` into the running container."""
        archive = file_archive(files, "put_files")
        put_files(*self._engine(), archive, self.image)

    def get_files(self, paths: Sequence[str]) -> dict[str, bytes]:
        """The files at ``paths`` in the container (missing ones are left out)."""
        return get_files(*self._engine(), checked_paths(paths, "get_files"))

    def get_file(self, path: str) -> bytes:
        """The file at ``path``; FileNotCollected when it is not there."""
        found = self.get_files([path])
        if path not in found:
            raise FileNotCollected(f"{path} does not exist in the container of {self.image}")
        return found[path]
