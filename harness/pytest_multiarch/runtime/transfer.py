"""Files into and out of containers: ``run(cmd, files={...}, collect=[...])`` and the matching
``container.put_files({...})`` / ``container.get_files([...])``.

Moving a file made on one platform to another (is the format portable?) is a common multi-arch
test; this needs no volume: the files travel through the engine's archive API, into a created
container before it starts, and out of it after it stopped (or while it runs).
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

from pytest_multiarch.core.errors import MultiarchError

if TYPE_CHECKING:
    from docker import APIClient

# What a file put into a container may be: its content, or a file on the host.
Content = Union[bytes, "os.PathLike[str]"]


class FileTransferError(MultiarchError):
    """A file could not be put into or taken out of a container."""


class FileNotCollected(FileTransferError):
    """``result.file(path)`` of a path the command did not leave behind as a regular file."""


def container_path(path: str, what: str) -> str:
    """``path`` checked to be an absolute path of a file in a container."""
    if not isinstance(path, str) or not path.startswith("/") or path.endswith("/"):
        raise FileTransferError(
            f"{what}: {path!r} is not an absolute file path in the container (like /in/data.bin)"
        )
    if ".." in path.split("/"):
        raise FileTransferError(f"{what}: {path!r} contains '..'; give the path it stands for")
    return posixpath.normpath(path)


def file_archive(files: Mapping[str, Content], what: str = "files") -> bytes:
    """A tar of ``files`` for the engine to unpack at ``/``: each file at its path, mode 0644
    (a host file keeps its permission bits), owned by root. Directories the image lacks are made
    by the engine (mode 0755); existing ones are left as they are (no directory entries)."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in files.items():
            target = container_path(path, what)
            data, mode = _content(content, f"{what}[{path!r}]")
            info = tarfile.TarInfo(target.lstrip("/"))
            info.size = len(data)
            info.mode = mode
            info.mtime = int(now)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _content(content: object, what: str) -> tuple[bytes, int]:
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content), 0o644
    if isinstance(content, str):
        raise TypeError(
            f"{what}: a str is ambiguous; pass the content as bytes (text.encode()), or a "
            "pathlib.Path for a file on the host"
        )
    if isinstance(content, os.PathLike):
        source = Path(os.fspath(content))
        try:
            return source.read_bytes(), source.stat().st_mode & 0o777
        except OSError as exc:
            raise FileTransferError(f"{what}: cannot read {source}: {exc}") from None
    raise TypeError(f"{what}: expected bytes or a pathlib.Path, got {type(content).__name__}")


def file_from_archive(chunks: Iterable[bytes], path: str) -> bytes:
    """The content of the one regular file in a tar the engine made of ``path``."""
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.next()
        if member is None or not member.isfile():
            kind = "nothing" if member is None else "a directory" if member.isdir() else "a link"
            raise FileNotCollected(f"{path} is {kind}, not a regular file: collect files")
        extracted = tar.extractfile(member)
        return extracted.read() if extracted is not None else b""


def put_files(api: APIClient, container_id: str, archive: bytes, where: str) -> None:
    """Unpack ``archive`` (file_archive) into a created or running container."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        accepted = api.put_archive(container_id, "/", archive)
    except (DockerException, RequestException) as exc:
        raise FileTransferError(
            f"could not put files into the container of {where}: {exc}"
        ) from None
    if not accepted:
        raise FileTransferError(f"the engine refused the files for the container of {where}")


def get_files(api: APIClient, container_id: str, paths: Sequence[str]) -> dict[str, bytes]:
    """The files at ``paths`` in a container (running or stopped): those that exist; a path
    that is missing is left out, one that is not a regular file is an error."""
    from docker.errors import DockerException, NotFound
    from requests.exceptions import RequestException

    found = {}
    for path in paths:
        try:
            chunks, _stat = api.get_archive(container_id, path)
            found[path] = file_from_archive(chunks, path)
        except NotFound:
            continue
        except (DockerException, RequestException) as exc:
            raise FileTransferError(f"could not copy {path} out of the container: {exc}") from None
    return found


def checked_paths(paths: Sequence[str], what: str) -> list[str]:
    if isinstance(paths, str):
        raise TypeError(f"{what} takes a list of paths, not one string")
    return [container_path(path, what) for path in paths]
