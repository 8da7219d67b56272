"""Running external programs: always an argument list, always a time limit."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from pytest_multiarch.core.errors import CommandError, CommandTimeout

# Where progress lines of long operations go (print, or a quiet sink).
Log = Callable[[str], None]


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


def stream_command(
    command: Sequence[str],
    *,
    timeout: float,
    on_line: Callable[[str], None],
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    hint: str = "",
    keep_lines: int = 2000,
) -> CommandResult:
    """``run_command`` that calls ``on_line`` (in the calling thread) with each line of output as
    the program writes it, stderr and stdout as they arrive, for progress of long programs.

    The result (and CommandError/CommandTimeout) keeps the last ``keep_lines`` lines of each
    stream: all an error message needs, and bounded for a build log of any length. The time
    limit, the errors and their messages are those of ``run_command``.
    """
    args = [str(part) for part in command]
    full_env = None if env is None else {**os.environ, **env}
    try:
        process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        raise CommandError(args, 127, "", f"{args[0]}: command not found", hint) from None
    except OSError as exc:
        raise CommandError(args, 126, "", f"{args[0]}: cannot execute: {exc}", hint) from None
    arrived: queue.Queue[tuple[int, str | None]] = queue.Queue()
    kept: tuple[deque[str], deque[str]] = (deque(maxlen=keep_lines), deque(maxlen=keep_lines))
    with process:
        try:
            readers = [
                threading.Thread(target=_pump, args=(stream, index, arrived), daemon=True)
                for index, stream in enumerate((process.stdout, process.stderr))
            ]
            for reader in readers:
                reader.start()
            if input_text is not None:
                threading.Thread(
                    target=_feed, args=(process.stdin, input_text), daemon=True
                ).start()
            deadline = time.monotonic() + timeout
            open_streams = len(readers)
            while open_streams:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    index, line = arrived.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    continue
                if line is None:
                    open_streams -= 1
                    continue
                kept[index].append(line)
                on_line(line.rstrip("\n"))
            try:
                returncode = process.wait(timeout=max(0.0, deadline - time.monotonic()) + 0.1)
            except subprocess.TimeoutExpired:
                returncode = None
            if open_streams or returncode is None:
                raise CommandTimeout(args, timeout, "".join(kept[0]), "".join(kept[1]), hint)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    result = CommandResult(args, returncode, "".join(kept[0]), "".join(kept[1]))
    if check and not result.ok:
        raise CommandError(args, result.returncode, result.stdout, result.stderr, hint)
    return result


def _pump(stream: IO[str] | None, index: int, arrived: queue.Queue[tuple[int, str | None]]) -> None:
    if stream is not None:
        for line in stream:
            arrived.put((index, line))
    arrived.put((index, None))


def _feed(stream: IO[str] | None, text: str) -> None:
    if stream is None:
        return
    try:
        stream.write(text)
        stream.close()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the program exited without reading its input: its exit status tells


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value
