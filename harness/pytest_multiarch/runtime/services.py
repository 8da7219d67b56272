"""Service containers (the ``container`` fixtures): testcontainers' DockerContainer, extended
the way it is designed to be extended. :class:`MultiarchContainer` carries its engine and the
host its published ports are reached at (instead of patching a client or testcontainers' global
configuration); readiness is a list of small wait strategies made from the image's ``[wait]``
table (:func:`readiness`), run by testcontainers' own ``waiting_for`` hook.

A module of its own because it imports testcontainers (and docker-py), which a process that
never starts a service container (the xdist controller) does not pay for: import it lazily."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from docker.errors import APIError, DockerException, ImageNotFound
from requests.exceptions import RequestException
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import BytesExecResult, DockerContainer, ExecConfig
from testcontainers.core.network import Network
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget
from urllib3.exceptions import HTTPError

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.images import ImageSpec, WaitSpec
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.api import EngineApi
from pytest_multiarch.engine.docker import endpoint
from pytest_multiarch.engine.health import EngineStoppedAnswering as EngineLost
from pytest_multiarch.engine.labels import Labels
from pytest_multiarch.runtime.containers import WrongArchitecture, check_uname
from pytest_multiarch.runtime.transfer import (
    Content,
    FileNotCollected,
    FileTransferError,
    checked_paths,
    file_archive,
    get_files,
    put_files,
)

if TYPE_CHECKING:
    from docker import APIClient

    from pytest_multiarch.runtime.engine import Engine
    from pytest_multiarch.runtime.settings import Settings


class ContainerNotReady(MultiarchError):
    """A started container did not become ready, or exited, within its time limit."""


class ContainerExited(ContainerNotReady):
    """The test used a container whose command had already ended (a one-shot image used as a
    service, say): said plainly, with its output, instead of the engine's 409 Conflict."""


# Errors of a call to an engine that may have gone away, or of a container that has.
_ENGINE_ERRORS = (DockerException, RequestException, HTTPError, OSError, EngineLost)


@functools.cache
def _without_ryuk() -> None:
    """Set once per process, not per container. The harness labels its containers and sweeps
    them itself; Ryuk cannot be pulled offline, and one reaper per xdist worker would remove
    containers another worker still uses."""
    testcontainers_config.ryuk_disabled = True


def local_service_host(bind_address: str) -> str:
    """Where this process connects to a port published at ``bind_address`` on this machine."""
    unspecified = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - an address to map
    return unspecified.get(bind_address, bind_address)


def default_service_host(bind_address: str) -> str:
    """The service host of the default engine. On a local engine: the bind address (inside a
    container, testcontainers would guess "use the bridge gateway", which a loopback binding
    refuses), or the host the user gave testcontainers (``TC_HOST``). "" (testcontainers' own
    lookup) on a remote engine, or when the user chose another connection mode than
    ``docker_host`` (``TESTCONTAINERS_CONNECTION_MODE``)."""
    if not endpoint().startswith("unix://"):
        return ""
    mode = os.environ.get("TESTCONTAINERS_CONNECTION_MODE")
    if mode and mode != "docker_host":
        return ""
    given = os.environ.get("TC_HOST") or os.environ.get("TESTCONTAINERS_HOST_OVERRIDE")
    return given or local_service_host(bind_address)


class Closeable(Protocol):
    """What a prestarted container carries and its removal closes: its stack
    (pytest_multiarch.runtime.stacks)."""

    def close(self) -> None: ...


class _JoinedNetwork(Network):
    """A network that exists already (a stack's), for testcontainers to join a container to by
    name: no client of its own, never created or removed here."""

    def __init__(self, name: str) -> None:  # no super().__init__: that makes a client
        self.name = name


class MultiarchContainer(DockerContainer):
    """The ``container`` fixture's container: testcontainers' DockerContainer that runs
    ``reference`` for ``platform`` on ``engine`` (the process's connection to the platform's
    engine; None: a client of its own for the default engine), with its published ports on
    ``bind_address`` and reached at ``service_host`` ("": testcontainers' own lookup).

    Every run keyword argument is given here, in one place (testcontainers' ``with_kwargs``
    replaces earlier ones instead of merging). Adds ``put_files``/``get_files`` in the shapes of
    ``run``'s ``files`` and ``collect``, and says plainly when a test uses a container whose
    command has ended (:class:`ContainerExited`)."""

    def __init__(
        self,
        reference: str,
        platform: Platform,
        *,
        labels: Mapping[str, str],
        image_name: str = "",
        engine: EngineApi | None = None,
        service_host: str = "",
        bind_address: str = "127.0.0.1",
        ports: Sequence[int] = (),
        command: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        network: str = "",
        aliases: Sequence[str] = (),
    ) -> None:
        _without_ryuk()
        client_options: dict[str, Any] | None = None
        if engine is not None:
            # Its own client skips asking the API version; a mapped engine's goes there.
            client_options = {"version": engine.api_version}
            if engine.environment:
                client_options["environment"] = dict(engine.environment)
        super().__init__(
            reference,
            docker_client_kw=client_options,
            env=dict(env or {}),
            # On a stack's network (pytest_multiarch.runtime.stacks), answering to ``aliases``.
            network=_JoinedNetwork(network) if network else None,
            network_aliases=list(aliases) or None,
            platform=platform.name,
            labels=dict(labels),
        )
        if command:
            self.with_command(list(command))
        # An exact local tag or id: testcontainers' hub prefix (for pulls of public images from
        # a private registry) does not apply.
        self.image = reference
        self.platform = platform
        self.image_name = image_name or reference
        self.engine = engine
        self.service_host = service_host
        # The stack a prestarted container was started on: closed with it unless its test
        # adopts it (pytest_multiarch.runtime.stacks.adopt).
        self.stack: Closeable | None = None
        for port in ports:
            # (address, None): the engine picks a free host port on that address.
            # testcontainers' with_bind_ports takes no address, so it goes into the port table.
            self.ports[str(port)] = (bind_address, None)  # type: ignore[assignment]

    # -- testcontainers' hooks ---------------------------------------------------------------

    def _configure(self) -> None:
        """Called by ``start`` before the create: an image missing from the engine is pulled
        for this platform (testcontainers' own pull names no platform, which gets the engine's
        native variant of a multi-platform image)."""
        images = self.get_docker_client().client.images
        try:
            images.get(self.image)
        except ImageNotFound:
            images.pull(self.image, platform=self.platform.name)

    def get_container_host_ip(self) -> str:
        """Where the published ports are: this container's service host (the machine of its
        engine), not a process-wide setting."""
        return self.service_host or super().get_container_host_ip()

    def get_exposed_port(self, port: int) -> int:
        """The host port published for ``port`` (always published, at ``bind_address``;
        testcontainers' own lookup when the user configured it: see ``service_host``)."""
        __tracebackhide__ = True
        try:
            if not self.service_host:
                return super().get_exposed_port(port)
            return int(self.get_docker_client().port(self.get_container_id(), port))
        except (ConnectionError, APIError, TimeoutError):
            exited = self._exited()
            if exited is None:
                raise
            raise exited from None

    def exec(self, command: str | list[str] | ExecConfig) -> BytesExecResult:
        __tracebackhide__ = True
        try:
            return super().exec(command)
        except APIError:  # 409 Conflict ... is not running, when the command has ended
            exited = self._exited()
            if exited is None:
                raise
            raise exited from None

    # -- files -------------------------------------------------------------------------------

    def _api(self) -> tuple[APIClient, str]:
        wrapped = self._container
        if wrapped is None or wrapped.client is None or wrapped.id is None:
            raise FileTransferError(f"the container of {self.image} is not started")
        return wrapped.client.api, wrapped.id

    def put_files(self, files: Mapping[str, Content]) -> None:
        """Put ``{"/in/data.bin": bytes_or_path}`` into the running container."""
        archive = file_archive(files, "put_files")
        put_files(*self._api(), archive, self.image)

    def get_files(self, paths: Sequence[str]) -> dict[str, bytes]:
        """The files at ``paths`` in the container (missing ones are left out)."""
        return get_files(*self._api(), checked_paths(paths, "get_files"))

    def get_file(self, path: str) -> bytes:
        """The file at ``path``; FileNotCollected when it is not there."""
        found = self.get_files([path])
        if path not in found:
            raise FileNotCollected(f"{path} does not exist in the container of {self.image}")
        return found[path]

    # -- state and removal -------------------------------------------------------------------

    def remove_later(self) -> bool:
        """Hand the removal to the engine's background thread; False (nothing done) when
        there is no engine connection or no container."""
        wrapped = self._container  # None when it was never created
        if self.engine is None or wrapped is None or not wrapped.id:
            return False
        self.engine.remove_later(str(wrapped.id))
        self._container = None
        with contextlib.suppress(DockerException, OSError):
            self.get_docker_client().client.close()
        return True

    def state(self) -> tuple[str, int]:
        """(status, exit code) as the engine says now."""
        wrapped = self.get_wrapped_container()
        wrapped.reload()
        state = wrapped.attrs.get("State", {})
        return str(state.get("Status", "")), int(state.get("ExitCode", 0))

    def _exited(self) -> ContainerExited | None:
        """The error to raise when a call failed because the command has ended; None when the
        container is still running (or its state cannot be read): the failure is another."""
        try:
            status, code = self.state()
        except _ENGINE_ERRORS:
            return None
        if status not in ("exited", "dead"):
            return None
        logs = container_logs(self) or "(it printed nothing)"
        return ContainerExited(
            f"container of {self.image_name!r} exited (code {code}) before the test used it (a "
            f"service image's command must keep running; give a one-shot image to `run`); "
            f"last log lines:\n{logs}"
        )


def container_logs(container: DockerContainer, lines: int = 40) -> str:
    """The last ``lines`` lines of ``container``'s output; "" when it (or its engine) is gone."""
    try:
        out, err = container.get_logs()
    except _ENGINE_ERRORS:
        return ""
    text = (out.decode(errors="replace") + err.decode(errors="replace")).strip()
    return "\n".join(text.splitlines()[-lines:])


# ---- readiness: wait strategies ---------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """When a wait gives up: ``seconds`` (emulation-scaled) from its creation."""

    seconds: float
    at: float = field(default=0.0)

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def passed(self) -> bool:
        return time.monotonic() > self.at


class Strategy(Protocol):
    """One readiness condition: returns when ``container`` meets it, raises
    ContainerNotReady when it cannot any more (exited, ``deadline`` passed, ``cancelled``)."""

    def describe(self) -> str:
        """What it waits for, ``for port 8080``; "" when nothing."""
        ...

    def wait(
        self, container: MultiarchContainer, deadline: Deadline, cancelled: threading.Event | None
    ) -> None: ...


class ExitedEarly:
    """A container that exited with an error right after its start (no condition to wait for:
    the check of an image without ``[wait]``). One that exited with code 0 fails when a test
    uses it (:class:`ContainerExited`): a test that only reads its output may."""

    def describe(self) -> str:
        return ""  # nothing to wait for

    def wait(
        self, container: MultiarchContainer, deadline: Deadline, cancelled: threading.Event | None
    ) -> None:
        status, code = container.state()
        if status in ("exited", "dead") and code != 0:
            raise ContainerNotReady(
                f"container exited with code {code} right after start; last log lines:\n"
                f"{container_logs(container)}"
            )


class _Polled:
    """A condition polled until it holds: often at first (most services answer within a few
    hundredths of a second, even emulated), then every fifth of a second. Exiting, the
    deadline and ``cancelled`` end the wait."""

    def describe(self) -> str:
        raise NotImplementedError

    def ready(self, container: MultiarchContainer, status: str) -> bool:
        raise NotImplementedError

    def wait(
        self, container: MultiarchContainer, deadline: Deadline, cancelled: threading.Event | None
    ) -> None:
        interval = 0.02
        while True:
            status, code = container.state()
            if self.ready(container, status):
                return
            if status in ("exited", "dead"):
                raise ContainerNotReady(
                    f"container exited with code {code} before it was ready "
                    f"(waiting {self.describe()}); last log lines:\n{container_logs(container)}"
                )
            if cancelled is not None and cancelled.is_set():
                raise ContainerNotReady("container start abandoned: no test wants it any more")
            if deadline.passed():
                raise ContainerNotReady(
                    f"container not ready after {deadline.seconds:g}s (waiting {self.describe()}); "
                    f"last log lines:\n{container_logs(container)}\n"
                    "hint: emulated platforms are slower; raise [wait] timeout in image.toml or "
                    "--emulation-timeout-factor"
                )
            time.sleep(interval)
            interval = min(0.2, interval * 1.5)


class LogWait(_Polled):
    """A line of the container's output matches ``pattern`` (also after it exited: printed is
    printed)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    def describe(self) -> str:
        return f"for log line matching {self.pattern.pattern!r}"

    def ready(self, container: MultiarchContainer, status: str) -> bool:
        out, err = container.get_logs()
        text = out.decode(errors="replace") + err.decode(errors="replace")
        return self.pattern.search(text) is not None


class PortWait(_Polled):
    """Something listens on the container's ``port`` (reached through its published port)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._address: tuple[str, int] | None = None

    def describe(self) -> str:
        return f"for port {self.port}"

    def address(self, container: MultiarchContainer) -> tuple[str, int]:
        if self._address is None:
            host = container.get_container_host_ip()
            self._address = (host, container.get_exposed_port(self.port))
        return self._address

    def ready(self, container: MultiarchContainer, status: str) -> bool:
        return status == "running" and port_answers(*self.address(container))


class HttpWait(PortWait):
    """An HTTP GET of ``path`` on the container's ``port`` answers 2xx or 3xx."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(port)
        self.path = path

    def describe(self) -> str:
        return f"for HTTP {self.path} on port {self.port}"

    def ready(self, container: MultiarchContainer, status: str) -> bool:
        return status == "running" and http_answers(*self.address(container), self.path)


def port_answers(host: str, port: int) -> bool:
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


def http_answers(host: str, port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as response:
            return 200 <= int(response.status) < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def readiness(wait: WaitSpec) -> list[Strategy]:
    """The strategies of an image.toml ``[wait]`` table: the one place that reads it."""
    if wait.kind == "log":
        return [LogWait(wait.log)]
    if wait.kind == "http":
        return [HttpWait(wait.port, wait.http)]
    if wait.kind == "port":
        return [PortWait(wait.port)]
    return [ExitedEarly()]


class Readiness(WaitStrategy):
    """testcontainers' wait strategy (``container.waiting_for(...)``, run at the end of its
    ``start``): ``strategies`` one after the other, within one ``timeout``, given up when
    ``cancelled`` is set (a prestart nobody wants any more: pytest_multiarch.runtime.prestart)."""

    def __init__(
        self,
        strategies: Sequence[Strategy],
        timeout: float,
        cancelled: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self.strategies = tuple(strategies)
        self.timeout = timeout
        self.cancelled = cancelled

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        if not isinstance(container, MultiarchContainer):
            raise TypeError(f"Readiness waits for a MultiarchContainer, not {container!r}")
        deadline = Deadline.after(self.timeout)
        for strategy in self.strategies:
            strategy.wait(container, deadline, self.cancelled)


# ---- the container fixtures' containers -------------------------------------------------------


def make_container(
    reference: str,
    spec: ImageSpec,
    platform: Platform,
    labels: Labels,
    bind_address: str = "127.0.0.1",
    engine: EngineApi | None = None,
    service_host: str | None = None,
    network: str = "",
    aliases: Sequence[str] = (),
) -> MultiarchContainer:
    """A container of ``reference`` for ``platform`` (not started), as ``spec`` describes it.
    Published ports listen on ``bind_address`` only (loopback by default: a test service is
    nobody else's business) and are reached at ``service_host`` (None: the default engine's,
    :func:`default_service_host`)."""
    if service_host is None:
        service_host = default_service_host(bind_address)
    return MultiarchContainer(
        reference,
        platform,
        labels=labels.as_dict(),
        image_name=spec.name,
        engine=engine,
        service_host=service_host,
        bind_address=bind_address,
        ports=spec.ports,
        command=spec.command,
        env=spec.env,
        network=network,
        aliases=aliases,
    )


def start_container(
    container: MultiarchContainer,
    wait: WaitSpec,
    timeout: float,
    cancelled: threading.Event | None = None,
) -> None:
    """Start ``container`` and wait until ready; on failure remove it and raise with its logs.
    ``cancelled`` set: nobody wants it any more (a prestart, pytest_multiarch.runtime.prestart)."""
    container.waiting_for(Readiness(readiness(wait), timeout, cancelled))
    try:
        container.start()
    except BaseException:
        stop_container(container)
        raise


def stop_container(container: DockerContainer) -> None:
    """Remove ``container``: by its engine's background thread, off the test's critical path,
    when it has one (``container.stop()`` stays what testcontainers documents: removed on
    return). Best effort: whatever survives is removed by the end-of-run sweep. A prestarted
    container's stack that no test took goes with it."""
    if isinstance(container, MultiarchContainer) and container.stack is not None:
        stack, container.stack = container.stack, None
        try:
            stop_container(container)
        finally:
            with contextlib.suppress(*_ENGINE_ERRORS):
                stack.close()
        return
    if isinstance(container, MultiarchContainer) and container.remove_later():
        return
    # A dead or frozen engine (EngineStoppedAnswering, from a guard) is no reason to fail.
    with contextlib.suppress(*_ENGINE_ERRORS):
        container.stop()


def exec_uname(container: DockerContainer) -> str | None:
    """``uname -m`` inside a running container; None when the image has no uname."""
    try:
        result = container.exec(["uname", "-m"])
    except (DockerException, ContainerExited):  # no uname binary, or nothing runs any more
        return None
    if result.exit_code != 0:
        return None
    output: bytes = result.output
    return output.decode(errors="replace")


class ServiceImage(Protocol):
    """What :func:`start_verified` needs of an image (pytest_multiarch.runtime.process's
    BuiltImage)."""

    @property
    def name(self) -> str: ...
    @property
    def reference(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def spec(self) -> ImageSpec: ...


class ServiceRuntime(Protocol):
    """What :func:`start_verified` needs of the process's Docker side
    (pytest_multiarch.runtime.process's ProcessRuntime)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def labels(self) -> Labels: ...
    def engine_for(self, platform: Platform) -> Engine: ...


def start_verified(
    image: ServiceImage,
    platform: Platform,
    harness: ServiceRuntime,
    cancelled: threading.Event | None = None,
    *,
    network: str = "",
    aliases: Sequence[str] = (),
) -> MultiarchContainer:
    """A started, ready container of ``image`` that runs the very image verified for
    ``platform`` (its id; ``uname -m`` in it when the id is unknown); removed again when any of
    that fails, or when ``cancelled`` is set before it is ready. ``network``: a stack's network
    to join, answering to ``aliases`` there (pytest_multiarch.runtime.stacks)."""
    settings = harness.settings
    spec = image.spec
    mapped = settings.endpoint(platform)
    bind_address = settings.bind_address
    service_host = None
    if mapped is not None:
        # Its published ports are on the engine's machine, which this container knows.
        bind_address = mapped.publish_address(bind_address)
        service_host = mapped.service_host(settings.bind_address)
    started = make_container(
        image.reference,
        spec,
        platform,
        harness.labels,
        bind_address,
        harness.engine_for(platform).api,
        service_host,
        network,
        aliases,
    )
    timeout = settings.timeout(spec.wait.timeout, platform)
    try:
        start_container(started, spec.wait, timeout, cancelled)
    except EngineLost:
        raise
    except (MultiarchError, DockerException, RequestException, HTTPError, OSError) as exc:
        # An engine that died or froze says so (one line); anything else is the container's.
        lost = harness.engine_for(platform).watch.translate(exc)
        raise lost or MultiarchError(
            f"container of {image.reference} ({platform.name}) failed to start: {exc}"
        ) from None
    try:
        # The image id was verified (metadata, ELF files, uname) once for this platform and
        # emulator; the same id is the same files, so no exec into the container is needed.
        ran = str(started.get_wrapped_container().attrs.get("Image") or "")
        if image.id and ran:
            if ran != image.id:
                raise WrongArchitecture(
                    f"container of {image.reference} runs image {ran}, not {image.id}, the image "
                    f"verified for {platform.name} (was the tag moved during the run?)"
                )
        else:
            answer = exec_uname(started)
            if answer is not None:
                check_uname(answer, platform, f"container of {image.reference}")
    except WrongArchitecture as exc:
        if not settings.keep_containers:
            stop_container(started)
        raise WrongArchitecture(f"wrong architecture: {exc}") from None
    return started
