"""One Docker engine as one test process uses it: the default engine and every engine a platform
is mapped to (``--engine``) alike. An :class:`Engine` owns the process's API connection to the
engine, the watch that notices it die, the coordination of the builds made on it, and the
once-per-run sweep of dead runs' leftovers there. Nothing here talks to the engine until asked."""

from __future__ import annotations

import functools
import hashlib
import os
from typing import TYPE_CHECKING

from pytest_multiarch.core.paths import run_state_root
from pytest_multiarch.engine.api import EngineApi, engine_info_over_api
from pytest_multiarch.engine.cleanup import sweep
from pytest_multiarch.engine.health import ENGINE_DEAD_FILE, EngineWatch, ping
from pytest_multiarch.runtime.build import BuildCoordinator, sweep_dead_private_tags

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_multiarch.core.platforms import Platform
    from pytest_multiarch.engine.docker import EngineInfo
    from pytest_multiarch.engine.endpoints import EngineEndpoint
    from pytest_multiarch.model.progress import ProgressBoard
    from pytest_multiarch.runtime.settings import Settings

# The run's marker that the dead runs' leftovers on an engine were removed (once per run).
SWEPT_FILE = "swept"


class Engine:
    """``endpoint``'s engine in one process of the run whose state directory is ``run_dir``
    (shared by the run's processes: the engine's markers live there) and whose live progress
    is ``board``."""

    def __init__(
        self, endpoint: EngineEndpoint, settings: Settings, run_dir: Path, board: ProgressBoard
    ) -> None:
        self.endpoint = endpoint
        self._settings = settings
        self._run_dir = run_dir
        self._board = board
        environment = endpoint.sdk_environment()
        # The process's one API connection to it; removes finished containers off the critical
        # path. Made on first use, as are the watch's thread and signal handler.
        self.api = EngineApi(environment)
        # Whether it still answers, as every process of the run sees it: one marker file per
        # engine, so an engine that dies fails its own platforms' tests and no others.
        self.watch = EngineWatch(
            endpoint.describe(),
            run_dir / self._state_file(ENGINE_DEAD_FILE),
            pinger=functools.partial(ping, environment=environment),
            engine=self._known_name,
        )
        self._info: EngineInfo | None = None
        self._builds: BuildCoordinator | None = None
        self._swept = False

    def _state_file(self, name: str) -> str:
        """The name of this engine's file ``name`` in the run's state directory. The default
        engine's keep the plain names they had before platforms could be mapped."""
        if not self.endpoint.spec:
            return name
        return f"{name}-{hashlib.sha256(self.endpoint.spec.encode()).hexdigest()[:16]}"

    @property
    def info(self) -> EngineInfo:
        """What the engine is, asked once over the process's connection (two API calls)."""
        if self._info is None:
            self._info = engine_info_over_api(self.api.client, self.endpoint.host)
        return self._info

    @property
    def known_info(self) -> EngineInfo | None:
        """:attr:`info` if this process has asked already, else None: never an engine call
        (for reports, which must not wait on an engine that stopped answering)."""
        return self._info

    def _known_name(self) -> str:
        """``Podman 4.3.1``: what the engine is as the controller found it (a mapped engine)
        or as this process was told; "" when not known. Never an engine call."""
        if self.endpoint.kind:
            return f"{self.endpoint.kind.capitalize()} {self.endpoint.version}".strip()
        return self._info.name if self._info is not None else ""

    @property
    def builds(self) -> BuildCoordinator:
        """The builds on this engine. Builds of the same inputs by runs on the same engine share
        a lock, whichever way each run names that engine: the lock directory is keyed on the
        engine's own id (found by the controller at the start, else asked now)."""
        if self._builds is None:
            engine_id = self.endpoint.id or self.info.id
            image_store = self.endpoint.image_store or self.info.image_store
            engine_key = hashlib.sha256(engine_id.encode()).hexdigest()[:16]
            locks = run_state_root() / "engines" / engine_key
            locks.mkdir(mode=0o700, parents=True, exist_ok=True)
            settings = self._settings
            self._builds = BuildCoordinator(
                self._run_dir,
                locks,
                settings.build_mode,
                timeout=lambda p: settings.timeout(settings.build_timeout, p),
                classic_store=image_store == "classic",
                client=lambda: self.api.client,
                observe=self._board.build,
                builders=settings.builders,
                cache=settings.build_cache,
                namespace=self._state_file("").removeprefix("-"),
            )
        return self._builds

    def sweep_once(self) -> None:
        """Remove the leftovers of dead runs (SIGKILL, a second Ctrl-C; never a live run's) from
        this engine: done by the first process of the run that uses it, once per run. The run's
        state directory must exist."""
        if self._swept:
            return
        self._swept = True
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            os.close(os.open(self._run_dir / self._state_file(SWEPT_FILE), flags, 0o600))
        except FileExistsError:
            return
        sweep(None, engine=self.endpoint.ref)
        # Found on the engine itself: the dead run's state directory may be where no run looks.
        sweep_dead_private_tags(self.endpoint.ref)

    def unreachable(self, platform: Platform) -> str:
        """Why ``platform``, which runs here, cannot use this engine at all ("" when it can): it
        did not answer when the run began, or it stopped answering since."""
        if self.endpoint.problem:
            where = self._settings.sources.get(f"engine {platform.name}", "the engine map")
            return (
                f"{platform.name} runs on engine {self.endpoint.describe()} (from {where}), "
                f"which did not answer when the run began: {self.endpoint.problem}"
            )
        lost = self.watch.dead()
        return str(lost) if lost is not None else ""

    def emulator_identity(self, platform: Platform, here: str) -> str:
        """What runs ``platform`` on this engine, as the verification cache key names it, given
        what runs it on this machine (``here``). Verified on one engine is not verified on
        another: a mapped engine is in the key. A remote machine's emulators cannot be read from
        here; its engine stands in. The default engine is this machine's own: ``here`` alone."""
        if self.endpoint.ref.is_default:
            return here
        how = "emulated" if platform.emulated else "native"
        engine = f"engine {self.endpoint.id or self.endpoint.spec} ({self.endpoint.architecture})"
        return f"{here}; {engine}" if self.endpoint.is_local else f"{how} on {engine}"

    def close(self) -> None:
        """Stop watching, finish this process's container removals (before the run's sweep)
        and disconnect. Nothing is waited for when the engine stopped answering: the removals
        cannot happen, and the next run's sweep removes those containers."""
        self.watch.close()
        if self.watch.dead() is None:
            self.api.close()
        else:
            self.api.abandon()


__all__ = ["SWEPT_FILE", "Engine"]
