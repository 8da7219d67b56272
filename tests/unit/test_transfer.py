"""The archives that carry files into and out of containers."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from pytest_multiarch.runtime.oneshot import RunResult
from pytest_multiarch.runtime.transfer import (
    FileNotCollected,
    FileTransferError,
    file_archive,
    file_from_archive,
)


def members(archive: bytes) -> dict[str, tuple[int, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        found = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            found[member.name] = (member.mode, handle.read() if handle else b"")
        return found


def test_archive_has_the_files_at_their_paths_and_no_directories(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_bytes(b"#!/bin/sh\n")
    script.chmod(0o755)
    archive = file_archive({"/in/a.bin": b"\x00\xff", "/opt/x/run.sh": script})
    assert members(archive) == {
        "in/a.bin": (0o644, b"\x00\xff"),
        "opt/x/run.sh": (0o755, b"#!/bin/sh\n"),
    }


@pytest.mark.parametrize("path", ["relative/x", "/in/dir/", "/in/../etc/passwd", ""])
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(FileTransferError, match="files"):
        file_archive({path: b"x"})


def test_text_is_refused_as_ambiguous() -> None:
    with pytest.raises(TypeError, match="a str is ambiguous"):
        file_archive({"/in/x": "hello"})  # type: ignore[dict-item]


def test_unreadable_host_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileTransferError, match=r"cannot read .*missing"):
        file_archive({"/in/x": tmp_path / "missing"})


def tar_of(name: str, data: bytes | None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        if data is None:
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_file_from_archive() -> None:
    data = tar_of("result.bin", b"\x01\x02")
    assert file_from_archive([data[:100], data[100:]], "/out/result.bin") == b"\x01\x02"
    with pytest.raises(FileNotCollected, match="/out is a directory"):
        file_from_archive([tar_of("out", None)], "/out")


def test_result_file_names_what_happened() -> None:
    result = RunResult(3, b"", b"no space left\n", {"/out/a": b"1"})
    assert result.file("/out/a") == b"1"
    with pytest.raises(FileNotCollected, match=r"/out/b was not collected.*exit 3.*no space left"):
        result.file("/out/b")
