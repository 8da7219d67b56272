"""Containers the harness starts: labelled, waited for with emulation-scaled timeouts, and checked
to run the architecture that was asked for."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from docker.errors import DockerException
from testcontainers.core.container import DockerContainer

from harness.commands import run_command
from harness.errors import CommandError, CommandTimeout, MultiarchError
from harness.images import ImageSpec, WaitSpec
from harness.platforms import Platform
from harness.runtime.build import inspect_platform
from harness.runtime.engine import docker, endpoint

if TYPE_CHECKING:
    from harness.runtime.session import BuiltImage, Harness

RUN_LABEL = "pytest-multiarch.run"
OWNER_LABEL = "pytest-multiarch.owner"
KEEP_LABEL = "pytest-multiarch.keep"
CALL_LABEL = "pytest-multiarch.call"


class WrongArchitecture(MultiarchError):
    """Something other than the requested platform ran."""


class RunTimeout(MultiarchError):
    """A ``run(...)`` command did not finish within its (emulation-scaled) time limit; its
    container has been removed. Public as ``harness.RunTimeout``."""


class ContainerNotReady(MultiarchError):
    """A started container did not become ready, or exited, within its time limit."""


@dataclass(frozen=True)
class RunResult:
    """What a one-shot container did. The output is kept as the command wrote it
    (``stdout_bytes``, ``stderr_bytes``); ``stdout`` and ``stderr`` are the same decoded as
    UTF-8 with undecodable bytes replaced by U+FFFD, so binary output is never lost."""

    exit_code: int
    stdout_bytes: bytes
    stderr_bytes: bytes

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class Labels:
    run_id: str
    owner: str
    keep: bool

    def as_dict(self) -> dict[str, str]:
        labels = {RUN_LABEL: self.run_id, OWNER_LABEL: self.owner}
        if self.keep:
            labels[KEEP_LABEL] = "1"
        return labels


def check_image_platform(reference: str, platform: Platform) -> str:
    """The image id of ``reference``; raises WrongArchitecture when its metadata names another
    platform than ``platform``."""
    found = inspect_platform(reference)
    if found is None:
        raise MultiarchError(f"image {reference} is not in the engine's image store")
    image_id, recorded = found
    if recorded != platform.name:
        raise WrongArchitecture(
            f"image {reference} is {recorded}, not {platform.name}: a test on it would run the "
            f"wrong architecture (a single-platform base, or a stage built with "
            f"--platform=$BUILDPLATFORM, ends up in the final image)"
        )
    return image_id


def check_uname(answer: str, platform: Platform, what: str) -> None:
    problem = platform.machine_problem(answer, what)
    if problem:
        raise WrongArchitecture(problem)


_MISSING_EXECUTABLE = re.compile(
    r"executable file not found|no such file or directory|not found", re.IGNORECASE
)


def probe_uname(reference: str, platform: Platform, labels: Labels, timeout: float) -> str | None:
    """What ``uname -m`` prints in a fresh container of ``reference``; None when the image has no
    ``uname`` to ask (a scratch image, say)."""
    result = run_once(
        reference, platform, ["-m"], labels, timeout=timeout, entrypoint="uname", check_arch=False
    )
    if result.exit_code in (126, 127) or (
        result.exit_code != 0 and _MISSING_EXECUTABLE.search(result.stderr)
    ):
        return None
    if result.exit_code != 0:
        raise MultiarchError(
            f"`uname -m` in {reference} ({platform.name}) exited {result.exit_code}: "
            f"{result.stderr.strip()[-500:]}"
        )
    return result.stdout


def run_once(
    reference: str,
    platform: Platform,
    command: Sequence[str],
    labels: Labels,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stdin: str | bytes | None = None,
    entrypoint: str | None = None,
    user: str | None = None,
    workdir: str | None = None,
    check_arch: bool = True,
) -> RunResult:
    """Run ``command`` in a fresh container of ``reference`` for ``platform`` and remove it.
    ``stdin`` is sent as is (bytes) or UTF-8 encoded (str)."""
    __tracebackhide__ = True
    call = uuid.uuid4().hex
    args = docker("run", "--rm", "--platform", platform.name, "--pull", "never")
    for key, value in {**labels.as_dict(), CALL_LABEL: call}.items():
        args += ["--label", f"{key}={value}"]
    if stdin is not None:
        args.append("--interactive")
    if entrypoint is not None:
        args += ["--entrypoint", entrypoint]
    if user:
        args += ["--user", user]
    if workdir:
        args += ["--workdir", workdir]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    args += [reference, *command]
    try:
        result = run_command(args, timeout=timeout, check=False, input_text=stdin, binary=True)
    except CommandTimeout:
        remove_by_label(f"{CALL_LABEL}={call}")
        raise RunTimeout(
            f"one-shot container of {reference} ({platform.name}) did not finish within "
            f"{timeout:g}s (the limit is scaled for emulated platforms); command: {list(command)}"
        ) from None
    except CommandError as exc:  # the docker CLI itself could not be started
        raise MultiarchError(
            f"could not run a container of {reference} ({platform.name}): {exc}"
        ) from None
    if result.returncode == 125 and "docker:" in result.stderr:
        raise MultiarchError(
            f"docker could not run {reference} for {platform.name}: {result.stderr.strip()}"
        )
    if check_arch and "exec format error" in result.stderr:
        raise WrongArchitecture(
            f"{reference} ({platform.name}) failed with 'exec format error': no working emulator "
            "for this platform (`multiarch doctor`)"
        )
    return RunResult(result.returncode, result.stdout_bytes, result.stderr_bytes)


def remove_by_label(selector: str) -> int:
    """Force-remove every container matching the label ``selector``; returns how many.
    Raises CommandError when the engine cannot list or remove them."""
    listed = run_command(docker("ps", "-aq", "--filter", f"label={selector}"), timeout=60)
    ids = listed.stdout.split()
    if ids:
        run_command(docker("rm", "-f", "-v", *ids), timeout=120)
    return len(ids)


# ---- long-running containers (testcontainers) -------------------------------------------------


def _configure_testcontainers(bind_address: str) -> None:
    """Settings of testcontainers in this process that the harness decides (unless the user set
    them through testcontainers' own environment variables)."""
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    # The harness labels and removes its containers itself; Ryuk cannot be pulled offline, and
    # one reaper per xdist worker would remove containers another worker still uses.
    testcontainers_config.ryuk_disabled = True
    if not endpoint().startswith("unix://"):
        return
    # A local engine publishes ports on this host, at the bind address. testcontainers would
    # guess "inside a container, use the bridge gateway" here, which a loopback binding refuses.
    if not os.environ.get("TESTCONTAINERS_CONNECTION_MODE"):
        testcontainers_config.connection_mode_override = ConnectionMode.docker_host
    if not (os.environ.get("TC_HOST") or os.environ.get("TESTCONTAINERS_HOST_OVERRIDE")):
        unspecified = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - an address to map
        testcontainers_config.tc_host_override = unspecified.get(bind_address, bind_address)


def make_container(
    reference: str,
    spec: ImageSpec,
    platform: Platform,
    labels: Labels,
    bind_address: str = "127.0.0.1",
) -> DockerContainer:
    """A testcontainers DockerContainer for ``reference`` (not started). Published ports listen
    on ``bind_address`` only (loopback by default: a test service is nobody else's business).
    All run keyword arguments go in one ``with_kwargs`` call: a second call replaces the first."""
    _configure_testcontainers(bind_address)
    container = DockerContainer(reference)
    if spec.command:
        container.with_command(list(spec.command))
    for port in spec.ports:
        # (address, None): the engine picks a free host port on that address. testcontainers'
        # with_bind_ports takes no address, so the binding goes into its port table directly.
        container.ports[str(port)] = (bind_address, None)  # type: ignore[assignment]
    for key, value in spec.env.items():
        container.with_env(key, value)
    container.with_kwargs(platform=platform.name, labels=labels.as_dict())
    return container


def start_container(container: DockerContainer, wait: WaitSpec, timeout: float) -> None:
    """Start ``container`` and wait until ready; on failure remove it and raise with its logs."""
    try:
        container.start()
        wait_ready(container, wait, timeout)
    except BaseException:
        stop_container(container)
        raise


def stop_container(container: DockerContainer) -> None:
    # Best effort: whatever survives is removed by the end-of-run sweep of the run's label.
    with contextlib.suppress(DockerException):
        container.stop()


def container_logs(container: DockerContainer, lines: int = 40) -> str:
    try:
        out, err = container.get_logs()
    except DockerException:  # a container that is already gone has no logs
        return ""
    text = (out.decode(errors="replace") + err.decode(errors="replace")).strip()
    return "\n".join(text.splitlines()[-lines:])


def _state(container: DockerContainer) -> tuple[str, int]:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    state = wrapped.attrs.get("State", {})
    return str(state.get("Status", "")), int(state.get("ExitCode", 0))


def _port_answers(host: str, port: int) -> bool:
    # docker-proxy accepts every connection on the host side; a backend that is not listening
    # shows up as an immediate close, a listening one as an open (or talking) connection.
    try:
        with socket.create_connection((host, port), timeout=1) as conn:
            conn.settimeout(0.3)
            try:
                return conn.recv(1, socket.MSG_PEEK) != b""
            except TimeoutError:
                return True
    except OSError:
        return False


def _http_answers(host: str, port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as response:
            return 200 <= int(response.status) < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_ready(container: DockerContainer, wait: WaitSpec, timeout: float) -> None:
    if wait.kind == "none":
        status, code = _state(container)
        if status == "exited" and code != 0:
            raise ContainerNotReady(
                f"container exited with code {code} right after start; last log lines:\n"
                f"{container_logs(container)}"
            )
        return
    deadline = time.monotonic() + timeout
    pattern = re.compile(wait.log) if wait.log else None
    while True:
        status, code = _state(container)
        if pattern is not None:
            out, err = container.get_logs()
            if pattern.search(out.decode(errors="replace") + err.decode(errors="replace")):
                return
        elif status == "running":
            host = container.get_container_host_ip()
            port = int(container.get_exposed_port(wait.port))
            if wait.http and _http_answers(host, port, wait.http):
                return
            if not wait.http and _port_answers(host, port):
                return
        if status in ("exited", "dead"):
            raise ContainerNotReady(
                f"container exited with code {code} before it was ready ({_describe(wait)}); "
                f"last log lines:\n{container_logs(container)}"
            )
        if time.monotonic() > deadline:
            raise ContainerNotReady(
                f"container not ready after {timeout:g}s ({_describe(wait)}); last log lines:\n"
                f"{container_logs(container)}\n"
                "hint: emulated platforms are slower; raise [wait] timeout in image.toml or "
                "--emulation-timeout-factor"
            )
        time.sleep(0.2)


def _describe(wait: WaitSpec) -> str:
    if wait.kind == "log":
        return f"waiting for log line matching {wait.log!r}"
    if wait.kind == "http":
        return f"waiting for HTTP {wait.http} on port {wait.port}"
    return f"waiting for port {wait.port}"


def exec_uname(container: DockerContainer) -> str | None:
    """``uname -m`` inside a running container; None when the image has no uname."""
    try:
        result = container.exec(["uname", "-m"])
    except DockerException:  # the image has no uname binary
        return None
    if result.exit_code != 0:
        return None
    output: bytes = result.output
    return output.decode(errors="replace")


def start_verified(image: BuiltImage, platform: Platform, harness: Harness) -> DockerContainer:
    """A started, ready container of ``image`` whose ``uname -m`` (when it has one) is
    ``platform``'s; removed again when any of that fails."""
    settings = harness.settings
    spec = image.spec
    started = make_container(image.reference, spec, platform, harness.labels, settings.bind_address)
    timeout = settings.timeout(spec.wait.timeout, platform)
    try:
        start_container(started, spec.wait, timeout)
    except (MultiarchError, DockerException) as exc:
        raise MultiarchError(
            f"container of {image.reference} ({platform.name}) failed to start: {exc}"
        ) from None
    try:
        answer = exec_uname(started)
        if answer is not None:
            check_uname(answer, platform, f"container of {image.reference}")
    except WrongArchitecture as exc:
        if not settings.keep_containers:
            stop_container(started)
        raise WrongArchitecture(f"wrong architecture: {exc}") from None
    return started
