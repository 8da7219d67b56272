"""``multiarch host up``: make a bare Debian-family machine ready, doing only what is not done.

Order matters: packages, engine binaries, daemons, emulators, then (offline only) the local
registry mirror and its seeded base images. Each is a :class:`Step`: its check says what is
there and which commands would fix what is not. Root applies the missing steps, each reported
``done`` or ``skipped`` with the reason; a non-root user (or ``--dry-run``) gets the exact
commands of every missing step and no change at all.

Only this machine's engine is set up: with ``DOCKER_HOST`` (or a docker context) pointing at
another engine, ``host up`` refuses at once instead of starting a local daemon nobody asked.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_multiarch.core.commands import Log, run_command
from pytest_multiarch.core.emulation import BINFMT_DIR, binfmt_mounted, check_emulator, read_handler
from pytest_multiarch.core.errors import CommandError, EngineUnavailable, MultiarchError
from pytest_multiarch.core.paths import LOG_DIR, STATE_DIR, cache_dir
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.core.processes import alive
from pytest_multiarch.engine.docker import docker, engine_info
from pytest_multiarch.provision.aptsource import apt_download, configured_sources
from pytest_multiarch.provision.bases import (
    SEED_NAMESPACE,
    BaseImage,
    SeedState,
    seed_base,
    seed_state,
    suite_for,
)
from pytest_multiarch.provision.daemons import (
    live_pid,
    registry_answers,
    remove_stale_pidfile,
    socket_accepts,
    start_background,
    wait_for,
)
from pytest_multiarch.provision.steps import (
    Applied,
    Fact,
    Step,
    StepReport,
    StepResult,
    StepState,
    run_steps,
    write_file_command,
)

DAEMON_JSON = Path(os.environ.get("MULTIARCH_DAEMON_JSON", "/etc/docker/daemon.json"))
DOCKER_PIDFILE = Path("/var/run/docker.pid")
CONTAINERD_SOCKET = Path("/run/containerd/containerd.sock")
DEFAULT_ENGINE = "unix:///var/run/docker.sock"
ENGINE_PACKAGES = ("containerd", "runc", "tini", "iptables")
TOOL_PACKAGES = ("qemu-user-static", "binfmt-support", "arch-test", "busybox-static")
OFFLINE_PACKAGES = ("docker-registry", "mmdebstrap")
# Headless Chromium: the project's own tests open the results page (--multiarch-html) in it.
BROWSER_PACKAGES = ("chromium", "chromium-driver")
DEFAULT_REGISTRY_PORT = 5000
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
APT_UPDATE = ("apt-get", "-q", "update")

# The record of one step's outcome, kept under its old name for callers of HostSetup.run().
HostReport = StepReport


class ForeignEngine(MultiarchError):
    """``DOCKER_HOST`` or the docker context points at an engine this machine does not run."""


def registry_address(port: int | None = None) -> str:
    chosen = port or int(os.environ.get("MULTIARCH_REGISTRY_PORT", DEFAULT_REGISTRY_PORT))
    return f"127.0.0.1:{chosen}"


def shown(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """``argv`` as a person would type it in a shell."""
    prefix = [f"{key}={shlex.quote(value)}" for key, value in (env or {}).items()]
    return " ".join([*prefix, shlex.join(argv)])


def apt_install(packages: Sequence[str]) -> tuple[str, ...]:
    return ("apt-get", "install", "-y", "-q", "--no-install-recommends", *packages)


# ---- which engine the docker CLI talks to ----------------------------------------------------


@dataclass(frozen=True)
class EngineTarget:
    """Where the docker CLI (and so every command of ``host up``) sends its requests."""

    endpoint: str
    source: str  # "DOCKER_HOST", "context", or "default"
    context: str = ""

    @property
    def local(self) -> bool:
        """This machine's default engine, the one ``host up`` starts and configures."""
        if not self.endpoint.startswith("unix://"):
            return False
        path = Path(self.endpoint.removeprefix("unix://"))
        return path.resolve() == Path(DEFAULT_ENGINE.removeprefix("unix://")).resolve()


ContextLookup = Callable[[], tuple[str, str] | None]


def current_context() -> tuple[str, str] | None:
    """The docker CLI's current context (it honours ``DOCKER_CONTEXT``) and its endpoint;
    None when the CLI cannot say (absent, or too old to know contexts)."""
    try:
        result = run_command(
            docker("context", "inspect", "--format", "{{.Name}} {{.Endpoints.docker.Host}}"),
            timeout=15,
            check=False,
        )
    except CommandError:
        return None
    name, _, endpoint = result.stdout.strip().partition(" ")
    return (name, endpoint) if result.ok and name else None


def engine_target(environ: Mapping[str, str], lookup: ContextLookup) -> EngineTarget:
    host = environ.get("DOCKER_HOST", "").strip()
    if host:
        return EngineTarget(host, "DOCKER_HOST")
    context = lookup()
    if context is not None and context[0] != "default":
        return EngineTarget(context[1], "context", context[0])
    return EngineTarget(DEFAULT_ENGINE, "default")


def foreign_engine_problem(target: EngineTarget) -> str:
    """Why ``host up`` must not go on against ``target``; empty when it may."""
    if target.local:
        return ""
    if target.source == "DOCKER_HOST":
        where = f"DOCKER_HOST={target.endpoint}"
        local_fix = "`unset DOCKER_HOST` (or run `env -u DOCKER_HOST multiarch host up`)"
    else:
        where = f"the docker context {target.context!r} ({target.endpoint})"
        local_fix = (
            "`docker context use default` (or run `DOCKER_CONTEXT=default multiarch host up`)"
        )
    return (
        f"multiarch host up sets up only this machine's Docker engine ({DEFAULT_ENGINE}), "
        f"but {where} points the docker CLI at another engine. To set up this machine, "
        f"{local_fix}; to set up that engine, run `multiarch host up` on the machine it runs on."
    )


def refuse_foreign_engine(
    environ: Mapping[str, str] | None = None, lookup: ContextLookup | None = None
) -> None:
    """Raise ForeignEngine when the docker CLI would talk to another machine's engine."""
    target = engine_target(os.environ if environ is None else environ, lookup or current_context)
    problem = foreign_engine_problem(target)
    if problem:
        raise ForeignEngine(problem)


# ---- looking at the machine (no changes) -----------------------------------------------------


def missing_packages(names: Sequence[str]) -> list[str]:
    missing = []
    for name in names:
        result = run_command(["dpkg-query", "-W", "-f=${Status}", name], timeout=30, check=False)
        if "install ok installed" not in result.stdout:
            missing.append(name)
    return missing


def _engine_answers() -> bool:
    try:
        engine_info(timeout=10)
    except EngineUnavailable:
        return False
    return True


def engine_needed() -> bool:
    """No dockerd installed and no engine answering: the engine and its packages must come.
    The one rule for both the package list and the engine binary step."""
    return shutil.which("dockerd") is None and not _engine_answers()


def _buildx_present() -> bool:
    try:
        return run_command(docker("buildx", "version"), timeout=20, check=False).ok
    except CommandError:  # no docker CLI at all
        return False


def _public_registry_reachable() -> bool:
    # Ask for a well-known image by its short name: the CLI resolves the default registry, so
    # no host name appears here. Offline this fails within a second (name resolution).
    try:
        return run_command(
            docker("buildx", "imagetools", "inspect", "busybox:latest"), timeout=30, check=False
        ).ok
    except CommandError:
        return False


def _read_daemon_json() -> dict[str, Any]:
    if not DAEMON_JSON.exists():
        return {}
    try:
        data = json.loads(DAEMON_JSON.read_text() or "{}")
    except json.JSONDecodeError as exc:
        raise MultiarchError(
            f"{DAEMON_JSON} is not valid JSON ({exc}); fix or remove it, then run again"
        ) from None
    if not isinstance(data, dict):
        raise MultiarchError(f"{DAEMON_JSON} must hold a JSON object")
    return data


def desired_daemon_json(
    current: dict[str, Any], image_store: str, mirror: str | None
) -> dict[str, Any]:
    """``current`` with our settings added. A store the user already chose is kept."""
    wanted: dict[str, Any] = json.loads(json.dumps(current))
    features = wanted.setdefault("features", {})
    if "containerd-snapshotter" not in features:
        features["containerd-snapshotter"] = image_store == "containerd"
    if mirror:
        mirrors = wanted.setdefault("registry-mirrors", [])
        if mirror not in mirrors:
            mirrors.append(mirror)
    return wanted


def daemon_json_text(settings: dict[str, Any]) -> str:
    return json.dumps(settings, indent=2) + "\n"


# ---- changing the machine --------------------------------------------------------------------


def _containerd_running() -> bool:
    # The default socket, not `pgrep containerd`: second engines run containerds of their own.
    return socket_accepts(CONTAINERD_SOCKET)


def _start_engine(log: Log) -> None:
    if shutil.which("containerd") and not _containerd_running():
        start_background(["containerd"], LOG_DIR / "containerd.log")
        wait_for(_containerd_running, 30)
    # The pid file, not `pgrep dockerd`: a second engine's dockerd is not this one.
    if live_pid(DOCKER_PIDFILE, "dockerd") is None:
        if remove_stale_pidfile(DOCKER_PIDFILE, "dockerd"):
            log(f"  removed stale {DOCKER_PIDFILE}")
        start_background(["dockerd"], LOG_DIR / "dockerd.log")
    if not wait_for(_engine_answers, 90, interval=1):
        raise MultiarchError(f"dockerd did not answer within 90s; see {LOG_DIR / 'dockerd.log'}")


def _restart_dockerd(log: Log) -> None:
    running = run_command(docker("ps", "-q"), timeout=30, check=False).stdout.split()
    if running:
        raise MultiarchError(
            f"{DAEMON_JSON} changed but {len(running)} container(s) are running; "
            "restart dockerd yourself when they are done, then run `multiarch host up` again"
        )
    pid_text = DOCKER_PIDFILE.read_text().strip() if DOCKER_PIDFILE.exists() else ""
    if not pid_text.isdigit():
        raise MultiarchError(
            f"{DAEMON_JSON} changed; restart dockerd to apply it (no pid in {DOCKER_PIDFILE})"
        )
    os.kill(int(pid_text), signal.SIGTERM)
    wait_for(lambda: not alive(int(pid_text)), 60)
    _start_engine(log)


def _install_from_trixie(package: str) -> str:
    with tempfile.TemporaryDirectory(prefix="multiarch-deb-") as tmp:
        deb = apt_download(package, None, "trixie", Path(tmp))
        # apt-get (not dpkg -i) so the package's dependencies come from this system's suite.
        run_command(apt_install([str(deb)]), timeout=1200, env=APT_ENV)
        return deb.name


def _trixie_commands(package: str) -> tuple[str, ...]:
    try:
        uri = configured_sources().for_suite("trixie").uri
    except MultiarchError:
        uri = "<the URI of the configured Debian source>"
    return (
        f"apt-get download {package} from `deb {uri} trixie main`, with a private apt state "
        f"in {cache_dir() / 'apt'} (the system's package lists stay as they are)",
        shown(apt_install([f"./{package}_*.deb"]), APT_ENV),
    )


# ---- the steps -------------------------------------------------------------------------------


class PackagesStep(Step):
    name = "packages"

    def check(self) -> StepState:
        wanted = list(TOOL_PACKAGES) + list(OFFLINE_PACKAGES)
        if engine_needed():
            wanted = list(ENGINE_PACKAGES) + wanted
        missing = missing_packages(wanted)
        if not missing:
            return StepState("all installed")
        return StepState(
            "",
            f"not installed: {' '.join(missing)}",
            # The package lists of a new machine may be old or absent: refresh them first.
            (shown(APT_UPDATE), shown(apt_install(missing), APT_ENV)),
            tuple(missing),
        )

    def apply(self, state: StepState) -> Applied:
        run_command(APT_UPDATE, timeout=600, hint="the Debian mirror must answer")
        run_command(
            apt_install(state.items),
            timeout=1200,
            env=APT_ENV,
            hint="run `apt-get update` and try again",
        )
        return Applied(f"installed {' '.join(state.items)}")


class BrowserStep(PackagesStep):
    name = "browser"

    def check(self) -> StepState:
        missing = missing_packages(list(BROWSER_PACKAGES))
        if not missing:
            return StepState("chromium installed")
        return StepState(
            "",
            f"not installed: {' '.join(missing)} (the tests of the results page use it)",
            (shown(APT_UPDATE), shown(apt_install(missing), APT_ENV)),
            tuple(missing),
        )


class EngineBinaryStep(Step):
    name = "engine binary"

    def check(self) -> StepState:
        dockerd = shutil.which("dockerd")
        if dockerd is not None:
            return StepState(dockerd)
        if not engine_needed():
            return StepState(f"no dockerd here, but the engine at {DEFAULT_ENGINE} answers")
        return StepState(
            "",
            "dockerd is not installed (docker.io >= 26: trixie's package installs on bookworm)",
            _trixie_commands("docker.io"),
            ("docker.io",),
        )

    def apply(self, state: StepState) -> Applied:
        return Applied(f"installed {_install_from_trixie('docker.io')}")


class BuildxStep(Step):
    name = "buildx"

    def check(self) -> StepState:
        if _buildx_present():
            return StepState("plugin present")
        return StepState(
            "",
            "the docker buildx plugin is missing (trixie's docker-buildx installs on bookworm)",
            _trixie_commands("docker-buildx"),
            ("docker-buildx",),
        )

    def apply(self, state: StepState) -> Applied:
        return Applied(f"installed {_install_from_trixie('docker-buildx')}")


class DaemonJsonStep(Step):
    """Our settings in the engine's daemon.json (image store; the mirror when offline), and
    the engine restarted to apply them when it already runs."""

    def __init__(self, name: str, image_store: str, mirror: str | None, log: Log) -> None:
        self.name = name
        self.image_store = image_store
        self.mirror = mirror
        self.log = log

    def check(self) -> StepState:
        current = _read_daemon_json()
        wanted = desired_daemon_json(current, self.image_store, self.mirror)
        if self.mirror:
            present = f"engine already uses {self.mirror}"
            missing = f"{DAEMON_JSON} does not name {self.mirror} as registry mirror"
        else:
            choice = current.get("features", {}).get("containerd-snapshotter")
            present = f"{DAEMON_JSON} sets containerd-snapshotter: {json.dumps(choice)}"
            missing = f"{DAEMON_JSON} chooses no image store"
        if wanted == current:
            return StepState(present)
        commands = [write_file_command(DAEMON_JSON, daemon_json_text(wanted))]
        if _engine_answers():
            commands.append(
                f"kill -TERM $(cat {DOCKER_PIDFILE}); dockerd >>{LOG_DIR / 'dockerd.log'} 2>&1 &"
                "  # the restart applies it; refused while containers run"
            )
        return StepState("", missing, tuple(commands))

    def apply(self, state: StepState) -> Applied:
        wanted = desired_daemon_json(_read_daemon_json(), self.image_store, self.mirror)
        DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
        DAEMON_JSON.write_text(daemon_json_text(wanted))
        if not _engine_answers():
            return Applied(f"wrote {DAEMON_JSON}")
        _restart_dockerd(self.log)
        if self.mirror:
            return Applied(f"engine uses {self.mirror} as registry mirror")
        return Applied(f"wrote {DAEMON_JSON}; restarted the engine to apply it")


class EngineStep(Step):
    name = "engine"

    def __init__(self, log: Log) -> None:
        self.log = log

    def check(self) -> StepState:
        try:
            info = engine_info(timeout=10)
        except EngineUnavailable as exc:
            commands = []
            if shutil.which("containerd") is None or not _containerd_running():
                commands.append(f"containerd >>{LOG_DIR / 'containerd.log'} 2>&1 &")
            commands.append(f"dockerd >>{LOG_DIR / 'dockerd.log'} 2>&1 &")
            return StepState("", str(exc).split(";")[0], tuple(commands))
        return StepState(f"running: {info.version}, {info.image_store} image store")

    def apply(self, state: StepState) -> Applied:
        _start_engine(self.log)
        info = engine_info()
        return Applied(f"started {info.version}, {info.image_store} image store")


class BinfmtMountStep(Step):
    name = "binfmt_misc"

    def __init__(self, binfmt_dir: Path = BINFMT_DIR) -> None:
        self.binfmt_dir = binfmt_dir
        self.command = ("mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt_dir))

    def check(self) -> StepState:
        if binfmt_mounted(self.binfmt_dir):
            return StepState(f"mounted at {self.binfmt_dir}")
        return StepState("", f"not mounted at {self.binfmt_dir}", (shown(self.command),))

    def apply(self, state: StepState) -> Applied:
        run_command(self.command, timeout=30)
        return Applied(f"mounted {self.binfmt_dir}")


class EmulatorStep(Step):
    """The QEMU handler of one foreign platform, enabled in binfmt_misc."""

    def __init__(self, platform: Platform, binfmt_dir: Path = BINFMT_DIR) -> None:
        self.platform = platform
        self.binfmt_dir = binfmt_dir
        self.name = platform.short

    def _disabled_handler(self) -> Path | None:
        """The handler's file when it is registered but disabled: writing 1 enables it."""
        handler = read_handler(self.platform.qemu_name, self.binfmt_dir)
        if handler is None or handler.enabled:
            return None
        return self.binfmt_dir / handler.name

    def _register(self) -> tuple[str, ...]:
        return ("update-binfmts", "--enable", f"qemu-{self.platform.qemu_name}")

    def check(self) -> StepState:
        status = check_emulator(self.platform, binfmt_dir=self.binfmt_dir, ask_version=False)
        if status.usable:
            return StepState(status.summary)
        disabled = self._disabled_handler()
        fix = f"echo 1 > {disabled}" if disabled else shown(self._register())
        return StepState("", status.problem, (fix,))

    def apply(self, state: StepState) -> Applied:
        disabled = self._disabled_handler()
        if disabled is not None:
            disabled.write_text("1")
        else:
            run_command(self._register(), timeout=60)
        after = check_emulator(self.platform, binfmt_dir=self.binfmt_dir, ask_version=False)
        if after.usable:
            return Applied(f"registered: {after.summary}")
        return Applied(f"{after.problem}; {after.remedy}", "failed")


class OfflineDecision(Step):
    """Whether the local mirror is needed: asked with --offline, or no public registry."""

    name = "offline mirror"

    def __init__(self, forced: bool) -> None:
        self.forced = forced

    @functools.cached_property
    def needed(self) -> bool:
        return self.forced or not _public_registry_reachable()

    def check(self) -> StepState:
        if self.forced:
            return StepState("--offline: the local mirror serves base images")
        if self.needed:
            return StepState("no public registry answers: the local mirror serves base images")
        return StepState("the public registry answers; bases pull from it")

    def apply(self, state: StepState) -> Applied:  # a decision is never missing
        return Applied(state.present)


class RegistryStep(Step):
    name = "registry"

    def __init__(self, address: str) -> None:
        self.address = address
        self.storage = STATE_DIR / "registry"
        self.config = STATE_DIR / "registry.yml"
        self.binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"

    def config_text(self) -> str:
        return (
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n"
        )

    def check(self) -> StepState:
        if registry_answers(self.address):
            return StepState(f"answering on {self.address}")
        return StepState(
            "",
            f"no registry answers on {self.address}",
            (
                f"mkdir -p {self.storage}",
                write_file_command(self.config, self.config_text()),
                f"{self.binary} serve {self.config} >>{LOG_DIR / 'registry.log'} 2>&1 &",
            ),
        )

    def apply(self, state: StepState) -> Applied:
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.config_text())
        start_background([self.binary, "serve", str(self.config)], LOG_DIR / "registry.log")
        if not wait_for(lambda: registry_answers(self.address), 30):
            raise MultiarchError(
                f"the local registry did not answer on {self.address}; "
                f"see {LOG_DIR / 'registry.log'}"
            )
        return Applied(f"started on {self.address} ({self.storage})")


def _seed_commands(base: BaseImage, missing: Sequence[Platform], registry: str) -> list[str]:
    commands: list[str] = []
    for plat in missing:
        suite = suite_for(plat)
        tarball = cache_dir() / "rootfs" / f"{base.key}-{suite}-{plat.debian_arch}.tar"
        if not tarball.exists():
            if base.key == "debian":
                commands.append(
                    f"mmdebstrap --variant=minbase --arch={plat.debian_arch} --format=tar "
                    f"{suite} {tarball}"
                )
            else:
                commands.append(
                    f"apt-get download busybox-static:{plat.debian_arch} ({suite}), then a tar "
                    f"of its bin/busybox and applet links: {tarball}"
                )
        reference = f"{registry}/{SEED_NAMESPACE}/{base.key}:{base.tags[0]}-{plat.short}"
        commands.append(
            f"docker buildx build --platform {plat.name} --provenance=false --load -t "
            f"{reference} <dir: rootfs.tar + `FROM scratch` `ADD rootfs.tar /`>"
        )
        commands.append(f"docker push {reference}")
    for tag in base.tags:
        commands.append(
            f"docker buildx imagetools create -t {registry}/{base.repository}:{tag} "
            "<every seeded platform>"
        )
    return commands


class BaseStep(Step):
    """One offline base image, served by the local mirror for every platform asked."""

    independent = True  # the other bases may still work

    def __init__(
        self, base: BaseImage, platforms: Sequence[Platform], registry: str, log: Log
    ) -> None:
        self.base = base
        self.platforms = list(platforms)
        self.registry = registry
        self.log = log
        self.name = f"base {base.key}"
        self._seen: SeedState | None = None

    def check(self) -> StepState:
        image = f"{self.registry}/{self.base.repository}:{self.base.tags[0]}"
        if not registry_answers(self.registry):
            return StepState(
                "",
                f"{image}: the local registry at {self.registry} does not answer",
                tuple(
                    _seed_commands(
                        self.base,
                        [p for p in self.platforms if not self.base.supports(p)],
                        self.registry,
                    )
                ),
            )
        seen = self._seen = seed_state(self.base, self.platforms, self.registry)
        not_made = f"not made: {'; '.join(seen.unsupported)}" if seen.unsupported else ""
        if not seen.wanted:
            return StepState(f"{image}: {not_made}")
        if seen.complete:
            present = f"present {', '.join(p.short for p in seen.wanted)}"
            return StepState(f"{image}: {'; '.join(filter(None, [present, not_made]))}")
        return StepState(
            "",
            f"{image} lacks {', '.join(p.short for p in seen.missing)}",
            tuple(_seed_commands(self.base, seen.missing, self.registry)),
            tuple(p.short for p in seen.missing),
        )

    def apply(self, state: StepState) -> Applied:
        result = seed_base(self.base, self.platforms, self.registry, self.log, self._seen)
        parts = []
        if result.built:
            parts.append(f"built {', '.join(result.built)}")
        if result.reused:
            parts.append(f"present {', '.join(result.reused)}")
        if result.unsupported:
            parts.append(f"not made: {'; '.join(result.unsupported)}")
        return Applied(f"{result.image}: {'; '.join(parts)}")


class HostSetup:
    """The bootstrap, one idempotent step at a time."""

    def __init__(
        self,
        platforms: Sequence[Platform],
        bases: Sequence[BaseImage],
        *,
        image_store: str = "containerd",
        registry_port: int | None = None,
        force_offline: bool = False,
        log: Log = print,
        is_root: bool | None = None,
        dry_run: bool = False,
    ) -> None:
        self.platforms = list(platforms)
        self.bases = list(bases)
        self.image_store = image_store
        self.registry = registry_address(registry_port)
        self.force_offline = force_offline
        self.log = log
        self.report = StepReport()
        self.is_root = os.geteuid() == 0 if is_root is None else is_root
        self.dry_run = dry_run

    def steps(self) -> Iterator[Step]:
        """The steps in order. A generator: what comes after the offline decision depends on
        it, and acting, each step is made only after the previous one was applied."""
        yield PackagesStep()
        yield BrowserStep()
        yield EngineBinaryStep()
        yield BuildxStep()
        yield DaemonJsonStep("daemon.json", self.image_store, None, self.log)
        yield EngineStep(self.log)
        foreign = [p for p in self.platforms if p.emulated]
        if not foreign:
            yield Fact("emulators", "no foreign platform asked")
        else:
            yield BinfmtMountStep()
            yield from (EmulatorStep(plat) for plat in foreign)
        decision = OfflineDecision(self.force_offline)
        yield decision
        if decision.needed:
            yield RegistryStep(self.registry)
            yield DaemonJsonStep("mirror", self.image_store, f"http://{self.registry}", self.log)
            for base in self.bases:
                yield BaseStep(base, self.platforms, self.registry, self.log)

    def run(self) -> StepReport:
        """Plan (non-root, or dry run) or act (root). Raises ForeignEngine at once when the
        docker CLI points at another machine's engine."""
        refuse_foreign_engine()
        return run_steps(
            self.steps(),
            act=self.is_root and not self.dry_run,
            root=self.is_root,
            log=self.log,
            report=self.report,
        )


__all__ = [
    "EngineTarget",
    "ForeignEngine",
    "HostReport",
    "HostSetup",
    "StepResult",
    "desired_daemon_json",
    "engine_target",
    "foreign_engine_problem",
    "refuse_foreign_engine",
]
