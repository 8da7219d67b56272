"""Noticing that the Docker engine died or froze mid-run, and failing fast once it has.

Without this, a killed engine turns every docker-py call into a raw connection error, and a
frozen one makes every call wait for its own time limit (a minute or more each), so a run needs
minutes to fail. An :class:`EngineWatch` per process of a run:

* turns transport errors (requests, urllib3, docker-py, socket errors) that cross a guarded
  engine call into :class:`EngineStoppedAnswering` when a short ping confirms the engine is gone;
* while the main thread is inside a guarded call, pings the engine every few seconds from a
  background thread and, when it stops answering, interrupts the main thread with a signal (a
  blocked socket read or ``subprocess.run`` returns at once; the child is killed);
* records the death in a per-run marker file, so every process of the run fails its remaining
  engine calls at once instead of waiting for a time limit of its own.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING

from pytest_multiarch.core.errors import MultiarchError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

ENGINE_DEAD_FILE = "engine-dead"
# A live engine answers /_ping in milliseconds, even while it builds on every core.
PING_TIMEOUT = 1.5
# The second ping, after one got no answer: short, so that a frozen engine is told within
# seconds (issue 21: 16.5 s from a freeze to the run's exit with two 3 s pings every 2 s).
RECHECK_TIMEOUT = 1.0
# How often a guarded call that is still running has the engine pinged (a ping of a live
# engine costs it a millisecond).
WATCH_INTERVAL = 0.5
# Sent by the watch thread to the main thread; handled only while a guarded call runs.
INTERRUPT_SIGNAL = signal.SIGUSR2


class EngineStoppedAnswering(MultiarchError):
    """The engine (Docker, or Podman's API service) died or froze while the run was using it.
    ``engine``: what it is, as it said before (``Podman 4.3.1``); "" when not known: Docker."""

    def __init__(self, endpoint: str, cause: str, engine: str = "") -> None:
        self.endpoint = endpoint
        self.cause = cause
        self.engine = engine
        if engine.lower().startswith("podman"):
            check = (
                f"Check {engine}'s API service (`podman --url {endpoint} info`; "
                "`multiarch host up --podman` starts the machine's own), then run again"
            )
            kind = "Podman"
        else:
            check = "Check the engine (`docker info`), then run again"
            kind = "Docker"
        super().__init__(
            f"{kind} engine at {endpoint} stopped answering ({cause}); the run's remaining "
            f"tests that need it fail at once. {check}"
        )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that may mean the engine is gone (imported late: docker-py is heavy)."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError

    return (MultiarchError, DockerException, RequestException, HTTPError, OSError)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: causes, contexts, exception arguments, urllib3's ``reason``."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        nested += list(current.args)
        todo += [item for item in nested if isinstance(item, BaseException)]
    return seen


def describe_cause(exc: BaseException, timeout: float = PING_TIMEOUT) -> str:
    """A short reason for a failed engine call: "connection refused", "no answer within 5 s"."""
    for link in _chain(exc):
        if isinstance(link, TimeoutError) or type(link).__name__ in (
            "ReadTimeout",
            "ReadTimeoutError",
            "ConnectTimeout",
            "ConnectTimeoutError",
        ):
            return f"no answer within {timeout:g} s"
    for link in _chain(exc):
        if isinstance(link, OSError) and link.strerror:
            return link.strerror.lower()
    first = str(exc).strip().splitlines()
    return (first[0] if first else type(exc).__name__)[:200]


def _no_answer(cause: str) -> bool:
    """Whether a ping's failure (describe_cause) is a time limit: a frozen engine."""
    return cause.startswith("no answer within")


def ping(timeout: float = PING_TIMEOUT, environment: Mapping[str, str] | None = None) -> str:
    """Empty when the engine the docker CLI talks to (or the one ``environment`` names:
    EngineEndpoint.sdk_environment) answers ``/_ping`` within ``timeout`` seconds, else why
    not. Any HTTP answer counts: the engine is there."""
    import docker
    from docker.constants import DEFAULT_DOCKER_API_VERSION
    from docker.errors import DockerException
    from docker.utils import kwargs_from_env
    from requests.exceptions import RequestException

    try:
        # An explicit version: making the client asks the engine nothing.
        with docker.APIClient(
            version=DEFAULT_DOCKER_API_VERSION,
            timeout=math.ceil(timeout),
            use_ssh_client=environment is not None
            and str(environment.get("DOCKER_HOST", "")).startswith("ssh://"),
            **kwargs_from_env(environment=dict(environment) if environment else None),
        ) as api:
            api.get(f"{api.base_url}/_ping", timeout=timeout)
    except (DockerException, RequestException, OSError) as exc:
        return describe_cause(exc, timeout)
    return ""


class EngineWatch:
    """One process's view of whether the run's engine is alive (see the module's docstring).
    ``marker`` is a file in the run's private state directory, shared by its processes."""

    def __init__(
        self,
        endpoint: str,
        marker: Path,
        *,
        ping_timeout: float = PING_TIMEOUT,
        interval: float = WATCH_INTERVAL,
        pinger: Callable[[float], str] = ping,
        engine: Callable[[], str] = lambda: "",
    ) -> None:
        self.endpoint = endpoint
        self.marker = marker
        # What the engine is (``Podman 4.3.1``), as far as this process knows without asking
        # it: the loss is told in the engine's own terms.
        self._engine = engine
        self.ping_timeout = ping_timeout
        self.interval = interval
        self._pinger = pinger
        self._depth = 0  # guarded calls the main thread is inside
        self._since = 0.0  # when the outermost one began
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # of the current thread; each thread gets its own
        self._handler_installed = False
        self._preflown = False
        self._previous_handler: Callable[[int, FrameType | None], object] | int | None = None

    # -- what is known -----------------------------------------------------------------------

    def dead(self) -> EngineStoppedAnswering | None:
        """The error to raise when a process of this run has seen the engine stop answering."""
        try:
            fd = os.open(self.marker, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd) as handle:
            # The cause, then what the engine was as the declaring process knew it.
            cause, _, engine = handle.read().strip().partition("\n")
        return EngineStoppedAnswering(
            self.endpoint, cause or "seen by another process", engine.strip() or self._engine()
        )

    def check(self) -> None:
        """Raise EngineStoppedAnswering at once when the engine is known to be gone."""
        lost = self.dead()
        if lost is not None:
            raise lost

    def ping(self) -> str:
        """Empty when the engine answers now, else why not (at most ``ping_timeout`` seconds)."""
        return self._pinger(self.ping_timeout)

    def alive(self) -> EngineStoppedAnswering | None:
        """None when the engine answers; else the error, recorded for the whole run."""
        lost = self.dead()
        if lost is not None:
            return lost
        # Twice: one slow answer is not a dead engine. The second is short: the first one
        # already waited its time limit.
        cause = self.ping() and self._pinger(min(self.ping_timeout, RECHECK_TIMEOUT))
        return self.declare(cause) if cause else None

    def preflight(self) -> EngineStoppedAnswering | None:
        """Once per watch (per process and engine), before its first guarded call: an engine
        frozen before the run began is declared gone here, so that every test that needs it
        fails at once, as for an engine that is down, instead of each waiting for the watch.
        Only a ping without answer counts: an engine that refuses connections is reported by
        the calls themselves, as before."""
        if self._preflown:
            return self.dead()
        self._preflown = True
        lost = self.dead()
        if lost is not None:
            return lost
        # Short pings, both: nothing is waiting behind this one, and the run is starting.
        short = min(self.ping_timeout, RECHECK_TIMEOUT)
        cause = self._pinger(short)
        if not cause or not _no_answer(cause):
            return None
        second = self._pinger(short)
        return self.declare(second) if second and _no_answer(second) else None

    def declare(self, cause: str) -> EngineStoppedAnswering:
        """Record for every process of the run that the engine stopped answering."""
        with contextlib.suppress(OSError):
            self.marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # O_EXCL|O_NOFOLLOW: the first process's cause stands; never through a link.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(self.marker, flags, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{cause}\n{self._engine()}")
        return self.dead() or EngineStoppedAnswering(self.endpoint, cause, self._engine())

    def translate(self, exc: BaseException) -> EngineStoppedAnswering | None:
        """The EngineStoppedAnswering behind ``exc`` when the engine is gone, else None. Only
        errors that may come from the engine cost a ping (milliseconds when it is alive)."""
        for link in _chain(exc):
            if isinstance(link, EngineStoppedAnswering):
                return link
        if not isinstance(exc, _transport_errors()):
            return None
        return self.alive()

    # -- guarded calls -----------------------------------------------------------------------

    def guard(self, *, translating: tuple[type[BaseException], ...] = ()) -> EngineGuard:
        """``with watch.guard(): ...`` around code that talks to the engine: refuses at once
        when the engine is known to be gone, is interrupted when it stops answering, and turns
        an engine-side failure into EngineStoppedAnswering. ``translating``: further exception
        types worth a ping (pytest's ``Failed`` of a fixture that reported an engine error)."""
        return EngineGuard(self, translating)

    def _enter(self) -> None:
        self.check()
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread can be interrupted; other threads get translation
        if self._depth == 0:
            self._since = time.monotonic()
        self._depth += 1
        self._start()

    def _leave(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._depth = max(0, self._depth - 1)

    def _start(self) -> None:
        if not self._handler_installed:
            current = signal.getsignal(INTERRUPT_SIGNAL)
            # The watch of another engine (one per engine of the run) is chained, not replaced.
            if current in (signal.SIG_DFL, signal.SIG_IGN, None) or _is_watch_handler(current):
                self._previous_handler = signal.SIG_DFL if current is None else current
                signal.signal(INTERRUPT_SIGNAL, self._interrupt)
                self._handler_installed = True
        if self._thread is None:
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._watch, args=(self._stop,), name="multiarch-engine-watch", daemon=True
            )
            self._thread.start()

    def _interrupt(self, _signum: int, _frame: FrameType | None) -> None:
        __tracebackhide__ = True
        if self._depth > 0:
            lost = self.dead()
            if lost is not None:
                raise lost
        previous = self._previous_handler
        if callable(previous) and _is_watch_handler(previous):
            previous(_signum, _frame)  # the watch of another engine: its call may be the one

    def _watch(self, stop: threading.Event) -> None:
        main = threading.main_thread().ident
        while not stop.wait(self.interval):
            if self._depth == 0 or time.monotonic() - self._since < self.interval:
                continue
            if self.alive() is None:
                continue
            if self._depth > 0 and self._handler_installed and main is not None:
                signal.pthread_kill(main, INTERRUPT_SIGNAL)

    def close(self) -> None:
        """Stop the watch thread and put back the signal handler (main thread only)."""
        self._stop.set()
        self._thread = None
        if (
            self._handler_installed
            and threading.current_thread() is threading.main_thread()
            and self._previous_handler is not None
        ):
            # Only our own handler is put back: a watch chained on top of us (another engine's)
            # stays, and restores ours when it closes (close watches in reverse order).
            if signal.getsignal(INTERRUPT_SIGNAL) == self._interrupt:
                signal.signal(INTERRUPT_SIGNAL, self._previous_handler)
            self._handler_installed = False


def _is_watch_handler(handler: object) -> bool:
    """Whether a signal handler is the interrupt handler of an EngineWatch."""
    return isinstance(getattr(handler, "__self__", None), EngineWatch)


class EngineGuard:
    """The context manager of :meth:`EngineWatch.guard`."""

    def __init__(self, watch: EngineWatch, translating: tuple[type[BaseException], ...]) -> None:
        self._watch = watch
        self._translating = translating

    def __enter__(self) -> EngineWatch:
        self._watch._enter()
        return self._watch

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self._watch._leave()
        if exc is None or isinstance(exc, EngineStoppedAnswering):
            return
        if self._translating and isinstance(exc, self._translating):
            lost = self._watch.alive()
        elif isinstance(exc, Exception):
            lost = self._watch.translate(exc)
        else:
            return  # KeyboardInterrupt, SystemExit, pytest's own exits: never hidden
        if lost is None:
            return
        raise lost from None


__all__ = [
    "ENGINE_DEAD_FILE",
    "EngineGuard",
    "EngineStoppedAnswering",
    "EngineWatch",
    "describe_cause",
    "ping",
]
