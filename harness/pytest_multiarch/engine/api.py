"""The Docker engine over its HTTP API (the docker SDK), for calls a test makes many times.

Spawning the docker CLI costs more than most calls it makes (an image inspect is a few
milliseconds over the socket); buildx stays on the CLI. One :class:`EngineApi` per test process
holds one SDK client, configured like the CLI from ``DOCKER_HOST`` (and ``DOCKER_TLS_VERIFY``,
``DOCKER_CERT_PATH``), and removes finished containers on a background thread, off the tests'
critical path. Every container is labelled with the run's labels, so whatever a crash leaves
behind is removed by the run's (or the next run's) sweep.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import wait as wait_all
from typing import TYPE_CHECKING

from pytest_multiarch.core.daemon_pool import DaemonPool
from pytest_multiarch.core.errors import EngineUnavailable, MultiarchError
from pytest_multiarch.engine.docker import (
    START_HINT,
    EngineInfo,
    EngineKind,
    endpoint,
    engine_facts_of,
    engine_kind,
)

if TYPE_CHECKING:
    from docker import DockerClient

# Seconds an API call may take before it counts as an engine that stopped answering.
API_TIMEOUT = 60
# A background removal takes a quarter second; one that takes longer is left to the sweep.
# (Removals run on daemon threads: a process never waits for one at exit, issue 21.)
REMOVE_TIMEOUT = 10


class EngineApiError(MultiarchError):
    """The engine refused or failed an API call."""


def connect(
    *,
    version: str | None = None,
    timeout: int = API_TIMEOUT,
    environment: Mapping[str, str] | None = None,
) -> DockerClient:
    """A docker SDK client for the engine the docker CLI talks to, or, with ``environment``
    (``DOCKER_HOST`` and TLS variables: EngineEndpoint.sdk_environment), for that engine.
    ``version`` pins the API version (else it is asked once). Raises EngineUnavailable when the
    engine does not answer."""
    import docker
    from docker.errors import DockerException

    where = environment["DOCKER_HOST"] if environment else endpoint()
    try:
        if environment:
            return docker.from_env(
                version=version or "auto",
                timeout=timeout,
                environment=dict(environment),
                # The ssh binary, as the docker CLI uses it (keys, config, agent).
                use_ssh_client=where.startswith("ssh://"),
            )
        return docker.from_env(version=version or "auto", timeout=timeout)
    except DockerException as exc:
        hint = "start it, or check the engine mapping" if environment else START_HINT
        raise EngineUnavailable(
            f"Docker engine at {where} not reachable over its API: {exc}; {hint}"
        ) from None


def engine_info_over_api(client: DockerClient, where: str) -> EngineInfo:
    """What the engine is (pytest_multiarch.engine.docker.EngineInfo), from ``/version`` and
    ``/info``
    over ``client``'s connection: milliseconds, where ``docker version`` and ``docker info`` are
    two CLI processes. Raises EngineUnavailable when the engine does not answer."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        server, info = client.version(), client.info()
    except (DockerException, RequestException, OSError) as exc:
        raise EngineUnavailable(
            f"Docker engine at {where} not reachable: {exc}; {START_HINT}"
        ) from None
    return engine_facts_of(server, info, where)


def engine_kind_over_api(client: DockerClient, where: str) -> tuple[EngineKind, str]:
    """(kind, version) of the engine behind ``client``, from its ``/version`` (one call).
    Raises EngineApiError when the engine fails the call."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        server = client.version()
    except (DockerException, RequestException, OSError) as exc:
        raise EngineApiError(
            f"engine at {where} did not say what it is (/version): {exc}"
        ) from None
    return engine_kind(server)


class EngineApi:
    """One process's connection to an engine (the default one, or the one ``environment``
    names: EngineEndpoint.sdk_environment), and the removal of its finished containers."""

    def __init__(self, environment: Mapping[str, str] | None = None) -> None:
        self.environment = dict(environment) if environment else None
        self._client: DockerClient | None = None
        self._lock = threading.Lock()
        self._remover: DaemonPool | None = None
        self._remover_client: DockerClient | None = None
        self._pending: set[Future[None]] = set()
        self._abandoned = False

    @property
    def client(self) -> DockerClient:
        """The process's client, made on first use (one ``/version`` call)."""
        with self._lock:
            if self._client is None:
                self._client = connect(environment=self.environment)
            return self._client

    @property
    def api_version(self) -> str:
        return str(self.client.api.api_version)

    def remove_later(self, container_id: str) -> None:
        """Force-remove ``container_id`` (and its anonymous volumes) on the background thread.
        Failures are left to the run's sweep, which removes every container of the run."""
        if self._abandoned:
            return
        version = self.api_version
        with self._lock:
            if self._remover is None:
                # Two at a time: removing a running container (kill, network teardown) takes a
                # quarter second, and the run's end waits for the last ones.
                # Daemon threads: a removal stuck on a frozen engine never holds up the exit.
                self._remover = DaemonPool(2, "multiarch-remove")
            future = self._remover.submit(self._remove, container_id, version)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _remove(self, container_id: str, version: str) -> None:
        from docker.errors import DockerException, NotFound
        from requests.exceptions import RequestException

        # Removal threads share a client of their own, not the test's: a test's call must not
        # wait behind a removal for a pooled connection.
        if self._abandoned:
            return
        with self._lock:
            if self._remover_client is None:
                self._remover_client = connect(
                    version=version, timeout=REMOVE_TIMEOUT, environment=self.environment
                )
            client = self._remover_client
        with contextlib.suppress(NotFound, DockerException, RequestException, OSError):
            client.api.remove_container(container_id, v=True, force=True)

    def drain(self, timeout: float = 120) -> None:
        """Wait until every removal handed to :meth:`remove_later` is done (at most ``timeout``
        seconds): the run's sweep must not race this process's removals."""
        with self._lock:
            pending = set(self._pending)
        if pending:
            wait_all(pending, timeout=timeout)

    def abandon(self) -> None:
        """The engine stopped answering: removals not begun yet are dropped (the next run's
        sweep removes those containers) and none is waited for."""
        with self._lock:
            self._abandoned = True
            remover, self._remover = self._remover, None
            self._pending.clear()
        if remover is not None:
            remover.shutdown(cancel_futures=True)

    def close(self, timeout: float = 120) -> None:
        """Finish pending removals (waiting at most ``timeout`` seconds: what is left then is
        the run's sweep's) and release the connections."""
        self.drain(timeout)
        with self._lock:
            remover, self._remover = self._remover, None
            client, self._client = self._client, None
        if remover is not None:
            remover.shutdown(cancel_futures=True)
        if self._remover_client is not None:
            self._remover_client.close()
            self._remover_client = None
        if client is not None:
            client.close()
