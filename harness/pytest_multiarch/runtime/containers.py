"""Containers the harness starts: labelled, waited for with emulation-scaled timeouts, and checked
to run the architecture that was asked for."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.images import ImageSpec, WaitSpec
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.api import EngineApi
from pytest_multiarch.engine.docker import endpoint
from pytest_multiarch.engine.health import EngineStoppedAnswering as EngineLost
from pytest_multiarch.engine.labels import Labels
from pytest_multiarch.runtime.build import inspect_platform

# docker-py, requests and testcontainers are imported where they are used: a process that
# only reads settings or sweeps (the xdist controller) does not pay ~0.4 s to import them.
if TYPE_CHECKING:
    from docker import DockerClient
    from testcontainers.core.container import DockerContainer


class WrongArchitecture(MultiarchError):
    """Something other than the requested platform ran."""


class ContainerNotReady(MultiarchError):
    """A started container did not become ready, or exited, within its time limit."""


def image_platform(reference: str, client: DockerClient) -> tuple[str, str]:
    """(image id, recorded os/arch[/variant]) of ``reference``; MultiarchError when absent."""
    found = inspect_platform(reference, client)
    if found is None:
        raise MultiarchError(f"image {reference} is not in the engine's image store")
    return found


def metadata_problem(reference: str, recorded: str, platform: Platform) -> str:
    """Why an image whose metadata records ``recorded`` is not ``platform``'s; "" when it is."""
    if recorded == platform.name:
        return ""
    return (
        f"image {reference} is {recorded}, not {platform.name}: a test on it would run the "
        f"wrong architecture (a single-platform base, or a stage built with "
        f"--platform=$BUILDPLATFORM, ends up in the final image)"
    )


def check_image_platform(reference: str, platform: Platform, client: DockerClient) -> str:
    """The image id of ``reference``; raises WrongArchitecture when its metadata names another
    platform than ``platform``."""
    image_id, recorded = image_platform(reference, client)
    problem = metadata_problem(reference, recorded, platform)
    if problem:
        raise WrongArchitecture(problem)
    return image_id


def check_uname(answer: str, platform: Platform, what: str) -> None:
    problem = platform.machine_problem(answer, what)
    if problem:
        raise WrongArchitecture(problem)


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
    engine: EngineApi | None = None,
) -> DockerContainer:
    """A testcontainers DockerContainer for ``reference`` (not started). Published ports listen
    on ``bind_address`` only (loopback by default: a test service is nobody else's business).
    All run keyword arguments go in one ``with_kwargs`` call: a second call replaces the first.
    With ``engine``, the container's own client skips asking the API version, and its removal
    is done in the background."""
    from pytest_multiarch.runtime.multiarch_container import MultiarchContainer

    _configure_testcontainers(bind_address)
    client_options: dict[str, object] | None = None
    if engine is not None:
        client_options = {"version": engine.api_version}
        if engine.environment:  # a platform mapped to another engine: its client goes there
            client_options["environment"] = dict(engine.environment)
    container = MultiarchContainer(reference, docker_client_kw=client_options)
    # stop_container hands the removal to this connection's background thread, off the test's
    # critical path (container.stop() stays what testcontainers documents: removed on return).
    container.multiarch_engine = engine  # type: ignore[attr-defined]
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


def start_container(
    container: DockerContainer,
    wait: WaitSpec,
    timeout: float,
    cancelled: threading.Event | None = None,
) -> None:
    """Start ``container`` and wait until ready; on failure remove it and raise with its logs.
    ``cancelled`` set: nobody wants it any more (a prestart, pytest_multiarch.runtime.prestart)."""
    try:
        container.start()
        wait_ready(container, wait, timeout, cancelled)
    except BaseException:
        stop_container(container)
        raise


def stop_container(container: DockerContainer) -> None:
    # Best effort: whatever survives is removed by the end-of-run sweep of the run's label.
    from docker.errors import DockerException
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError

    engine = getattr(container, "multiarch_engine", None)
    wrapped = container._container  # None when it was never created
    if not isinstance(engine, EngineApi) or wrapped is None or not wrapped.id:
        # A dead or frozen engine (EngineStoppedAnswering, from a guard) is no reason to fail.
        with contextlib.suppress(DockerException, RequestException, HTTPError, OSError, EngineLost):
            container.stop()
        return
    engine.remove_later(str(wrapped.id))
    container._container = None
    with contextlib.suppress(DockerException, OSError):
        container.get_docker_client().client.close()


def container_logs(container: DockerContainer, lines: int = 40) -> str:
    from docker.errors import DockerException
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError

    try:
        out, err = container.get_logs()
    except (DockerException, RequestException, HTTPError, OSError, EngineLost):
        return ""  # a container (or an engine) that is already gone has no logs
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


def wait_ready(
    container: DockerContainer,
    wait: WaitSpec,
    timeout: float,
    cancelled: threading.Event | None = None,
) -> None:
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
    address: tuple[str, int] | None = None
    # Most services answer within a few hundredths of a second (even emulated): poll often at
    # first, then back off to a fifth of a second.
    interval = 0.02
    while True:
        status, code = _state(container)
        if pattern is not None:
            out, err = container.get_logs()
            if pattern.search(out.decode(errors="replace") + err.decode(errors="replace")):
                return
        elif status == "running":
            if address is None:
                address = (
                    container.get_container_host_ip(),
                    int(container.get_exposed_port(wait.port)),
                )
            host, port = address
            if wait.http and _http_answers(host, port, wait.http):
                return
            if not wait.http and _port_answers(host, port):
                return
        if status in ("exited", "dead"):
            raise ContainerNotReady(
                f"container exited with code {code} before it was ready ({_describe(wait)}); "
                f"last log lines:\n{container_logs(container)}"
            )
        if cancelled is not None and cancelled.is_set():
            raise ContainerNotReady("container start abandoned: no test wants it any more")
        if time.monotonic() > deadline:
            raise ContainerNotReady(
                f"container not ready after {timeout:g}s ({_describe(wait)}); last log lines:\n"
                f"{container_logs(container)}\n"
                "hint: emulated platforms are slower; raise [wait] timeout in image.toml or "
                "--emulation-timeout-factor"
            )
        time.sleep(interval)
        interval = min(0.2, interval * 1.5)


def _describe(wait: WaitSpec) -> str:
    if wait.kind == "log":
        return f"waiting for log line matching {wait.log!r}"
    if wait.kind == "http":
        return f"waiting for HTTP {wait.http} on port {wait.port}"
    return f"waiting for port {wait.port}"


def exec_uname(container: DockerContainer) -> str | None:
    """``uname -m`` inside a running container; None when the image has no uname."""
    from docker.errors import DockerException

    try:
        result = container.exec(["uname", "-m"])
    except DockerException:  # the image has no uname binary
        return None
    if result.exit_code != 0:
        return None
    output: bytes = result.output
    return output.decode(errors="replace")
