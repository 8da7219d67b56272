"""Exceptions raised by the harness. Each one says what went wrong and what to do."""

from __future__ import annotations

from collections.abc import Sequence


class MultiarchError(Exception):
    """Base class of every error the harness raises on purpose."""


class CommandError(MultiarchError):
    """An external command exited non-zero (or could not start)."""

    def __init__(
        self,
        command: Sequence[str],
        returncode: int,
        stdout: str,
        stderr: str,
        hint: str = "",
    ) -> None:
        self.command = list(command)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.hint = hint
        super().__init__(self._message())

    def _message(self) -> str:
        tail = (self.stderr.strip() or self.stdout.strip()).splitlines()[-15:]
        lines = [f"command {' '.join(self.command)!r} exited with {self.returncode}"]
        if tail:
            lines.append("output (last lines):")
            lines.extend(f"  {line}" for line in tail)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class CommandTimeout(CommandError):
    """An external command did not finish within its time limit."""

    def __init__(
        self, command: Sequence[str], timeout: float, stdout: str, stderr: str, hint: str = ""
    ) -> None:
        self.timeout = timeout
        super().__init__(command, -1, stdout, stderr, hint)

    def _message(self) -> str:
        base = super()._message().splitlines()
        base[0] = f"command {' '.join(self.command)!r} did not finish within {self.timeout:g}s"
        return "\n".join(base)


class EngineUnavailable(MultiarchError):
    """The Docker engine cannot be reached."""


class PlatformError(MultiarchError):
    """A platform name could not be understood or cannot run here."""


class ConfigError(MultiarchError):
    """An image.toml or option value is invalid."""
