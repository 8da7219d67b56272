"""What a one-shot container's exit tells, in one place for every way of running one: the exit
codes ``docker run`` gives a program the engine could not start, and the ``uname -m`` probe
(which machine a fresh container of an image runs) that the runtime's verification,
``multiarch doctor`` and the publish check all ask.

The probe is given the run to make (:func:`probe_uname`'s ``run``): the runtime passes its
one-shot run over the engine's API (``pytest_multiarch.runtime.oneshot``); doctor and publish,
which need the docker CLI's pull, pass :func:`cli_run` (this layer sits below the runtime).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.docker import docker
from pytest_multiarch.engine.endpoints import EngineRef

# docker run's exit codes when the program could not be started: 127 not found, 126 not
# executable (the engine's State.ExitCode); 125 is docker's own failure (no such image, ...).
NOT_FOUND = 127
NOT_EXECUTABLE = 126
START_FAILURE_CODES = (NOT_EXECUTABLE, NOT_FOUND)
DOCKER_FAILURE = 125


def refused_start_code(explanation: str) -> int:
    """The exit code ``docker run`` gives when the engine refuses to start a container with
    ``explanation``: 127 for a missing command, 126 for one that cannot be executed, else 125."""
    if any(
        marker in explanation
        for marker in ("executable file not found", "no such file or directory")
    ):
        return NOT_FOUND
    if "permission denied" in explanation or "is a directory" in explanation:
        return NOT_EXECUTABLE
    return DOCKER_FAILURE


class ProbeRun(Protocol):
    """How one run of ``uname -m`` ended (the runtime's RunResult is one)."""

    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


@dataclass(frozen=True)
class CliRun:
    """A ProbeRun of the docker CLI."""

    exit_code: int
    stdout: str
    stderr: str


UNAME_ENTRYPOINT = "uname"
UNAME_ARGS = ("-m",)
# A probe whose output the engine lost is asked again, this many times in all.
UNAME_ATTEMPTS = 3
_MISSING_EXECUTABLE = re.compile(
    r"executable file not found|no such file or directory|not found", re.IGNORECASE
)


def probe_uname(run: Callable[[], ProbeRun], what: str) -> str | None:
    """What ``uname -m`` prints in a fresh container, as ``run`` (one run of ``uname -m`` in a
    fresh container of the image, ``what``) makes it; None when the image has no ``uname`` to
    ask (a scratch image, say). MultiarchError when uname fails, or prints nothing every time."""
    for _attempt in range(UNAME_ATTEMPTS):
        result = run()
        if result.exit_code == DOCKER_FAILURE and result.stderr.startswith("docker:"):
            # docker's own failure (no such image, a pull refused): not an answer of uname.
            raise MultiarchError(f"docker could not run {what}: {result.stderr.strip()[-500:]}")
        if result.exit_code in START_FAILURE_CODES or (
            result.exit_code != 0 and _MISSING_EXECUTABLE.search(result.stderr)
        ):
            return None
        if result.exit_code != 0:
            raise MultiarchError(
                f"`uname -m` in {what} exited {result.exit_code}: {result.stderr.strip()[-500:]}"
            )
        if result.stdout.strip():
            return result.stdout
        # uname always prints a machine: output lost on the engine's side (seen under heavy
        # load, attach stream and log both empty), not an answer. Asked again.
    raise MultiarchError(
        f"`uname -m` in {what} exited 0 but printed nothing, "
        f"{UNAME_ATTEMPTS} times: the engine lost the output (is it overloaded?)"
    )


def cli_run(
    reference: str,
    platform: Platform,
    *,
    timeout: float,
    engine: EngineRef | None = None,
    pull: Literal["always", "missing", "never"] = "missing",
    labels: Mapping[str, str] | None = None,
    entrypoint: str = UNAME_ENTRYPOINT,
    args: Sequence[str] = UNAME_ARGS,
) -> Callable[[], ProbeRun]:
    """A run for :func:`probe_uname` through ``docker run --rm`` (on ``engine``, else the
    default engine), for the tools that need the CLI's pull and credentials. CommandError when
    the docker CLI cannot be started or does not finish within ``timeout``."""
    command = ["run", "--rm", "--pull", pull, "--platform", platform.name]
    for key, value in (labels or {}).items():
        command += ["--label", f"{key}={value}"]
    command += ["--entrypoint", entrypoint, reference, *args]

    def run() -> ProbeRun:
        done = run_command(docker(*command, engine=engine), timeout=timeout, check=False)
        return CliRun(done.returncode, done.stdout, done.stderr)

    return run
