"""One-shot containers: a command run in a fresh, labelled container of an image for a platform,
over the engine's API, and the container removed (what ``docker run --rm --pull never`` does).
The ``run`` fixture, the runtime's ``uname -m`` probe and the structure tests' commands all run
here, so each gets the same exit codes (pytest_multiarch.engine.probe), the same message for an
emulator that went away (on this host or on a remote engine), the run's labels and the removal.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.api import EngineApi
from pytest_multiarch.engine.labels import CALL_LABEL, Labels
from pytest_multiarch.engine.probe import (
    DOCKER_FAILURE,
    UNAME_ARGS,
    UNAME_ENTRYPOINT,
    refused_start_code,
)
from pytest_multiarch.engine.probe import probe_uname as read_uname
from pytest_multiarch.runtime.containers import WrongArchitecture
from pytest_multiarch.runtime.transfer import (
    Content,
    checked_paths,
    file_archive,
    get_files,
    put_files,
)


class RunTimeout(MultiarchError):
    """A ``run(...)`` command did not finish within its (emulation-scaled) time limit; its
    container has been removed. Public as ``harness.RunTimeout``."""


# After a container's command exits, the engine waits this long for its own copies of the
# output (from containerd's fifos into the attach streams and the log driver), then closes the
# fifos: what it had not copied by then is lost for the attach stream and the log alike, while
# the exit code stays 0 (moby's handleContainerExit and StreamConfig.Wait; its log then says
# "stream copy error: reading from a closed fifo"). An overloaded machine gets there.
ENGINE_STREAM_WAIT = 2.0
# The engine can also lose a stream whole, with no sign at all: its reading end of the
# container's output fifo is opened by a goroutine of its own, and when that goroutine has not
# run by the time the task is deleted (a command that exits at once, a loaded machine), the
# fifo is closed unread (containerd cio/fifo: "stream copy error: reading from a closed fifo"
# in the engine's log, nothing in the API). Measured: 1 call in 5000 under load. A run that
# exited 0 and printed nothing (_Ran.silent) is therefore run once more (_run_whole).
#
# A run whose output the engine may have cut is run again, in a fresh container, this many
# times at most; then it fails rather than return output that may be incomplete.
CUT_ATTEMPTS = 3
# The SDK's address of an engine on this machine's own socket: its clock is ours.
_LOCAL_SOCKETS = ("http+docker://localhost", "http+docker://localnpipe")


class OutputCut(MultiarchError):
    """The engine may have cut a one-shot container's output (see ENGINE_STREAM_WAIT) on every
    attempt: no result is returned rather than one whose output may be incomplete."""


@dataclass(frozen=True)
class RunResult:
    """What a one-shot container did. The output is kept as the command wrote it
    (``stdout_bytes``, ``stderr_bytes``); ``stdout`` and ``stderr`` are the same decoded as
    UTF-8 with undecodable bytes replaced by U+FFFD, so binary output is never lost.
    ``files``: what ``run(..., collect=[...])`` took out of the container (path -> content; a
    path the command did not leave behind is absent: ``file(path)`` says so)."""

    exit_code: int
    stdout_bytes: bytes
    stderr_bytes: bytes
    files: Mapping[str, bytes] = field(default_factory=dict)

    def file(self, path: str) -> bytes:
        """The collected file at ``path``; FileNotCollected (with the exit code and the end of
        stderr) when the command did not leave it behind."""
        if path in self.files:
            return self.files[path]
        from pytest_multiarch.runtime.transfer import FileNotCollected

        asked = ", ".join(self.files) or "nothing"
        raise FileNotCollected(
            f"{path} was not collected: the command (exit {self.exit_code}) did not leave it "
            f"behind (collected: {asked}); end of stderr: {self.stderr[-300:].strip()!r}"
        )

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
class HostOptions:
    """How a one-shot container is started beyond its command, as ``docker run``'s
    ``--privileged``, ``--tty``, ``--cap-add`` and ``--volume`` (the structure tests'
    ``containerRunOptions``). With ``tty`` the output is one stream: all of it is stdout."""

    privileged: bool = False
    tty: bool = False
    capabilities: tuple[str, ...] = ()
    binds: tuple[str, ...] = ()


def probe_uname(
    reference: str,
    platform: Platform,
    labels: Labels,
    timeout: float,
    engine: EngineApi | None = None,
) -> str | None:
    """What ``uname -m`` prints in a fresh container of ``reference``; None when the image has no
    ``uname`` to ask (a scratch image, say). (pytest_multiarch.engine.probe.probe_uname)"""

    def run() -> RunResult:
        return run_once(
            reference,
            platform,
            list(UNAME_ARGS),
            labels,
            timeout=timeout,
            entrypoint=UNAME_ENTRYPOINT,
            check_arch=False,
            engine=engine,
        )

    return read_uname(run, f"{reference} ({platform.name})")


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
    engine: EngineApi | None = None,
    files: Mapping[str, Content] | None = None,
    collect: Sequence[str] = (),
    host: HostOptions | None = None,
    network: str = "",
) -> RunResult:
    """Run ``command`` in a fresh container of ``reference`` for ``platform`` and remove it.
    ``stdin`` is sent as is (bytes) or UTF-8 encoded (str). ``files`` (path -> bytes or host
    file) are put into the container before it starts; ``collect`` paths are taken out after
    it ends, into the result's ``files`` (pytest_multiarch.runtime.transfer).

    What ``docker run --rm --pull never`` does, over the engine's API (``engine``: the
    process's connection; a temporary one when None): create the labelled container, attach to
    its output, start it, feed stdin, wait. The removal is handed to ``engine``'s background
    thread, off the test's critical path. A start the engine refuses gives the exit codes of
    ``docker run`` (127: command not found, 126: not executable). ``host``: further options
    of the container (:class:`HostOptions`). ``network``: a stack's network to join, where its
    services answer to their aliases (pytest_multiarch.runtime.stacks)."""
    __tracebackhide__ = True
    data = stdin.encode() if isinstance(stdin, str) else stdin
    # Checked before any container exists: a bad path or value is the caller's error.
    archive = file_archive(files, "run(files=...)") if files else None
    wanted = checked_paths(collect, "run(collect=...)")
    connection = engine or EngineApi()
    try:
        container = _Container(
            reference, platform, command, labels, env, entrypoint, user, workdir, host, network
        )
        ran = _run_whole(
            connection, container, timeout=timeout, stdin=data, archive=archive, collect=wanted
        )
    finally:
        if engine is None:
            connection.close()
    return _result(ran, reference, platform, check_arch, connection.environment)


def run_step(
    reference: str,
    platform: Platform,
    command: Sequence[str],
    labels: Labels,
    *,
    engine: EngineApi,
    timeout: float,
    commit: bool,
    env: Mapping[str, str] | None = None,
    entrypoint: str | None = None,
    user: str | None = None,
    host: HostOptions | None = None,
) -> tuple[RunResult, str]:
    """One step of a sequence whose steps each see the files the ones before left (the
    structure tests' setup, command and teardown, as container-structure-test's docker driver
    runs them): :func:`run_once`, then with ``commit`` the container's filesystem committed to
    an image whose id is returned ("" without), for the next step to run from. The container is
    removed before this returns, so that the image can be removed (:func:`remove_image`)."""
    __tracebackhide__ = True
    container = _Container(reference, platform, command, labels, env, entrypoint, user, None, host)
    ran = _run_whole(engine, container, timeout=timeout, stdin=None, commit=commit)
    return _result(ran, reference, platform, True, engine.environment), ran.image


def remove_image(engine: EngineApi, image: str) -> None:
    """Best effort: remove ``image`` (one :func:`run_step` committed)."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    with contextlib.suppress(DockerException, RequestException, OSError):
        engine.client.api.remove_image(image, force=True)


@dataclass(frozen=True)
class _Ran:
    """How one container run ended, before the exit is read (internal)."""

    code: int
    out: bytes
    err: bytes
    collected: Mapping[str, bytes] = field(default_factory=dict)
    image: str = ""  # committed
    # The engine took ENGINE_STREAM_WAIT or more to deliver the output after the exit: it may
    # have cut it (output_may_be_cut).
    cut: bool = False

    @property
    def silent(self) -> bool:
        """Exit 0 without a byte of output: what a run whose output was lost whole looks like
        (the comment above CUT_ATTEMPTS)."""
        return self.code == 0 and not self.out and not self.err


def _run_whole(
    engine: EngineApi,
    container: _Container,
    *,
    timeout: float,
    stdin: bytes | None,
    archive: bytes | None = None,
    collect: Sequence[str] = (),
    commit: bool = False,
) -> _Ran:
    """:func:`_run_attached`, run again in a fresh container while its output may have been
    lost (each attempt with the whole ``timeout``):

    - the engine may have cut it (``cut``: ENGINE_STREAM_WAIT): taken all the same when an
      earlier run gave the same output, and some (two runs cut at the same byte do not happen;
      a cut run's output is most often empty);
    - it exited 0 without a byte of output (``silent``): the engine can lose a stream whole,
      with no sign at all (the comment above CUT_ATTEMPTS), so silence is believed when a
      second run is silent too (two losses in a row: about one in 25 million runs at the rate
      measured), and a second run that prints is taken as the truth.

    Not run again with host binds, nor on a stack's network: the command's effects on the
    host, or on the services, would happen twice. Raises OutputCut when no attempt can be
    trusted."""
    __tracebackhide__ = True
    host = container.host or HostOptions()
    once = bool(host.binds) or bool(container.network)
    attempts = 1 if once else CUT_ATTEMPTS
    doubtful: list[_Ran] = []
    for _ in range(attempts):
        ran = _run_attached(
            engine,
            container,
            timeout=timeout,
            stdin=stdin,
            archive=archive,
            collect=collect,
            commit=commit,
        )
        confirmed = any(_confirms(ran, other) for other in doubtful)
        if confirmed or not (ran.cut or (ran.silent and not once)):
            for other in doubtful:
                if other.image:
                    remove_image(engine, other.image)
            return ran
        doubtful.append(ran)
    for other in doubtful:
        if other.image:
            remove_image(engine, other.image)
    again = "" if once else f", on each of {attempts} attempts"
    raise OutputCut(
        f"the engine took {ENGINE_STREAM_WAIT:g}s or more to deliver the output of "
        f"{container.reference} ({container.platform.name}) after the command exited{again}; "
        "past that it cuts the output (the exit code stays 0), so the output may be "
        f"incomplete and is not returned; the machine is overloaded; command: "
        f"{list(container.command)}"
    )


def _confirms(ran: _Ran, earlier: _Ran) -> bool:
    """Whether ``ran`` confirms an earlier doubtful run: both silent (silence is the truth),
    or both ended alike with some output (two cuts at the same byte do not happen)."""
    if ran.silent and earlier.silent and not ran.cut:
        return True
    return bool(ran.out or ran.err) and _same(ran, earlier)


def _same(one: _Ran, other: _Ran) -> bool:
    """Whether two runs ended alike: exit code, output and collected files."""
    return (one.code, one.out, one.err, dict(one.collected)) == (
        other.code,
        other.out,
        other.err,
        dict(other.collected),
    )


def output_may_be_cut(
    elapsed: float, started_at: str, finished_at: str, ended_at: float | None = None
) -> bool:
    """Whether the engine may have cut a container's output (ENGINE_STREAM_WAIT), from
    ``elapsed``: seconds on our clock from just before the start request to the end of the
    attach stream (the engine ends it right after its wait for the output copies), and the
    container's ``State.StartedAt`` and ``State.FinishedAt`` (the engine's clock; FinishedAt
    is the exit time containerd reported). The command exited at least ``FinishedAt -
    StartedAt`` after our start request (StartedAt is recorded after the request arrived), so
    ``elapsed`` minus that is an upper bound of exit-to-end, whatever the two clocks' offset:
    below the engine's wait, the wait cannot have run out. ``ended_at``: our wall-clock time
    of the end, when our clock is the engine's (an engine on this machine's socket): then
    exit-to-end is ``ended_at - FinishedAt`` exactly. An empty or unreadable timestamp gives
    no credit."""
    if ended_at is not None:
        with contextlib.suppress(ValueError):
            return ended_at - _engine_seconds(finished_at) >= ENGINE_STREAM_WAIT * 0.9
    ran = 0.0
    with contextlib.suppress(ValueError):
        ran = max(0.0, _engine_seconds(finished_at) - _engine_seconds(started_at))
    if ran > elapsed:  # impossible for a run inside our window: a timestamp left unset
        ran = 0.0
    # A tenth under the engine's limit: timestamps are rounded, clocks tick unevenly.
    return elapsed - ran >= ENGINE_STREAM_WAIT * 0.9


def _engine_seconds(stamp: str) -> float:
    """Seconds since the epoch of an engine timestamp (RFC 3339, UTC, up to nanoseconds);
    ValueError for anything else."""
    from datetime import UTC, datetime

    whole, _, fraction = stamp.rstrip("Z").partition(".")
    if not stamp.endswith("Z") or (fraction and not fraction.isdigit()):
        raise ValueError(f"not an engine timestamp: {stamp!r}")
    moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)


def _result(
    ran: _Ran,
    reference: str,
    platform: Platform,
    check_arch: bool,
    environment: Mapping[str, str] | None,
) -> RunResult:
    """The RunResult of ``ran``; raises for docker's own failure (exit 125 with docker's
    message) and, with ``check_arch``, for a program the kernel could not execute."""
    __tracebackhide__ = True
    stderr_text = ran.err.decode("utf-8", errors="replace")
    if ran.code == DOCKER_FAILURE and stderr_text.startswith("docker:"):
        raise MultiarchError(f"docker could not run {reference} for {platform.name}: {stderr_text}")
    if check_arch and "exec format error" in stderr_text:
        raise WrongArchitecture(_exec_format_error(reference, platform, environment))
    return RunResult(ran.code, ran.out, ran.err, dict(ran.collected))


def _exec_format_error(
    reference: str, platform: Platform, environment: Mapping[str, str] | None = None
) -> str:
    """Why the kernel could not execute the container's program: usually an emulator that was
    there when the run began and has since gone (disabled, unregistered, binfmt_misc unmounted).
    ``environment``: the SDK environment of the engine it ran on (None: the default engine);
    on another machine, this host's binfmt_misc says nothing about it."""
    from pytest_multiarch.core.emulation import check_emulator
    from pytest_multiarch.engine.endpoints import host_is_local

    what = f"{reference} ({platform.name}) failed with 'exec format error'"
    host = (environment or {}).get("DOCKER_HOST", "")
    if host and not host_is_local(host):
        return (
            f"{what} on the engine at {host}: no working emulator for {platform.name} on that "
            "machine (its binfmt_misc handlers cannot be seen from here); register QEMU's "
            "handlers there, or map this platform to an engine that runs it"
        )
    status = check_emulator(platform, ask_version=False)
    if not status.usable:
        return (
            f"{what}: {status.problem}, though it worked when the run began (it was disabled or "
            f"removed since); remedy: {status.remedy}"
        )
    return f"{what}: no working emulator for this platform (`multiarch doctor`)"


class _Expired(Exception):
    """The deadline of a one-shot container passed (internal to this module)."""


class _Duplex(Protocol):
    """The socket of an attach: a plain or TLS socket, or an SSH channel."""

    def recv(self, size: int, /) -> bytes: ...
    def sendall(self, data: bytes, /) -> None: ...
    def settimeout(self, seconds: float | None, /) -> None: ...
    def shutdown(self, how: int, /) -> None: ...
    def close(self) -> None: ...


def _daemon_error(explanation: str) -> bytes:
    """The engine's error as ``docker run`` prints it."""
    return f"docker: Error response from daemon: {explanation}\n".encode()


def _start_refused(explanation: str) -> tuple[int, bytes, bytes]:
    """What ``docker run`` reports when the engine refuses to start the container: its exit
    code (pytest_multiarch.engine.probe.refused_start_code) and the daemon's error."""
    return refused_start_code(explanation), b"", _daemon_error(explanation)


@dataclass(frozen=True)
class _Container:
    """What one one-shot container is (internal): ``run_once``'s arguments of that name."""

    reference: str
    platform: Platform
    command: Sequence[str]
    labels: Labels
    env: Mapping[str, str] | None
    entrypoint: str | None
    user: str | None
    workdir: str | None
    host: HostOptions | None
    network: str = ""


def _run_attached(
    engine: EngineApi,
    container: _Container,
    *,
    timeout: float,
    stdin: bytes | None,
    archive: bytes | None = None,
    collect: Sequence[str] = (),
    commit: bool = False,
) -> _Ran:
    """How one container run as ``run_once`` describes ended; files of ``archive`` put in
    before the start, ``collect`` paths read after. With ``commit`` (:func:`run_step`), the
    ended container is committed to an image and removed at once, not in the background."""
    __tracebackhide__ = True
    from docker.errors import APIError, DockerException
    from requests.exceptions import RequestException

    reference, platform, command = container.reference, container.platform, container.command
    entrypoint, env = container.entrypoint, container.env or {}
    host = container.host or HostOptions()
    deadline = time.monotonic() + timeout
    what = f"{reference} ({platform.name})"
    try:
        api = engine.client.api
        created = api.create_container(
            reference,
            command=list(command) or None,
            # --entrypoint X is a one-element entrypoint; "" resets the image's (as the CLI).
            entrypoint=None if entrypoint is None else [entrypoint],
            user=container.user or None,
            working_dir=container.workdir or None,
            environment=[f"{key}={value}" for key, value in env.items()] or None,
            labels={**container.labels.as_dict(), CALL_LABEL: uuid.uuid4().hex},
            platform=platform.name,
            # Attached and not detached, stdin_open also sets StdinOnce: closing our sending
            # half ends the command's input, as with docker run --interactive.
            stdin_open=stdin is not None,
            tty=host.tty,
            host_config=api.create_host_config(
                privileged=host.privileged,
                cap_add=list(host.capabilities) or None,
                binds=list(host.binds) or None,
                network_mode=container.network or None,
            ),
        )
    except APIError as exc:  # no such image, or not of this platform: docker run's exit 125
        return _Ran(DOCKER_FAILURE, b"", _daemon_error(exc.explanation or str(exc)))
    except (DockerException, RequestException, OSError) as exc:
        raise MultiarchError(f"could not run a container of {what}: {exc}") from None
    container_id = str(created["Id"])
    try:
        if archive is not None:
            put_files(api, container_id, archive, what)
        # Attached before the start, as docker run does: no output can be missed.
        attached = api.attach_socket(
            container_id,
            params={"stdin": int(stdin is not None), "stdout": 1, "stderr": 1, "stream": 1},
        )
        duplex: _Duplex = getattr(attached, "_sock", attached)
        # Whatever the HTTP client read past the attach response's headers is the stream's
        # beginning: read first, never skipped by reading the socket beneath it.
        prefix = _read_ahead(attached, duplex)
        try:
            began = time.monotonic()
            try:
                api.start(container_id)
            except APIError as exc:
                return _Ran(*_start_refused(exc.explanation or str(exc)))
            if stdin is not None:
                threading.Thread(
                    target=_feed, args=(duplex, stdin), name="multiarch-stdin", daemon=True
                ).start()
            out, err = _read_frames(duplex, deadline, raw=host.tty, prefix=prefix)
            elapsed, ended_at = time.monotonic() - began, time.time()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Expired
            try:
                status = api.wait(container_id, timeout=math.ceil(remaining))
            except RequestException as exc:  # a read timeout, or the engine went away
                if time.monotonic() >= deadline:
                    raise _Expired from None
                raise MultiarchError(f"could not run a container of {what}: {exc}") from None
            cut = False
            if elapsed >= ENGINE_STREAM_WAIT * 0.9:  # else the engine's wait cannot have run out
                state = api.inspect_container(container_id).get("State") or {}
                started, finished = state.get("StartedAt", ""), state.get("FinishedAt", "")
                same_clock = api.base_url in _LOCAL_SOCKETS
                cut = output_may_be_cut(
                    elapsed, str(started), str(finished), ended_at if same_clock else None
                )
            collected = get_files(api, container_id, collect) if collect else {}
            if not out and not err and not cut:
                # Belt and braces: the engine writes the log from the same copy of the output
                # as the attach stream, and finishes it before the wait above returns. The
                # attach stream stays the source otherwise, because the log driver stores
                # text and would mangle binary output.
                out = api.logs(container_id, stdout=True, stderr=False)
                err = api.logs(container_id, stdout=False, stderr=True)
            image = str(api.commit(container_id)["Id"]) if commit else ""
            return _Ran(int(status.get("StatusCode", -1)), out, err, collected, image, cut)
        finally:
            with contextlib.suppress(OSError):
                duplex.close()
    except _Expired:
        # Removed at once, not later: a command that overran must not keep running.
        with contextlib.suppress(DockerException, RequestException, OSError):
            api.remove_container(container_id, v=True, force=True)
        container_id = ""
        raise RunTimeout(
            f"one-shot container of {what} did not finish within {timeout:g}s "
            f"(the limit is scaled for emulated platforms); command: {list(command)}"
        ) from None
    except (DockerException, RequestException, OSError) as exc:
        raise MultiarchError(f"could not run a container of {what}: {exc}") from None
    finally:
        if container_id and commit:
            # The next step's image: removing it must not wait for this container's removal.
            with contextlib.suppress(DockerException, RequestException, OSError):
                api.remove_container(container_id, v=True, force=True)
        elif container_id:
            engine.remove_later(container_id)


def _feed(duplex: _Duplex, data: bytes) -> None:
    """Send stdin, then close the sending half: the command sees the end of its input."""
    # A command that exits without reading all of it closes the connection: not an error.
    with contextlib.suppress(OSError):
        duplex.sendall(data)
        duplex.shutdown(socket.SHUT_WR)


def _read_ahead(attached: object, duplex: _Duplex) -> bytes:
    """The bytes of the attach stream that the HTTP client already read into its buffer with
    the response's headers (http.client reads them through a buffered reader; docker-py hands
    over the socket beneath it, ``response.raw._fp.fp.raw``, and keeps the response on it as
    ``_response``). Taken without waiting; b"" when there are none or the connection is not a
    socket's (an SSH channel)."""
    response = getattr(attached, "_response", None)
    reader = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)
    peek = getattr(reader, "peek", None)
    if peek is None or not callable(getattr(duplex, "setblocking", None)):
        return b""
    duplex.setblocking(False)  # type: ignore[attr-defined]
    try:
        # Non-blocking: the buffer's bytes, or b"" (one read that would block) when empty.
        ahead = bytes(peek(256 * 1024))
    except OSError:
        ahead = b""
    finally:
        duplex.setblocking(True)  # type: ignore[attr-defined]
    return ahead


_FRAME_HEADER = struct.Struct(">BxxxL")


def _read_frames(
    duplex: _Duplex, deadline: float, *, raw: bool = False, prefix: bytes = b""
) -> tuple[bytes, bytes]:
    """stdout and stderr of an attach stream (frames of an 8-byte header: stream, size), read
    until the container closes it; ``raw`` (a container with a TTY): one unframed stream, all
    of it stdout. ``prefix``: the stream's first bytes, read before (:func:`_read_ahead`).
    Raises _Expired when ``deadline`` passes first."""
    streams = {1: bytearray(), 2: bytearray()}
    pending = bytearray()
    chunk = prefix
    while True:
        if raw:
            streams[1] += chunk
        else:
            pending += chunk
            _take_frames(pending, streams)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Expired
        duplex.settimeout(remaining)
        try:
            chunk = duplex.recv(256 * 1024)
        except TimeoutError:
            raise _Expired from None
        if not chunk:
            break
    return bytes(streams[1]), bytes(streams[2])


def _take_frames(pending: bytearray, streams: dict[int, bytearray]) -> None:
    """Move the whole frames at the start of ``pending`` into ``streams``."""
    while len(pending) >= _FRAME_HEADER.size:
        stream, size = _FRAME_HEADER.unpack_from(pending)
        end = _FRAME_HEADER.size + size
        if len(pending) < end:
            break
        if stream in streams:
            streams[stream] += pending[_FRAME_HEADER.size : end]
        del pending[:end]
