"""``ImageAccess`` on the real engine: one built image variant, reached through the runtime's
one-shot runs and image filesystems, on the engine that runs its platform.

Commands (``run_steps``): each step runs in a fresh container created for it, with the step's
argv[0] as the entrypoint, and when another step follows, that container is committed and the
next step's container is created from the committed image
(:func:`pytest_multiarch.runtime.oneshot.run_step`). This is container-structure-test's own
docker driver design: every step sees the filesystem the steps before it left, no process
outlives its step, and nothing needs a shell or a long-running process in the image. A check
without setup or teardown is a single one-shot run, no commit. Every run is the runtime's
(:mod:`pytest_multiarch.runtime.oneshot`): the run's labels, docker run's exit codes (127 not
found, 126 not executable; the runtime's words on stderr, as with ``docker run``), the same
message for an emulator that went away, and an engine that stops answering fails at once.
Committed images are removed at the end of the steps.

Files (``file``/``list_dir``): the image's filesystem as the run exported it once
(:class:`pytest_multiarch.runtime.image_fs.ImageFilesystems`, shared with verification and
every xdist worker), indexed once per process. Entries are looked up like ``lstat`` with
symlinks resolved in the image's own root, never on the host.

Config (``config``): the image's ``Config`` as the engine inspects it, once per image id and
process.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.api import EngineApi
from pytest_multiarch.engine.health import EngineWatch
from pytest_multiarch.engine.labels import Labels
from pytest_multiarch.engine.probe import START_FAILURE_CODES
from pytest_multiarch.runtime.elf import image_path
from pytest_multiarch.runtime.image_fs import ImageFilesystems
from pytest_multiarch.runtime.oneshot import (
    HostOptions,
    RunResult,
    remove_image,
    run_once,
    run_step,
)
from pytest_multiarch.structure.checks import ExecResult, FileInfo, ImageAccessError
from pytest_multiarch.structure.config import ContainerRunOptions

_MAX_SYMLINKS = 40  # Linux's limit before ELOOP
# What docker run prints before the engine's reason when it could not start the program.
_DAEMON_PREFIX = "docker: Error response from daemon: "

_TYPE_BITS = {
    tarfile.DIRTYPE: stat.S_IFDIR,
    tarfile.SYMTYPE: stat.S_IFLNK,
    tarfile.CHRTYPE: stat.S_IFCHR,
    tarfile.BLKTYPE: stat.S_IFBLK,
    tarfile.FIFOTYPE: stat.S_IFIFO,
}


@dataclass
class ImageCache:
    """Per process: image filesystems indexed and configs read, by image id and platform."""

    filesystems: dict[str, ExportedFilesystem] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineImageAccess:
    """One image variant on the engine, for ``pytest_multiarch.structure.checks.evaluate``.
    ``engine`` and ``watch``: the connection to, and the watch of, the engine that runs
    ``platform``; ``filesystems``: the run's image exports; ``cache``: this process's."""

    reference: str
    image_id: str
    platform: Platform
    labels: Labels
    _: KW_ONLY
    engine: EngineApi
    watch: EngineWatch
    filesystems: ImageFilesystems
    cache: ImageCache

    @property
    def _key(self) -> str:
        return f"{self.image_id} {self.platform.name}"

    # --- commands -------------------------------------------------------------------------

    def run_steps(
        self,
        steps: Sequence[Sequence[str]],
        *,
        env: Mapping[str, str],
        options: ContainerRunOptions,
        timeout: float,
    ) -> Sequence[ExecResult]:
        environment = container_environment(options, env)
        host = HostOptions(
            privileged=options.privileged,
            tty=options.allocate_tty,
            capabilities=options.capabilities,
            binds=options.bind_mounts,
        )
        user = options.user or None
        if len(steps) == 1:
            argv = steps[0]
            with self.watch.guard():
                alone = run_once(
                    self.reference,
                    self.platform,
                    argv[1:],
                    self.labels,
                    timeout=timeout,
                    env=environment,
                    entrypoint=argv[0],
                    user=user,
                    engine=self.engine,
                    host=host,
                )
            return [_exec_result(alone)]
        results: list[ExecResult] = []
        committed: list[str] = []
        image = self.reference
        try:
            with self.watch.guard():
                for index, argv in enumerate(steps):
                    result, made = run_step(
                        image,
                        self.platform,
                        argv[1:],
                        self.labels,
                        engine=self.engine,
                        timeout=timeout,
                        commit=index + 1 < len(steps),
                        env=environment,
                        entrypoint=argv[0],
                        user=user,
                        host=host,
                    )
                    results.append(_exec_result(result))
                    if made:
                        committed.append(made)
                        image = made
        finally:
            for made in reversed(committed):
                remove_image(self.engine, made)
        return results

    # --- filesystem ------------------------------------------------------------------------

    def _filesystem(self) -> ExportedFilesystem:
        found = self.cache.filesystems.get(self._key)
        if found is None:
            with self.watch.guard():
                tar_path = self.filesystems.tar(
                    self.reference, self.image_id, self.platform, self.engine
                )
            found = self.cache.filesystems[self._key] = ExportedFilesystem(tar_path)
        return found

    def file(self, path: str) -> FileInfo | None:
        return self._filesystem().file(path)

    def list_dir(self, path: str) -> Sequence[str] | None:
        return self._filesystem().list_dir(path)

    # --- config ----------------------------------------------------------------------------

    def config(self) -> Mapping[str, Any]:
        found = self.cache.configs.get(self._key)
        if found is None:
            from docker.errors import DockerException
            from requests.exceptions import RequestException

            try:
                with self.watch.guard():
                    inspected = self.engine.client.images.get(self.reference).attrs
            except (DockerException, RequestException, OSError) as exc:
                raise ImageAccessError(
                    f"could not inspect {self.reference} ({self.platform.name}): {exc}"
                ) from None
            data = inspected.get("Config") if isinstance(inspected, dict) else None
            found = self.cache.configs[self._key] = data if isinstance(data, dict) else {}
        return found


def _exec_result(result: RunResult) -> ExecResult:
    """A one-shot run as a check sees it: a program that could not be started (docker run's
    126 or 127) has the runtime's own words on stderr, as container-structure-test shows them."""
    if result.exit_code in START_FAILURE_CODES and result.stderr.startswith(_DAEMON_PREFIX):
        first = result.stderr.splitlines()[0]
        problem = _start_problem(first.removeprefix(_DAEMON_PREFIX))
        return ExecResult(result.exit_code, result.stdout_bytes, problem.encode())
    return ExecResult(result.exit_code, result.stdout_bytes, result.stderr_bytes)


def container_environment(options: ContainerRunOptions, env: Mapping[str, str]) -> dict[str, str]:
    """The variables a step's container gets beyond the image's, as ``docker run`` would set
    them from the options: ``envFile`` first, then ``envVars`` (names whose value is this
    process's, left out when it has none), then ``env`` (the check's own, which win)."""
    merged: dict[str, str] = {}
    if options.env_file:
        merged.update(read_env_file(options.env_file))
    for name in options.env_vars:
        if name in os.environ:
            merged[name] = os.environ[name]
    merged.update(env)
    return merged


def read_env_file(path: str) -> dict[str, str]:
    """``docker run --env-file``'s format: ``NAME=value`` lines (the value taken as written),
    ``NAME`` alone for this process's value (left out when it has none), ``#`` comments."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageAccessError(
            f"cannot read the envFile {path!r} of containerRunOptions: {exc}"
        ) from None
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name = name.lstrip()
        if not name or any(char.isspace() for char in name):
            raise ImageAccessError(
                f"invalid variable {name!r} at line {number} of the envFile {path!r}: a name "
                "has no white space (write NAME=value)"
            )
        if equals:
            found[name] = value
        elif name in os.environ:
            found[name] = os.environ[name]
    return found


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
