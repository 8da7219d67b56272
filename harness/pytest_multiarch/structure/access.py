"""``ImageAccess`` on the real engine: one built image variant, reached through the docker CLI.

Commands (``run_steps``): each step runs in a fresh container created for it
(``docker create --entrypoint ARGV0 ... ARGV1..`` then ``docker start --attach``), and when
another step follows, that container is committed (``docker commit``) and the next step's
container is created from the committed image. This is container-structure-test's own docker
driver design: every step sees the filesystem the steps before it left, no process outlives
its step, and nothing needs a shell or a long-running process in the image (``docker exec``
would need the container kept alive by something the image may not have). A check without
setup or teardown is a single ``docker run --rm``, no commit. A program that cannot be started
exits 127 (not found) or 126 (not executable) with the runtime's message on stderr, as with
``docker run``. Containers carry the run's labels, so the end-of-run sweep removes any that a
killed process leaves; committed images are removed at the end of the steps.

Files (``file``/``list_dir``): the filesystem of a created, never started container of the image
(``docker export``), saved once per image id and run in the run's state directory (xdist
workers share it under a file lock) and indexed once per process. Entries are looked up like
``lstat`` with symlinks resolved in the image's own root, never on the host.

Config (``config``): ``docker image inspect``'s ``Config``, once per image id and process.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import stat
import subprocess
import tarfile
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.errors import CommandError
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.docker import docker
from pytest_multiarch.engine.endpoints import EngineRef, engine_of
from pytest_multiarch.engine.labels import CALL_LABEL, Labels, remove_by_label
from pytest_multiarch.runtime.elf import image_path
from pytest_multiarch.structure.checks import ExecResult, FileInfo, ImageAccessError
from pytest_multiarch.structure.config import RunOptions

_MAX_SYMLINKS = 40  # Linux's limit before ELOOP
_DOCKER_TIMEOUT = 120.0  # create, commit, rm, inspect: engine bookkeeping, not emulated work
_EXPORT_TIMEOUT = 900.0
# docker create refuses an image without Entrypoint and Cmd; the export container never starts.
_NEVER_STARTED = "/pytest-multiarch-export-only"
# What docker run answers when the process could not be started (the daemon's State.ExitCode).
_START_FAILURE_CODES = (126, 127)

_TYPE_BITS = {
    tarfile.DIRTYPE: stat.S_IFDIR,
    tarfile.SYMTYPE: stat.S_IFLNK,
    tarfile.CHRTYPE: stat.S_IFCHR,
    tarfile.BLKTYPE: stat.S_IFBLK,
    tarfile.FIFOTYPE: stat.S_IFIFO,
}


@dataclass
class ImageCache:
    """Per process: image filesystems and configs already read, by image id."""

    filesystems: dict[str, ExportedFilesystem] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)


class EngineImageAccess:
    """One image variant on the engine, for ``pytest_multiarch.structure.checks.evaluate``."""

    def __init__(
        self,
        reference: str,
        image_id: str,
        platform: Platform,
        labels: Labels,
        *,
        state_dir: Path,
        cache: ImageCache,
    ) -> None:
        self.reference = reference
        self.image_id = image_id
        self.platform = platform
        self.engine = engine_of(platform)  # every call for this platform goes to its engine
        self.labels = labels
        self._state_dir = state_dir
        self._cache = cache

    # --- commands -------------------------------------------------------------------------

    def run_steps(
        self,
        steps: Sequence[Sequence[str]],
        *,
        env: Mapping[str, str],
        options: RunOptions,
        timeout: float,
    ) -> Sequence[ExecResult]:
        if len(steps) == 1:
            return [self._run_alone(steps[0], env, options, timeout)]
        results: list[ExecResult] = []
        containers: list[str] = []
        committed: list[str] = []
        image = self.reference
        try:
            for index, argv in enumerate(steps):
                container = self._create(image, argv, env, options)
                containers.append(container)
                results.append(self._start_attached(container, argv, timeout))
                if index + 1 < len(steps):
                    image = _docker_out("commit", container, engine=self.engine)
                    committed.append(image)
        finally:
            # Best effort: a container left behind carries the run's labels and is swept.
            if containers:
                _docker_quiet("rm", "-f", "-v", *containers, engine=self.engine)
            if committed:
                _docker_quiet("rmi", "-f", *reversed(committed), engine=self.engine)
        return results

    def _container_args(
        self, argv: Sequence[str], env: Mapping[str, str], options: RunOptions
    ) -> list[str]:
        """Options of ``docker create``/``docker run`` for one step, up to the image."""
        args = ["--platform", self.platform.name, "--pull", "never"]
        for key, value in self.labels.as_dict().items():
            args += ["--label", f"{key}={value}"]
        # The format runs commands as given: the image's entrypoint is replaced, not prefixed.
        args += ["--entrypoint", argv[0]]
        if options.user:
            args += ["--user", options.user]
        if options.privileged:
            args.append("--privileged")
        if options.allocate_tty:
            args.append("--tty")
        if options.env_file:
            args += ["--env-file", options.env_file]
        for name in options.env_vars:
            args += ["--env", name]  # no value: docker passes the host's
        for capability in options.capabilities:
            args += ["--cap-add", capability]
        for mount in options.bind_mounts:
            args += ["--volume", mount]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        return args

    def _run_alone(
        self, argv: Sequence[str], env: Mapping[str, str], options: RunOptions, timeout: float
    ) -> ExecResult:
        """A check without setup or teardown: one ``docker run --rm``, nothing to commit."""
        call = uuid.uuid4().hex
        args = ["run", "--rm", "--label", f"{CALL_LABEL}={call}"]
        args += [*self._container_args(argv, env, options), self.reference, *argv[1:]]
        try:
            done = self._attached(args, argv, timeout)
        except ImageAccessError:
            with contextlib.suppress(CommandError):
                remove_by_label(f"{CALL_LABEL}={call}", engine=self.engine)
            raise
        # docker run's own failures: 125 (could not create), 126/127 (could not start).
        daemon = done.stderr.startswith(b"docker: ")
        if daemon and done.returncode in _START_FAILURE_CODES:
            first = done.stderr.decode(errors="replace").splitlines()[0]
            problem = _start_problem(first.removeprefix("docker: Error response from daemon: "))
            return ExecResult(done.returncode, done.stdout, problem.encode())
        if daemon and done.returncode == 125:
            raise ImageAccessError(
                f"could not run {list(argv)} in a container of {self.reference} "
                f"({self.platform.name}): {done.stderr.decode(errors='replace').splitlines()[0]}"
            )
        return self._result(argv, done.returncode, done.stdout, done.stderr)

    def _create(
        self, image: str, argv: Sequence[str], env: Mapping[str, str], options: RunOptions
    ) -> str:
        args = ["create", *self._container_args(argv, env, options), image, *argv[1:]]
        try:
            return _docker_out(*args, engine=self.engine)
        except ImageAccessError as exc:
            raise ImageAccessError(
                f"could not create a container of {self.reference} ({self.platform.name}) to "
                f"run {list(argv)}: {exc}"
            ) from None

    def _attached(
        self, args: Sequence[str], argv: Sequence[str], timeout: float
    ) -> subprocess.CompletedProcess[bytes]:
        # Bytes, not text: a command's output may be anything; the checks decode it as Go does.
        command = docker(*args, engine=self.engine)
        try:
            return subprocess.run(
                command, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise ImageAccessError(
                f"{list(argv)} did not finish within {timeout:g}s in a container of "
                f"{self.reference} ({self.platform.name}); the limit is scaled for emulated "
                "platforms (--emulation-timeout-factor)"
            ) from None
        except OSError as exc:
            raise ImageAccessError(f"could not run the docker CLI {command[0]!r}: {exc}") from None

    def _start_attached(self, container: str, argv: Sequence[str], timeout: float) -> ExecResult:
        done = self._attached(["start", "--attach", container], argv, timeout)
        if done.returncode == 0:
            return ExecResult(0, done.stdout, done.stderr)
        state = self._state(container)
        problem = str(state.get("Error") or "")
        code = int(state.get("ExitCode", done.returncode))
        if problem:
            if code in _START_FAILURE_CODES:
                # As `docker run` reports it: 127 not found, 126 not executable.
                return ExecResult(code, done.stdout, _start_problem(problem).encode())
            raise ImageAccessError(
                f"could not start {list(argv)} in a container of {self.reference} "
                f"({self.platform.name}): {problem}"
            )
        return self._result(argv, code, done.stdout, done.stderr)

    def _result(self, argv: Sequence[str], code: int, stdout: bytes, stderr: bytes) -> ExecResult:
        if code != 0 and b"exec format error" in stderr:
            raise ImageAccessError(
                f"{list(argv)} failed with 'exec format error' on {self.platform.name}: no "
                "working emulator for this platform (`multiarch doctor`)"
            )
        return ExecResult(code, stdout, stderr)

    def _state(self, container: str) -> dict[str, Any]:
        text = _docker_out("inspect", "--format", "{{json .State}}", container, engine=self.engine)
        state = json.loads(text)
        return state if isinstance(state, dict) else {}

    # --- filesystem ------------------------------------------------------------------------

    def _filesystem(self) -> ExportedFilesystem:
        found = self._cache.filesystems.get(self.image_id)
        if found is None:
            tar_path = self._exported_tar()
            found = self._cache.filesystems[self.image_id] = ExportedFilesystem(tar_path)
        return found

    def _exported_tar(self) -> Path:
        directory = self._state_dir / "filesystems"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = self.image_id.replace(":", "-").replace("/", "-")
        target = directory / f"{name}.tar"
        with FileLock(str(directory / f"{name}.lock")):
            if not target.exists():
                partial = directory / f"{name}.{os.getpid()}.partial"
                export_filesystem(self.reference, self.platform, self.labels, partial)
                os.replace(partial, target)
        return target

    def file(self, path: str) -> FileInfo | None:
        return self._filesystem().file(path)

    def list_dir(self, path: str) -> Sequence[str] | None:
        return self._filesystem().list_dir(path)

    # --- config ----------------------------------------------------------------------------

    def config(self) -> Mapping[str, Any]:
        found = self._cache.configs.get(self.image_id)
        if found is None:
            text = _docker_out(
                "image",
                "inspect",
                "--format",
                "{{json .Config}}",
                self.reference,
                engine=self.engine,
            )
            data = json.loads(text)
            found = self._cache.configs[self.image_id] = data if isinstance(data, dict) else {}
        return found


def export_filesystem(
    reference: str, platform: Platform, labels: Labels, destination: Path
) -> None:
    """Write the filesystem of ``reference`` for ``platform`` to ``destination`` as a tar: the
    export of a created, never started (so never emulated) container, removed afterwards."""
    args = ["create", "--platform", platform.name, "--pull", "never"]
    for key, value in labels.as_dict().items():
        args += ["--label", f"{key}={value}"]
    args += ["--entrypoint", _NEVER_STARTED, reference]
    container = ""
    engine = engine_of(platform)
    try:
        container = _docker_out(*args, engine=engine)
        _docker_out(
            "export",
            "--output",
            str(destination),
            container,
            timeout=_EXPORT_TIMEOUT,
            engine=engine,
        )
    except ImageAccessError as exc:
        with contextlib.suppress(OSError):
            destination.unlink()
        raise ImageAccessError(
            f"could not read the filesystem of {reference} ({platform.name}): {exc}"
        ) from None
    finally:
        if container:
            _docker_quiet("rm", "-f", "-v", container, engine=engine)


class ExportedFilesystem:
    """An image filesystem as a tar on disk, indexed by absolute path; contents read on demand."""

    def __init__(self, tar_path: Path) -> None:
        self._tar_path = tar_path
        try:
            with tarfile.open(tar_path, "r:") as archive:
                members = archive.getmembers()
        except (tarfile.TarError, OSError) as exc:
            raise ImageAccessError(
                f"cannot read the exported filesystem {tar_path}: {exc}"
            ) from None
        self._entries: dict[str, tarfile.TarInfo] = {}
        self._children: dict[str, set[str]] = {"/": set()}
        for member in members:
            path = image_path(member.name)
            if path == "/":
                continue
            self._entries[path] = member
            # Parents are listed even when the tar has no entry of their own.
            while path != "/":
                parent, name = posixpath.split(path)
                self._children.setdefault(parent, set()).add(name)
                path = parent
        for path, member in self._entries.items():
            if member.isdir():
                self._children.setdefault(path, set())

    def _resolve(self, path: str, *, follow_last: bool) -> str | None:
        """The entry ``path`` names, symlinks resolved inside the image; None if there is none."""
        pending = deque(part for part in path.split("/") if part)
        current = "/"
        hops = 0
        while pending:
            part = pending.popleft()
            if part == ".":
                continue
            if part == "..":
                current = posixpath.dirname(current)
                continue
            candidate = posixpath.join(current, part)
            member = self._entries.get(candidate)
            if member is None:
                if candidate not in self._children:
                    return None
                current = candidate  # a directory implied by its contents
                continue
            if member.issym() and (pending or follow_last):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    return None
                if member.linkname.startswith("/"):
                    current = "/"
                pending.extendleft(reversed([p for p in member.linkname.split("/") if p]))
                continue
            if pending and not member.isdir():
                return None  # ENOTDIR
            current = candidate
        return current

    def file(self, path: str) -> FileInfo | None:
        resolved = self._resolve(path, follow_last=False)
        if resolved is None:
            return None
        member = self._entries.get(resolved)
        if member is None:
            return FileInfo(resolved, stat.S_IFDIR | 0o755)
        if member.islnk():
            # A hard link is the file it links to: same mode, owner and content.
            target = self._entries.get(image_path(member.linkname))
            if target is None or not target.isreg():
                return None
            member = target
        kind = _TYPE_BITS.get(member.type, stat.S_IFREG)
        return FileInfo(
            path=resolved,
            mode=kind | (member.mode & 0o7777),
            uid=member.uid,
            gid=member.gid,
            size=member.size if kind == stat.S_IFREG else 0,
            link_target=member.linkname if member.issym() else "",
            read=self._reader(member),
        )

    def list_dir(self, path: str) -> Sequence[str] | None:
        resolved = self._resolve(path, follow_last=True)
        if resolved is None:
            return None
        member = self._entries.get(resolved)
        if member is not None and not member.isdir():
            return None
        return sorted(self._children.get(resolved, ()))

    def _reader(self, member: tarfile.TarInfo) -> Callable[[], bytes]:
        tar_path = self._tar_path

        def read() -> bytes:
            if not member.isreg():
                return b""
            try:
                if member.issparse():
                    with tarfile.open(tar_path, "r:") as archive:
                        content = archive.extractfile(member)
                        return content.read() if content is not None else b""
                with open(tar_path, "rb") as handle:
                    handle.seek(member.offset_data)
                    return handle.read(member.size)
            except (tarfile.TarError, OSError) as exc:
                raise ImageAccessError(
                    f"cannot read {image_path(member.name)} from {tar_path}: {exc}"
                ) from None

        return read


def _start_problem(message: str) -> str:
    """The runtime's own words from a daemon's start error: ``exec: "x": executable file not
    found in $PATH``, without the layers of "failed to create task ... runc create failed"."""
    _, marker, tail = message.partition("unable to start container process: ")
    return (tail.removesuffix(": unknown") if marker else message) + "\n"


def _docker_out(
    *args: str, timeout: float = _DOCKER_TIMEOUT, engine: EngineRef | None = None
) -> str:
    """Run a docker CLI command (on ``engine``, the platform's; else the default engine); its
    stdout, stripped. ImageAccessError when it fails."""
    try:
        result = run_command(docker(*args, engine=engine), timeout=timeout)
    except CommandError as exc:
        raise ImageAccessError(str(exc)) from None
    return result.stdout.strip()


def _docker_quiet(*args: str, engine: EngineRef | None = None) -> None:
    """Best effort: whatever is left is removed by the run's sweep (containers by label)."""
    with contextlib.suppress(CommandError):
        run_command(docker(*args, engine=engine), timeout=_DOCKER_TIMEOUT, check=False)
