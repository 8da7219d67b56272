"""Containers the harness starts: labelled, waited for with emulation-scaled timeouts, and checked
to run the architecture that was asked for."""

from __future__ import annotations

import contextlib
import math
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.api import EngineApi
from pytest_multiarch.engine.labels import CALL_LABEL, Labels
from pytest_multiarch.runtime.build import inspect_platform
from pytest_multiarch.runtime.elf import ElfScan, scan_tar, stream_from_chunks
from pytest_multiarch.runtime.transfer import (
    Content,
    checked_paths,
    file_archive,
    get_files,
    put_files,
)

# docker-py, requests and testcontainers are imported where they are used: a process that
# only reads settings or sweeps (the xdist controller) does not pay ~0.4 s to import them.
if TYPE_CHECKING:
    from docker import DockerClient


class WrongArchitecture(MultiarchError):
    """Something other than the requested platform ran."""


class RunTimeout(MultiarchError):
    """A ``run(...)`` command did not finish within its (emulation-scaled) time limit; its
    container has been removed. Public as ``harness.RunTimeout``."""


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


# A probe whose output the engine lost is asked again, this many times in all.
UNAME_ATTEMPTS = 3
_MISSING_EXECUTABLE = re.compile(
    r"executable file not found|no such file or directory|not found", re.IGNORECASE
)


def probe_uname(
    reference: str,
    platform: Platform,
    labels: Labels,
    timeout: float,
    engine: EngineApi | None = None,
) -> str | None:
    """What ``uname -m`` prints in a fresh container of ``reference``; None when the image has no
    ``uname`` to ask (a scratch image, say)."""
    for _attempt in range(UNAME_ATTEMPTS):
        result = run_once(
            reference,
            platform,
            ["-m"],
            labels,
            timeout=timeout,
            entrypoint="uname",
            check_arch=False,
            engine=engine,
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
        if result.stdout.strip():
            return result.stdout
        # uname always prints a machine: output lost on the engine's side (seen under heavy
        # load, attach stream and log both empty), not an answer. Asked again.
    raise MultiarchError(
        f"`uname -m` in {reference} ({platform.name}) exited 0 but printed nothing, "
        f"{UNAME_ATTEMPTS} times: the engine lost the output (is it overloaded?)"
    )


# The entrypoint of containers that are created to read their filesystem and never started
# (an image without CMD or ENTRYPOINT cannot be created without one).
NEVER_STARTED = "/.pytest-multiarch-never-started"


def scan_image_files(
    reference: str,
    platform: Platform,
    allowed_globs: Sequence[str],
    labels: Labels,
    engine: EngineApi,
    *,
    variant_of: str = "",
) -> ElfScan:
    """The ELF truth of ``reference`` for ``platform``: its filesystem is read without running
    anything (a labelled container is created, never started, exported and removed), and every
    executable and shared object is checked (:func:`pytest_multiarch.runtime.elf.scan_tar`).
    ``variant_of`` is the platform to create the container for when the image's metadata names
    another one than ``platform`` (the engine refuses the mismatch); "" means ``platform``."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    what = f"{reference} ({platform.name})"
    api = engine.client.api
    try:
        created = api.create_container(
            reference,
            entrypoint=[NEVER_STARTED],
            labels={**labels.as_dict(), CALL_LABEL: uuid.uuid4().hex},
            platform=variant_of or platform.name,
            network_disabled=True,
        )
    except (DockerException, RequestException, OSError) as exc:
        raise MultiarchError(f"could not read the filesystem of {what}: {exc}") from None
    container_id = str(created["Id"])
    try:
        return scan_tar(stream_from_chunks(api.export(container_id)), platform, allowed_globs)
    except (DockerException, RequestException, OSError) as exc:
        raise MultiarchError(f"could not read the filesystem of {what}: {exc}") from None
    finally:
        engine.remove_later(container_id)


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
) -> RunResult:
    """Run ``command`` in a fresh container of ``reference`` for ``platform`` and remove it.
    ``stdin`` is sent as is (bytes) or UTF-8 encoded (str). ``files`` (path -> bytes or host
    file) are put into the container before it starts; ``collect`` paths are taken out after
    it ends, into the result's ``files`` (pytest_multiarch.runtime.transfer).

    What ``docker run --rm --pull never`` does, over the engine's API (``engine``: the
    process's connection; a temporary one when None): create the labelled container, attach to
    its output, start it, feed stdin, wait. The removal is handed to ``engine``'s background
    thread, off the test's critical path. A start the engine refuses gives the exit codes of
    ``docker run`` (127: command not found, 126: not executable)."""
    __tracebackhide__ = True
    data = stdin.encode() if isinstance(stdin, str) else stdin
    # Checked before any container exists: a bad path or value is the caller's error.
    archive = file_archive(files, "run(files=...)") if files else None
    wanted = checked_paths(collect, "run(collect=...)")
    collected: dict[str, bytes] = {}
    connection = engine or EngineApi()
    try:
        code, out, err = _run_attached(
            connection,
            reference,
            platform,
            command,
            labels,
            timeout=timeout,
            env=env or {},
            stdin=data,
            entrypoint=entrypoint,
            user=user,
            workdir=workdir,
            archive=archive,
            collect=wanted,
            collected=collected,
        )
    finally:
        if engine is None:
            connection.close()
    stderr_text = err.decode("utf-8", errors="replace")
    if code == 125 and stderr_text.startswith("docker:"):
        raise MultiarchError(f"docker could not run {reference} for {platform.name}: {stderr_text}")
    if check_arch and "exec format error" in stderr_text:
        raise WrongArchitecture(_exec_format_error(reference, platform, connection.environment))
    return RunResult(code, out, err, collected)


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


def _start_refused(explanation: str) -> tuple[int, bytes, bytes]:
    """What ``docker run`` reports when the engine refuses to start the container: exit 127
    for a missing command, 126 for one that cannot be executed, else 125 (its own failure)."""
    message = f"docker: Error response from daemon: {explanation}\n".encode()
    if any(
        marker in explanation
        for marker in ("executable file not found", "no such file or directory")
    ):
        return 127, b"", message
    if "permission denied" in explanation or "is a directory" in explanation:
        return 126, b"", message
    return 125, b"", message


def _run_attached(
    engine: EngineApi,
    reference: str,
    platform: Platform,
    command: Sequence[str],
    labels: Labels,
    *,
    timeout: float,
    env: Mapping[str, str],
    stdin: bytes | None,
    entrypoint: str | None,
    user: str | None,
    workdir: str | None,
    archive: bytes | None = None,
    collect: Sequence[str] = (),
    collected: dict[str, bytes] | None = None,
) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr) of one container run as ``run_once`` describes; files of
    ``archive`` put in before the start, ``collect`` paths read into ``collected`` after."""
    __tracebackhide__ = True
    from docker.errors import APIError, DockerException
    from requests.exceptions import RequestException

    deadline = time.monotonic() + timeout
    what = f"{reference} ({platform.name})"
    try:
        api = engine.client.api
        created = api.create_container(
            reference,
            command=list(command) or None,
            # --entrypoint X is a one-element entrypoint; "" resets the image's (as the CLI).
            entrypoint=None if entrypoint is None else [entrypoint],
            user=user or None,
            working_dir=workdir or None,
            environment=[f"{key}={value}" for key, value in env.items()] or None,
            labels={**labels.as_dict(), CALL_LABEL: uuid.uuid4().hex},
            platform=platform.name,
            # Attached and not detached, stdin_open also sets StdinOnce: closing our sending
            # half ends the command's input, as with docker run --interactive.
            stdin_open=stdin is not None,
            host_config=api.create_host_config(),
        )
    except APIError as exc:  # no such image, or not of this platform: docker run's exit 125
        explanation = exc.explanation or str(exc)
        return 125, b"", f"docker: Error response from daemon: {explanation}\n".encode()
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
        try:
            try:
                api.start(container_id)
            except APIError as exc:
                return _start_refused(exc.explanation or str(exc))
            if stdin is not None:
                threading.Thread(
                    target=_feed, args=(duplex, stdin), name="multiarch-stdin", daemon=True
                ).start()
            out, err = _read_frames(duplex, deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Expired
            try:
                status = api.wait(container_id, timeout=math.ceil(remaining))
            except RequestException as exc:  # a read timeout, or the engine went away
                if time.monotonic() >= deadline:
                    raise _Expired from None
                raise MultiarchError(f"could not run a container of {what}: {exc}") from None
            if collect and collected is not None:
                collected.update(get_files(api, container_id, collect))
            if not out and not err:
                # Seen under load: an attach stream that ended with no frame although the
                # command printed (a probe read machine ''). The exited container's log has
                # its output; the attach stream stays the source otherwise, because the log
                # driver stores text and would mangle binary output.
                out = api.logs(container_id, stdout=True, stderr=False)
                err = api.logs(container_id, stdout=False, stderr=True)
            return int(status.get("StatusCode", -1)), out, err
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
        if container_id:
            engine.remove_later(container_id)


def _feed(duplex: _Duplex, data: bytes) -> None:
    """Send stdin, then close the sending half: the command sees the end of its input."""
    # A command that exits without reading all of it closes the connection: not an error.
    with contextlib.suppress(OSError):
        duplex.sendall(data)
        duplex.shutdown(socket.SHUT_WR)


_FRAME_HEADER = struct.Struct(">BxxxL")


def _read_frames(duplex: _Duplex, deadline: float) -> tuple[bytes, bytes]:
    """stdout and stderr of an attach stream (frames of an 8-byte header: stream, size), read
    until the container closes it. Raises _Expired when ``deadline`` passes first."""
    streams = {1: bytearray(), 2: bytearray()}
    pending = bytearray()
    while True:
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
        pending += chunk
        while len(pending) >= _FRAME_HEADER.size:
            stream, size = _FRAME_HEADER.unpack_from(pending)
            end = _FRAME_HEADER.size + size
            if len(pending) < end:
                break
            if stream in streams:
                streams[stream] += pending[_FRAME_HEADER.size : end]
            del pending[:end]
    return bytes(streams[1]), bytes(streams[2])


# ---- long-running containers (testcontainers) -------------------------------------------------
# (service containers: pytest_multiarch.runtime.services)
