"""Emulator faults told apart from test failures, and the record of what a test ran.

Under QEMU user-mode emulation some failures are the emulator's, not the test's: QEMU reports a
signal the emulated program did not handle (``qemu: uncaught target signal 11 (Segmentation
fault) - core dumped``, ``... 4 (Illegal instruction)`` for an instruction it does not
implement), QEMU itself crashes (``QEMU internal SIGSEGV``, ``qemu:handle_cpu_signal received
signal outside vCPU context``), reports what it does not support (``Unsupported syscall``), or
the binfmt_misc handler that starts it vanished (``exec format error`` while the handler is now
missing or disabled). Such lines come from QEMU, never from the program, and appear only on an
emulated platform: a failed test whose output, container logs or ``run`` results contain one is
an *emulator fault*. Everything else, a plain non-zero exit included, stays a failure.

A program that crashes natively crashes under QEMU too, with the same QEMU line: the native
column of the matrix tells the two apart (it fails there as well).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["signal", "crash", "unsupported", "binfmt"]
# Kept of each command's stderr, to look for the emulator's words after a failure.
STDERR_KEPT = 4000

_PATTERNS: tuple[tuple[FaultKind, re.Pattern[str]], ...] = (
    ("crash", re.compile(r"QEMU internal SIG[A-Z0-9]+ \{[^}\n]*\}")),
    ("crash", re.compile(r"qemu:handle_cpu_signal received signal outside vCPU context[^\n]*")),
    ("crash", re.compile(r"qemu: (?:fatal: |unhandled CPU exception|unhandled trap)[^\n]*")),
    ("signal", re.compile(r"qemu: uncaught target signal \d+ \([^)\n]*\)[^\n]*")),
    ("unsupported", re.compile(r"(?:qemu: )?Unsupported (?:syscall|ancillary data): [^\n]*")),
)
_EXEC_FORMAT = re.compile(r"exec format error", re.IGNORECASE)


@dataclass(frozen=True)
class EmulatorFault:
    """What the emulator said (its own line), and what kind of fault that is."""

    kind: FaultKind
    evidence: str


def find_fault(
    texts: Iterable[str], handler_problem: Callable[[], str] = lambda: ""
) -> EmulatorFault | None:
    """The first emulator fault in ``texts`` (output, logs, the failure message of a test on an
    emulated platform), or None. ``exec format error`` counts only when ``handler_problem()``
    says the platform's binfmt_misc handler is gone now: with the handler in place it means a
    binary of another architecture, which is the image's fault."""
    collected = [text for text in texts if text]
    for kind, pattern in _PATTERNS:
        for text in collected:
            match = pattern.search(text)
            if match is not None:
                return EmulatorFault(kind, match.group(0).strip())
    if any(_EXEC_FORMAT.search(text) for text in collected):
        problem = handler_problem()
        if problem:
            return EmulatorFault("binfmt", f"exec format error: {problem}")
    return None


def fault_line(fault: EmulatorFault, emulator_at_start: str) -> str:
    """The one line a test's report gives ``fault``, with the emulator that the run found at
    its start (its handler, flags and version). A vanished handler's line tells what it is now
    (``... is disabled``), so the bracket says it is the state at the start, not a second
    opinion on the present."""
    if not emulator_at_start:
        return fault.evidence
    when = "at the start of the run: " if fault.kind == "binfmt" else ""
    return f"{fault.evidence} [{when}{emulator_at_start}]"


@dataclass(frozen=True)
class RecordedRun:
    """One ``run(...)`` of a test: the equivalent docker command, how it ended, its stderr."""

    command: str
    ended: str  # "exit 0", "exit 139", "RunTimeout: ..."
    stderr: str = ""

    def line(self) -> str:
        return f"{self.command}  # {self.ended}"


def docker_run_line(
    reference: str,
    platform: str,
    cmd: Sequence[str],
    *,
    entrypoint: str | Sequence[str] | None = None,
    user: str | None = None,
    workdir: str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | bytes | None = None,
) -> str:
    """The ``docker run`` that does what ``run(cmd, ...)`` did, to rerun it by hand. Input
    (``stdin``) is piped in with ``printf`` (exact, bytes included) and the container given
    ``-i``; input too long to show is read from a file named for its size."""
    command = list(cmd)
    args = ["docker", "run", "--rm", "-i", "--platform", platform]
    if stdin is None:
        args.remove("-i")
    if entrypoint is not None:
        if not isinstance(entrypoint, str):
            parts = list(entrypoint)
            entrypoint, command = parts[0], [*parts[1:], *command]
        args += ["--entrypoint", entrypoint]
    if user:
        args += ["--user", user]
    if workdir:
        args += ["--workdir", workdir]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    line = shlex.join([*args, reference, *command])
    if stdin is None:
        return line
    data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
    if len(data) > STDIN_SHOWN:
        return f"{line} < stdin-{len(data)}-bytes"
    return f"printf {shlex.quote(printf_format(data))} | {line}"


# Input bytes written out in a recorded command line; more is named, not shown.
STDIN_SHOWN = 1000


def printf_format(data: bytes) -> str:
    """A ``printf`` format that prints exactly ``data`` (POSIX printf: ``%%``, ``\\`` and
    octal escapes), so the recorded line gives the container the same input."""
    out = []
    for byte in data:
        char = chr(byte)
        if char == "%":
            out.append("%%")
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif 0x20 <= byte < 0x7F and not (char == "-" and not out):
            out.append(char)  # a leading "-" would be taken for an option of printf
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)
