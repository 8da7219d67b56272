"""Evaluating one structure-test check against one image variant.

The image is reached through ``ImageAccess`` (commands, filesystem, config), so the rules here
are pure and testable with a fake. They follow container-structure-test's docker driver:

- ``$VAR`` / ``${VAR}`` in ``command``, ``args`` and a file-existence ``path`` are expanded by the
  tool itself (Go's ``os.Expand``) from the image's environment, before anything runs; unknown
  variables become empty. ``setup``/``teardown`` commands are not expanded.
- ``globalEnvVars`` values are expanded against the image's environment, then a check's
  ``envVars`` against that (each list against the environment before it, not against itself);
  a check's variables override global ones, which override the image's.
- Setup commands run before the command on the same container filesystem; their exit codes do
  not decide the check (the tool ignores them) but are reported when the check fails.
  Teardown commands run after it and are not judged either.
- Regexes match anywhere (Go's ``MatchString``); ``exitCode`` is always checked (default 0).
- File checks see the filesystem like ``lstat``: a symlink is itself for existence checks and
  followed for content checks.
"""

from __future__ import annotations

import json
import posixpath
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.structure.config import (
    Check,
    CommandCheck,
    ContainerRunOptions,
    FileContentCheck,
    FileExistenceCheck,
    KeyValue,
    LicenseCheck,
    MetadataCheck,
    StructureFile,
)
from pytest_multiarch.structure.re2 import Regex

DEBIAN_DOC_ROOT = "/usr/share/doc"
# container-structure-test's license check: packages it passes regardless, and words that fail
# a copyright file (compared in upper case).
LICENSE_EXEMPT_PACKAGES = ("libgnutls30",)
LICENSE_FORBIDDEN_WORDS = ("AGPL", "WTFPL")
_MAX_SYMLINKS = 40  # Linux's limit before ELOOP
_SHOWN_CHARS = 2000


class ImageAccessError(MultiarchError):
    """The image could not be reached the way a check needs (raised by ImageAccess)."""


@dataclass(frozen=True)
class ExecResult:
    """How one command ended inside the container."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


def _no_content() -> bytes:
    return b""


@dataclass(frozen=True)
class FileInfo:
    """One filesystem entry of the image, as ``lstat`` sees it.

    ``mode`` is ``st_mode``: file type bits (``stat.S_IFMT``) plus permission, setuid, setgid
    and sticky bits. A hard link is reported as the regular file it is. ``read`` returns the
    contents of a regular file (called only when a check needs them).
    """

    path: str
    mode: int
    uid: int = 0
    gid: int = 0
    size: int = 0
    link_target: str = ""
    read: Callable[[], bytes] = field(default=_no_content, compare=False, repr=False)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)


class ImageAccess(Protocol):
    """One image variant (one platform) as the checks need it."""

    def run_steps(
        self,
        steps: Sequence[Sequence[str]],
        *,
        env: Mapping[str, str],
        options: ContainerRunOptions,
        timeout: float,
    ) -> Sequence[ExecResult]:
        """Run each argv in order, in one fresh container of the image, and say how each ended.

        Each step sees the filesystem changes of the steps before it (the tool commits a new
        image after each setup command). The image's entrypoint is replaced (the format's rule:
        commands run as given); ``env`` is set on top of the image's environment; ``options``
        are the file's ``containerRunOptions``. ``timeout`` is in seconds, for each step. One
        result per step; raise ``ImageAccessError`` when the container cannot be run at all.
        """
        ...

    def file(self, path: str) -> FileInfo | None:
        """The entry at absolute ``path``, or None when there is none. Symlinks in the leading
        components are resolved, the last component is not (``lstat``)."""
        ...

    def list_dir(self, path: str) -> Sequence[str] | None:
        """Names in the directory at ``path`` (resolving symlinks), or None if not a directory."""
        ...

    def config(self) -> Mapping[str, Any]:
        """The image's config object (OCI ``config``, ``docker inspect``'s ``Config``): Env,
        Labels, Entrypoint, Cmd, WorkingDir, ExposedPorts, Volumes, User."""
        ...


@dataclass(frozen=True)
class CheckOutcome:
    """The verdict on one check: each failure says what was expected and what was found."""

    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures


def platform_applies(check: Check, platform: Platform) -> str | None:
    """Why ``check`` is skipped on ``platform`` (our ``platforms:``/``skipPlatforms:`` keys),
    or None when it runs there."""
    here = platform.name
    if check.platforms and here not in check.platforms:
        listed = ", ".join(_short(name) for name in check.platforms)
        return f"{check.id} runs only on {listed} (its 'platforms:' key), not on {_short(here)}"
    if here in check.skip_platforms:
        return f"{check.id} is skipped on {_short(here)} (its 'skipPlatforms:' key)"
    return None


def evaluate(
    structure: StructureFile, check: Check, access: ImageAccess, *, timeout: float
) -> CheckOutcome:
    """Run ``check`` (one of ``structure.checks``) against the image behind ``access``.

    ``timeout`` bounds each command a command check runs, in seconds (scale it for emulation).
    """
    if isinstance(check, CommandCheck):
        failures = _command(structure, check, access, timeout)
    elif isinstance(check, FileExistenceCheck):
        failures = _file_existence(structure, check, access)
    elif isinstance(check, FileContentCheck):
        failures = _file_content(check, access)
    elif isinstance(check, MetadataCheck):
        failures = _metadata(check, access.config())
    else:
        failures = _license(check, access)
    return CheckOutcome(tuple(failures))


# --- environment --------------------------------------------------------------------------


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Go's ``os.Expand``: ``$NAME``, ``${NAME}`` and ``$1``-style specials from ``env``.

    Unknown names become empty; a ``$`` not followed by a name is kept; bad ``${`` syntax is
    dropped. There is no escape for ``$`` (``$$`` is the special variable ``$``).
    """
    out: list[str] = []
    start = 0
    index = 0
    while index < len(text):
        if text[index] == "$" and index + 1 < len(text):
            out.append(text[start:index])
            name, width = _shell_name(text[index + 1 :])
            if name:
                out.append(env.get(name, ""))
            elif width == 0:
                out.append("$")
            index += width
            start = index + 1
        index += 1
    out.append(text[start:])
    return "".join(out)


_SHELL_SPECIAL = frozenset("*#$@!?-0123456789")


def _shell_name(rest: str) -> tuple[str, int]:
    if rest[0] == "{":
        if len(rest) > 2 and rest[1] in _SHELL_SPECIAL and rest[2] == "}":
            return rest[1], 3
        close = rest.find("}", 1)
        if close == 1:
            return "", 2
        if close < 0:
            return "", 1
        return rest[1:close], close + 1
    if rest[0] in _SHELL_SPECIAL:
        return rest[0], 1
    width = 0
    while width < len(rest) and (
        rest[width] == "_" or (rest[width].isascii() and rest[width].isalnum())
    ):
        width += 1
    return rest[:width], width


def image_env(config: Mapping[str, Any]) -> dict[str, str]:
    """The image's ``Env`` list as a mapping (later entries win, as in Docker)."""
    env: dict[str, str] = {}
    for entry in config.get("Env") or ():
        name, _, value = str(entry).partition("=")
        env[name] = value
    return env


def _set_vars(variables: Sequence[KeyValue], env: Mapping[str, str]) -> dict[str, str]:
    return {var.key: expand_vars(var.value, env) for var in variables}


def command_env(
    structure: StructureFile, check: CommandCheck, base: Mapping[str, str]
) -> dict[str, str]:
    """The variables a command check sets on top of the image environment ``base``."""
    global_vars = _set_vars(structure.global_env_vars, base)
    check_vars = _set_vars(check.env_vars, {**base, **global_vars})
    return {**global_vars, **check_vars}


# --- command tests ------------------------------------------------------------------------


def _command(
    structure: StructureFile, check: CommandCheck, access: ImageAccess, timeout: float
) -> list[str]:
    base = image_env(access.config())
    overrides = command_env(structure, check, base)
    visible = {**base, **overrides}
    argv = [expand_vars(part, visible) for part in (check.command, *check.args)]
    steps = [*check.setup, argv, *check.teardown]
    results = access.run_steps(steps, env=overrides, options=structure.run_options, timeout=timeout)
    if len(results) != len(steps):
        raise ImageAccessError(
            f"{check.id}: ran {len(steps)} commands but got {len(results)} results back"
        )
    result = results[len(check.setup)]
    stdout = _text(result.stdout)
    stderr = _text(result.stderr)
    failures: list[str] = []
    if result.exit_code != check.exit_code:
        detail = f"; stderr: {_show(stderr)}" if stderr else ""
        if not stderr and stdout:
            detail = f"; stdout: {_show(stdout)}"
        failures.append(f"expected exit code {check.exit_code}, got {result.exit_code}{detail}")
    streams = (
        ("output (stdout)", stdout, check.expected_output, check.excluded_output),
        ("error output (stderr)", stderr, check.expected_error, check.excluded_error),
    )
    for label, text, expected, excluded in streams:
        failures += _expected_regexes(label, text, expected)
        failures += _excluded_regexes(label, text, excluded)
    if failures:
        failures += _setup_notes(check, results)
    return failures


def _expected_regexes(label: str, text: str, regexes: Sequence[Regex]) -> list[str]:
    return [
        f"expected {label} to match regex '{regex}' but it was: {_show(text)}"
        + _end_of_text_hint(regex, text)
        for regex in regexes
        if regex.search(text) is None
    ]


def _end_of_text_hint(regex: Regex, text: str) -> str:
    """The format's most common surprise: RE2's ``$`` matches only at the very end of the text,
    after a command's trailing newline, unlike Python's or grep's."""
    if text.endswith("\n") and regex.search(text.rstrip("\n")) is not None:
        return (
            " (it matches without the trailing newline: '$' matches only at the very end of "
            "the text; write '\\n$', or '(?m)' to make '$' match at each line's end)"
        )
    return ""


def _excluded_regexes(label: str, text: str, regexes: Sequence[Regex]) -> list[str]:
    failures = []
    for regex in regexes:
        match = regex.search(text)
        if match is not None:
            failures.append(
                f"expected {label} not to match regex '{regex}' but it matched "
                f"{_show(match.group())} in: {_show(text)}"
            )
    return failures


def _setup_notes(check: CommandCheck, results: Sequence[ExecResult]) -> list[str]:
    notes = []
    for number, (argv, result) in enumerate(zip(check.setup, results, strict=False), start=1):
        if result.exit_code != 0:
            stderr = _text(result.stderr)
            tail = f": {_show(stderr)}" if stderr else ""
            notes.append(
                f"note: setup command {number} {list(argv)} exited {result.exit_code}{tail}"
            )
    return notes


# --- file tests ---------------------------------------------------------------------------


def _absolute(path: str) -> str:
    # The tool hands paths to Docker's archive API, which takes them relative to "/".
    return posixpath.normpath(posixpath.join("/", path))


def _kind(info: FileInfo) -> str:
    kinds = {
        stat.S_IFDIR: "a directory",
        stat.S_IFLNK: f"a symlink to {info.link_target}",
        stat.S_IFREG: "a regular file",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFIFO: "a named pipe",
        stat.S_IFSOCK: "a socket",
    }
    return kinds.get(stat.S_IFMT(info.mode), "a special file")


def go_mode_string(mode: int) -> str:
    """``st_mode`` as Go's ``os.FileMode.String()`` prints it (the tool compares this):
    type and setuid/setgid/sticky as leading letters, e.g. ``drwxr-xr-x``, ``urwxr-xr-x``."""
    kind = stat.S_IFMT(mode)
    flags = [
        ("d", kind == stat.S_IFDIR),
        ("L", kind == stat.S_IFLNK),
        ("D", kind in (stat.S_IFBLK, stat.S_IFCHR)),
        ("p", kind == stat.S_IFIFO),
        ("S", kind == stat.S_IFSOCK),
        ("u", bool(mode & stat.S_ISUID)),
        ("g", bool(mode & stat.S_ISGID)),
        ("c", kind == stat.S_IFCHR),
        ("t", bool(mode & stat.S_ISVTX)),
    ]
    letters = "".join(letter for letter, present in flags if present) or "-"
    permissions = "".join(
        char if mode & (1 << (8 - index)) else "-" for index, char in enumerate("rwxrwxrwx")
    )
    return letters + permissions


_EXECUTABLE_BITS = {"owner": 0o100, "group": 0o010, "other": 0o001, "any": 0o111}


def _file_existence(
    structure: StructureFile, check: FileExistenceCheck, access: ImageAccess
) -> list[str]:
    config = access.config()
    base = image_env(config)
    env = {**base, **_set_vars(structure.global_env_vars, base)}
    path = _absolute(expand_vars(check.path, env))
    shown = path if path == check.path else f"{path} (from {check.path!r})"
    info = access.file(path)
    if info is None:
        return [f"{shown}: expected to exist, but it does not"] if check.should_exist else []
    if not check.should_exist:
        return [f"{shown}: expected not to exist, but it does ({_kind(info)})"]
    failures = []
    found = go_mode_string(info.mode)
    if check.permissions and found != check.permissions:
        ls_form = stat.filemode(info.mode)
        aside = f" (ls -l shows {ls_form})" if ls_form != found else ""
        failures.append(f"{shown}: expected permissions {check.permissions}, found {found}{aside}")
    if check.is_executable_by and not info.mode & _EXECUTABLE_BITS[check.is_executable_by]:
        failures.append(
            f"{shown}: expected to be executable by {check.is_executable_by}, "
            f"found permissions {found}"
        )
    if check.uid is not None and info.uid != check.uid:
        failures.append(f"{shown}: expected owner uid {check.uid}, found {info.uid}")
    if check.gid is not None and info.gid != check.gid:
        failures.append(f"{shown}: expected group gid {check.gid}, found {info.gid}")
    return failures


def read_file(access: ImageAccess, path: str) -> tuple[bytes | None, str]:
    """The contents of the file at ``path``, following symlinks; or None and why not."""
    current = _absolute(path)
    for _ in range(_MAX_SYMLINKS):
        info = access.file(current)
        if info is None:
            if current == _absolute(path):
                return None, "it does not exist"
            return None, f"it leads (through symlinks) to {current}, which does not exist"
        if info.is_symlink:
            current = posixpath.normpath(
                posixpath.join(posixpath.dirname(current), info.link_target)
            )
            continue
        if info.is_dir:
            return None, "it is a directory, not a file"
        return info.read(), ""
    return None, "too many levels of symbolic links"


def _file_content(check: FileContentCheck, access: ImageAccess) -> list[str]:
    data, problem = read_file(access, check.path)
    if data is None:
        return [f"{check.path}: cannot read the file: {problem}"]
    text = _text(data)
    label = f"{check.path}: contents"
    failures = [
        f"{label} expected to match regex '{regex}' but they were: {_show(text)}"
        + _end_of_text_hint(regex, text)
        for regex in check.expected_contents
        if regex.search(text) is None
    ]
    for regex in check.excluded_contents:
        match = regex.search(text)
        if match is not None:
            failures.append(
                f"{label} expected not to match regex '{regex}' but it matched "
                f"{_show(match.group())} in: {_show(text)}"
            )
    return failures


# --- metadata -----------------------------------------------------------------------------


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(key): str(item) for key, item in value.items()}


def _string_list(value: Any) -> list[str]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    return [str(item) for item in value]


def _normalized_port(port: str) -> str:
    # OCI: a port without a protocol means TCP.
    return port if "/" in port else f"{port}/tcp"


def _port_matches(expected: str, exposed: Sequence[str]) -> list[str]:
    # The tool compares the port number only ("8080" matches 8080/udp too); with a protocol
    # given ("8080/tcp", our extension) the protocol must match as well.
    wanted = expected.lower()
    if "/" in wanted:
        return [port for port in exposed if port == wanted]
    return [port for port in exposed if port.split("/", 1)[0] == wanted]


def _expect_pairs(kind: str, expected: Sequence[KeyValue], found: Mapping[str, str]) -> list[str]:
    failures = []
    for pair in expected:
        if pair.key not in found:
            failures.append(f"{kind} {pair.key}: expected it to be set, but the image has none")
            continue
        actual = found[pair.key]
        if pair.regex is not None:
            if pair.regex.search(actual) is None:
                failures.append(
                    f"{kind} {pair.key}: expected a value matching regex '{pair.regex}', "
                    f"found {actual!r}"
                )
        elif actual != pair.value:
            failures.append(f"{kind} {pair.key}: expected {pair.value!r}, found {actual!r}")
    return failures


def _metadata(check: MetadataCheck, config: Mapping[str, Any]) -> list[str]:
    env = image_env(config)
    failures = _expect_pairs("env var", check.env_vars, env)
    failures += [
        f"env var {name}: expected it not to be set, found {env[name]!r}"
        for name in check.unbound_env_vars
        if name in env
    ]
    failures += _expect_pairs("label", check.labels, _string_map(config.get("Labels")))
    for key, expected in (("Entrypoint", check.entrypoint), ("Cmd", check.cmd)):
        actual = _string_list(config.get(key))
        if expected is not None and actual != list(expected):
            failures.append(
                f"expected {key} {json.dumps(list(expected))}, found {json.dumps(actual)}"
            )
    for key, expected_text in (("WorkingDir", check.workdir), ("User", check.user)):
        actual_text = str(config.get(key) or "")
        if expected_text and actual_text != expected_text:
            failures.append(f"expected {key} {expected_text!r}, found {actual_text!r}")
    exposed = sorted(
        _normalized_port(port.lower()) for port in _string_map(config.get("ExposedPorts"))
    )
    exposed_text = ", ".join(exposed) or "none"
    for port in check.exposed_ports:
        if not _port_matches(port, exposed):
            failures.append(f"expected port {port} to be exposed; exposed ports: {exposed_text}")
    for port in check.unexposed_ports:
        matched = _port_matches(port, exposed)
        if matched:
            failures.append(
                f"expected port {port} not to be exposed, "
                f"but the image exposes {', '.join(matched)}"
            )
    volumes = sorted(_string_map(config.get("Volumes")))
    for volume in check.volumes:
        if volume not in volumes:
            failures.append(
                f"expected volume {volume}; the image's volumes: {', '.join(volumes) or 'none'}"
            )
    failures += [
        f"expected no volume {volume}, but the image declares it"
        for volume in check.unmounted_volumes
        if volume in volumes
    ]
    return failures


# --- licenses -----------------------------------------------------------------------------


def _license_file_problems(access: ImageAccess, path: str) -> list[str]:
    data, problem = read_file(access, path)
    if data is None:
        return [f"{path}: cannot read the license file: {problem}"]
    upper = _text(data).upper()
    return [
        f"{path}: mentions {word}, a license container-structure-test's license check rejects"
        for word in LICENSE_FORBIDDEN_WORDS
        if word in upper
    ]


def _license(check: LicenseCheck, access: ImageAccess) -> list[str]:
    failures: list[str] = []
    if check.debian:
        names = access.list_dir(DEBIAN_DOC_ROOT)
        if names is None:
            failures.append(
                f"{DEBIAN_DOC_ROOT}: expected a directory of Debian copyright files, "
                "but there is none (is the image Debian-based?)"
            )
        for name in sorted(names or ()):
            directory = posixpath.join(DEBIAN_DOC_ROOT, name)
            info = access.file(directory)
            # Like the tool: only real directories count (symlinked ones are skipped).
            if info is None or not info.is_dir or name in LICENSE_EXEMPT_PACKAGES:
                continue
            failures += _license_file_problems(access, posixpath.join(directory, "copyright"))
    for path in check.files:
        failures += _license_file_problems(access, path)
    return failures


# --- output -------------------------------------------------------------------------------


def _text(data: bytes) -> str:
    # Go's regexp reads invalid UTF-8 as U+FFFD, as this decoding does.
    return data.decode("utf-8", errors="replace")


def _show(text: str) -> str:
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text) - _SHOWN_CHARS} more characters)"


def _short(name: str) -> str:
    return name.removeprefix("linux/")
