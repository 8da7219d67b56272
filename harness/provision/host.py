"""``multiarch host up``: make a bare Debian-family machine ready, doing only what is not done.

Order matters: packages, engine binaries, daemons, emulators, then (offline only) the local
registry mirror and its seeded base images. Every step reports ``done`` or ``skipped`` with the
reason; a non-root user with pieces missing gets the exact commands and no change at all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.provision.aptsource import apt_download
from harness.provision.bases import BaseImage, seed_base
from harness.commands import run_command
from harness.emulation import BINFMT_DIR, binfmt_mounted, check_emulator, read_handler
from harness.runtime.engine import docker, engine_info
from harness.errors import CommandError, EngineUnavailable, MultiarchError
from harness.paths import LOG_DIR, STATE_DIR
from harness.platforms import Platform
from harness.processes import alive

DAEMON_JSON = Path(os.environ.get("MULTIARCH_DAEMON_JSON", "/etc/docker/daemon.json"))
DOCKER_PIDFILE = Path("/var/run/docker.pid")
ENGINE_PACKAGES = ("containerd", "runc", "tini", "iptables")
TOOL_PACKAGES = ("qemu-user-static", "binfmt-support", "arch-test", "busybox-static")
OFFLINE_PACKAGES = ("docker-registry", "mmdebstrap")
DEFAULT_REGISTRY_PORT = 5000

Log = Callable[[str], None]


@dataclass
class Step:
    name: str
    status: str  # "done", "skipped", "failed", "needs-root"
    detail: str


@dataclass
class HostReport:
    steps: list[Step] = field(default_factory=list)

    def add(self, name: str, status: str, detail: str, log: Log) -> None:
        self.steps.append(Step(name, status, detail))
        log(f"[{status:>10}] {name}: {detail}")

    @property
    def ok(self) -> bool:
        return all(step.status in ("done", "skipped") for step in self.steps)


def registry_address(port: int | None = None) -> str:
    chosen = port or int(os.environ.get("MULTIARCH_REGISTRY_PORT", DEFAULT_REGISTRY_PORT))
    return f"127.0.0.1:{chosen}"


def missing_packages(names: Sequence[str]) -> list[str]:
    missing = []
    for name in names:
        result = run_command(["dpkg-query", "-W", "-f=${Status}", name], timeout=30, check=False)
        if "install ok installed" not in result.stdout:
            missing.append(name)
    return missing


def _daemon_running(name: str) -> bool:
    listed = run_command(["pgrep", "-x", name], timeout=10, check=False).stdout.split()
    return any(alive(int(pid)) for pid in listed if pid.isdigit())


def _remove_stale_pidfile(pidfile: Path) -> bool:
    """Remove ``pidfile`` when the process it names is gone (or a zombie): dockerd refuses to
    start while /proc/<pid> of a dead predecessor still exists."""
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return False
    if text.isdigit() and alive(int(text)):
        return False
    pidfile.unlink(missing_ok=True)
    return True


def _engine_answers() -> bool:
    try:
        engine_info(timeout=10)
    except EngineUnavailable:
        return False
    return True


def _start_background(command: Sequence[str], log_name: str) -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / log_name, "ab") as log_file:
        subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def _wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _registry_answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
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
    ) -> None:
        self.platforms = list(platforms)
        self.bases = list(bases)
        self.image_store = image_store
        self.registry = registry_address(registry_port)
        self.force_offline = force_offline
        self.log = log
        self.report = HostReport()
        self.is_root = os.geteuid() == 0 if is_root is None else is_root

    # ---- planning (no changes) -------------------------------------------------------------
    def pending_root_work(self) -> list[str]:
        """What needs root, as commands a user can run; empty when nothing does."""
        todo: list[str] = []
        need_engine = shutil.which("dockerd") is None and not _engine_answers()
        packages = list(TOOL_PACKAGES) + list(OFFLINE_PACKAGES)
        if need_engine:
            packages = list(ENGINE_PACKAGES) + packages
        missing = missing_packages(packages)
        if missing:
            todo.append(f"apt-get install {' '.join(missing)}")
        if need_engine:
            todo.append("install docker.io (>= 26; trixie's package installs on bookworm)")
        if run_command(docker("buildx", "version"), timeout=20, check=False).returncode != 0:
            todo.append("install docker-buildx (trixie's package installs on bookworm)")
        if not _engine_answers():
            todo.append("start the engine: `containerd &` then `dockerd &`")
        for plat in self.platforms:
            status = check_emulator(plat, ask_version=False)
            if not status.usable:
                todo.append(f"{plat.short}: {status.remedy}")
        return todo

    # ---- the steps ---------------------------------------------------------------------------
    def run(self) -> HostReport:
        if not self.is_root:
            todo = self.pending_root_work()
            if todo:
                for item in todo:
                    self.report.add("needs root", "needs-root", item, self.log)
                return self.report
        self.step_packages()
        self.step_engine_binaries()
        self.step_daemons()
        self.step_emulators()
        self.step_offline_registry()
        return self.report

    def step_packages(self) -> None:
        wanted = list(TOOL_PACKAGES) + list(OFFLINE_PACKAGES)
        if shutil.which("dockerd") is None:
            wanted = list(ENGINE_PACKAGES) + wanted
        missing = missing_packages(wanted)
        if not missing:
            self.report.add("packages", "skipped", "all installed", self.log)
            return
        # The package lists of a new machine may be old or absent: refresh them before installing.
        run_command(["apt-get", "-q", "update"], timeout=600, hint="the Debian mirror must answer")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        run_command(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            timeout=1200,
            env=env,
            hint="run `apt-get update` and try again",
        )
        self.report.add("packages", "done", f"installed {' '.join(missing)}", self.log)

    def _install_from_trixie(self, package: str) -> str:
        with tempfile.TemporaryDirectory(prefix="multiarch-deb-") as tmp:
            deb = apt_download(package, None, "trixie", Path(tmp))
            # apt-get (not dpkg -i) so the package's dependencies come from this system's suite.
            run_command(
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", str(deb)],
                timeout=1200,
                env={"DEBIAN_FRONTEND": "noninteractive"},
            )
            return deb.name

    def step_engine_binaries(self) -> None:
        if shutil.which("dockerd") is not None:
            self.report.add("engine binary", "skipped", f"{shutil.which('dockerd')}", self.log)
        else:
            name = self._install_from_trixie("docker.io")
            self.report.add("engine binary", "done", f"installed {name}", self.log)
        if run_command(docker("buildx", "version"), timeout=20, check=False).ok:
            self.report.add("buildx", "skipped", "plugin present", self.log)
        else:
            name = self._install_from_trixie("docker-buildx")
            self.report.add("buildx", "done", f"installed {name}", self.log)

    def _write_daemon_json(self, mirror: str | None) -> bool:
        current = _read_daemon_json()
        wanted = desired_daemon_json(current, self.image_store, mirror)
        if wanted == current:
            return False
        DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
        DAEMON_JSON.write_text(json.dumps(wanted, indent=2) + "\n")
        return True

    def step_daemons(self) -> None:
        changed = self._write_daemon_json(None)
        if changed:
            self.report.add("daemon.json", "done", f"wrote {DAEMON_JSON}", self.log)
        if _engine_answers():
            if changed:
                self._restart_dockerd()
                self.report.add("engine", "done", "restarted for the new daemon.json", self.log)
            else:
                info = engine_info()
                self.report.add(
                    "engine",
                    "skipped",
                    f"running: {info.version}, {info.image_store} image store",
                    self.log,
                )
            return
        self._start_engine()
        info = engine_info()
        self.report.add(
            "engine", "done", f"started {info.version}, {info.image_store} image store", self.log
        )

    def _start_engine(self) -> None:
        if shutil.which("containerd") and not _daemon_running("containerd"):
            _start_background(["containerd"], "containerd.log")
            _wait_for(lambda: Path("/run/containerd/containerd.sock").exists(), 30)
        if not _daemon_running("dockerd"):
            if _remove_stale_pidfile(DOCKER_PIDFILE):
                self.log(f"  removed stale {DOCKER_PIDFILE}")
            _start_background(["dockerd"], "dockerd.log")
        if not _wait_for(_engine_answers, 90, interval=1):
            raise MultiarchError(
                f"dockerd did not answer within 90s; see {LOG_DIR / 'dockerd.log'}"
            )

    def _restart_dockerd(self) -> None:
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
        _wait_for(lambda: not alive(int(pid_text)), 60)
        self._start_engine()

    def step_emulators(self) -> None:
        foreign = [p for p in self.platforms if p.emulated]
        if not foreign:
            self.report.add("emulators", "skipped", "no foreign platform asked", self.log)
            return
        if not binfmt_mounted():
            run_command(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], timeout=30)
            self.report.add("binfmt_misc", "done", f"mounted {BINFMT_DIR}", self.log)
        for plat in foreign:
            handler_name = f"qemu-{plat.qemu_name}"
            status = check_emulator(plat, ask_version=False)
            if status.usable:
                self.report.add(plat.short, "skipped", status.summary, self.log)
                continue
            handler = read_handler(plat.qemu_name)
            if handler is not None and not handler.enabled:
                (BINFMT_DIR / handler_name).write_text("1")
            else:
                run_command(["update-binfmts", "--enable", handler_name], timeout=60)
            after = check_emulator(plat, ask_version=False)
            if after.usable:
                self.report.add(plat.short, "done", f"registered: {after.summary}", self.log)
            else:
                self.report.add(plat.short, "failed", f"{after.problem}; {after.remedy}", self.log)

    def step_offline_registry(self) -> None:
        if not self.force_offline and _public_registry_reachable():
            self.report.add(
                "offline mirror",
                "skipped",
                "the public registry answers; bases pull from it",
                self.log,
            )
            return
        self._ensure_registry()
        mirror = f"http://{self.registry}"
        if self._write_daemon_json(mirror):
            self._restart_dockerd()
            self.report.add("mirror", "done", f"engine uses {mirror} as registry mirror", self.log)
        else:
            self.report.add("mirror", "skipped", f"engine already uses {mirror}", self.log)
        for base in self.bases:
            try:
                result = seed_base(base, self.platforms, self.registry, self.log)
            except MultiarchError as exc:  # the other bases may still work: carry on
                self.report.add(f"base {base.key}", "failed", str(exc), self.log)
                continue
            parts = []
            if result.built:
                parts.append(f"built {', '.join(result.built)}")
            if result.reused:
                parts.append(f"present {', '.join(result.reused)}")
            if result.unsupported:
                parts.append(f"not made: {'; '.join(result.unsupported)}")
            self.report.add(
                f"base {base.key}",
                "done" if result.built else "skipped",
                f"{result.image}: {'; '.join(parts)}",
                self.log,
            )

    def _ensure_registry(self) -> None:
        if _registry_answers(self.registry):
            self.report.add("registry", "skipped", f"answering on {self.registry}", self.log)
            return
        storage = STATE_DIR / "registry"
        storage.mkdir(parents=True, exist_ok=True)
        config = STATE_DIR / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.registry}\n"
        )
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        _start_background([binary, "serve", str(config)], "registry.log")
        if not _wait_for(lambda: _registry_answers(self.registry), 30):
            raise MultiarchError(
                f"the local registry did not answer on {self.registry}; "
                f"see {LOG_DIR / 'registry.log'}"
            )
        self.report.add("registry", "done", f"started on {self.registry} ({storage})", self.log)


__all__ = ["HostReport", "HostSetup", "Step", "desired_daemon_json"]
