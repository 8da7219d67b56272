"""Running external programs: always an argument list, always a time limit."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.errors import CommandError, CommandTimeout


@dataclass(frozen=True)
class CommandResult:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_command(
    command: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    hint: str = "",
) -> CommandResult:
    """Run ``command`` and capture its output.

    Raises CommandTimeout when it runs longer than ``timeout`` seconds, and CommandError when
    it exits non-zero and ``check`` is true, or when the program does not exist.
    """
    args = [str(part) for part in command]
    full_env = None if env is None else {**os.environ, **env}
    try:
        completed = subprocess.run(
            args,
            capture_output=True,
            text=True,
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
