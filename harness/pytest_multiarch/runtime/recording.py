"""The ``run`` a test gets: a Runner that also keeps what it ran, for the test's report (the
command to rerun by hand, how it ended) and to tell emulator faults apart (its stderr)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.core.secrets import redact_values
from pytest_multiarch.runtime.faults import STDERR_KEPT, RecordedRun, docker_run_line
from pytest_multiarch.runtime.oneshot import RunResult
from pytest_multiarch.runtime.process import BuiltImage, ProcessRuntime, Runner


class RecordingRunner(Runner):
    """A Runner whose calls are appended to ``calls`` (secret values redacted)."""

    def __init__(
        self,
        runtime: ProcessRuntime,
        image: BuiltImage,
        platform: Platform,
        calls: list[RecordedRun],
        secrets: Sequence[str] = (),
        network: str = "",
    ) -> None:
        super().__init__(runtime, image, platform, network)
        self._calls = calls
        self._secrets = list(secrets)

    def __call__(self, cmd: Sequence[str] = (), **options: Any) -> RunResult:
        __tracebackhide__ = True
        if isinstance(cmd, str):  # the Runner's own error, before anything is recorded
            return super().__call__(cmd, **options)
        line = docker_run_line(
            self.image.reference,
            self.platform.name,
            cmd,
            entrypoint=options.get("entrypoint"),
            user=options.get("user"),
            workdir=options.get("workdir"),
            env={**self.image.spec.env, **(options.get("env") or {})},
            stdin=options.get("stdin"),
        )
        try:
            result = super().__call__(cmd, **options)
        except MultiarchError as exc:
            text = str(exc)
            first = text.splitlines()[0] if text else ""
            self._record(line, f"{type(exc).__name__}: {first}", text)
            raise
        ended = f"exit {result.exit_code}"
        if options.get("files"):
            ended += f"; files put in: {', '.join(options['files'])}"
        if options.get("collect"):
            ended += f"; collected: {', '.join(result.files) or 'nothing'}"
        self._record(line, ended, result.stderr)
        return result

    def _record(self, line: str, ended: str, stderr: str) -> None:
        secrets = self._secrets
        self._calls.append(
            RecordedRun(
                redact_values(line, secrets),
                redact_values(ended, secrets),
                redact_values(stderr[-STDERR_KEPT:], secrets),
            )
        )
