"""Binary truth: which machine an image's ELF files are built for, read from an exported tar.

The recorded platform of an image and ``uname`` inside it can both be right while the
application binary is not (a cross-compile that forgot ``TARGETARCH``), and such a binary
runs natively, so its tests pass. Reading the ELF header of every file is what tells.

Choices (each one decides what counts as foreign):

* **Which ELF files are checked**: executables (``ET_EXEC``), shared objects and PIEs
  (``ET_DYN``) and relocatable objects (``ET_REL``: ``.o`` files, kernel modules). A foreign
  ``.o`` is as much a sign of a wrong-architecture build as a foreign executable, and cross
  toolchains that ship them deliberately are what the allow-globs are for. Core dumps and
  other types are counted as ELF (``has_elf``) but not checked.
* **arm/v7 float ABI**: an ``EABI5`` file marked soft-float (``EF_ARM_ABI_FLOAT_SOFT``) is
  foreign where it needs the armhf userland: shared objects, PIEs and relocatable objects
  (glibc's armhf loader refuses soft-float objects, ``ld`` refuses to link them) and
  dynamically linked executables (they ask for the armel loader ``/lib/ld-linux.so.3``). A
  statically linked soft-float executable runs on any EABI kernel, so it passes. Files
  without a float flag pass, as glibc's loader lets them. OABI (EABI version 0) is foreign:
  EABI-only kernels, including arm64 hosts running arm/v7, cannot run it.
* **32-bit x86 in amd64 images**: ``i386`` (and ``x32``) files pass on linux/amd64: they are
  that platform's multilib (``lib32``/``libx32``, wine, grub's i386-pc modules) and run
  natively on amd64 hosts through the kernel's compat layer. On every other platform they
  are foreign. Likewise 32-bit arm is foreign in an arm64 image.
* **Other float ABIs** (RISC-V ``lp64`` vs ``lp64d``, PowerPC ELFv1 vs v2) are not checked:
  the platform names do not pin them.
"""

from __future__ import annotations

import io
import posixpath
import re
import struct
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, BinaryIO, Literal

from pytest_multiarch.core.errors import ConfigError, MultiarchError, PlatformError
from pytest_multiarch.core.platforms import Platform

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

ELF_MAGIC = b"\x7fELF"

ET_NONE = 0
ET_REL = 1
ET_EXEC = 2
ET_DYN = 3
ET_CORE = 4
CHECKED_TYPES = frozenset({ET_REL, ET_EXEC, ET_DYN})

EM_SPARC = 2
EM_386 = 3
EM_68K = 4
EM_MIPS = 8
EM_PARISC = 15
EM_PPC = 20
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_SH = 42
EM_SPARCV9 = 43
EM_IA_64 = 50
EM_X86_64 = 62
EM_XTENSA = 94
EM_AARCH64 = 183
EM_ARC_COMPACT2 = 195
EM_RISCV = 243
EM_BPF = 247
EM_LOONGARCH = 258
EM_ALPHA = 0x9026

EF_ARM_EABIMASK = 0xFF000000
EF_ARM_ABI_FLOAT_SOFT = 0x200
EF_ARM_ABI_FLOAT_HARD = 0x400

PT_INTERP = 3

# Bytes of a file the scan reads: the whole ELF64 header (an ELF32 one is 52 bytes).
HEADER_BYTES = 64
# How far into a file the scan reads to find PT_INTERP. Linkers put the program headers right
# after the ELF header; a table further away is treated as "linking unknown".
_PROGRAM_HEADER_LIMIT = 64 * 1024

ByteOrder = Literal["little", "big"]

_SIMPLE_NAMES: dict[int, str] = {
    EM_SPARC: "SPARC",
    EM_SPARCV9: "SPARC V9",
    EM_68K: "m68k",
    EM_PARISC: "PA-RISC",
    EM_SH: "SuperH",
    EM_IA_64: "IA-64",
    EM_XTENSA: "Xtensa",
    EM_BPF: "eBPF",
    EM_ALPHA: "Alpha",
    EM_ARC_COMPACT2: "ARCv2",
}


class ElfHeaderError(MultiarchError):
    """Bytes that start like an ELF file do not hold a readable ELF header."""


class ImageFilesystemError(MultiarchError):
    """An image's exported filesystem could not be read as a tar stream."""


@dataclass(frozen=True)
class ElfIdentity:
    """What an ELF header says about the machine a file is built for."""

    bits: int  # 32 or 64 (EI_CLASS)
    byteorder: ByteOrder  # EI_DATA
    machine: int  # e_machine
    flags: int  # e_flags, machine-specific
    file_type: int  # e_type: ET_EXEC, ET_DYN, ET_REL, ...

    @classmethod
    def from_header(cls, header: bytes) -> ElfIdentity:
        """Parse the first bytes of a file (at least 52 for ELF32, 64 for ELF64)."""
        if header[:4] != ELF_MAGIC:
            raise ElfHeaderError(f"not an ELF file: starts with {header[:4]!r}, not {ELF_MAGIC!r}")
        if len(header) < 6:
            raise ElfHeaderError(f"truncated ELF header: {len(header)} bytes")
        elf_class, elf_data = header[4], header[5]
        if elf_class not in (1, 2):
            raise ElfHeaderError(f"invalid ELF class {elf_class} (EI_CLASS must be 1 or 2)")
        if elf_data not in (1, 2):
            raise ElfHeaderError(f"invalid ELF byte order {elf_data} (EI_DATA must be 1 or 2)")
        bits = 32 if elf_class == 1 else 64
        needed = 52 if bits == 32 else 64
        if len(header) < needed:
            raise ElfHeaderError(
                f"truncated ELF header: {len(header)} bytes, ELF{bits} needs {needed}"
            )
        byteorder: ByteOrder = "little" if elf_data == 1 else "big"
        endian = "<" if byteorder == "little" else ">"
        file_type, machine = struct.unpack_from(endian + "HH", header, 16)
        flags_offset = 0x24 if bits == 32 else 0x30
        (flags,) = struct.unpack_from(endian + "I", header, flags_offset)
        return cls(bits, byteorder, machine, flags, file_type)

    @property
    def arm_eabi_version(self) -> int:
        """The EABI version of an ARM file (0 is the old ABI); 0 for other machines."""
        return (self.flags & EF_ARM_EABIMASK) >> 24 if self.machine == EM_ARM else 0

    @property
    def arm_float(self) -> Literal["hard", "soft", ""]:
        """The float ABI an ARM file is marked with; "" when unmarked or not ARM."""
        if self.machine != EM_ARM or self.arm_eabi_version == 0:
            return ""
        if self.flags & EF_ARM_ABI_FLOAT_HARD:
            return "hard"
        if self.flags & EF_ARM_ABI_FLOAT_SOFT:
            return "soft"
        return ""

    @property
    def description(self) -> str:
        """How people name this machine: ``x86-64``, ``ARM EABI5 hard-float``, ``RISC-V 64``."""
        bits, order, machine = self.bits, self.byteorder, self.machine
        if machine == EM_X86_64:
            return "x86-64" if bits == 64 else "x32 (x86-64 ILP32)"
        if machine == EM_386:
            return (
                "i386" if (bits, order) == (32, "little") else f"i386 ({bits}-bit {order}-endian)"
            )
        if machine == EM_AARCH64:
            name = "aarch64" if bits == 64 else "aarch64 ILP32"
            return name if order == "little" else f"{name} big-endian"
        if machine == EM_ARM:
            name = "ARM" if order == "little" else "ARM big-endian"
            version = self.arm_eabi_version
            if version == 0:
                return f"{name} OABI"
            float_abi = self.arm_float
            return f"{name} EABI{version}" + (f" {float_abi}-float" if float_abi else "")
        if machine == EM_S390:
            return "s390x (64-bit big-endian)" if bits == 64 else "s390 (31-bit)"
        if machine == EM_PPC64:
            return f"PowerPC64 {order}-endian"
        if machine == EM_PPC:
            return "PowerPC (32-bit)" if order == "big" else "PowerPC (32-bit little-endian)"
        if machine == EM_RISCV:
            return f"RISC-V {bits}"
        if machine == EM_MIPS:
            return f"MIPS{'64' if bits == 64 else ''} {order}-endian"
        if machine == EM_LOONGARCH:
            return f"LoongArch {bits}"
        if machine in _SIMPLE_NAMES:
            return f"{_SIMPLE_NAMES[machine]} ({bits}-bit {order}-endian)"
        return f"unknown machine {machine} ({bits}-bit {order}-endian)"


def _program_header_table(data: bytes, identity: ElfIdentity) -> tuple[int, int, int]:
    """Offset, entry size and entry count of the program header table (from the ELF header)."""
    endian = "<" if identity.byteorder == "little" else ">"
    if identity.bits == 64:
        (offset,) = struct.unpack_from(endian + "Q", data, 0x20)
        entry_size, count = struct.unpack_from(endian + "HH", data, 0x36)
    else:
        (offset,) = struct.unpack_from(endian + "I", data, 0x1C)
        entry_size, count = struct.unpack_from(endian + "HH", data, 0x2A)
    return int(offset), int(entry_size), int(count)


def has_interpreter(data: bytes, identity: ElfIdentity) -> bool | None:
    """True when the program headers in ``data`` (the file's first bytes) include PT_INTERP,
    i.e. the file is dynamically linked; None when ``data`` does not hold the whole table."""
    try:
        offset, entry_size, count = _program_header_table(data, identity)
    except struct.error:
        return None
    if count == 0:
        return False
    if entry_size < 4 or offset + count * entry_size > len(data):
        return None
    endian = "<" if identity.byteorder == "little" else ">"
    for index in range(count):
        (p_type,) = struct.unpack_from(endian + "I", data, offset + index * entry_size)
        if p_type == PT_INTERP:
            return True
    return False


@dataclass(frozen=True)
class ExpectedIdentity:
    """The ELF files that belong to one platform."""

    platform: str  # OCI name, "linux/arm/v7"
    machine: int
    bits: int
    byteorder: ByteOrder
    description: str  # what the error message says the platform needs
    # Other (machine, bits, byte order) that are this platform's own multilib (i386 on amd64).
    also: tuple[tuple[int, int, ByteOrder], ...] = ()
    arm_hard_float: bool = False

    def accepts(self, identity: ElfIdentity, *, dynamically_linked: bool | None = None) -> bool:
        """Whether a file with ``identity`` belongs to this platform.

        ``dynamically_linked`` (PT_INTERP present) matters only for soft-float ARM executables;
        None (unknown) counts as dynamically linked.
        """
        triple = (identity.machine, identity.bits, identity.byteorder)
        if triple != (self.machine, self.bits, self.byteorder):
            return triple in self.also
        if self.arm_hard_float:
            if identity.arm_eabi_version == 0:
                return False
            if identity.arm_eabi_version == 5 and identity.arm_float == "soft":
                return identity.file_type == ET_EXEC and dynamically_linked is False
        return True


_EXPECTED: dict[str, ExpectedIdentity] = {
    expected.platform: expected
    for expected in (
        ExpectedIdentity(
            "linux/amd64",
            EM_X86_64,
            64,
            "little",
            "x86-64",
            also=((EM_386, 32, "little"), (EM_X86_64, 32, "little")),
        ),
        ExpectedIdentity("linux/arm64", EM_AARCH64, 64, "little", "aarch64"),
        ExpectedIdentity(
            "linux/arm/v7", EM_ARM, 32, "little", "ARM EABI5 hard-float", arm_hard_float=True
        ),
        ExpectedIdentity("linux/s390x", EM_S390, 64, "big", "s390x (64-bit big-endian)"),
        ExpectedIdentity("linux/ppc64le", EM_PPC64, 64, "little", "PowerPC64 little-endian"),
        ExpectedIdentity("linux/riscv64", EM_RISCV, 64, "little", "RISC-V 64"),
    )
}


def expected_identity(platform: Platform) -> ExpectedIdentity:
    """The ELF identity ``platform``'s binaries must have."""
    found = _EXPECTED.get(platform.name)
    if found is None:
        known = ", ".join(_EXPECTED)
        raise PlatformError(
            f"no ELF identity is known for platform {platform.name!r}; known: {known}"
        )
    return found


@dataclass(frozen=True)
class ForeignBinary:
    """An ELF file in an image that does not belong to the image's platform."""

    path: str  # absolute, as inside the image: "/app"
    found: str  # ElfIdentity.description of the file
    expected: str  # ExpectedIdentity.description of the platform
    executable: bool  # any execute bit set: listed first in messages


@dataclass(frozen=True)
class ElfScan:
    """What the ELF files of one image's filesystem say about one platform."""

    platform: str  # OCI name
    expected: str
    elf_files: int  # ELF files whose type is checked (executables, shared and relocatable)
    foreign: tuple[ForeignBinary, ...]  # not allowed by a glob; executables first, then by path
    allowed: int  # foreign files matched by an allow-glob (not in ``foreign``)
    malformed: tuple[str, ...]  # start with the ELF magic but have no readable header
    has_elf: bool  # any file at all starts with the ELF magic (false: a scripts-only image)

    @property
    def ok(self) -> bool:
        return not self.foreign


def compile_foreign_globs(globs: Iterable[str], *, source: str) -> re.Pattern[str] | None:
    """One pattern matching any of ``globs`` (None when there are none).

    Globs are absolute paths inside the image. ``**`` matches across directories (``/a/**/b``
    also matches ``/a/b``), ``*`` and ``?`` stay within one path component; every other
    character is literal. Paths are matched as the image stores them (on merged-/usr images
    ``/usr/lib/...``, not ``/lib/...``). ``source`` names where the globs came from, for errors.
    """
    parts: list[str] = []
    for glob in globs:
        if not isinstance(glob, str) or not glob.startswith("/"):
            raise ConfigError(
                f"foreign-binaries glob {glob!r} in {source} must be an absolute path inside "
                f"the image, e.g. '/usr/aarch64-linux-gnu/**'"
            )
        parts.append(_glob_to_regex(glob))
    if not parts:
        return None
    return re.compile("|".join(f"(?:{part})" for part in parts))


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(glob):
        if glob.startswith("/**/", index):
            out.append("(?:/|/.*/)")
            index += 4
        elif glob.startswith("/**", index) and index + 3 == len(glob):
            out.append("(?:/.*)?")
            index += 3
        elif glob.startswith("**", index):
            out.append(".*")
            index += 2
        elif glob[index] == "*":
            out.append("[^/]*")
            index += 1
        elif glob[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(glob[index]))
            index += 1
    return "".join(out)


def image_path(tar_name: str) -> str:
    """The absolute path inside the image of a tar member (``./usr/bin/x``: ``/usr/bin/x``)."""
    return posixpath.normpath("/" + tar_name.lstrip("/"))


def scan_tar(stream: BinaryIO, platform: Platform, allowed_globs: Sequence[str]) -> ElfScan:
    """Check every ELF file in the tar ``stream`` of an image's filesystem against ``platform``.

    ``stream`` is read once, front to back (``docker export`` output, or the docker SDK's
    ``container.export()`` chunks through :func:`stream_from_chunks`); of each regular file
    only the header bytes are read. Symbolic and hard links are not followed, so each file's
    content is checked once. ``allowed_globs`` (from ``foreign-binaries``) exempt paths.
    """
    expected = expected_identity(platform)
    allowed_pattern = compile_foreign_globs(allowed_globs, source="foreign-binaries")
    elf_files = 0
    allowed = 0
    has_elf = False
    foreign: list[ForeignBinary] = []
    malformed: list[str] = []
    try:
        # Stream mode skips content in bufsize reads and copies its buffer on each read: 64 KiB
        # measured fastest (1 MiB was 2-3x slower on a many-small-files rootfs).
        with tarfile.open(fileobj=stream, mode="r|*", bufsize=64 * 1024) as archive:
            for member in archive:
                if not member.isreg() or member.size < len(ELF_MAGIC):
                    continue
                content = archive.extractfile(member)
                if content is None:
                    continue
                header = content.read(HEADER_BYTES)
                if header[:4] != ELF_MAGIC:
                    continue
                has_elf = True
                path = image_path(member.name)
                try:
                    identity = ElfIdentity.from_header(header)
                except ElfHeaderError:
                    malformed.append(path)
                    continue
                if identity.file_type not in CHECKED_TYPES:
                    continue
                elf_files += 1
                dynamically_linked: bool | None = None
                if identity.arm_float == "soft" and identity.file_type == ET_EXEC:
                    dynamically_linked = _read_dynamically_linked(content, header, identity)
                if expected.accepts(identity, dynamically_linked=dynamically_linked):
                    continue
                if allowed_pattern is not None and allowed_pattern.fullmatch(path):
                    allowed += 1
                    continue
                foreign.append(
                    ForeignBinary(
                        path, identity.description, expected.description, bool(member.mode & 0o111)
                    )
                )
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ImageFilesystemError(
            f"cannot read the image filesystem of {platform.name} as a tar stream: {error}"
        ) from error
    foreign.sort(key=lambda item: (not item.executable, item.path))
    return ElfScan(
        platform=platform.name,
        expected=expected.description,
        elf_files=elf_files,
        foreign=tuple(foreign),
        allowed=allowed,
        malformed=tuple(malformed),
        has_elf=has_elf,
    )


def _read_dynamically_linked(
    content: IO[bytes], header: bytes, identity: ElfIdentity
) -> bool | None:
    offset, entry_size, count = _program_header_table(header, identity)
    end = offset + entry_size * count
    if end > _PROGRAM_HEADER_LIMIT:
        return None
    data = header + content.read(max(0, end - len(header)))
    return has_interpreter(data, identity)


MORE_PATHS_SHOWN = 3


def format_wrong_architecture(scan: ElfScan, platform: Platform) -> str:
    """``wrong architecture: /app is x86-64, linux/arm64 needs aarch64 (and 2 more: /a, /b)``."""
    if not scan.foreign:
        raise ValueError(f"the scan of {scan.platform} found no foreign binary to report")
    first, rest = scan.foreign[0], scan.foreign[1:]
    message = (
        f"wrong architecture: {first.path} is {first.found}, {platform.name} needs {first.expected}"
    )
    if rest:
        shown = ", ".join(item.path for item in rest[:MORE_PATHS_SHOWN])
        ellipsis = ", ..." if len(rest) > MORE_PATHS_SHOWN else ""
        message += f" (and {len(rest)} more: {shown}{ellipsis})"
    return message


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (the docker SDK's export stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        count = min(len(target), len(self._pending))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def stream_from_chunks(chunks: Iterable[bytes]) -> BinaryIO:
    """A buffered binary file reading ``chunks`` in order, for :func:`scan_tar`."""
    return io.BufferedReader(_ChunkReader(chunks), buffer_size=1024 * 1024)
