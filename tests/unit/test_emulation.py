"""binfmt_misc handler parsing and check_emulator against a fake binfmt_misc directory."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
from pytest_multiarch.core.emulation import (
    BinfmtHandler,
    binfmt_mounted,
    check_emulator,
    is_static_elf,
    parse_handler,
    qemu_version,
    read_handler,
)
from pytest_multiarch.core.platforms import Platform, lookup, with_host

AMD64 = lookup("amd64")
S390X = with_host(lookup("s390x"), native=AMD64)
ARMV7 = with_host(lookup("arm/v7"), native=AMD64)

REAL_HANDLER = (
    "enabled\n"
    "interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
    "flags: PF\n"
    "offset 0\n"
    "magic 7f454c460201010000000000000000000200b700\n"
    "mask ffffffffffffff00fffffffffffffffffeffffff\n"
)


def _file_says_static(path: Path) -> bool:
    if not path.exists() or shutil.which("file") is None:
        return False
    out = subprocess.run(
        ["file", "-L", str(path)], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    return "statically linked" in out or "static-pie linked" in out


def _static_binary() -> Path | None:
    for candidate in (Path("/usr/bin/qemu-s390x-static"), Path("/bin/busybox")):
        if _file_says_static(candidate):
            return candidate
    return None


STATIC = _static_binary()
DYNAMIC = Path("/bin/ls")
QEMU_S390X_STATIC = Path("/usr/bin/qemu-s390x-static")


@pytest.fixture
def _static_binary(unavailable: Callable[[str], NoReturn]) -> None:
    if STATIC is None:
        unavailable("no static binary on this host (qemu-user-static or busybox-static)")


@pytest.fixture
def _dynamic_binary(unavailable: Callable[[str], NoReturn]) -> None:
    if not DYNAMIC.exists() or _file_says_static(DYNAMIC):
        unavailable(f"{DYNAMIC} is not dynamically linked here")


@pytest.fixture
def _static_qemu(unavailable: Callable[[str], NoReturn]) -> None:
    if not _file_says_static(QEMU_S390X_STATIC):
        unavailable(f"no static {QEMU_S390X_STATIC} (qemu-user-static, scripts/bootstrap)")


needs_static = pytest.mark.usefixtures("_static_binary")
needs_dynamic = pytest.mark.usefixtures("_dynamic_binary")


def handler_text(
    interpreter: str, *, enabled: bool = True, flags: str = "PF", magic: bool = True
) -> str:
    lines = ["enabled" if enabled else "disabled", f"interpreter {interpreter}", f"flags: {flags}"]
    if magic:
        lines += ["offset 0", "magic 7f454c46", "mask ffffffff"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def binfmt(tmp_path: Path) -> Path:
    """A directory that looks like a mounted binfmt_misc."""
    directory = tmp_path / "binfmt_misc"
    directory.mkdir()
    (directory / "register").write_text("")
    (directory / "status").write_text("enabled\n")
    return directory


def install(binfmt: Path, qemu_name: str, text: str) -> None:
    (binfmt / f"qemu-{qemu_name}").write_text(text)


def assert_remedy(remedy: str) -> None:
    assert remedy.strip()
    assert any(cmd in remedy for cmd in ("update-binfmts", "apt-get install", "echo 1"))


# ---- parse_handler -------------------------------------------------------------------------------


def test_parse_handler_real_format() -> None:
    handler = parse_handler("qemu-aarch64", REAL_HANDLER)
    assert handler == BinfmtHandler(
        "qemu-aarch64", True, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "PF"
    )
    assert handler.fix_binary


@pytest.mark.parametrize(
    ("flags", "fix_binary"),
    [("PF", True), ("F", True), ("POCF", True), ("OC", False), ("P", False), ("", False)],
)
def test_parse_handler_flags(flags: str, fix_binary: bool) -> None:
    text = handler_text("/usr/bin/qemu-x", flags=flags)
    handler = parse_handler("qemu-x", text)
    assert handler.flags == flags
    assert handler.fix_binary is fix_binary


def test_parse_handler_disabled() -> None:
    handler = parse_handler("qemu-x", REAL_HANDLER.replace("enabled", "disabled"))
    assert handler.enabled is False
    assert handler.interpreter == "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"


def test_parse_handler_empty_text() -> None:
    assert parse_handler("qemu-x", "") == BinfmtHandler("qemu-x", False, "", "")


def test_parse_handler_tolerates_surrounding_whitespace() -> None:
    text = "  enabled  \n  interpreter   /usr/bin/qemu-arm-static  \nflags:   OCF \n"
    handler = parse_handler("qemu-arm", text)
    assert handler == BinfmtHandler("qemu-arm", True, "/usr/bin/qemu-arm-static", "OCF")


def test_read_handler(binfmt: Path) -> None:
    install(binfmt, "s390x", handler_text("/usr/bin/qemu-s390x-static"))
    handler = read_handler("s390x", binfmt)
    assert handler is not None
    assert handler.name == "qemu-s390x"
    assert handler.interpreter == "/usr/bin/qemu-s390x-static"
    assert read_handler("riscv64", binfmt) is None


def test_binfmt_mounted(tmp_path: Path, binfmt: Path) -> None:
    assert binfmt_mounted(binfmt)
    assert not binfmt_mounted(tmp_path / "nothing")
    (binfmt / "register").unlink()
    assert not binfmt_mounted(binfmt)


# ---- is_static_elf -------------------------------------------------------------------------------


@needs_static
def test_is_static_elf_true_for_static_binary() -> None:
    assert is_static_elf(str(STATIC)) is True
    assert is_static_elf(STATIC) is True  # type: ignore[arg-type]


@needs_dynamic
def test_is_static_elf_false_for_ls() -> None:
    assert is_static_elf("/bin/ls") is False


@needs_static
def test_is_static_elf_follows_symlinks(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(STATIC)  # type: ignore[arg-type]
    assert is_static_elf(link) is True


def test_is_static_elf_none_for_text(tmp_path: Path) -> None:
    text = tmp_path / "script.sh"
    text.write_text("#!/bin/sh\n" + "echo hello world\n" * 10)
    assert is_static_elf(text) is None


@pytest.mark.parametrize("content", [b"", b"\x7fELF", b"\x7fELF" + b"\0" * 40, b"MZ" + b"\0" * 100])
def test_is_static_elf_none_for_short_or_foreign_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blob"
    path.write_bytes(content)
    assert is_static_elf(path) is None


def test_is_static_elf_none_for_missing_file(tmp_path: Path) -> None:
    assert is_static_elf(tmp_path / "missing") is None
    assert is_static_elf("/nonexistent/qemu-s390x-static") is None


def test_is_static_elf_none_for_directory(tmp_path: Path) -> None:
    assert is_static_elf(tmp_path) is None


def test_is_static_elf_none_for_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "gone")
    assert is_static_elf(link) is None


def _elf(*, is64: bool, big: bool, types: list[int]) -> bytes:
    """A minimal ELF header with a program header table of the given p_types."""
    e = ">" if big else "<"
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big else 1, 1]) + b"\0" * 9
    if is64:
        ehsize, phentsize = 64, 56
        header = ident + struct.pack(
            e + "HHIQQQIHHHHHH", 2, 0, 1, 0, ehsize, 0, 0, ehsize, phentsize, len(types), 0, 0, 0
        )
    else:
        ehsize, phentsize = 52, 32
        header = ident + struct.pack(
            e + "HHIIIIIHHHHHH", 2, 0, 1, 0, ehsize, 0, 0, ehsize, phentsize, len(types), 0, 0, 0
        )
    assert len(header) == ehsize
    table = b"".join(struct.pack(e + "I", t) + b"\0" * (phentsize - 4) for t in types)
    return header + table


@pytest.mark.parametrize("is64", [True, False], ids=["elf64", "elf32"])
@pytest.mark.parametrize("big", [False, True], ids=["little", "big"])
@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ([1, 1, 4], True),  # PT_LOAD, PT_LOAD, PT_NOTE
        ([6, 3, 1], False),  # PT_PHDR, PT_INTERP, PT_LOAD
        ([1, 1, 3], False),  # PT_INTERP last
        ([], True),
    ],
)
def test_is_static_elf_synthetic(
    tmp_path: Path, is64: bool, big: bool, types: list[int], expected: bool
) -> None:
    path = tmp_path / "elf"
    path.write_bytes(_elf(is64=is64, big=big, types=types))
    assert is_static_elf(path) is expected


def test_is_static_elf_truncated_program_headers(tmp_path: Path) -> None:
    path = tmp_path / "elf"
    data = _elf(is64=True, big=False, types=[1, 1, 1])
    path.write_bytes(data[: 64 + 56 + 2])  # the second entry is cut short
    assert is_static_elf(path) is None


# ---- check_emulator ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", [AMD64, with_host(lookup("arm64"), native=lookup("arm64"))])
def test_native_platform_is_usable_without_reading(tmp_path: Path, host: Platform) -> None:
    missing = tmp_path / "does-not-exist"
    status = check_emulator(host, binfmt_dir=missing)
    assert status.native is True
    assert status.usable is True
    assert status.problem == ""
    assert status.remedy == ""
    assert status.handler is None
    assert status.summary == "native"


def test_not_mounted(tmp_path: Path) -> None:
    directory = tmp_path / "binfmt_misc"
    directory.mkdir()
    install(directory, "s390x", handler_text("/bin/ls"))  # a handler file but no register
    status = check_emulator(S390X, binfmt_dir=directory, ask_version=False)
    assert not status.usable
    assert not status.native
    assert "not mounted" in status.problem
    assert str(directory) in status.problem
    assert_remedy(status.remedy)
    assert "mount -t binfmt_misc" in status.remedy
    assert "update-binfmts --enable qemu-s390x" in status.remedy
    assert "--platforms s390x" in status.remedy
    assert status.summary == status.problem


def test_missing_handler(binfmt: Path) -> None:
    install(binfmt, "aarch64", handler_text("/bin/ls"))  # some other platform's handler
    status = check_emulator(S390X, binfmt_dir=binfmt, ask_version=False)
    assert not status.usable
    assert "no binfmt_misc handler qemu-s390x" in status.problem
    assert "linux/s390x" in status.problem
    assert_remedy(status.remedy)
    assert "apt-get install qemu-user-static" in status.remedy
    assert "update-binfmts --enable qemu-s390x" in status.remedy


def test_disabled_handler(binfmt: Path) -> None:
    install(binfmt, "s390x", handler_text(str(STATIC or "/bin/ls"), enabled=False))
    status = check_emulator(S390X, binfmt_dir=binfmt, ask_version=False)
    assert not status.usable
    assert "disabled" in status.problem
    assert_remedy(status.remedy)
    assert f"echo 1 > {binfmt / 'qemu-s390x'}" in status.remedy
    assert status.handler is not None
    assert status.handler.enabled is False


@pytest.mark.parametrize("flags", ["P", "OC", ""])
def test_handler_without_f_flag(binfmt: Path, flags: str) -> None:
    install(binfmt, "s390x", handler_text(str(STATIC or "/bin/ls"), flags=flags))
    status = check_emulator(S390X, binfmt_dir=binfmt, ask_version=False)
    assert not status.usable
    assert "lacks the F flag" in status.problem
    assert f"(flags: {flags or '-'})" in status.problem
    assert_remedy(status.remedy)
    assert "update-binfmts --disable qemu-s390x" in status.remedy
    assert "apt-get install" in status.remedy


@pytest.mark.parametrize(
    "interpreter", ["/nonexistent/qemu-s390x-static", "", "TEXT"], ids=["missing", "empty", "text"]
)
def test_interpreter_missing_or_not_elf(binfmt: Path, tmp_path: Path, interpreter: str) -> None:
    if interpreter == "TEXT":
        script = tmp_path / "qemu-s390x-static"
        script.write_text("#!/bin/sh\nexit 0\n" * 5)
        interpreter = str(script)
    install(binfmt, "s390x", handler_text(interpreter))
    status = check_emulator(S390X, binfmt_dir=binfmt, ask_version=False)
    assert not status.usable
    assert "missing or not ELF" in status.problem
    assert status.interpreter_static is None
    assert_remedy(status.remedy)
    assert "apt-get install qemu-user-static" in status.remedy


@needs_dynamic
def test_dynamic_interpreter(binfmt: Path) -> None:
    install(binfmt, "s390x", handler_text(str(DYNAMIC)))
    status = check_emulator(S390X, binfmt_dir=binfmt, ask_version=False)
    assert not status.usable
    assert "dynamically linked" in status.problem
    assert str(DYNAMIC) in status.problem
    assert status.interpreter_static is False
    assert_remedy(status.remedy)
    assert "apt-get install qemu-user-static" in status.remedy


@needs_static
@pytest.mark.parametrize("plat", [S390X, ARMV7], ids=lambda p: p.short)
def test_static_interpreter_is_usable(binfmt: Path, plat: Platform) -> None:
    install(
        binfmt,
        plat.qemu_name,
        REAL_HANDLER.replace("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", str(STATIC)),
    )
    status = check_emulator(plat, binfmt_dir=binfmt, ask_version=False)
    assert status.usable, status.problem
    assert status.native is False
    assert status.problem == ""
    assert status.remedy == ""
    assert status.interpreter_static is True
    assert status.qemu_version is None
    assert status.summary == f"qemu-{plat.qemu_name} enabled, flags PF"


@pytest.mark.usefixtures("_static_qemu")
def test_static_qemu_reports_version(binfmt: Path) -> None:
    install(binfmt, "s390x", handler_text("/usr/bin/qemu-s390x-static"))
    status = check_emulator(S390X, binfmt_dir=binfmt, ask_version=True)
    assert status.usable
    assert status.qemu_version is not None
    assert status.qemu_version[0].isdigit()
    assert f"QEMU {status.qemu_version}" in status.summary


def test_qemu_version_without_interpreter() -> None:
    assert qemu_version("") is None
    assert qemu_version("/nonexistent/qemu") is None


def test_qemu_version_of_non_qemu_program() -> None:
    assert qemu_version("true") is None


def test_disabled_takes_precedence_over_other_problems(binfmt: Path) -> None:
    install(binfmt, "s390x", handler_text("/nonexistent", enabled=False, flags="P"))
    status = check_emulator(S390X, binfmt_dir=binfmt, ask_version=False)
    assert "disabled" in status.problem


# ---- regressions: bugs found and fixed, kept fixed ----------------------------------------------


def _not_executable(tmp_path: Path) -> Path:
    path = tmp_path / "qemu-s390x-static"
    path.write_text("not a program\n")
    path.chmod(0o644)
    return path


def _exec_format_error(tmp_path: Path) -> Path:
    path = tmp_path / "qemu-s390x-static"
    path.write_text("echo no shebang\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("make", [_not_executable, _exec_format_error], ids=["eacces", "enoexec"])
def test_qemu_version_of_unrunnable_interpreter_is_none(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path)
    assert qemu_version(str(path)) is None


def test_check_emulator_with_unrunnable_interpreter_reports(binfmt: Path, tmp_path: Path) -> None:
    install(binfmt, "s390x", handler_text(str(_not_executable(tmp_path))))
    status = check_emulator(S390X, binfmt_dir=binfmt, ask_version=True)
    assert not status.usable
    assert_remedy(status.remedy)
