"""Platform names: parsing what users type into the platforms we know how to run."""

from __future__ import annotations

import platform as _stdlib_platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from pytest_multiarch.core.errors import PlatformError


@dataclass(frozen=True)
class Platform:
    """One OCI platform as the harness builds and runs it.

    ``emulated`` is true when this host runs it through QEMU rather than natively.
    ``timeout_factor`` is what the run multiplies native time limits by on this platform
    (``--emulation-timeout-factor`` when emulated, else 1); it is not part of a platform's
    identity, so it takes no part in equality or hashing.
    ``engine`` is the engine that builds and runs it in this run, as the user named it (a
    Docker context or an endpoint; "" is the default engine); not part of its identity either,
    and ``emulated`` is then measured on that engine (pytest_multiarch.engine.endpoints).
    """

    os: str
    arch: str
    variant: str
    short: str
    uname: str
    byteorder: str
    debian_arch: str
    qemu_name: str
    emulated: bool = False
    timeout_factor: float = field(default=1.0, compare=False)
    engine: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        """The OCI name, as ``--platform`` takes it: ``linux/arm/v7``."""
        return oci_name(self.os, self.arch, self.variant)

    def machine_problem(self, machine: str, what: str) -> str:
        """Why ``what``, which reported ``machine`` (``uname -m``), did not run this platform;
        "" when it did."""
        machine = machine.strip()
        if machine == self.uname:
            return ""
        natively = " (natively, without QEMU)" if machine == native_machine() else ""
        return (
            f"{what} reports machine {machine!r} from `uname -m`, but {self.name} answers "
            f"{self.uname!r}: the wrong architecture ran{natively}"
        )

    def scaled(self, seconds: float) -> float:
        """A time limit tuned natively, as it applies here: ``seconds * timeout_factor``. Pass it
        on to what runs in the container (a test runner's ``--timeout``, a socket timeout)."""
        return seconds * self.timeout_factor

    def __str__(self) -> str:
        return self.name


# The platforms the harness knows how to build, emulate and check. Order is the order of "all".
KNOWN_PLATFORMS: tuple[Platform, ...] = (
    Platform("linux", "amd64", "", "amd64", "x86_64", "little", "amd64", "x86_64"),
    Platform("linux", "arm64", "", "arm64", "aarch64", "little", "arm64", "aarch64"),
    Platform("linux", "arm", "v7", "arm-v7", "armv7l", "little", "armhf", "arm"),
    Platform("linux", "s390x", "", "s390x", "s390x", "big", "s390x", "s390x"),
    Platform("linux", "ppc64le", "", "ppc64le", "ppc64le", "little", "ppc64el", "ppc64le"),
    Platform("linux", "riscv64", "", "riscv64", "riscv64", "little", "riscv64", "riscv64"),
)

_ALIASES: dict[str, str] = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "arm64/v8": "arm64",
    "armv8": "arm64",
    "armhf": "arm/v7",
    "armv7": "arm/v7",
    "armv7l": "arm/v7",
    "arm": "arm/v7",
    "arm-v7": "arm/v7",
    "ppc64el": "ppc64le",
}


def oci_name(os_name: str, arch: str, variant: str = "") -> str:
    """``linux/arm/v7`` from its parts, as image configs and manifest lists record them."""
    return "/".join(part for part in (os_name, arch, variant) if part)


def _by_key() -> dict[str, Platform]:
    table: dict[str, Platform] = {}
    for known in KNOWN_PLATFORMS:
        key = known.name.removeprefix("linux/")
        table[key] = known
    for alias, target in _ALIASES.items():
        table[alias] = table[target]
    return table


def valid_names_text() -> str:
    names = ", ".join(p.name.removeprefix("linux/") for p in KNOWN_PLATFORMS)
    aliases = ", ".join(_ALIASES)
    return f"{names}, native, all (aliases: {aliases}; a 'linux/' prefix is optional)"


def native_machine() -> str:
    """What ``uname -m`` says on this host."""
    return _stdlib_platform.machine()


def native_platform(machine: str | None = None) -> Platform:
    machine = machine or native_machine()
    for known in KNOWN_PLATFORMS:
        if known.uname == machine:
            return known
    raise PlatformError(
        f"this host's machine type {machine!r} is not one pytest-multiarch knows; "
        f"known: {', '.join(p.uname for p in KNOWN_PLATFORMS)}"
    )


def lookup(name: str) -> Platform:
    """The known platform called ``name`` (OCI name, short name or alias), without host info."""
    key = name.strip().lower()
    key = key.removeprefix("linux/")
    found = _by_key().get(key)
    if found is None:
        raise PlatformError(f"unknown platform {name!r}")
    return found


def parse_platforms(
    spec: str | Iterable[str],
    *,
    source: str,
    native: Platform | None = None,
    can_run: Callable[[Platform], bool] | None = None,
) -> list[Platform]:
    """Turn ``"amd64,linux/arm64,armhf"`` (or a list of such strings) into platforms.

    ``native`` names the host platform (detected when omitted); ``can_run`` decides which
    foreign platforms ``all`` expands to (every known one when omitted). Duplicates are dropped,
    order is kept. Errors name the bad value and ``source`` (where it came from).
    """
    host = native or native_platform()
    items = [spec] if isinstance(spec, str) else list(spec)
    names = [part.strip() for item in items for part in item.split(",")]
    if not any(names):
        raise PlatformError(f"no platform given in {source}: valid names are {valid_names_text()}")
    chosen: list[Platform] = []
    for raw in names:
        if not raw:
            raise PlatformError(
                f"empty platform name in {', '.join(items)!r} from {source}: "
                f"separate names with single commas; valid names are {valid_names_text()}"
            )
        lowered = raw.lower()
        if lowered == "native":
            expanded = [host]
        elif lowered == "all":
            expanded = [
                p for p in KNOWN_PLATFORMS if p.name == host.name or can_run is None or can_run(p)
            ]
        else:
            os_name = lowered.split("/", 1)[0] if "/" in lowered else "linux"
            if os_name != "linux" and lowered.split("/", 1)[0] not in _by_key():
                raise PlatformError(
                    f"Invalid platform {raw!r} from {source}: only linux platforms can be "
                    f"emulated here; valid names are {valid_names_text()}"
                )
            try:
                expanded = [lookup(raw)]
            except PlatformError:
                raise PlatformError(
                    f"Invalid platform {raw!r} from {source}: valid names are {valid_names_text()}"
                ) from None
        for found in expanded:
            marked = replace(found, emulated=found.name != host.name)
            if marked not in chosen:
                chosen.append(marked)
    return chosen


def with_host(found: Platform, native: Platform | None = None) -> Platform:
    """``found`` with ``emulated`` set for this host."""
    host = native or native_platform()
    return replace(found, emulated=found.name != host.name)
