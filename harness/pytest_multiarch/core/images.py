"""Images under ``images/``: discovery and ``image.toml`` validation."""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pytest_multiarch.core.errors import ConfigError, PlatformError
from pytest_multiarch.core.platforms import Platform, lookup
from pytest_multiarch.core.secrets import BuildSecret
from pytest_multiarch.core.stack_graph import ALIAS, find_cycle

IMAGE_TOML = "image.toml"
# An image's container-structure-test file, next to its Dockerfile (image.toml may list more).
STRUCTURE_TESTS_FILE = "structure-tests.yaml"
# Docker's grammar for one path component of an image name (also checked when publishing).
NAME_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
# The image config fields the variants check compares (pytest_multiarch.runtime.variants).
VARIANT_CONFIG_FIELDS = (
    "Env",
    "Entrypoint",
    "Cmd",
    "User",
    "WorkingDir",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
)
# What ``variants = { ignore = [...] }`` entries may name besides absolute path globs.
VARIANT_IGNORE_KINDS = ("env", "label", "package", "config")


WaitKind = Literal["log", "http", "port", "none"]


@dataclass(frozen=True)
class WaitSpec:
    """How to tell that a started container is ready. ``timeout`` is in native seconds."""

    log: str = ""
    http: str = ""
    port: int = 0
    timeout: float = 30.0

    @property
    def kind(self) -> WaitKind:
        if self.log:
            return "log"
        if self.http:
            return "http"
        if self.port:
            return "port"
        return "none"


ServicePlatform = Literal["native", "same"]


@dataclass(frozen=True)
class ServiceSpec:
    """One ``[services.<alias>]`` of an image: another image under ``images/`` (``image``) or a
    reference (``ref``) started beside it, answering to ``alias`` on the test's network, on the
    engine's own architecture (``native``) or the platform under test (``same``). ``env`` is
    merged over the service image's own; ``command`` replaces its own when given."""

    alias: str
    image: str = ""
    ref: str = ""
    platform: ServicePlatform = "native"
    env: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageSpec:
    """One image to build (or, with ``ref``, to take as it is) and test."""

    name: str
    directory: Path
    platforms: tuple[Platform, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    command: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    wait: WaitSpec = WaitSpec()
    ref: str = ""
    repository: str = ""
    secrets: tuple[BuildSecret, ...] = ()
    # Globs of paths allowed to hold binaries of another architecture (cross toolchains).
    foreign_binaries: tuple[str, ...] = ()
    structure_tests: tuple[Path, ...] = ()
    # The variants check (compares the platforms' variants): on unless ``variants = false``;
    # what ``variants = { ignore = [...] }`` allows to differ.
    variants: bool = True
    variants_ignore: tuple[str, ...] = ()
    services: tuple[ServiceSpec, ...] = ()

    @property
    def dockerfile(self) -> Path:
        return self.directory / "Dockerfile"

    def allows(self, platform: Platform) -> bool:
        return not self.platforms or any(p.name == platform.name for p in self.platforms)

    def structure_test_files(self) -> tuple[Path, ...]:
        """Its container-structure-test files: ``structure-tests.yaml`` next to the Dockerfile
        when present, then those image.toml lists (whether or not they exist)."""
        default = self.directory / STRUCTURE_TESTS_FILE
        return (default, *self.structure_tests) if default.is_file() else self.structure_tests


_KNOWN_KEYS = {
    "platforms",
    "build-args",
    "target",
    "command",
    "ports",
    "env",
    "wait",
    "ref",
    "repository",
    "secrets",
    "foreign-binaries",
    "structure-tests",
    "variants",
    "services",
}
_SERVICE_KEYS = {"image", "ref", "platform", "env", "command"}
_SECRET_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WAIT_KEYS = {"log", "http", "port", "timeout"}


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to a mistyped ``word``, or ""."""
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fail(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: key {key!r}: {message}")


def _str_list(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, key, f"expected a list of strings, got {value!r}")
    return tuple(value)


def _str_table(path: Path, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(path, key, f"expected a table of strings, got {value!r}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise _fail(path, f"{key}.{k}", f"expected a string, got {v!r}")
        out[str(k)] = str(v)
    return out


def _port(path: Path, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise _fail(path, key, f"expected a port number 1-65535, got {value!r}")
    return value


def _secrets(path: Path, value: Any) -> tuple[BuildSecret, ...]:
    if not isinstance(value, dict):
        raise _fail(
            path,
            "secrets",
            f'expected a table like {{ token = {{ env = "TOKEN" }} }}, got {value!r}',
        )
    found = []
    for secret_id, source in value.items():
        key = f"secrets.{secret_id}"
        if not _SECRET_ID.match(secret_id):
            raise _fail(path, key, "a secret id uses letters, digits, '_', '.' and '-' only")
        if not isinstance(source, dict) or set(source) != {"env"}:
            raise _fail(path, key, f'expected {{ env = "VARIABLE" }}, got {source!r}')
        env = source["env"]
        if not isinstance(env, str) or not _ENV_NAME.match(env):
            raise _fail(path, f"{key}.env", f"expected an environment variable name, got {env!r}")
        found.append(BuildSecret(secret_id, env))
    return tuple(found)


def _globs(path: Path, value: Any) -> tuple[str, ...]:
    globs = _str_list(path, "foreign-binaries", value)
    for glob in globs:
        if not glob.startswith("/"):
            raise _fail(path, "foreign-binaries", f"expected absolute path globs, got {glob!r}")
    return globs


def _variants(path: Path, value: Any) -> tuple[bool, tuple[str, ...]]:
    """``variants = false``, ``true`` or ``{ ignore = [...] }``: (on, ignore entries)."""
    if isinstance(value, bool):
        return value, ()
    example = '{ ignore = ["/opt/plugins/**", "env:MODE"] }'
    if not isinstance(value, dict):
        raise _fail(
            path, "variants", f"expected false, true or a table like {example}, got {value!r}"
        )
    unknown = sorted(set(value) - {"ignore"})
    if unknown:
        raise _fail(
            path,
            f"variants.{unknown[0]}",
            f"unknown key{did_you_mean(unknown[0], ['ignore'])}; the known key is ignore",
        )
    entries = _str_list(path, "variants.ignore", value.get("ignore", []))
    for entry in entries:
        if entry.startswith("/"):
            continue
        kind, sep, name = entry.partition(":")
        if not sep or kind not in VARIANT_IGNORE_KINDS:
            raise _fail(
                path,
                "variants.ignore",
                f"cannot ignore {entry!r}{did_you_mean(kind, VARIANT_IGNORE_KINDS) if sep else ''}:"
                " expected an absolute path glob ('/opt/plugins/**') or one of "
                + ", ".join(f"'{k}:NAME'" for k in VARIANT_IGNORE_KINDS),
            )
        if not name:
            raise _fail(path, "variants.ignore", f"{entry!r} names nothing after {kind + ':'!r}")
        fields = [f for f in VARIANT_CONFIG_FIELDS if f != "Env"]
        if kind == "config" and name not in fields:
            raise _fail(
                path,
                "variants.ignore",
                f"{entry!r}: no config field {name!r}{did_you_mean(name, fields)}; the fields are "
                f"{', '.join(fields)} (an Env variable is 'env:NAME')",
            )
    return True, entries


def _services(path: Path, value: Any) -> tuple[ServiceSpec, ...]:
    if not isinstance(value, dict):
        raise _fail(
            path, "services", f'expected tables like [services.db] image = "db", got {value!r}'
        )
    found = []
    for alias, table in value.items():
        key = f"services.{alias}"
        if not ALIAS.match(alias):
            raise _fail(
                path,
                key,
                "an alias is a host name on the test's network: lowercase letters, digits and "
                "'-', at most 63, not beginning or ending with '-'",
            )
        if not isinstance(table, dict):
            raise _fail(path, key, f'expected a table like {{ image = "db" }}, got {table!r}')
        unknown = sorted(set(table) - _SERVICE_KEYS)
        if unknown:
            raise _fail(
                path,
                f"{key}.{unknown[0]}",
                f"unknown key{did_you_mean(unknown[0], _SERVICE_KEYS)}; known are "
                f"{', '.join(sorted(_SERVICE_KEYS))}",
            )
        image, ref = table.get("image", ""), table.get("ref", "")
        for sub, text in (("image", image), ("ref", ref)):
            if not isinstance(text, str):
                raise _fail(path, f"{key}.{sub}", f"expected a string, got {text!r}")
        if bool(image) == bool(ref):
            raise _fail(
                path,
                key,
                "set one of 'image' (an image under images/) or 'ref' (an image reference)",
            )
        platform = table.get("platform", "native")
        if platform not in ("native", "same"):
            raise _fail(
                path,
                f"{key}.platform",
                f"expected 'native' (the engine's own architecture) or 'same' (the platform "
                f"under test), got {platform!r}{did_you_mean(str(platform), ('native', 'same'))}",
            )
        command = table.get("command", [])
        if isinstance(command, str):
            raise _fail(path, f"{key}.command", "expected a list of strings (exec form)")
        found.append(
            ServiceSpec(
                alias,
                image,
                ref,
                platform,
                _str_table(path, f"{key}.env", table.get("env", {})),
                _str_list(path, f"{key}.command", command),
            )
        )
    return tuple(found)


def parse_image_toml(name: str, directory: Path, data: Mapping[str, Any], path: Path) -> ImageSpec:
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise _fail(
            path,
            unknown[0],
            f"unknown key{did_you_mean(unknown[0], _KNOWN_KEYS)}; known keys are "
            f"{', '.join(sorted(_KNOWN_KEYS))}",
        )
    platforms: list[Platform] = []
    for raw in _str_list(path, "platforms", data.get("platforms", [])):
        try:
            platforms.append(lookup(raw))
        except PlatformError:
            raise _fail(path, "platforms", f"unknown platform {raw!r}") from None
    ports = data.get("ports", [])
    if not isinstance(ports, list):
        raise _fail(path, "ports", f"expected a list of port numbers, got {ports!r}")
    command = data.get("command", [])
    if isinstance(command, str):
        raise _fail(path, "command", "expected a list of strings (exec form), got a string")
    wait_data = data.get("wait", {})
    if not isinstance(wait_data, dict):
        raise _fail(path, "wait", f"expected a table, got {wait_data!r}")
    wait_unknown = sorted(set(wait_data) - _WAIT_KEYS)
    if wait_unknown:
        raise _fail(
            path,
            f"wait.{wait_unknown[0]}",
            f"unknown key{did_you_mean(wait_unknown[0], _WAIT_KEYS)}; known are "
            f"{', '.join(sorted(_WAIT_KEYS))}",
        )
    wait_log = wait_data.get("log", "")
    wait_http = wait_data.get("http", "")
    for key, value in (("wait.log", wait_log), ("wait.http", wait_http)):
        if not isinstance(value, str):
            raise _fail(path, key, f"expected a string, got {value!r}")
    if wait_log:
        try:
            re.compile(wait_log)
        except re.error as exc:
            raise _fail(
                path, "wait.log", f"invalid regular expression {wait_log!r}: {exc}"
            ) from None
    if wait_http and not wait_http.startswith("/"):
        raise _fail(path, "wait.http", f"expected a path starting with '/', got {wait_http!r}")
    if wait_log and wait_http:
        raise _fail(path, "wait", "set one of 'log' or 'http' (with 'port'), not both")
    wait_port = _port(path, "wait.port", wait_data["port"]) if "port" in wait_data else 0
    if wait_http and not wait_port:
        raise _fail(path, "wait.http", "needs 'port' (the container port to ask)")
    timeout = wait_data.get("timeout", 30)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise _fail(path, "wait.timeout", f"expected a positive number of seconds, got {timeout!r}")
    port_list = tuple(_port(path, "ports", p) for p in ports)
    if wait_port and wait_port not in port_list:
        port_list = (*port_list, wait_port)
    ref = data.get("ref", "")
    target = data.get("target", "")
    repository = data.get("repository", "")
    for key, value in (("ref", ref), ("target", target), ("repository", repository)):
        if not isinstance(value, str):
            raise _fail(path, key, f"expected a string, got {value!r}")
    variants, variants_ignore = _variants(path, data.get("variants", True))
    return ImageSpec(
        secrets=_secrets(path, data.get("secrets", {})),
        foreign_binaries=_globs(path, data.get("foreign-binaries", [])),
        variants=variants,
        variants_ignore=variants_ignore,
        structure_tests=tuple(
            directory / rel
            for rel in _str_list(path, "structure-tests", data.get("structure-tests", []))
        ),
        name=name,
        directory=directory,
        platforms=tuple(platforms),
        build_args=_str_table(path, "build-args", data.get("build-args", {})),
        target=target,
        command=_str_list(path, "command", command),
        ports=port_list,
        env=_str_table(path, "env", data.get("env", {})),
        wait=WaitSpec(wait_log, wait_http, wait_port, float(timeout)),
        ref=ref,
        repository=repository,
        services=_services(path, data.get("services", {})),
    )


def load_image(directory: Path) -> ImageSpec:
    name = directory.name
    if not NAME_COMPONENT.match(name):
        raise ConfigError(
            f"{directory}: image directory name {name!r} is not valid in an image name: use "
            "lowercase letters and digits, joined by single '.', single or double '_', or '-'"
        )
    path = directory / IMAGE_TOML
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    spec = parse_image_toml(name, directory, data, path)
    if not spec.ref and not spec.dockerfile.exists():
        raise ConfigError(
            f"{directory}: no Dockerfile (and no 'ref' in {IMAGE_TOML}); add one or remove the "
            "directory"
        )
    return spec


def discover_images(root: Path) -> dict[str, ImageSpec]:
    """Every image directory under ``root``: one holding a Dockerfile or an image.toml.
    Raises ConfigError for the first image that is not valid."""
    found, broken = survey_images(root)
    if broken:
        raise ConfigError(next(iter(broken.values())))
    return found


def survey_images(root: Path) -> tuple[dict[str, ImageSpec], dict[str, str]]:
    """Every image directory under ``root``, as (valid images, why each other one is not: by
    directory name). One image's bad ``image.toml`` is that image's problem, not every one's."""
    found: dict[str, ImageSpec] = {}
    broken: dict[str, str] = {}
    if not root.is_dir():
        return found, broken
    for child in sorted(root.iterdir()):
        if child.is_dir() and ((child / "Dockerfile").exists() or (child / IMAGE_TOML).exists()):
            try:
                found[child.name] = load_image(child)
            except ConfigError as exc:
                broken[child.name] = str(exc)
    _check_services(root, found, broken)
    return found, broken


def _check_services(root: Path, found: dict[str, ImageSpec], broken: dict[str, str]) -> None:
    """Moves to ``broken`` every image whose services name no valid image, form a cycle, or
    depend on an image that is broken itself."""
    changed = True
    while changed:
        changed = False
        for name, spec in list(found.items()):
            for service in spec.services:
                image = service.image
                if not image or image in found:
                    continue
                where = f"{spec.directory / IMAGE_TOML}: key 'services.{service.alias}.image'"
                if image in broken:
                    why = f"image {image!r} is not valid: {broken[image]}"
                else:
                    known = ", ".join(sorted(found)) or "none"
                    why = (
                        f"no image {image!r} under {root}{did_you_mean(image, found)} "
                        f"(found: {known}); name a directory under {root}, or use 'ref'"
                    )
                broken[name] = f"{where}: {why}"
                del found[name]
                changed = True
                break
        edges = {n: [s.image for s in spec.services if s.image] for n, spec in found.items()}
        cycle = find_cycle(edges)
        if cycle:
            for name in cycle[:-1]:
                broken[name] = (
                    f"{found[name].directory / IMAGE_TOML}: key 'services': services form a "
                    f"cycle: {' -> '.join(cycle)}; a service cannot depend on itself"
                )
                del found[name]
            changed = True
