"""Reading a container-structure-test file (schemaVersion 2.0.0) into typed, validated checks.

Key names, defaults and required keys follow the tool's own v2 types (pkg/types/v2) and its
strict YAML decoding: an unknown or duplicated key is an error, as it is there. Two keys are
ours: ``platforms:`` and ``skipPlatforms:`` on any check limit it to, or exclude it from, some
platforms. Errors name the file, the check and the key, and never come as a traceback.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml

from pytest_multiarch.core.errors import MultiarchError, PlatformError
from pytest_multiarch.core.platforms import KNOWN_PLATFORMS, lookup
from pytest_multiarch.structure.re2 import Regex, RegexSyntaxError, compile_re2

SCHEMA_VERSION = "2.0.0"
EXECUTABLE_BY = ("owner", "group", "other", "any")
ExecutableBy = Literal["owner", "group", "other", "any"]

_EXTENSION_KEYS = ("platforms", "skipPlatforms")
_COMMAND_KEYS = (
    "name",
    "setup",
    "teardown",
    "envVars",
    "exitCode",
    "command",
    "args",
    "expectedOutput",
    "excludedOutput",
    "expectedError",
    "excludedError",
    *_EXTENSION_KEYS,
)
_FILE_EXISTENCE_KEYS = (
    "name",
    "path",
    "shouldExist",
    "permissions",
    "uid",
    "gid",
    "isExecutableBy",
    *_EXTENSION_KEYS,
)
_FILE_CONTENT_KEYS = ("name", "path", "expectedContents", "excludedContents", *_EXTENSION_KEYS)
_METADATA_KEYS = (
    "envVars",
    "unboundEnvVars",
    "exposedPorts",
    "unexposedPorts",
    "entrypoint",
    "cmd",
    "workdir",
    "volumes",
    "unmountedVolumes",
    "labels",
    "user",
    *_EXTENSION_KEYS,
)
_LICENSE_KEYS = ("debian", "files", *_EXTENSION_KEYS)
_ENV_VAR_KEYS = ("key", "value", "isRegex")
_RUN_OPTION_KEYS = (
    "user",
    "privileged",
    "allocateTty",
    "envFile",
    "envVars",
    "capabilities",
    "bindMounts",
)
_TOP_LEVEL_KEYS = (
    "schemaVersion",
    "globalEnvVars",
    "commandTests",
    "fileExistenceTests",
    "fileContentTests",
    "metadataTest",
    "licenseTests",
    "containerRunOptions",
)
# Go's os.FileMode.String(): type letters in this order (or "-" for none), then rwx triplets.
_MODE_TYPE_LETTERS = "dalTLDpSugct?"
_MODE_PERMISSIONS = re.compile(r"([r-][w-][x-]){3}")
_PORT = re.compile(r"^([0-9]+)(?:/(tcp|udp|sctp))?$")
# yaml.v2 decodes these scalar types into a string field with their text; PyYAML has already
# turned them into numbers, which str() gives back unchanged for plain decimal integers.
_STRINGLIKE = (str, int)
_T = TypeVar("_T")


class StructureConfigError(MultiarchError):
    """A structure-test file that cannot be used: names the file, the check and the key."""

    def __init__(self, source: str, problem: str, *, check: str = "", key: str = "") -> None:
        self.source = source
        self.check = check
        self.key = key
        self.problem = problem
        parts = [source] + ([check] if check else []) + ([f"key {key!r}"] if key else [])
        super().__init__(": ".join([*parts, problem]))


@dataclass(frozen=True)
class KeyValue:
    """One ``{key, value, isRegex}`` entry (env vars, labels). ``regex`` is set with isRegex."""

    key: str
    value: str = ""
    is_regex: bool = False
    regex: Regex | None = None


@dataclass(frozen=True)
class ContainerRunOptions:
    """``containerRunOptions``: how the tool's docker driver starts containers for commands."""

    user: str = ""
    privileged: bool = False
    allocate_tty: bool = False
    env_file: str = ""
    env_vars: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    bind_mounts: tuple[str, ...] = ()

    @property
    def is_set(self) -> bool:
        return self != ContainerRunOptions()


@dataclass(frozen=True, kw_only=True)
class _Check:
    """What every check has: its place in the file and our platform extension keys."""

    KIND: ClassVar[str] = ""
    SECTION: ClassVar[str] = ""

    name: str
    index: int = 0
    # Canonical OCI names ("linux/arm64"); empty means every platform.
    platforms: tuple[str, ...] = ()
    skip_platforms: tuple[str, ...] = ()
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", f"{self.KIND}[{self.name}]")


@dataclass(frozen=True, kw_only=True)
class CommandCheck(_Check):
    """One of ``commandTests``: run a command, check its exit code and output."""

    KIND: ClassVar[str] = "command"
    SECTION: ClassVar[str] = "commandTests"

    command: str
    args: tuple[str, ...] = ()
    env_vars: tuple[KeyValue, ...] = ()
    setup: tuple[tuple[str, ...], ...] = ()
    teardown: tuple[tuple[str, ...], ...] = ()
    exit_code: int = 0
    expected_output: tuple[Regex, ...] = ()
    excluded_output: tuple[Regex, ...] = ()
    expected_error: tuple[Regex, ...] = ()
    excluded_error: tuple[Regex, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FileExistenceCheck(_Check):
    """One of ``fileExistenceTests``. ``uid``/``gid``/``is_executable_by`` None: not checked."""

    KIND: ClassVar[str] = "file-existence"
    SECTION: ClassVar[str] = "fileExistenceTests"

    path: str
    should_exist: bool = True
    permissions: str = ""
    uid: int | None = None
    gid: int | None = None
    is_executable_by: ExecutableBy | None = None


@dataclass(frozen=True, kw_only=True)
class FileContentCheck(_Check):
    """One of ``fileContentTests``: regexes the file's contents must (not) match."""

    KIND: ClassVar[str] = "file-content"
    SECTION: ClassVar[str] = "fileContentTests"

    path: str
    expected_contents: tuple[Regex, ...] = ()
    excluded_contents: tuple[Regex, ...] = ()


@dataclass(frozen=True, kw_only=True)
class MetadataCheck(_Check):
    """The ``metadataTest``. ``entrypoint``/``cmd`` None, ``workdir``/``user`` "": not checked."""

    KIND: ClassVar[str] = "metadata"
    SECTION: ClassVar[str] = "metadataTest"

    name: str = "metadata"
    id: str = "metadata"
    env_vars: tuple[KeyValue, ...] = ()
    unbound_env_vars: tuple[str, ...] = ()
    labels: tuple[KeyValue, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    workdir: str = ""
    exposed_ports: tuple[str, ...] = ()
    unexposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    unmounted_volumes: tuple[str, ...] = ()
    user: str = ""


@dataclass(frozen=True, kw_only=True)
class LicenseCheck(_Check):
    """One of ``licenseTests`` (which have no name: ``name`` is the index)."""

    KIND: ClassVar[str] = "license"
    SECTION: ClassVar[str] = "licenseTests"

    debian: bool = False
    files: tuple[str, ...] = ()


Check = CommandCheck | FileExistenceCheck | FileContentCheck | MetadataCheck | LicenseCheck


@dataclass(frozen=True)
class StructureFile:
    """One parsed file. ``checks`` come in the tool's run order: commands, file content,
    file existence, licenses, metadata."""

    path: Path
    schema_version: str
    global_env_vars: tuple[KeyValue, ...] = ()
    checks: tuple[Check, ...] = ()
    run_options: ContainerRunOptions = field(default_factory=ContainerRunOptions)


def load_structure_file(path: Path, *, display: str | None = None) -> StructureFile:
    """Read and validate ``path``; errors name it as ``display`` (default: the path)."""
    source = display or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StructureConfigError(source, f"cannot read the file: {exc.strerror}") from None
    return parse_structure_file(data, path, display=source)


def parse_structure_file(
    data: str | bytes, path: Path, *, display: str | None = None
) -> StructureFile:
    """Validate the YAML (or JSON) text ``data`` of the file at ``path``."""
    source = display or str(path)
    document = _load_yaml(data, source)
    if document is None:
        raise StructureConfigError(
            source, f"the file is empty; expected a mapping with schemaVersion: {SCHEMA_VERSION!r}"
        )
    top = _Place(source, "")
    mapping = top.mapping(document, "", "a mapping of schemaVersion, commandTests, ...")
    top.known_keys(mapping, _TOP_LEVEL_KEYS)
    version = mapping.get("schemaVersion")
    if version is None:
        raise top.error(
            "schemaVersion", f"missing required key; write schemaVersion: {SCHEMA_VERSION!r}"
        )
    if str(version) != SCHEMA_VERSION:
        raise top.error(
            "schemaVersion",
            f"unsupported schema version {version!r}: only {SCHEMA_VERSION!r} files are read "
            "(container-structure-test's current schema)",
        )
    checks: list[Check] = []
    checks += _section(top, mapping, "commandTests", _command)
    checks += _section(top, mapping, "fileContentTests", _file_content)
    checks += _section(top, mapping, "fileExistenceTests", _file_existence)
    checks += _section(top, mapping, "licenseTests", _license, named=False)
    metadata = _metadata(top, mapping.get("metadataTest"))
    if metadata is not None:
        checks.append(metadata)
    return StructureFile(
        path=path,
        schema_version=SCHEMA_VERSION,
        global_env_vars=_env_vars(top, mapping.get("globalEnvVars"), "globalEnvVars"),
        checks=tuple(_unique_ids(checks)),
        run_options=_run_options(top, mapping.get("containerRunOptions")),
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys as the tool's strict decoding does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(data: str | bytes, source: str) -> Any:
    loader: _UniqueKeyLoader | None = None
    try:
        loader = _UniqueKeyLoader(data)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or "syntax error"
        context = f" ({exc.context})" if exc.context else ""
        raise StructureConfigError(where, f"invalid YAML: {problem}{context}") from None
    except yaml.reader.ReaderError as exc:
        raise StructureConfigError(
            source, f"invalid YAML: {exc.reason} (at character {exc.position})"
        ) from None
    except yaml.YAMLError as exc:
        raise StructureConfigError(source, f"invalid YAML: {' '.join(str(exc).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()


@dataclass(frozen=True)
class _Place:
    """Where in the file a value sits, to build errors: the file and the check."""

    source: str
    check: str

    def error(self, key: str, problem: str) -> StructureConfigError:
        return StructureConfigError(self.source, problem, check=self.check, key=key)

    def known_keys(
        self, mapping: Mapping[str, Any], known: Sequence[str], prefix: str = ""
    ) -> None:
        for key in mapping:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(
                    prefix + key, f"unknown key{hint}; known keys are {', '.join(known)}"
                )

    def mapping(self, value: Any, key: str, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected {what}, got {_describe(value)}")
        for name in value:
            if not isinstance(name, str):
                raise self.error(
                    f"{key}" if key else "", f"keys must be strings, got {_describe(name)}"
                )
        return value

    def string(self, value: Any, key: str, *, required: bool = False) -> str:
        if value is None:
            if required:
                raise self.error(key, "missing required key")
            return ""
        if isinstance(value, bool) or not isinstance(value, _STRINGLIKE):
            raise self.error(key, f"expected a string, got {_describe(value)}{_quote_hint(value)}")
        text = str(value)
        if required and not text:
            raise self.error(key, "must not be empty")
        return text

    def integer(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {_describe(value)}")
        return value

    def boolean(self, value: Any, key: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_describe(value)}")
        return value

    def items(self, value: Any, key: str, what: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list of {what}, got {_describe(value)}")
        return value

    def strings(self, value: Any, key: str, *, non_empty: bool = False) -> tuple[str, ...]:
        texts = []
        for index, item in enumerate(self.items(value, key, "strings")):
            text = self.string(item, f"{key}[{index}]")
            if non_empty and not text:
                raise self.error(f"{key}[{index}]", "must not be empty")
            texts.append(text)
        return tuple(texts)

    def regex(self, value: Any, key: str) -> Regex:
        source = self.string(value, key)
        try:
            return compile_re2(source)
        except RegexSyntaxError as exc:
            raise self.error(key, f"invalid regular expression '{source}': {exc}") from None

    def regexes(self, value: Any, key: str) -> tuple[Regex, ...]:
        if isinstance(value, str):
            raise self.error(
                key, f"expected a list of regular expressions, got a string; write [{value!r}]"
            )
        items = self.items(value, key, "regular expressions")
        return tuple(self.regex(item, f"{key}[{index}]") for index, item in enumerate(items))


def _describe(value: Any) -> str:
    kinds: list[tuple[type, str]] = [
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (list, "list"),
        (dict, "mapping"),
    ]
    if value is None:
        return "nothing (null)"
    for kind, name in kinds:
        if isinstance(value, kind):
            shown = repr(value)
            return f"{name} {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return type(value).__name__


def _quote_hint(value: Any) -> str:
    return "; put it in quotes" if isinstance(value, (bool, float)) else ""


def _section(
    top: _Place,
    mapping: Mapping[str, Any],
    section: str,
    parse: Callable[[_Place, dict[str, Any], int], _T],
    *,
    named: bool = True,
) -> list[_T]:
    entries = top.items(mapping.get(section), section, "checks")
    parsed = []
    for index, entry in enumerate(entries):
        place = _Place(top.source, f"{section}[{index}]")
        data = place.mapping(entry, "", "a mapping (one check)")
        name = data.get("name")
        if named and isinstance(name, str) and name:
            place = _Place(top.source, f'{section}[{index}] "{name}"')
        parsed.append(parse(place, data, index))
    return parsed


@dataclass(frozen=True)
class _Platforms:
    platforms: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()


def _platform_keys(place: _Place, data: Mapping[str, Any]) -> _Platforms:
    found: dict[str, tuple[str, ...]] = {}
    for key in _EXTENSION_KEYS:
        if key not in data:
            continue
        names = place.strings(data[key], key)
        if not names:
            raise place.error(key, "empty list; leave the key out to run on every platform")
        canonical = []
        for index, name in enumerate(names):
            try:
                canonical.append(lookup(name).name)
            except PlatformError:
                known = ", ".join(p.name.removeprefix("linux/") for p in KNOWN_PLATFORMS)
                raise place.error(
                    f"{key}[{index}]", f"unknown platform {name!r}; known platforms are {known}"
                ) from None
        found[key] = tuple(dict.fromkeys(canonical))
    return _Platforms(found.get("platforms", ()), found.get("skipPlatforms", ()))


def _env_vars(
    place: _Place, value: Any, key: str, *, require_value: bool = False, regex: bool = False
) -> tuple[KeyValue, ...]:
    entries = []
    for index, item in enumerate(place.items(value, key, "{key, value} mappings")):
        at = f"{key}[{index}]"
        data = place.mapping(item, at, "a mapping with 'key' and 'value'")
        place.known_keys(data, _ENV_VAR_KEYS, prefix=f"{at}.")
        name = place.string(data.get("key"), f"{at}.key", required=True)
        text = place.string(data.get("value"), f"{at}.value")
        if require_value and not text:
            # The tool rejects a command test whose env var has an empty value.
            raise place.error(f"{at}.value", "must not be empty in a command test's envVars")
        is_regex = place.boolean(data.get("isRegex"), f"{at}.isRegex", False)
        pattern = place.regex(text, f"{at}.value") if regex and is_regex else None
        entries.append(KeyValue(name, text, is_regex, pattern))
    return tuple(entries)


def _argv_list(place: _Place, value: Any, key: str) -> tuple[tuple[str, ...], ...]:
    commands = []
    for index, item in enumerate(place.items(value, key, "commands (each a list of strings)")):
        at = f"{key}[{index}]"
        if isinstance(item, str):
            raise place.error(
                at, f"expected a command as a list of strings, got a string; write [{item!r}]"
            )
        argv = place.strings(item, at)
        if not argv:
            raise place.error(at, "empty command; remove it or give the command to run")
        commands.append(argv)
    return tuple(commands)


def _command(place: _Place, data: dict[str, Any], index: int) -> CommandCheck:
    place.known_keys(data, _COMMAND_KEYS)
    name = place.string(data.get("name"), "name", required=True)
    command = data.get("command")
    if isinstance(command, list):
        raise place.error(
            "command",
            "expected a string, got a list; in schemaVersion 2.0.0 'command' is the program "
            "and its arguments go in 'args'",
        )
    exit_code = place.integer(data.get("exitCode", 0), "exitCode")
    if not 0 <= exit_code <= 255:
        raise place.error("exitCode", f"expected an exit code 0-255, got {exit_code}")
    targets = _platform_keys(place, data)
    return CommandCheck(
        name=name,
        index=index,
        command=place.string(command, "command", required=True),
        args=place.strings(data.get("args"), "args"),
        env_vars=_env_vars(place, data.get("envVars"), "envVars", require_value=True),
        setup=_argv_list(place, data.get("setup"), "setup"),
        teardown=_argv_list(place, data.get("teardown"), "teardown"),
        exit_code=exit_code,
        expected_output=place.regexes(data.get("expectedOutput"), "expectedOutput"),
        excluded_output=place.regexes(data.get("excludedOutput"), "excludedOutput"),
        expected_error=place.regexes(data.get("expectedError"), "expectedError"),
        excluded_error=place.regexes(data.get("excludedError"), "excludedError"),
        platforms=targets.platforms,
        skip_platforms=targets.skip,
    )


def _permissions(place: _Place, value: Any) -> str:
    text = place.string(value, "permissions")
    if not text or valid_mode_string(text):
        return text
    hint = ""
    if any(letter in text[1:] for letter in "sStT"):
        hint = (
            "; the tool compares Go's mode string, which writes setuid, setgid and sticky as "
            "leading letters u, g, t: 'urwxr-xr-x', not '-rwsr-xr-x'"
        )
    raise place.error(
        "permissions",
        f"expected a mode string like '-rw-r--r--' or 'drwxr-xr-x', got {text!r}{hint}",
    )


def valid_mode_string(text: str) -> bool:
    """Whether ``text`` is something Go's ``os.FileMode.String()`` can print."""
    letters, permissions = text[:-9], text[-9:]
    if not _MODE_PERMISSIONS.fullmatch(permissions) or not letters:
        return False
    if letters == "-":
        return True
    order = [_MODE_TYPE_LETTERS.find(letter) for letter in letters]
    return -1 not in order and order == sorted(set(order))


def _owner_id(place: _Place, data: Mapping[str, Any], key: str) -> int | None:
    if data.get(key) is None:
        return None
    number = place.integer(data[key], key)
    if number == -1:  # the tool's own "not checked" value
        return None
    if number < 0:
        raise place.error(key, f"expected a numeric id (0 or more), got {number}")
    return number


def _file_existence(place: _Place, data: dict[str, Any], index: int) -> FileExistenceCheck:
    place.known_keys(data, _FILE_EXISTENCE_KEYS)
    executable = data.get("isExecutableBy")
    if executable is not None and executable not in EXECUTABLE_BY:
        raise place.error(
            "isExecutableBy",
            f"expected one of {', '.join(EXECUTABLE_BY)}, got {_describe(executable)}",
        )
    targets = _platform_keys(place, data)
    return FileExistenceCheck(
        name=place.string(data.get("name"), "name", required=True),
        index=index,
        path=place.string(data.get("path"), "path", required=True),
        should_exist=place.boolean(data.get("shouldExist"), "shouldExist", True),
        permissions=_permissions(place, data.get("permissions")),
        uid=_owner_id(place, data, "uid"),
        gid=_owner_id(place, data, "gid"),
        is_executable_by=executable,
        platforms=targets.platforms,
        skip_platforms=targets.skip,
    )


def _file_content(place: _Place, data: dict[str, Any], index: int) -> FileContentCheck:
    place.known_keys(data, _FILE_CONTENT_KEYS)
    targets = _platform_keys(place, data)
    return FileContentCheck(
        name=place.string(data.get("name"), "name", required=True),
        index=index,
        path=place.string(data.get("path"), "path", required=True),
        expected_contents=place.regexes(data.get("expectedContents"), "expectedContents"),
        excluded_contents=place.regexes(data.get("excludedContents"), "excludedContents"),
        platforms=targets.platforms,
        skip_platforms=targets.skip,
    )


def _license(place: _Place, data: dict[str, Any], index: int) -> LicenseCheck:
    place.known_keys(data, _LICENSE_KEYS)
    targets = _platform_keys(place, data)
    return LicenseCheck(
        name=str(index),
        index=index,
        debian=place.boolean(data.get("debian"), "debian", False),
        files=place.strings(data.get("files"), "files", non_empty=True),
        platforms=targets.platforms,
        skip_platforms=targets.skip,
    )


def _ports(place: _Place, value: Any, key: str) -> tuple[str, ...]:
    ports = place.strings(value, key)
    for index, port in enumerate(ports):
        match = _PORT.match(port)
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise place.error(
                f"{key}[{index}]",
                f"expected a port like '8080' or '8080/tcp' (or /udp, /sctp), got {port!r}",
            )
    return ports


def _argv_or_none(place: _Place, value: Any, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise place.error(
            key, f"expected a list of strings (exec form), got a string; write [{value!r}]"
        )
    return place.strings(value, key)


def _metadata(top: _Place, value: Any) -> MetadataCheck | None:
    if value is None:
        return None
    place = _Place(top.source, "metadataTest")
    data = place.mapping(value, "", "a mapping (the single metadata check)")
    place.known_keys(data, _METADATA_KEYS)
    targets = _platform_keys(place, data)
    check = MetadataCheck(
        env_vars=_env_vars(place, data.get("envVars"), "envVars", regex=True),
        unbound_env_vars=tuple(
            entry.key for entry in _env_vars(place, data.get("unboundEnvVars"), "unboundEnvVars")
        ),
        labels=_env_vars(place, data.get("labels"), "labels", regex=True),
        entrypoint=_argv_or_none(place, data.get("entrypoint"), "entrypoint"),
        cmd=_argv_or_none(place, data.get("cmd"), "cmd"),
        workdir=place.string(data.get("workdir"), "workdir"),
        exposed_ports=_ports(place, data.get("exposedPorts"), "exposedPorts"),
        unexposed_ports=_ports(place, data.get("unexposedPorts"), "unexposedPorts"),
        volumes=place.strings(data.get("volumes"), "volumes", non_empty=True),
        unmounted_volumes=place.strings(data.get("unmountedVolumes"), "unmountedVolumes"),
        user=place.string(data.get("user"), "user"),
        platforms=targets.platforms,
        skip_platforms=targets.skip,
    )
    # The tool skips a metadataTest that checks nothing; so do we (no item).
    unchecked = MetadataCheck(platforms=check.platforms, skip_platforms=check.skip_platforms)
    return None if check == unchecked else check


def _run_options(top: _Place, value: Any) -> ContainerRunOptions:
    if value is None:
        return ContainerRunOptions()
    place = _Place(top.source, "containerRunOptions")
    data = place.mapping(value, "", "a mapping")
    place.known_keys(data, _RUN_OPTION_KEYS)
    return ContainerRunOptions(
        user=place.string(data.get("user"), "user"),
        privileged=place.boolean(data.get("privileged"), "privileged", False),
        allocate_tty=place.boolean(data.get("allocateTty"), "allocateTty", False),
        env_file=place.string(data.get("envFile"), "envFile"),
        env_vars=place.strings(data.get("envVars"), "envVars", non_empty=True),
        capabilities=place.strings(data.get("capabilities"), "capabilities", non_empty=True),
        bind_mounts=place.strings(data.get("bindMounts"), "bindMounts", non_empty=True),
    )


def _unique_ids(checks: list[Check]) -> list[Check]:
    """Give repeated names distinct ids (``command[x]``, ``command[x#2]``): the tool allows
    two checks of one kind with the same name, pytest needs distinct item names."""
    seen: dict[str, int] = {}
    unique: list[Check] = []
    for check in checks:
        count = seen.get(check.id, 0) + 1
        seen[check.id] = count
        if count > 1:
            suffixed = f"{check.KIND}[{check.name}#{count}]"
            while suffixed in seen:
                count += 1
                suffixed = f"{check.KIND}[{check.name}#{count}]"
            seen[suffixed] = 1
            check = replace(check, id=suffixed)
        unique.append(check)
    return unique
