"""Whether this host can run a foreign platform: QEMU user-mode handlers in binfmt_misc.

Decided from ``/proc/sys/fs/binfmt_misc`` (and, in ``doctor``, a real probe), never from
``docker buildx ls``, which does not list every platform that runs.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.errors import CommandError
from pytest_multiarch.core.platforms import Platform

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
INSTALL_HINT = "apt-get install qemu-user-static binfmt-support"


@dataclass(frozen=True)
class BinfmtHandler:
    """One entry of /proc/sys/fs/binfmt_misc, as the kernel reports it."""

    name: str
    enabled: bool
    interpreter: str
    flags: str

    @property
    def fix_binary(self) -> bool:
        """The F flag: the kernel opens the interpreter at registration, so it works in
        containers whose filesystem does not have it."""
        return "F" in self.flags


def parse_handler(name: str, text: str) -> BinfmtHandler:
    enabled = False
    interpreter = ""
    flags = ""
    for line in text.splitlines():
        line = line.strip()
        if line == "enabled":
            enabled = True
        elif line.startswith("interpreter "):
            interpreter = line.removeprefix("interpreter ").strip()
        elif line.startswith("flags:"):
            flags = line.removeprefix("flags:").strip()
    return BinfmtHandler(name, enabled, interpreter, flags)


def read_handler(qemu_name: str, binfmt_dir: Path = BINFMT_DIR) -> BinfmtHandler | None:
    path = binfmt_dir / f"qemu-{qemu_name}"
    try:
        text = path.read_text()
    except (FileNotFoundError, PermissionError):
        return None
    return parse_handler(path.name, text)


def binfmt_mounted(binfmt_dir: Path = BINFMT_DIR) -> bool:
    return (binfmt_dir / "register").exists()


def is_static_elf(path: str | os.PathLike[str]) -> bool | None:
    """True when ``path`` is an ELF file without a PT_INTERP segment (statically linked);
    None when it cannot be read or is not ELF."""
    try:
        with open(os.path.realpath(path), "rb") as handle:
            header = handle.read(64)
            if len(header) < 52 or header[:4] != b"\x7fELF":
                return None
            is64 = header[4] == 2
            endian = "<" if header[5] == 1 else ">"
            if is64:
                (phoff,) = struct.unpack_from(endian + "Q", header, 0x20)
                phentsize, phnum = struct.unpack_from(endian + "HH", header, 0x36)
            else:
                (phoff,) = struct.unpack_from(endian + "I", header, 0x1C)
                phentsize, phnum = struct.unpack_from(endian + "HH", header, 0x2A)
            for index in range(phnum):
                handle.seek(phoff + index * phentsize)
                entry = handle.read(4)
                if len(entry) < 4:
                    return None
                (p_type,) = struct.unpack(endian + "I", entry)
                if p_type == 3:  # PT_INTERP
                    return False
            return True
    except OSError:
        return None


_QEMU_VERSION = re.compile(r"version\s+(\d+\.\d+(?:\.\d+)?)")


def qemu_version(interpreter: str) -> str | None:
    """The QEMU release of ``interpreter`` (``"7.2.19"``), or None when it cannot be asked."""
    if not interpreter:
        return None
    # Debian's handlers point at a wrapper (aarch64-binfmt-P) that refuses to run outside
    # binfmt_misc; the real emulator it links to answers --version.
    try:
        result = run_command([os.path.realpath(interpreter), "--version"], timeout=10, check=False)
    except CommandError:
        return None
    match = _QEMU_VERSION.search(result.stdout)
    return match.group(1) if match else None


@dataclass(frozen=True)
class EmulatorStatus:
    """Whether ``platform`` can run here, and if not, what to do about it."""

    platform: Platform
    native: bool
    handler: BinfmtHandler | None
    interpreter_static: bool | None
    qemu_version: str | None
    problem: str
    remedy: str

    @property
    def usable(self) -> bool:
        return not self.problem

    @property
    def summary(self) -> str:
        if self.native:
            return "native"
        if self.problem:
            return self.problem
        flags = self.handler.flags if self.handler else ""
        version = f", QEMU {self.qemu_version}" if self.qemu_version else ""
        return f"qemu-{self.platform.qemu_name} enabled, flags {flags}{version}"


def check_emulator(
    platform: Platform, *, binfmt_dir: Path = BINFMT_DIR, ask_version: bool = True
) -> EmulatorStatus:
    """Inspect binfmt_misc for ``platform``. Reads files only (and runs the interpreter with
    ``--version`` when ``ask_version``); never touches Docker."""
    if not platform.emulated:
        return EmulatorStatus(platform, True, None, None, None, "", "")
    handler_name = f"qemu-{platform.qemu_name}"
    enable = f"update-binfmts --enable {handler_name}"
    if not binfmt_mounted(binfmt_dir):
        return EmulatorStatus(
            platform,
            False,
            None,
            None,
            None,
            f"binfmt_misc is not mounted at {binfmt_dir}, so no emulator can run",
            f"run `mount -t binfmt_misc binfmt_misc {binfmt_dir}` then `{enable}` "
            f"(or `multiarch host up --platforms {platform.short}`)",
        )
    handler = read_handler(platform.qemu_name, binfmt_dir)
    if handler is None:
        return EmulatorStatus(
            platform,
            False,
            None,
            None,
            None,
            f"no binfmt_misc handler {handler_name} for {platform.name}",
            f"`{INSTALL_HINT}` then `{enable}` "
            f"(or `multiarch host up --platforms {platform.short}`)",
        )
    static = is_static_elf(handler.interpreter)
    version = qemu_version(handler.interpreter) if ask_version else None
    problem = ""
    remedy = ""
    if not handler.enabled:
        problem = f"binfmt_misc handler {handler_name} is disabled"
        remedy = f"`echo 1 > {binfmt_dir / handler_name}` or `{enable}`"
    elif not handler.fix_binary:
        problem = (
            f"binfmt_misc handler {handler_name} lacks the F flag (flags: {handler.flags or '-'}), "
            "so containers cannot find the emulator"
        )
        remedy = (
            f"re-register it with the F flag: `update-binfmts --disable {handler_name}` and "
            f"`{INSTALL_HINT}` (Debian registers qemu-user-static handlers with flags PF)"
        )
    elif static is None:
        problem = f"emulator {handler.interpreter} of {handler_name} is missing or not ELF"
        remedy = f"`{INSTALL_HINT}` then `{enable}`"
    elif static is False:
        problem = (
            f"emulator {handler.interpreter} of {handler_name} is dynamically linked, "
            "so it fails inside containers"
        )
        remedy = f"use the static emulators: `{INSTALL_HINT}`"
    return EmulatorStatus(platform, False, handler, static, version, problem, remedy)
