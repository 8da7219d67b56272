"""``multiarch host up --podman`` and ``host down --podman``: Podman beside Docker on this machine.

Podman from the distribution (Debian 12: 4.3.1) with what it needs on a machine of this kind,
each an idempotent :class:`Step`:

- ``default_ulimits = []`` in ``containers.conf``: Podman's default ``nofile`` limit (1048576)
  is above the hard limit of sandboxes and CI containers, and every container then fails to
  start (``error setting rlimits``); without the default, containers take the service's own.
- a ``registries.conf.d`` entry that mirrors docker.io to the local registry (when it runs),
  as Docker's ``registry-mirrors`` does, so base images resolve offline.
- Podman's Docker-compatible API service as root at ``unix:///run/podman/podman.sock``,
  started in the background (no systemd here) with a pid file, stopped by ``host down``.

The QEMU handlers are the same binfmt_misc ones Docker uses (flag F), set up by ``host up``.
"""

from __future__ import annotations

import os
import re
import signal
import tomllib
from collections.abc import Iterator
from pathlib import Path

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.errors import EngineUnavailable, MultiarchError
from pytest_multiarch.core.paths import LOG_DIR, STATE_DIR
from pytest_multiarch.engine.docker import engine_info
from pytest_multiarch.engine.endpoints import EngineRef
from pytest_multiarch.engine.podman import DEFAULT_SOCKET, MINIMUM_VERSION, too_old
from pytest_multiarch.provision.daemons import (
    live_pid,
    registry_answers,
    socket_accepts,
    start_background,
    wait_for,
)
from pytest_multiarch.provision.host import APT_ENV, APT_UPDATE, missing_packages, shown
from pytest_multiarch.provision.steps import Applied, Fact, Step, StepState, write_file_command

CONTAINERS_CONF = Path(
    os.environ.get("MULTIARCH_CONTAINERS_CONF", "/etc/containers/containers.conf")
)
REGISTRIES_D = Path(os.environ.get("MULTIARCH_REGISTRIES_D", "/etc/containers/registries.conf.d"))
MIRROR_CONF = "50-pytest-multiarch-mirror.conf"
SERVICE_PIDFILE = STATE_DIR / "podman-service.pid"
SERVICE_LOG = LOG_DIR / "podman-service.log"
# Podman's own packages with their recommends (conmon, the CNI plugins, slirp4netns, uidmap):
# without them, containers have no network.
PACKAGES = ("podman",)


def socket_path(url: str = DEFAULT_SOCKET) -> Path:
    return Path(url.removeprefix("unix://"))


def service_command(url: str = DEFAULT_SOCKET) -> list[str]:
    return ["podman", "system", "service", "--time=0", url]


def _answering_podman(url: str) -> str:
    """Podman's version when ``url`` answers as Podman; "" otherwise."""
    if not socket_accepts(socket_path(url)):
        return ""
    try:
        info = engine_info(timeout=10, engine=EngineRef(url))
    except EngineUnavailable:
        return ""
    return info.version if info.kind == "podman" else ""


class PodmanPackagesStep(Step):
    name = "podman"

    def check(self) -> StepState:
        missing = missing_packages(PACKAGES)
        if not missing:
            version = run_command(["podman", "--version"], timeout=30, check=False).stdout
            found = version.strip().rsplit(" ", 1)[-1]
            if too_old(found):
                wanted = ".".join(str(part) for part in MINIMUM_VERSION)
                raise MultiarchError(
                    f"podman {found} is installed, but builds for a platform need Podman >= "
                    f"{wanted}; install a newer Podman (Debian 12 ships 4.3.1), then run again"
                )
            return StepState(f"installed ({version.strip()})")
        install = ("apt-get", "install", "-y", "-q", *missing)
        return StepState(
            "",
            f"not installed: {' '.join(missing)}",
            (shown(APT_UPDATE), shown(install, APT_ENV)),
            tuple(missing),
        )

    def apply(self, state: StepState) -> Applied:
        run_command(APT_UPDATE, timeout=600, hint="the Debian mirror must answer")
        run_command(
            ("apt-get", "install", "-y", "-q", *state.items),
            timeout=1200,
            env=APT_ENV,
            hint="run `apt-get update` and try again",
        )
        return Applied(f"installed {' '.join(state.items)}")


def ulimits_text(current: str) -> str:
    """``current`` (containers.conf) with ``default_ulimits = []`` under ``[containers]``: an
    existing ``default_ulimits`` line there is replaced, every other line kept."""
    lines = current.splitlines()
    section = ""
    for number, line in enumerate(lines):
        header = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1).strip()
        elif section == "containers" and re.match(r"^\s*default_ulimits\s*=", line):
            lines[number] = "default_ulimits = []"
            return "\n".join(lines) + "\n"
    for number, line in enumerate(lines):
        if re.match(r"^\s*\[containers\]\s*$", line):
            lines.insert(number + 1, "default_ulimits = []")
            return "\n".join(lines) + "\n"
    prefix = "\n".join(lines) + "\n\n" if lines else ""
    return f"{prefix}[containers]\ndefault_ulimits = []\n"


def ulimits_cleared(text: str) -> bool:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    containers = data.get("containers")
    return isinstance(containers, dict) and containers.get("default_ulimits") == []


class UlimitsStep(Step):
    name = "podman ulimits"

    def __init__(self, path: Path = CONTAINERS_CONF) -> None:
        self.path = path

    def check(self) -> StepState:
        current = self.path.read_text() if self.path.exists() else ""
        if ulimits_cleared(current):
            return StepState(f"{self.path}: default_ulimits = []")
        if current.strip():
            try:
                tomllib.loads(current)
            except tomllib.TOMLDecodeError as exc:
                raise MultiarchError(
                    f"{self.path} is not valid TOML ({exc}); fix or remove it, then run again"
                ) from None
        return StepState(
            "",
            f"{self.path}: Podman's default nofile limit (1048576) is above this machine's hard "
            "limit, so its containers would not start",
            (write_file_command(self.path, ulimits_text(current)),),
        )

    def apply(self, state: StepState) -> Applied:
        current = self.path.read_text() if self.path.exists() else ""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(ulimits_text(current))
        return Applied(f"{self.path}: default_ulimits = [] under [containers]")


def mirror_text(registry: str) -> str:
    return (
        "# Written by `multiarch host up --podman`: base images from the local mirror.\n"
        '[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n\n'
        f'[[registry.mirror]]\nlocation = "{registry}"\ninsecure = true\n'
    )


class MirrorStep(Step):
    name = "podman mirror"

    def __init__(self, registry: str, directory: Path = REGISTRIES_D) -> None:
        self.registry = registry
        self.path = directory / MIRROR_CONF

    def check(self) -> StepState:
        wanted = mirror_text(self.registry)
        if self.path.exists() and self.path.read_text() == wanted:
            return StepState(f"{self.path}: docker.io mirrored by {self.registry}")
        return StepState(
            "",
            f"{self.path}: Podman does not use the local mirror {self.registry}",
            (write_file_command(self.path, wanted),),
        )

    def apply(self, state: StepState) -> Applied:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(mirror_text(self.registry))
        return Applied(f"{self.path}: docker.io mirrored by {self.registry}")


class ServiceStep(Step):
    name = "podman service"

    def __init__(self, url: str = DEFAULT_SOCKET, pidfile: Path = SERVICE_PIDFILE) -> None:
        self.url = url
        self.pidfile = pidfile

    def check(self) -> StepState:
        version = _answering_podman(self.url)
        if version:
            return StepState(f"Podman {version} answers at {self.url}")
        return StepState(
            "",
            f"no Podman API service answers at {self.url}",
            (f"{shown(service_command(self.url))} >>{SERVICE_LOG} 2>&1 &",),
        )

    def apply(self, state: StepState) -> Applied:
        path = socket_path(self.url)
        if path.exists() and not socket_accepts(path):
            path.unlink()  # left by a service that was killed: podman would not bind it
        path.parent.mkdir(parents=True, exist_ok=True)
        pid = start_background(service_command(self.url), SERVICE_LOG)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.write_text(f"{pid}\n")
        version = ""

        def answers() -> bool:
            nonlocal version
            version = _answering_podman(self.url)
            return bool(version)

        if not wait_for(answers, 30):
            raise MultiarchError(
                f"Podman's API service did not answer at {self.url} within 30 s; see {SERVICE_LOG}"
            )
        return Applied(f"Podman {version} answers at {self.url} (pid {pid})")


class ServiceDownStep(Step):
    name = "podman service"

    def __init__(self, url: str = DEFAULT_SOCKET, pidfile: Path = SERVICE_PIDFILE) -> None:
        self.url = url
        self.pidfile = pidfile

    def check(self) -> StepState:
        pid = live_pid(self.pidfile, "podman")
        if pid is None:
            if _answering_podman(self.url):
                return StepState(
                    f"a Podman service answers at {self.url}, but `host up --podman` did not "
                    f"start it (no live pid in {self.pidfile}): left running"
                )
            return StepState("not running")
        return StepState("", f"running (pid {pid})", (f"kill {pid}",), (str(pid),))

    def apply(self, state: StepState) -> Applied:
        pid = int(state.items[0])
        os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: live_pid(self.pidfile, "podman") is None, 30):
            raise MultiarchError(f"Podman's API service (pid {pid}) did not stop within 30 s")
        self.pidfile.unlink(missing_ok=True)
        return Applied(f"stopped (pid {pid})")


def up_steps(registry: str) -> Iterator[Step]:
    """The steps of ``host up --podman`` (after the machine's own ``host up`` steps)."""
    yield PodmanPackagesStep()
    yield UlimitsStep()
    if registry_answers(registry):
        yield MirrorStep(registry)
    else:
        yield Fact("podman mirror", f"no local registry answers on {registry}: none to mirror")
    yield ServiceStep()


def down_steps() -> Iterator[Step]:
    yield ServiceDownStep()
