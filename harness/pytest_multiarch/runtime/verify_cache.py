"""Verification outcomes on disk, so an unchanged image is verified once, not on every run.

The outcome of verifying an (image, platform) is a pure function of the image id (content
addressed), the platform, the emulator and the harness version; those four make the key. One
small JSON file per key lives under ``<cache dir>/verified/``, named by the key's sha256, and
holds the key itself, so a file copied or planted under another key's name is not trusted.

Concurrent xdist workers and runs need no lock: writers write a private temporary file in the
same directory and ``os.replace`` it over the entry, so a reader sees a whole old entry, a whole
new one, or none. Nothing is fsync'ed: an entry torn by a crash reads as corrupted, which is a
miss. Anything unexpected (truncated, not JSON, wrong shape, other key, a symlink or other
non-file at the entry path, a directory others can write to) is a miss with a
:class:`VerificationCacheWarning`, never trusted and never an exception.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import secrets
import stat
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.paths import cache_dir
from pytest_multiarch.runtime.elf import ForeignBinary

SUBDIRECTORY = "verified"
ENTRY_FORMAT = 1
# Entries are a few hundred bytes; a larger file is not one of ours.
_MAX_ENTRY_BYTES = 8 * 1024 * 1024


class VerificationCacheWarning(UserWarning):
    """A cache entry was ignored (or could not be written); the image is verified afresh."""


@dataclass(frozen=True)
class VerificationKey:
    """Everything a verification outcome depends on."""

    image_id: str  # "sha256:..." as the engine reports it
    platform: str  # OCI name, "linux/arm64"
    emulator: str  # e.g. "qemu-aarch64 7.2.19 flags PF", or "native"
    harness_version: str
    # The image.toml foreign-binaries globs (canonical JSON): they decide what counts as
    # foreign, and they are not part of the image id.
    foreign_binaries: str = "[]"

    def __post_init__(self) -> None:
        for field in fields(self):
            if not getattr(self, field.name):
                raise ValueError(f"VerificationKey.{field.name} must not be empty: {self!r}")

    @property
    def file_name(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest() + ".json"


@dataclass(frozen=True)
class Verification:
    """How one (image, platform) was verified and what was found."""

    how: str  # "metadata+elf+uname", "metadata+elf", "metadata+scripts-only", ...
    ok: bool
    problem: str = ""  # the error tests of this (image, platform) fail with, when not ok
    elf_files: int = 0
    foreign: tuple[ForeignBinary, ...] = ()
    seconds: float = 0.0  # what verifying cost
    uname_machine: str = ""  # what `uname -m` said in the image; "" when not probed


def default_directory() -> Path:
    return cache_dir() / SUBDIRECTORY


def path_for(key: VerificationKey, directory: Path | None = None) -> Path:
    """Where the entry for ``key`` lives."""
    return (directory or default_directory()) / key.file_name


def load(key: VerificationKey, *, directory: Path | None = None) -> Verification | None:
    """The stored verification for ``key``; None on a miss (warning when an entry was bad)."""
    where = directory or default_directory()
    try:
        directory_fd = _open_directory(where)
    except FileNotFoundError:
        return None
    except _Untrusted as problem:
        _warn(f"not using the verification cache: {problem}")
        return None
    entry = where / key.file_name
    try:
        raw = _read_entry(directory_fd, key.file_name)
    except FileNotFoundError:
        return None
    except (OSError, _Untrusted) as problem:
        _warn(f"ignoring verification cache entry {entry}: {_reason(problem)}")
        return None
    finally:
        os.close(directory_fd)
    try:
        document = json.loads(raw)
        return _verification_for(key, document)
    except ValueError as problem:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        _warn(f"ignoring verification cache entry {entry}: {problem}")
        return None


def store(
    key: VerificationKey, verification: Verification, *, directory: Path | None = None
) -> bool:
    """Write ``verification`` for ``key``; False (with a warning) when it could not be cached."""
    where = directory or default_directory()
    document = {
        "format": ENTRY_FORMAT,
        "key": asdict(key),
        "verification": asdict(verification),
    }
    payload = json.dumps(document, sort_keys=True).encode()
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            where.mkdir(mode=0o700)
        directory_fd = _open_directory(where)
    except (OSError, _Untrusted) as problem:
        _warn(f"cannot cache a verification in {where}: {_reason(problem)}")
        return False
    temporary = f".{key.file_name}.{secrets.token_hex(8)}.tmp"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        file_fd = os.open(temporary, flags, 0o600, dir_fd=directory_fd)
        try:
            with os.fdopen(file_fd, "wb", closefd=False) as handle:
                handle.write(payload)
        finally:
            os.close(file_fd)
        # rename(2) replaces the directory entry itself: a symlink planted there is not followed.
        os.replace(temporary, key.file_name, src_dir_fd=directory_fd, dst_dir_fd=directory_fd)
        return True
    except OSError as problem:
        _warn(f"cannot cache a verification in {where / key.file_name}: {_reason(problem)}")
        with contextlib.suppress(OSError):  # never created, or already renamed
            os.unlink(temporary, dir_fd=directory_fd)
        return False
    finally:
        os.close(directory_fd)


class _Untrusted(MultiarchError):
    """A cache path this process must not read or write through (never escapes this module)."""


def _warn(message: str) -> None:
    warnings.warn(message, VerificationCacheWarning, stacklevel=3)


def _reason(problem: Exception) -> str:
    if isinstance(problem, OSError) and problem.errno == errno.ELOOP:
        return "it is a symbolic link"
    if isinstance(problem, OSError):
        return problem.strerror or str(problem)
    return str(problem)


def _open_directory(where: Path) -> int:
    """An fd of ``where``, refused when it is a symlink, not ours, or writable by others."""
    try:
        directory_fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as problem:
        if problem.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _Untrusted(f"{where} is not a directory (a symbolic link?)") from problem
        raise
    info = os.fstat(directory_fd)
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        os.close(directory_fd)
        raise _Untrusted(
            f"{where} is owned by uid {info.st_uid} with mode {stat.filemode(info.st_mode)}; "
            f"it must be this user's (uid {os.geteuid()}) and writable only by it: "
            f"remove it and it is recreated"
        )
    return directory_fd


def _read_entry(directory_fd: int, name: str) -> bytes:
    # O_NONBLOCK: a FIFO planted at the entry path must not hang the run.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    file_fd = os.open(name, flags, dir_fd=directory_fd)
    try:
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Untrusted(f"not a regular file ({stat.filemode(info.st_mode)})")
        if info.st_size > _MAX_ENTRY_BYTES:
            raise _Untrusted(f"{info.st_size} bytes is too large for an entry")
        with os.fdopen(file_fd, "rb", closefd=False) as handle:
            return handle.read(_MAX_ENTRY_BYTES + 1)
    finally:
        os.close(file_fd)


def _verification_for(key: VerificationKey, document: Any) -> Verification:
    """The verification in ``document`` when it is a well-formed entry for ``key``."""
    if not isinstance(document, dict) or set(document) != {"format", "key", "verification"}:
        raise ValueError("not a verification entry (expected keys format, key, verification)")
    if document["format"] != ENTRY_FORMAT:
        raise ValueError(f"entry format {document['format']!r}, expected {ENTRY_FORMAT}")
    if document["key"] != asdict(key):
        raise ValueError(f"entry is for {document['key']!r}, not {asdict(key)!r}")
    body = document["verification"]
    expected = {field.name for field in fields(Verification)}
    if not isinstance(body, dict) or set(body) != expected:
        raise ValueError(f"verification must have exactly the fields {sorted(expected)}")
    for name in ("how", "problem", "uname_machine"):
        _require(isinstance(body[name], str), name, "a string", body[name])
    _require(isinstance(body["ok"], bool), "ok", "true or false", body["ok"])
    elf_files = body["elf_files"]
    _require(
        isinstance(elf_files, int) and not isinstance(elf_files, bool) and elf_files >= 0,
        "elf_files",
        "a count",
        elf_files,
    )
    seconds = body["seconds"]
    _require(
        isinstance(seconds, int | float)
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and seconds >= 0,
        "seconds",
        "a duration",
        seconds,
    )
    foreign = body["foreign"]
    _require(isinstance(foreign, list), "foreign", "a list", foreign)
    return Verification(
        how=body["how"],
        ok=body["ok"],
        problem=body["problem"],
        elf_files=elf_files,
        foreign=tuple(_foreign_binary(item) for item in foreign),
        seconds=float(seconds),
        uname_machine=body["uname_machine"],
    )


def _foreign_binary(item: Any) -> ForeignBinary:
    names = {field.name for field in fields(ForeignBinary)}
    if not isinstance(item, dict) or set(item) != names:
        raise ValueError(f"foreign entry {item!r} must have exactly the fields {sorted(names)}")
    for name in ("path", "found", "expected"):
        _require(isinstance(item[name], str), f"foreign.{name}", "a string", item[name])
    _require(isinstance(item["executable"], bool), "foreign.executable", "a bool", item)
    return ForeignBinary(item["path"], item["found"], item["expected"], item["executable"])


def _require(condition: bool, name: str, what: str, value: Any) -> None:
    if not condition:
        raise ValueError(f"{name} must be {what}, not {value!r}")
