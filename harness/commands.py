"""Running external programs: always an argument list, always a time limit."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from harness.errors import CommandError, CommandTimeout

# Where progress lines of long operations go (print, or a quiet sink).
Log = Callable[[str], None]


@dataclass(frozen=True)
class CommandResult:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    # The output exactly as the program wrote it; filled with ``run_command(binary=True)`` only.
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_command(
    command: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | bytes | None = None,
    cwd: str | os.PathLike[str] | None = None,
    hint: str = "",
    binary: bool = False,
) -> CommandResult:
    """Run ``command`` and capture its output.

    ``binary=True`` is for programs whose output need not be text: the bytes are kept in
    ``stdout_bytes``/``stderr_bytes``, ``stdout``/``stderr`` are the same decoded as UTF-8 with
    undecodable bytes replaced, and ``input_text`` may be bytes.

    Raises CommandTimeout when it runs longer than ``timeout`` seconds, and CommandError when
    it exits non-zero and ``check`` is true, or when the program does not exist.
    """
    args = [str(part) for part in command]
    full_env = None if env is None else {**os.environ, **env}
    if isinstance(input_text, bytes) and not binary:
        raise TypeError("run_command: input_text is bytes; pass binary=True to send bytes")
    if binary and isinstance(input_text, str):
        input_text = input_text.encode()
    try:
        completed = subprocess.run(
            args,
            capture_output=True,
            text=not binary,
            timeout=timeout,
            env=full_env,
            input=input_text,
            cwd=cwd,
            check=False,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeout(args, timeout, _text(exc.stdout), _text(exc.stderr), hint) from None
    except FileNotFoundError:
        raise CommandError(args, 127, "", f"{args[0]}: command not found", hint) from None
    except OSError as exc:  # not executable, or not a program at all (ENOEXEC)
        raise CommandError(args, 126, "", f"{args[0]}: cannot execute: {exc}", hint) from None
    if binary:
        out, err = completed.stdout, completed.stderr
        result = CommandResult(args, completed.returncode, _text(out), _text(err), out, err)
    else:
        result = CommandResult(args, completed.returncode, completed.stdout, completed.stderr)
    if check and not result.ok:
        raise CommandError(args, result.returncode, result.stdout, result.stderr, hint)
    return result


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value
