"""``multiarch host engine up|down NAME``: a second, separate Docker engine on this machine.

It stands in for another machine's engine (a native arm64 box, a CI runner) and is the safe
place to kill or freeze an engine in fault tests. Everything is its own: a containerd (root,
state, grpc address; no CRI plugin) and a dockerd (socket, data root, exec root, pid file,
daemon.json) on its own bridge. Never ``--bridge none``: that makes the second dockerd delete
the shared ``docker0``, and every container of the default engine then fails.

Layout for NAME: runtime files (sockets, pid files, configs, exec root) in
``/run/pytest-multiarch/NAME/``, images and build cache in
``/var/lib/pytest-multiarch/engines/NAME/`` (kept by ``down`` unless ``--purge``), logs in
``/var/log/pytest-multiarch/engines/``; the bridge is ``ma-NAME`` on an unused /24.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.errors import CommandError, MultiarchError
from pytest_multiarch.core.paths import LOG_DIR, STATE_DIR
from pytest_multiarch.core.processes import alive, stat_fields
from pytest_multiarch.engine.docker import docker
from pytest_multiarch.provision.daemons import (
    live_pid,
    registry_answers,
    remove_stale_pidfile,
    socket_accepts,
    start_background,
    wait_for,
)
from pytest_multiarch.provision.steps import Applied, Fact, Step, StepState, write_file_command

RUN_DIR = Path(os.environ.get("MULTIARCH_ENGINES_RUN_DIR", "/run/pytest-multiarch"))
DATA_DIR = STATE_DIR / "engines"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,11}")
BRIDGE_PREFIX = "ma-"  # + a name of at most 12 characters: 15, the kernel's limit
# Private /24s for the bridges: outside Docker's default address pools (172.17-31/16 and
# 192.168/16), so neither engine hands out a network that overlaps another's bridge.
SUBNET_POOL = ipaddress.IPv4Network("10.199.0.0/16")


class EngineNameError(MultiarchError):
    """A second engine's name cannot be used for its bridge and paths."""


@dataclass(frozen=True)
class EngineLayout:
    """Where everything of the second engine NAME lives."""

    name: str

    @property
    def run_dir(self) -> Path:
        return RUN_DIR / self.name

    @property
    def data_dir(self) -> Path:
        return DATA_DIR / self.name

    @property
    def docker_socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        """The ``DOCKER_HOST`` value that reaches this engine."""
        return f"unix://{self.docker_socket}"

    @property
    def docker_pidfile(self) -> Path:
        return self.run_dir / "docker.pid"

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def daemon_json(self) -> Path:
        return self.run_dir / "daemon.json"

    @property
    def data_root(self) -> Path:
        return self.data_dir / "docker"

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.run_dir / "containerd.toml"

    @property
    def containerd_pidfile(self) -> Path:
        return self.run_dir / "containerd.pid"

    @property
    def containerd_root(self) -> Path:
        return self.data_dir / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.run_dir / "containerd"

    @property
    def bridge(self) -> str:
        return BRIDGE_PREFIX + self.name

    @property
    def dockerd_log(self) -> Path:
        return LOG_DIR / "engines" / f"{self.name}-dockerd.log"

    @property
    def containerd_log(self) -> Path:
        return LOG_DIR / "engines" / f"{self.name}-containerd.log"


def engine_layout(name: str) -> EngineLayout:
    if not NAME_PATTERN.fullmatch(name):
        raise EngineNameError(
            f"engine name {name!r} is not usable: use 1-12 characters, lower-case letters, "
            "digits and '-', starting with a letter (it names the bridge ma-NAME, at most "
            "15 characters)"
        )
    return EngineLayout(name)


def containerd_config(layout: EngineLayout) -> str:
    """A containerd of its own: root, state and sockets apart from the machine's containerd
    (whose shims are addressed by a hash of the socket path, so they never meet), and no CRI
    plugin (nothing here is Kubernetes, and it would claim the default CNI paths)."""

    def quoted(value: object) -> str:
        return json.dumps(str(value))  # a TOML basic string, for paths without control chars

    return (
        "version = 2\n"
        f"root = {quoted(layout.containerd_root)}\n"
        f"state = {quoted(layout.containerd_state)}\n"
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "\n[grpc]\n"
        f"  address = {quoted(layout.containerd_socket)}\n"
        "\n[ttrpc]\n"
        f"  address = {quoted(str(layout.containerd_socket) + '.ttrpc')}\n"
        "\n[debug]\n"
        '  address = ""\n'
        "\n[metrics]\n"
        '  address = ""\n'
    )


def containerd_command(layout: EngineLayout) -> list[str]:
    return ["containerd", "--config", str(layout.containerd_config)]


def daemon_settings(image_store: str, mirror: str | None) -> dict[str, object]:
    settings: dict[str, object] = {
        "features": {"containerd-snapshotter": image_store == "containerd"},
    }
    if mirror:
        settings["registry-mirrors"] = [mirror]
    return settings


def daemon_json_text(settings: dict[str, object]) -> str:
    return json.dumps(settings, indent=2) + "\n"


def dockerd_command(layout: EngineLayout) -> list[str]:
    return [
        "dockerd",
        "--config-file",
        str(layout.daemon_json),
        "--host",
        layout.docker_host,
        "--data-root",
        str(layout.data_root),
        "--exec-root",
        str(layout.exec_root),
        "--pidfile",
        str(layout.docker_pidfile),
        "--containerd",
        str(layout.containerd_socket),
        # Its own bridge, and no firewall rules: the default engine owns iptables. Never
        # `--bridge none`: that deletes the shared docker0.
        "--bridge",
        layout.bridge,
        "--iptables=false",
        "--ip6tables=false",
    ]


def shown(argv: Sequence[str]) -> str:
    return shlex.join(argv)


# ---- the bridge ------------------------------------------------------------------------------


def free_subnet(
    taken: Sequence[ipaddress.IPv4Network], pool: ipaddress.IPv4Network = SUBNET_POOL
) -> ipaddress.IPv4Network:
    """The first /24 of ``pool`` that overlaps none of ``taken``."""
    for candidate in pool.subnets(new_prefix=24):
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise MultiarchError(
        f"no free /24 left in {pool} for a second engine's bridge: every one overlaps a route "
        "or address of this machine; stop an engine (`multiarch host engine down NAME`)"
    )


def parse_ipv4_networks(text: str) -> list[ipaddress.IPv4Network]:
    """Every IPv4 network named in ``ip -o -4 addr`` or ``ip -4 route`` output."""
    found: list[ipaddress.IPv4Network] = []
    for token in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b", text):
        try:
            network = ipaddress.IPv4Network(token, strict=False)
        except ValueError:
            continue
        if network.prefixlen > 0:  # a default route overlaps everything and takes nothing
            found.append(network)
    return found


def _ip(*args: str, check: bool = True) -> str:
    return run_command(["ip", *args], timeout=30, check=check).stdout


@dataclass(frozen=True)
class BridgeState:
    exists: bool
    up: bool
    address: str  # "10.199.0.1/24", or "" when it has none


def bridge_state(name: str) -> BridgeState:
    link = run_command(["ip", "-o", "link", "show", "dev", name], timeout=30, check=False)
    if not link.ok:
        return BridgeState(False, False, "")
    flags = re.search(r"<([^>]*)>", link.stdout)
    up = flags is not None and "UP" in flags.group(1).split(",")
    found = re.search(r"\binet (\S+)", _ip("-o", "-4", "addr", "show", "dev", name))
    return BridgeState(True, up, found.group(1) if found else "")


def _free_address() -> str:
    """The first address of a /24 no route or address of this machine overlaps."""
    taken = parse_ipv4_networks(
        _ip("-o", "-4", "addr", "show") + _ip("-4", "route", "show", "table", "all")
    )
    subnet = free_subnet(taken)
    return f"{subnet.network_address + 1}/{subnet.prefixlen}"


class BridgeStep(Step):
    def __init__(self, layout: EngineLayout) -> None:
        self.layout = layout
        self.name = f"{layout.name} bridge"

    def _address(self) -> str:
        return _free_address()

    def _commands(self, state: BridgeState) -> list[list[str]]:
        bridge = self.layout.bridge
        commands = []
        if not state.exists:
            commands.append(["ip", "link", "add", "name", bridge, "type", "bridge"])
        if not state.address:
            commands.append(["ip", "addr", "add", self._address(), "dev", bridge])
        if not state.up:
            commands.append(["ip", "link", "set", bridge, "up"])
        return commands

    def check(self) -> StepState:
        state = bridge_state(self.layout.bridge)
        if state.exists and state.up and state.address:
            return StepState(f"{self.layout.bridge} {state.address}")
        missing = (
            f"no bridge {self.layout.bridge}"
            if not state.exists
            else f"{self.layout.bridge} is {'up' if state.up else 'down'}, "
            f"{'address ' + state.address if state.address else 'without address'}"
        )
        return StepState("", missing, tuple(shown(c) for c in self._commands(state)))

    def apply(self, state: StepState) -> Applied:
        for command in self._commands(bridge_state(self.layout.bridge)):
            run_command(command, timeout=30)
        after = bridge_state(self.layout.bridge)
        return Applied(f"{self.layout.bridge} {after.address}")


# ---- outbound traffic ------------------------------------------------------------------------
# With --iptables=false the second dockerd adds no NAT, so its containers (and the RUN steps of
# its builds: `apt-get install`) could not leave the host. Three rules of our own, marked with
# a comment so that `down` finds and removes exactly them; docker0's rules are never touched.

Rule = tuple[str, str, tuple[str, ...]]  # table, chain, match and target


def nat_comment(layout: EngineLayout) -> str:
    return f"pytest-multiarch-engine-{layout.name}"


def nat_rules(layout: EngineLayout, subnet: str) -> list[Rule]:
    bridge = layout.bridge
    mark = ("-m", "comment", "--comment", nat_comment(layout))
    accept = (*mark, "-j", "ACCEPT")
    return [
        ("nat", "POSTROUTING", ("-s", subnet, "!", "-o", bridge, *mark, "-j", "MASQUERADE")),
        ("filter", "FORWARD", ("-i", bridge, "!", "-o", bridge, *accept)),
        (
            "filter",
            "FORWARD",
            ("-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *accept),
        ),
    ]


def iptables(operation: str, rule: Rule) -> list[str]:
    table, chain, spec = rule
    return ["iptables", "-t", table, operation, chain, *spec]


def _rule_present(rule: Rule) -> bool:
    try:
        return run_command(iptables("-C", rule), timeout=30, check=False).ok
    except CommandError:  # no iptables: nothing of ours can be there
        return False


IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class OutboundStep(Step):
    """NAT and forwarding for the bridge's subnet, so containers and builds reach the network
    as they do on the default engine."""

    def __init__(self, layout: EngineLayout) -> None:
        self.layout = layout
        self.name = f"{layout.name} outbound NAT"

    def _subnet(self) -> str:
        address = bridge_state(self.layout.bridge).address or _free_address()
        return str(ipaddress.IPv4Interface(address).network)

    def check(self) -> StepState:
        subnet = self._subnet()
        missing = [rule for rule in nat_rules(self.layout, subnet) if not _rule_present(rule)]
        forwarding = IP_FORWARD.read_text().strip() == "1"
        if not missing and forwarding:
            return StepState(f"{subnet} masqueraded")
        commands = [] if forwarding else [f"echo 1 > {IP_FORWARD}"]
        commands += [shown(iptables("-A", rule)) for rule in missing]
        return StepState("", f"{subnet} cannot reach beyond this host", tuple(commands))

    def apply(self, state: StepState) -> Applied:
        if IP_FORWARD.read_text().strip() != "1":
            IP_FORWARD.write_text("1")
        subnet = self._subnet()
        for rule in nat_rules(self.layout, subnet):
            if not _rule_present(rule):
                run_command(iptables("-A", rule), timeout=30)
        return Applied(f"{subnet} masqueraded")


def marked_rules(layout: EngineLayout) -> list[list[str]]:
    """The ``iptables -D`` commands of every rule carrying this engine's comment."""
    found = []
    for table, chain in (("nat", "POSTROUTING"), ("filter", "FORWARD")):
        try:
            listed = run_command(["iptables", "-t", table, "-S", chain], timeout=30, check=False)
        except CommandError:
            return []
        for line in listed.stdout.splitlines():
            words = shlex.split(line)
            if nat_comment(layout) in words and words[:2] == ["-A", chain]:
                found.append(["iptables", "-t", table, "-D", *words[1:]])
    return found


class RemoveOutboundStep(Step):
    def __init__(self, layout: EngineLayout) -> None:
        self.layout = layout
        self.name = f"{layout.name} outbound NAT"

    def check(self) -> StepState:
        commands = marked_rules(self.layout)
        if not commands:
            return StepState(f"no rule marked {nat_comment(self.layout)}")
        return StepState(
            "",
            f"{len(commands)} rule(s) marked {nat_comment(self.layout)}",
            tuple(map(shown, commands)),
        )

    def apply(self, state: StepState) -> Applied:
        commands = marked_rules(self.layout)
        for command in commands:
            run_command(command, timeout=30)
        return Applied(f"removed {len(commands)} rule(s)")


class RemoveBridgeStep(Step):
    def __init__(self, layout: EngineLayout) -> None:
        self.layout = layout
        self.name = f"{layout.name} bridge"
        self.command = ["ip", "link", "delete", layout.bridge, "type", "bridge"]

    def check(self) -> StepState:
        if not bridge_state(self.layout.bridge).exists:
            return StepState(f"no bridge {self.layout.bridge}")
        return StepState("", f"{self.layout.bridge} exists", (shown(self.command),))

    def apply(self, state: StepState) -> Applied:
        run_command(self.command, timeout=30)
        return Applied(f"deleted {self.layout.bridge}")


# ---- the daemons -----------------------------------------------------------------------------


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join(f"  {line}" for line in tail)


class ContainerdStep(Step):
    def __init__(self, layout: EngineLayout) -> None:
        self.layout = layout
        self.name = f"{layout.name} containerd"

    def _directories(self) -> list[Path]:
        return [self.layout.run_dir, self.layout.containerd_root, self.layout.containerd_state]

    def _running(self) -> int | None:
        pid = live_pid(self.layout.containerd_pidfile, "containerd")
        return pid if pid is not None and socket_accepts(self.layout.containerd_socket) else None

    def check(self) -> StepState:
        pid = self._running()
        if pid is not None:
            return StepState(f"running (pid {pid}) on {self.layout.containerd_socket}")
        return StepState(
            "",
            f"no containerd answers on {self.layout.containerd_socket}",
            (
                shown(["mkdir", "-p", *map(str, self._directories())]),
                write_file_command(self.layout.containerd_config, containerd_config(self.layout)),
                f"{shown(containerd_command(self.layout))} >>{self.layout.containerd_log} 2>&1 &",
            ),
        )

    def apply(self, state: StepState) -> Applied:
        layout = self.layout
        for directory in self._directories():
            directory.mkdir(parents=True, exist_ok=True)
        layout.containerd_config.write_text(containerd_config(layout))
        stale = live_pid(layout.containerd_pidfile, "containerd")
        if stale is not None:  # alive but not answering: a fresh one cannot share its root
            raise MultiarchError(
                f"containerd pid {stale} of engine {layout.name} runs but does not answer on "
                f"{layout.containerd_socket}; stop it (`multiarch host engine down "
                f"{layout.name}`) and run again"
            )
        pid = start_background(containerd_command(layout), layout.containerd_log)
        layout.containerd_pidfile.write_text(f"{pid}\n")
        if not wait_for(lambda: self._running() is not None, 30):
            raise MultiarchError(
                f"containerd of engine {layout.name} did not answer on "
                f"{layout.containerd_socket} within 30s; see {layout.containerd_log}:\n"
                f"{_log_tail(layout.containerd_log)}"
            )
        return Applied(f"started (pid {pid}) on {layout.containerd_socket}")


def _engine_version(docker_host: str) -> str | None:
    try:
        result = run_command(
            docker("-H", docker_host, "version", "--format", "{{.Server.Version}}"),
            timeout=15,
            check=False,
        )
    except CommandError:
        return None
    return result.stdout.strip() if result.ok else None


class DockerdStep(Step):
    def __init__(self, layout: EngineLayout, image_store: str, mirror: str | None) -> None:
        self.layout = layout
        self.name = f"{layout.name} dockerd"
        self.settings = daemon_settings(image_store, mirror)

    def _directories(self) -> list[Path]:
        return [self.layout.run_dir, self.layout.exec_root, self.layout.data_root]

    def check(self) -> StepState:
        pid = live_pid(self.layout.docker_pidfile, "dockerd")
        version = _engine_version(self.layout.docker_host) if pid is not None else None
        if pid is not None and version:
            return StepState(
                f"running {version} (pid {pid}): DOCKER_HOST={self.layout.docker_host}"
            )
        return StepState(
            "",
            f"no engine answers on {self.layout.docker_host}",
            (
                shown(["mkdir", "-p", *map(str, self._directories())]),
                write_file_command(self.layout.daemon_json, daemon_json_text(self.settings)),
                f"{shown(dockerd_command(self.layout))} >>{self.layout.dockerd_log} 2>&1 &",
            ),
        )

    def apply(self, state: StepState) -> Applied:
        layout = self.layout
        running = live_pid(layout.docker_pidfile, "dockerd")
        if running is not None:
            raise MultiarchError(
                f"dockerd pid {running} of engine {layout.name} runs but does not answer on "
                f"{layout.docker_host}; see {layout.dockerd_log}, or stop it "
                f"(`multiarch host engine down {layout.name}`) and run again"
            )
        for directory in self._directories():
            directory.mkdir(parents=True, exist_ok=True)
        layout.daemon_json.write_text(daemon_json_text(self.settings))
        remove_stale_pidfile(layout.docker_pidfile, "dockerd")
        pid = start_background(dockerd_command(layout), layout.dockerd_log)

        def answers() -> bool:
            return _engine_version(layout.docker_host) is not None

        if not wait_for(answers, 60, interval=1):
            raise MultiarchError(
                f"dockerd of engine {layout.name} (pid {pid}) did not answer on "
                f"{layout.docker_host} within 60s; see {layout.dockerd_log}:\n"
                f"{_log_tail(layout.dockerd_log)}"
            )
        return Applied(
            f"started {_engine_version(layout.docker_host)} (pid {pid}): "
            f"DOCKER_HOST={layout.docker_host}"
        )


class StopDaemonStep(Step):
    """SIGTERM to the daemon of ``pidfile``; SIGKILL when it has not exited in time."""

    def __init__(
        self, name: str, pidfile: Path, command_name: str, grace: float, leftovers: Sequence[Path]
    ) -> None:
        self.name = name
        self.pidfile = pidfile
        self.command_name = command_name
        self.grace = grace
        self.leftovers = list(leftovers)

    def check(self) -> StepState:
        pid = live_pid(self.pidfile, self.command_name)
        if pid is None:
            return StepState("not running")
        return StepState(
            "", f"running (pid {pid})", (f"kill -TERM {pid}  # -KILL after {self.grace:g}s",)
        )

    def apply(self, state: StepState) -> Applied:
        pid = live_pid(self.pidfile, self.command_name)
        how = "stopped"
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)  # a frozen (SIGSTOPped) daemon acts on it only then
            if not wait_for(lambda: live_pid(self.pidfile, self.command_name) is None, self.grace):
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: live_pid(self.pidfile, self.command_name) is None, 10)
                how = f"killed after {self.grace:g}s"
        for path in [self.pidfile, *self.leftovers]:
            path.unlink(missing_ok=True)
        return Applied(f"{how} (pid {pid})")


def _mounts_under(*directories: Path) -> list[str]:
    """Mount points at or below ``directories``, deepest first (the order to unmount)."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    found = [
        point
        for point in points
        for directory in directories
        if point == str(directory) or point.startswith(str(directory).rstrip("/") + "/")
    ]
    return sorted(set(found), key=lambda point: (-point.count("/"), point))


def _proc_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def shim_pids(containerd_socket: Path) -> list[int]:
    """containerd shims started by the containerd of ``containerd_socket``: they outlive it,
    and keep the containers of a killed engine running."""
    wanted = ["-address", str(containerd_socket)]
    found = []
    for pid in _proc_pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(argv[i : i + 2] == wanted for i in range(len(argv) - 1)) and alive(pid):
            found.append(pid)
    return found


def children(pid: int) -> list[int]:
    found = []
    for candidate in _proc_pids():
        fields = stat_fields(candidate)
        if fields is not None and len(fields) > 1 and fields[1] == str(pid):
            found.append(candidate)
    return found


class LeftoverContainersStep(Step):
    """Containers a killed dockerd left running: each shim's children (a container's first
    process; killing it ends the container's whole pid namespace), then the shim."""

    def __init__(self, layout: EngineLayout) -> None:
        self.layout = layout
        self.name = f"{layout.name} containers"

    def _targets(self) -> list[int]:
        shims = shim_pids(self.layout.containerd_socket)
        return [child for shim in shims for child in children(shim)] + shims

    def check(self) -> StepState:
        shims = shim_pids(self.layout.containerd_socket)
        if not shims:
            return StepState("none left")
        return StepState(
            "",
            f"{len(shims)} container shim(s) of a stopped engine still run",
            (shown(["kill", "-KILL", *map(str, self._targets())]),),
        )

    def apply(self, state: StepState) -> Applied:
        targets = self._targets()
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not wait_for(lambda: not any(alive(pid) for pid in targets), 30):
            return Applied(f"still alive after SIGKILL: {targets}", "failed")
        return Applied(f"killed {len(targets)} process(es)")


class UnmountStep(Step):
    """What a killed engine left mounted (network namespaces, container root filesystems, its
    data root): unmounted, deepest first, so the directories can go."""

    def __init__(self, layout: EngineLayout) -> None:
        self.layout = layout
        self.name = f"{layout.name} mounts"

    def check(self) -> StepState:
        mounted = _mounts_under(self.layout.run_dir, self.layout.data_dir)
        if not mounted:
            return StepState("none left")
        return StepState(
            "", f"{len(mounted)} left mounted", tuple(shown(["umount", p]) for p in mounted)
        )

    def apply(self, state: StepState) -> Applied:
        mounted = _mounts_under(self.layout.run_dir, self.layout.data_dir)
        for point in mounted:
            run_command(["umount", point], timeout=60)
        return Applied(f"unmounted {len(mounted)}")


class RemoveDirectoryStep(Step):
    """Remove a directory of a stopped engine, never one with something still mounted in it
    (removing through a live mount would delete what the mount shows)."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory

    def check(self) -> StepState:
        if not self.directory.exists():
            return StepState(f"no {self.directory}")
        return StepState("", f"{self.directory} exists", (f"rm -rf {self.directory}",))

    def apply(self, state: StepState) -> Applied:
        mounted = _mounts_under(self.directory)
        if mounted:
            return Applied(
                f"kept {self.directory}: still mounted there: {', '.join(mounted[:3])}; "
                "unmount them, then run again",
                "failed",
            )
        shutil.rmtree(self.directory)
        return Applied(f"removed {self.directory}")


# ---- up and down -----------------------------------------------------------------------------


def up_steps(layout: EngineLayout, image_store: str, registry: str) -> Iterator[Step]:
    yield BridgeStep(layout)
    yield OutboundStep(layout)
    yield ContainerdStep(layout)
    # The mirror as it is now: a registry started later reaches this engine after down + up.
    mirror = f"http://{registry}" if registry_answers(registry) else None
    yield DockerdStep(layout, image_store, mirror)


def down_steps(layout: EngineLayout, *, purge: bool) -> Iterator[Step]:
    # dockerd first: on SIGTERM it stops its containers (15 s each at most), then containerd.
    yield StopDaemonStep(
        f"{layout.name} dockerd",
        layout.docker_pidfile,
        "dockerd",
        90,
        [layout.docker_socket],
    )
    yield StopDaemonStep(
        f"{layout.name} containerd",
        layout.containerd_pidfile,
        "containerd",
        30,
        [layout.containerd_socket, Path(f"{layout.containerd_socket}.ttrpc")],
    )
    yield LeftoverContainersStep(layout)
    yield UnmountStep(layout)
    yield RemoveOutboundStep(layout)
    yield RemoveBridgeStep(layout)
    yield RemoveDirectoryStep(f"{layout.name} runtime files", layout.run_dir)
    if purge:
        yield RemoveDirectoryStep(f"{layout.name} data", layout.data_dir)
    elif layout.data_dir.exists():
        yield Fact(f"{layout.name} data", f"kept {layout.data_dir} (--purge removes it)")


__all__ = [
    "EngineLayout",
    "EngineNameError",
    "containerd_config",
    "dockerd_command",
    "down_steps",
    "engine_layout",
    "free_subnet",
    "parse_ipv4_networks",
    "up_steps",
]
