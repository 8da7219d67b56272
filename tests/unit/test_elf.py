"""ELF identities, per-platform expectations and scanning an image's exported filesystem tar."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from pytest_multiarch.core.errors import ConfigError, PlatformError
from pytest_multiarch.core.platforms import (
    KNOWN_PLATFORMS,
    Platform,
    lookup,
    native_platform,
    with_host,
)
from pytest_multiarch.runtime.elf import (
    EM_386,
    EM_AARCH64,
    EM_ARM,
    EM_MIPS,
    EM_PPC64,
    EM_RISCV,
    EM_S390,
    EM_X86_64,
    ET_CORE,
    ET_DYN,
    ET_EXEC,
    ET_REL,
    ElfHeaderError,
    ElfIdentity,
    ElfScan,
    ForeignBinary,
    ImageFilesystemError,
    compile_foreign_globs,
    expected_identity,
    format_wrong_architecture,
    has_interpreter,
    image_path,
    scan_tar,
    stream_from_chunks,
)

PT_LOAD = 1
PT_INTERP = 3
EABI5 = 0x05000000
HARD = 0x400
SOFT = 0x200


def elf(
    machine: int,
    bits: int = 64,
    order: str = "little",
    *,
    flags: int = 0,
    e_type: int = ET_EXEC,
    interpreter: bool | None = None,
    tail: bytes = b"",
) -> bytes:
    """A minimal valid ELF header; with program headers (PT_LOAD, PT_INTERP if asked) when
    ``interpreter`` is not None."""
    endian = "<" if order == "little" else ">"
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if order == "little" else 2, 1])
    ident = ident.ljust(16, b"\0")
    types = [PT_LOAD] + ([PT_INTERP] if interpreter else []) if interpreter is not None else []
    if bits == 64:
        header_size, entry_size = 64, 56
        phoff = header_size if types else 0
        header = ident + struct.pack(
            endian + "HHIQQQIHHHHHH",
            e_type,
            machine,
            1,
            0x400000,
            phoff,
            0,
            flags,
            header_size,
            entry_size,
            len(types),
            64,
            0,
            0,
        )
        table = b"".join(struct.pack(endian + "II", t, 5).ljust(entry_size, b"\0") for t in types)
    else:
        header_size, entry_size = 52, 32
        phoff = header_size if types else 0
        header = ident + struct.pack(
            endian + "HHIIIIIHHHHHH",
            e_type,
            machine,
            1,
            0x10000,
            phoff,
            0,
            flags,
            header_size,
            entry_size,
            len(types),
            40,
            0,
            0,
        )
        table = b"".join(struct.pack(endian + "I", t).ljust(entry_size, b"\0") for t in types)
    assert len(header) == header_size
    return header + table + tail


# One binary built for each known platform, as a toolchain for it emits them.
OWN_BINARY: dict[str, bytes] = {
    "linux/amd64": elf(EM_X86_64),
    "linux/arm64": elf(EM_AARCH64),
    "linux/arm/v7": elf(EM_ARM, 32, flags=EABI5 | HARD),
    "linux/s390x": elf(EM_S390, 64, "big"),
    "linux/ppc64le": elf(EM_PPC64),
    "linux/riscv64": elf(EM_RISCV, flags=0x5),  # RVC, double-float ABI
}
DESCRIPTION = {
    "linux/amd64": "x86-64",
    "linux/arm64": "aarch64",
    "linux/arm/v7": "ARM EABI5 hard-float",
    "linux/s390x": "s390x (64-bit big-endian)",
    "linux/ppc64le": "PowerPC64 little-endian",
    "linux/riscv64": "RISC-V 64",
}
AMD64 = lookup("amd64")
ARM64 = lookup("arm64")
ARMV7 = lookup("arm/v7")


def identity(data: bytes) -> ElfIdentity:
    return ElfIdentity.from_header(data[:64])


def test_every_known_platform_has_an_expected_identity() -> None:
    assert {p.name for p in KNOWN_PLATFORMS} == set(OWN_BINARY)
    for known in KNOWN_PLATFORMS:
        assert expected_identity(known).description == DESCRIPTION[known.name]
        assert expected_identity(known).byteorder == known.byteorder
        # Whether this host emulates it does not change what its binaries are.
        assert expected_identity(with_host(known, native=AMD64)) == expected_identity(known)


def test_unknown_platform_has_no_expected_identity() -> None:
    mips = Platform("linux", "mips64le", "", "mips64le", "mips64", "little", "mips64el", "mips64el")
    with pytest.raises(PlatformError, match="linux/mips64le"):
        expected_identity(mips)


@pytest.mark.parametrize("platform", KNOWN_PLATFORMS, ids=lambda p: p.short)
@pytest.mark.parametrize("built_for", sorted(OWN_BINARY))
def test_platform_accepts_only_its_own_binaries(platform: Platform, built_for: str) -> None:
    found = identity(OWN_BINARY[built_for])
    assert expected_identity(platform).accepts(found) is (built_for == platform.name)


@pytest.mark.parametrize("name", sorted(OWN_BINARY))
def test_description_of_each_platforms_binary(name: str) -> None:
    assert identity(OWN_BINARY[name]).description == DESCRIPTION[name]


@pytest.mark.parametrize(
    ("data", "description"),
    [
        (elf(EM_386, 32), "i386"),
        (elf(EM_386, 64), "i386 (64-bit little-endian)"),
        (elf(EM_X86_64, 32), "x32 (x86-64 ILP32)"),
        (elf(EM_ARM, 32, flags=EABI5 | SOFT), "ARM EABI5 soft-float"),
        (elf(EM_ARM, 32, flags=EABI5), "ARM EABI5"),
        (elf(EM_ARM, 32, flags=0), "ARM OABI"),
        (elf(EM_ARM, 32, "big", flags=EABI5 | HARD), "ARM big-endian EABI5 hard-float"),
        (elf(EM_AARCH64, 64, "big"), "aarch64 big-endian"),
        (elf(EM_PPC64, 64, "big"), "PowerPC64 big-endian"),
        (elf(EM_S390, 32, "big"), "s390 (31-bit)"),
        (elf(EM_RISCV, 32), "RISC-V 32"),
        (elf(EM_MIPS, 64, "little"), "MIPS64 little-endian"),
        (elf(0x1234, 32, "big"), "unknown machine 4660 (32-bit big-endian)"),
    ],
    ids=lambda value: value if isinstance(value, str) else "elf",
)
def test_descriptions_of_other_machines(data: bytes, description: str) -> None:
    assert identity(data).description == description


def test_header_fields_are_read_in_the_files_byte_order() -> None:
    found = identity(elf(EM_S390, 64, "big", flags=0x12345678, e_type=ET_DYN))
    assert found == ElfIdentity(
        bits=64, byteorder="big", machine=EM_S390, flags=0x12345678, file_type=ET_DYN
    )
    arm = identity(elf(EM_ARM, 32, flags=EABI5 | HARD, e_type=ET_REL))
    assert (arm.bits, arm.arm_eabi_version, arm.arm_float, arm.file_type) == (32, 5, "hard", ET_REL)


def test_the_hosts_own_ls_belongs_to_the_host_platform_only(
    unavailable: Callable[[str], NoReturn],
) -> None:
    ls = Path("/bin/ls")
    if not ls.exists():
        unavailable("this host has no /bin/ls")
    with ls.open("rb") as handle:
        found = ElfIdentity.from_header(handle.read(64))
    host = native_platform()
    assert found.description == DESCRIPTION[host.name]
    assert found.file_type in (ET_EXEC, ET_DYN)
    for known in KNOWN_PLATFORMS:
        assert expected_identity(known).accepts(found) is (known.name == host.name)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x7fELF", "truncated"),
        (b"\x7fELF\x02\x01\x01" + b"\0" * 33, "ELF64 needs 64"),
        (elf(EM_ARM, 32)[:51], "ELF32 needs 52"),
        (b"\x7fELF\x03\x01" + b"\0" * 58, "invalid ELF class 3"),
        (b"\x7fELF\x02\x00" + b"\0" * 58, "invalid ELF byte order 0"),
        (b"#!/bin/sh\n", "not an ELF file"),
    ],
    ids=lambda value: value if isinstance(value, str) else "data",
)
def test_unreadable_headers_are_refused(data: bytes, problem: str) -> None:
    with pytest.raises(ElfHeaderError, match=problem):
        ElfIdentity.from_header(data)


def test_amd64_takes_its_32_bit_multilib_other_platforms_do_not() -> None:
    i386 = identity(elf(EM_386, 32))
    x32 = identity(elf(EM_X86_64, 32))
    assert expected_identity(AMD64).accepts(i386)
    assert expected_identity(AMD64).accepts(x32)
    assert not expected_identity(ARM64).accepts(i386)
    assert not expected_identity(ARM64).accepts(identity(elf(EM_ARM, 32, flags=EABI5 | HARD)))


@pytest.mark.parametrize(
    ("flags", "e_type", "dynamically_linked", "runs"),
    [
        (EABI5 | HARD, ET_DYN, None, True),
        (EABI5, ET_DYN, None, True),  # unmarked: glibc's armhf loader takes it
        (0x04000000, ET_DYN, None, True),  # EABI4 carries no float flag
        (0, ET_EXEC, False, False),  # OABI: EABI-only kernels cannot run it
        (EABI5 | SOFT, ET_EXEC, False, True),  # static: needs no armhf userland
        (EABI5 | SOFT, ET_EXEC, True, False),  # asks for the armel loader
        (EABI5 | SOFT, ET_EXEC, None, False),  # unknown linking counts as dynamic
        (EABI5 | SOFT, ET_DYN, None, False),  # library or PIE: the armhf loader refuses it
        (EABI5 | SOFT, ET_REL, None, False),
    ],
)
def test_arm_v7_float_abi_matters_where_it_decides_whether_it_runs(
    flags: int, e_type: int, dynamically_linked: bool | None, runs: bool
) -> None:
    found = identity(elf(EM_ARM, 32, flags=flags, e_type=e_type))
    assert expected_identity(ARMV7).accepts(found, dynamically_linked=dynamically_linked) is runs


def test_has_interpreter_reads_the_program_headers() -> None:
    for bits, machine in ((64, EM_X86_64), (32, EM_ARM)):
        dynamic = elf(machine, bits, interpreter=True)
        static = elf(machine, bits, interpreter=False)
        assert has_interpreter(dynamic, identity(dynamic)) is True
        assert has_interpreter(static, identity(static)) is False
        assert has_interpreter(dynamic[:-4], identity(dynamic)) is None
    no_table = elf(EM_X86_64)
    assert has_interpreter(no_table, identity(no_table)) is False


# --- scanning tars ---------------------------------------------------------------------------


@dataclass
class Entry:
    name: str
    data: bytes = b""
    mode: int = 0o755
    kind: bytes = tarfile.REGTYPE
    link: str = ""


def tar_bytes(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = entry.kind
            info.mode = entry.mode
            info.linkname = entry.link
            info.size = len(entry.data) if entry.kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(entry.data) if info.size else None)
    return buffer.getvalue()


def scan(entries: list[Entry], platform: Platform, globs: tuple[str, ...] = ()) -> ElfScan:
    return scan_tar(io.BytesIO(tar_bytes(entries)), platform, globs)


ARM64_ROOTFS = [
    Entry("./", kind=tarfile.DIRTYPE),
    Entry("./bin/busybox", elf(EM_AARCH64, interpreter=False)),
    Entry("./lib/ld-linux-aarch64.so.1", elf(EM_AARCH64, e_type=ET_DYN)),
    Entry("./usr/lib/libfoo.so.1", elf(EM_AARCH64, e_type=ET_DYN), mode=0o644),
    Entry("./etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", mode=0o644),
    Entry("./bin/sh", kind=tarfile.SYMTYPE, link="busybox"),
]


def test_one_foreign_binary_among_right_ones_is_reported_exactly() -> None:
    result = scan([*ARM64_ROOTFS, Entry("app", elf(EM_X86_64, tail=b"\0" * 5000))], ARM64)
    assert result.foreign == (ForeignBinary("/app", "x86-64", "aarch64", executable=True),)
    assert (result.elf_files, result.allowed, result.malformed) == (4, 0, ())
    assert result.has_elf
    assert not result.ok
    assert format_wrong_architecture(result, ARM64) == (
        "wrong architecture: /app is x86-64, linux/arm64 needs aarch64"
    )


def test_right_architecture_image_passes() -> None:
    result = scan(ARM64_ROOTFS, ARM64)
    assert result.ok
    assert (result.elf_files, result.foreign) == (3, ())


def test_every_foreign_platform_rejects_the_image() -> None:
    for known in KNOWN_PLATFORMS:
        if known.name != "linux/arm64":
            assert len(scan(ARM64_ROOTFS, known).foreign) == 3, known.name


def test_message_lists_executables_first_then_a_few_more_and_a_count() -> None:
    entries = [
        Entry(f"usr/lib/lib{letter}.so", elf(EM_X86_64, e_type=ET_DYN), mode=0o644)
        for letter in "edcba"
    ] + [Entry("usr/local/bin/tool", elf(EM_X86_64)), Entry("app", elf(EM_X86_64))]
    result = scan(entries, lookup("s390x"))
    assert [item.path for item in result.foreign[:3]] == [
        "/app",
        "/usr/local/bin/tool",
        "/usr/lib/liba.so",
    ]
    assert format_wrong_architecture(result, lookup("s390x")) == (
        "wrong architecture: /app is x86-64, linux/s390x needs s390x (64-bit big-endian) "
        "(and 6 more: /usr/local/bin/tool, /usr/lib/liba.so, /usr/lib/libb.so, ...)"
    )


def test_message_without_an_ellipsis_when_every_path_is_shown() -> None:
    result = scan([Entry("a", elf(EM_AARCH64)), Entry("b", elf(EM_S390, 64, "big"))], AMD64)
    assert format_wrong_architecture(result, AMD64) == (
        "wrong architecture: /a is aarch64, linux/amd64 needs x86-64 (and 1 more: /b)"
    )


def test_formatting_a_clean_scan_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="no foreign binary"):
        format_wrong_architecture(scan(ARM64_ROOTFS, ARM64), ARM64)


def test_allowed_globs_exempt_deliberate_foreign_binaries() -> None:
    entries = [
        Entry("usr/bin/gcc", elf(EM_X86_64)),
        Entry("usr/aarch64-linux-gnu/lib/libc.so.6", elf(EM_AARCH64, e_type=ET_DYN)),
        Entry("usr/aarch64-linux-gnu/lib/crt1.o", elf(EM_AARCH64, e_type=ET_REL), mode=0o644),
        Entry("usr/aarch64-linux-gnu-extra/lib/libm.so.6", elf(EM_AARCH64, e_type=ET_DYN)),
    ]
    result = scan(entries, AMD64, ("/usr/aarch64-linux-gnu/**",))
    assert result.allowed == 2
    assert [item.path for item in result.foreign] == ["/usr/aarch64-linux-gnu-extra/lib/libm.so.6"]
    assert result.elf_files == 4
    assert scan(entries, AMD64).allowed == 0


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("/usr/aarch64-linux-gnu/**", "/usr/aarch64-linux-gnu/lib/deep/libc.so.6", True),
        ("/usr/aarch64-linux-gnu/**", "/usr/aarch64-linux-gnu", True),
        ("/usr/aarch64-linux-gnu/**", "/usr/aarch64-linux-gnu.bak/x", False),
        ("/opt/*/firmware.elf", "/opt/dsp/firmware.elf", True),
        ("/opt/*/firmware.elf", "/opt/dsp/v2/firmware.elf", False),
        ("/opt/**/firmware.elf", "/opt/dsp/v2/firmware.elf", True),
        ("/opt/**/firmware.elf", "/opt/firmware.elf", True),
        ("/lib/firmware/*.elf", "/lib/firmware/a.elf", True),
        ("/lib/firmware/*.elf", "/lib/firmware/aXelf", False),  # "." is literal
        ("/bin/tool?", "/bin/tool2", True),
        ("/bin/tool?", "/bin/tool/", False),
        ("/a/[b]", "/a/[b]", True),  # brackets are literal
    ],
)
def test_glob_semantics(glob: str, path: str, matches: bool) -> None:
    pattern = compile_foreign_globs([glob], source="image.toml")
    assert pattern is not None
    assert bool(pattern.fullmatch(path)) is matches


def test_relative_globs_are_refused_naming_the_source() -> None:
    with pytest.raises(ConfigError, match=r"'usr/lib/\*\*' in images/web/image.toml"):
        compile_foreign_globs(["usr/lib/**"], source="images/web/image.toml")
    assert compile_foreign_globs([], source="x") is None


def test_scripts_only_image_has_no_elf() -> None:
    entries = [
        Entry("usr/bin/app", b"#!/usr/bin/env python3\nprint('hi')\n"),
        Entry("etc/config", b"x"),
        Entry("empty", b""),
        Entry("tiny", b"\x7fE"),
    ]
    result = scan(entries, ARM64)
    assert (result.has_elf, result.elf_files, result.foreign, result.ok) == (False, 0, (), True)


def test_truncated_elf_headers_are_reported_not_counted_or_foreign() -> None:
    entries = [
        Entry("data/magic-only", b"\x7fELF"),
        Entry("data/half", elf(EM_X86_64)[:40]),
        Entry("bin/ok", elf(EM_AARCH64)),
    ]
    result = scan(entries, ARM64)
    assert result.malformed == ("/data/magic-only", "/data/half")
    assert (result.elf_files, result.foreign, result.has_elf) == (1, (), True)


def test_core_dumps_are_elf_but_not_checked() -> None:
    result = scan([Entry("core", elf(EM_X86_64, e_type=ET_CORE))], ARM64)
    assert (result.has_elf, result.elf_files, result.foreign) == (True, 0, ())


def test_foreign_relocatable_objects_count() -> None:
    result = scan([Entry("lib/modules/x.ko", elf(EM_X86_64, e_type=ET_REL), mode=0o644)], ARM64)
    assert result.foreign == (ForeignBinary("/lib/modules/x.ko", "x86-64", "aarch64", False),)


def test_links_are_neither_followed_nor_counted_twice() -> None:
    entries = [
        Entry("app", elf(EM_X86_64)),
        Entry("usr/bin/app-hardlink", kind=tarfile.LNKTYPE, link="app"),
        Entry("usr/bin/app-symlink", kind=tarfile.SYMTYPE, link="/app"),
        Entry("usr/bin/escape", kind=tarfile.SYMTYPE, link="../../../../bin/ls"),
        Entry("dev/null", kind=tarfile.CHRTYPE),
        Entry("run/fifo", kind=tarfile.FIFOTYPE),
    ]
    result = scan(entries, ARM64)
    assert [item.path for item in result.foreign] == ["/app"]
    assert result.elf_files == 1


def test_soft_float_arm_executables_are_judged_by_their_linking() -> None:
    entries = [
        Entry("bin/static", elf(EM_ARM, 32, flags=EABI5 | SOFT, interpreter=False)),
        Entry("bin/dynamic", elf(EM_ARM, 32, flags=EABI5 | SOFT, interpreter=True)),
        Entry("lib/libsoft.so", elf(EM_ARM, 32, flags=EABI5 | SOFT, e_type=ET_DYN)),
        Entry("bin/hard", elf(EM_ARM, 32, flags=EABI5 | HARD, interpreter=True)),
    ]
    result = scan(entries, ARMV7)
    assert [(item.path, item.found) for item in result.foreign] == [
        ("/bin/dynamic", "ARM EABI5 soft-float"),
        ("/lib/libsoft.so", "ARM EABI5 soft-float"),
    ]
    assert result.elf_files == 4


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("./usr/bin/x", "/usr/bin/x"),
        ("usr/bin/x", "/usr/bin/x"),
        ("/usr/bin/x", "/usr/bin/x"),
        ("./usr//bin/./x", "/usr/bin/x"),
        ("../../etc/x", "/etc/x"),
    ],
)
def test_tar_names_become_absolute_image_paths(name: str, path: str) -> None:
    assert image_path(name) == path


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
    yield b""  # the docker SDK can yield empty chunks


ARCH_TEST = Path("/usr/lib/arch-test")  # Debian's arch-test: one tiny static binary per arch


def test_real_foreign_binaries_from_arch_test(unavailable: Callable[[str], NoReturn]) -> None:
    if not (ARCH_TEST / "arm64").exists():
        unavailable("Debian's arch-test package is not installed (scripts/bootstrap)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(ARCH_TEST, arcname="arch-test")
    own = {known.name: {known.debian_arch} for known in KNOWN_PLATFORMS}
    own["linux/amd64"] |= {"i386", "x32", "illumos-amd64", "kfreebsd-amd64", "kfreebsd-i386"}
    # Static and soft-float (EABI5, flags 0x5000200): runs on any EABI kernel.
    own["linux/arm/v7"] |= {"arm", "armel"}
    elf_names = {p.name for p in ARCH_TEST.iterdir() if p.read_bytes()[:4] == b"\x7fELF"}
    for known in KNOWN_PLATFORMS:
        result = scan_tar(io.BytesIO(buffer.getvalue()), known, ())
        assert result.elf_files == len(elf_names)
        foreign = {item.path.removeprefix("/arch-test/") for item in result.foreign}
        assert foreign == elf_names - own[known.name], known.name


def test_scan_reads_the_docker_sdk_export_chunks() -> None:
    data = tar_bytes([*ARM64_ROOTFS, Entry("app", elf(EM_X86_64))])
    result = scan_tar(stream_from_chunks(chunks(data, 777)), ARM64, ())
    assert [item.path for item in result.foreign] == ["/app"]
    assert result.elf_files == 4


def test_scan_reads_a_compressed_stream() -> None:
    data = gzip.compress(tar_bytes([Entry("app", elf(EM_X86_64))]))
    assert [item.path for item in scan_tar(io.BytesIO(data), ARM64, ()).foreign] == ["/app"]


def test_scan_over_real_host_files(tmp_path: Path, unavailable: Callable[[str], NoReturn]) -> None:
    ls = Path("/bin/ls").resolve()
    if not ls.exists():
        unavailable("this host has no /bin/ls")
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy(ls, root / "usr/bin/ls")
    os.link(root / "usr/bin/ls", root / "usr/bin/dir")  # tarfile stores the second as a link
    (root / "usr/bin/vdir").symlink_to("ls")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(root, arcname=".")
    host = native_platform()
    other = next(p for p in KNOWN_PLATFORMS if p.name != host.name)
    assert scan_tar(io.BytesIO(buffer.getvalue()), host, ()).elf_files == 1
    (foreign,) = scan_tar(io.BytesIO(buffer.getvalue()), other, ()).foreign
    # Whichever name tarfile met first holds the content; the other is a hard link to it.
    assert foreign.path in ("/usr/bin/ls", "/usr/bin/dir")
    assert (foreign.found, foreign.expected) == (DESCRIPTION[host.name], DESCRIPTION[other.name])


@pytest.mark.parametrize(
    "data",
    [
        b"this is not a tar archive" * 40,
        tar_bytes([Entry("app", elf(EM_X86_64, tail=b"\0" * 4000))])[:2048],
    ],
    ids=["garbage", "cut-short"],
)
def test_unreadable_streams_raise_a_specific_error(data: bytes) -> None:
    with pytest.raises(ImageFilesystemError, match="linux/arm64"):
        scan_tar(io.BytesIO(data), ARM64, ())
