"""Live progress of builds and long waits: told by the process doing the work, shown by the
controller.

Transport. With pytest-xdist the builds run in worker processes while only the controller owns
the terminal, and xdist has no supported channel for a worker's own messages while a test runs
(a report travels only when a test phase ends, and a build happens inside one phase). So each
process writes the state of what it is doing as a small JSON file in the run's private state
directory (``run_state_dir(run_id)/progress``, mode 0700), replaced atomically whenever the
build step changes; a thread of the controller reads that directory twice a second and renders
it. Nothing is sent while nothing changes, a worker never waits for the controller, and ``-n 0``
takes the same path (the thread and the build are then in one process).

Rendering. On a terminal one status line is rewritten in place; in CI logs (no TTY, or
``CI=true``) each build prints a line once it has run for a second, then at most one line per
few seconds when its step changed, and one when it ends. Images found already built (and what
ends within a second) are told by their end alone; those found built are listed in one line.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pytest

from pytest_multiarch.model.codec import ReportFormatError, dump, load

if TYPE_CHECKING:
    from pytest_multiarch.core.platforms import Platform
    from pytest_multiarch.model.records import BuildRecord

EntryKind = Literal["build", "wait"]
EntryState = Literal["building", "verifying", "built", "cached", "failed", "waiting"]
FINISHED: tuple[EntryState, ...] = ("built", "cached", "failed")
PREFIX = "multiarch: "
STEP_WIDTH = 72


@dataclass(frozen=True)
class ProgressEntry:
    """What one process is doing for one (image, platform): a build, or a long wait."""

    key: str
    kind: EntryKind
    image: str
    platform: str  # OCI name, linux/arm64
    emulated: bool
    state: EntryState
    started: float  # epoch seconds
    step: str = ""
    seconds: float = 0.0  # how long it took, once finished

    @property
    def label(self) -> str:
        return f"{self.image} {self.platform} ({'QEMU' if self.emulated else 'native'})"


# ---- the build log -------------------------------------------------------------------------

_VERTEX = re.compile(r"^#(\d+) (.+)$")
_VERTEX_END = re.compile(r"^(?:DONE\b|CACHED$|ERROR\b|CANCELED\b)")


_PODMAN_STEP = re.compile(r"^STEP (\d+/\d+): (.*)$")


class BuildLogParser:
    """The current step of a ``buildx build --progress=plain`` log, line by line.

    Each vertex's first line is its name (``#6 [2/3] RUN make``); later lines of the same number
    are its output or status, and ``DONE``/``CACHED``/``ERROR`` end it. Steps may run in
    parallel: the current step is the one that printed last and has not ended.
    """

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._active: list[str] = []
        self._last = ""

    def feed(self, line: str) -> str:
        """Take one log line; returns the current step ("" before the first)."""
        podman_step = _PODMAN_STEP.match(line.strip())
        if podman_step is not None:
            # `podman build` runs its steps one after the other: ``STEP 2/3: RUN make``.
            self._names[line] = f"[{podman_step.group(1)}] {podman_step.group(2).strip()}"
            self._last, self._active = line, []
            return self.current
        match = _VERTEX.match(line.strip())
        # Vertex 0 is buildx's banner ("building with ... instance"), never a step, never DONE.
        if match is not None and match.group(1) != "0":
            vertex, rest = match.groups()
            if vertex not in self._names:
                self._names[vertex] = rest.strip()
                self._last = vertex
                self._active.append(vertex)
            elif _VERTEX_END.match(rest):
                with contextlib.suppress(ValueError):
                    self._active.remove(vertex)
            elif vertex in self._active:
                self._active.remove(vertex)
                self._active.append(vertex)
        return self.current

    @property
    def current(self) -> str:
        vertex = self._active[-1] if self._active else self._last
        return shorten(self._names.get(vertex, ""))


def shorten(text: str, width: int = STEP_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


# ---- writing: the processes that build and wait ------------------------------------------


class ProgressBoard:
    """The run's progress directory. Progress is best effort: a file that cannot be written or
    read is skipped, never an error of the test run."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._counter = itertools.count()

    def publish(self, entry: ProgressEntry) -> None:
        # The run's state directory is made by the first process that uses the engine; it is
        # never made here (its existence tells that the run touched Docker).
        with contextlib.suppress(OSError):
            self.directory.mkdir(mode=0o700, exist_ok=True)
            partial = self.directory / f".{entry.key}.{os.getpid()}.partial"
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(dump(entry), handle)
            os.replace(partial, self.directory / f"{entry.key}.json")

    def withdraw(self, key: str) -> None:
        with contextlib.suppress(OSError):
            (self.directory / f"{key}.json").unlink()

    def entries(self) -> list[ProgressEntry]:
        found = []
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:
            return []
        for path in paths:
            try:
                found.append(load(ProgressEntry, json.loads(path.read_text()), str(path)))
            except (OSError, ValueError, ReportFormatError):
                continue  # withdrawn meanwhile, or not ours
        return found

    def build(self, image: str, platform: Platform) -> BuildProgress:
        """The observer of one build (see pytest_multiarch.runtime.build.BuildObserver)."""
        return BuildProgress(self, image, platform)

    @contextlib.contextmanager
    def waiting(self, image: str, platform: Platform, what: str) -> Iterator[None]:
        """Shown while the body runs (when it takes long): ``what`` is being waited for."""
        key = f"wait--{os.getpid()}--{next(self._counter)}"
        self.publish(
            ProgressEntry(
                key, "wait", image, platform.name, platform.emulated, "waiting", time.time(), what
            )
        )
        try:
            yield
        finally:
            self.withdraw(key)


class BuildProgress:
    """Tells the board how one build goes: started, each new step, verified, finished."""

    def __init__(self, board: ProgressBoard, image: str, platform: Platform) -> None:
        self._board = board
        self._parser = BuildLogParser()
        self._entry = ProgressEntry(
            f"build--{image}--{platform.short}",
            "build",
            image,
            platform.name,
            platform.emulated,
            "building",
            time.time(),
        )

    def building(self) -> None:
        self._set(state="building", started=time.time(), step="starting the build")

    def line(self, text: str) -> None:
        step = self._parser.feed(text)
        if step and step != self._entry.step:
            self._set(step=step)

    def verifying(self) -> None:
        self._set(state="verifying", step="verifying the architecture")

    def finished(self, record: BuildRecord, problem: str = "") -> None:
        state: EntryState = "failed" if record.error or problem else "built"
        if state == "built" and record.cached:
            state = "cached"
        why = (record.error or problem).strip().splitlines()
        step = shorten(why[0]) if why else ""
        if state == "built" and record.build_cache:
            # --build-cache: what it gave, or why it was not used, on the build's own line.
            use = f"{record.cache_use or 'no steps'} from {record.build_cache}"
            step = f"WARNING: {record.cache_warning}" if record.cache_warning else use
        self._set(state=state, seconds=record.seconds, step=step)

    def _set(self, **changes: object) -> None:
        self._entry = replace(self._entry, **changes)  # type: ignore[arg-type]
        self._board.publish(self._entry)


# ---- rendering: the controller -------------------------------------------------------------


@dataclass
class ProgressView:
    """What to print for the entries seen at a moment: lines to keep, and (live) the status
    line to rewrite in place. Pure: the caller passes the time."""

    live: bool
    interval: float = 3.0  # CI logs: at most one step line per build in this many seconds
    wait_after: float = 5.0  # a wait shows once it has lasted this long
    show_after: float = 1.0  # a build too (an image found built and verified at once: no noise)
    cached_settle: float = 1.0  # cached images are listed together once none came for this
    _printed: dict[str, tuple[float, str]] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)
    _cached: list[str] = field(default_factory=list)
    _cached_at: float = 0.0

    def update(
        self, entries: Sequence[ProgressEntry], now: float, *, final: bool = False
    ) -> tuple[list[str], list[str]]:
        """Lines to print now, and (live) one status part per running build or long wait."""
        lines: list[str] = []
        status: list[str] = []
        for entry in entries:
            if entry.key in self._done:
                continue
            if entry.state in FINISHED:
                self._done.add(entry.key)
                if entry.state == "cached":
                    self._cached.append(entry.label)
                    self._cached_at = now
                elif entry.state == "built":
                    note = f" ({entry.step})" if entry.step else ""
                    lines.append(f"{PREFIX}{entry.label} built in {entry.seconds:.1f}s{note}")
                else:
                    lines.append(f"{PREFIX}{entry.label} FAILED: {entry.step or 'build failed'}")
                continue
            elapsed = max(0.0, now - entry.started)
            if elapsed < (self.wait_after if entry.kind == "wait" else self.show_after):
                continue  # what ends at once is told by its end alone
            text = f"{entry.label} {elapsed:.0f}s " + (
                f"waiting: {entry.step}" if entry.kind == "wait" else entry.step
            )
            if self.live:
                status.append(text.rstrip())
                continue
            last = self._printed.get(entry.key)
            if last is None or (last[1] != entry.step and now - last[0] >= self.interval):
                self._printed[entry.key] = (now, entry.step)
                lines.append(PREFIX + text.rstrip())
        if self._cached and (final or now - self._cached_at >= self.cached_settle):
            lines.append(f"{PREFIX}already built: {', '.join(self._cached)}")
            self._cached = []
        return lines, status


class Terminal(Protocol):
    """Where the display writes. Its text goes straight to the terminal, around pytest's own
    output: ``flush`` sends pytest's buffered output first, ``current_line`` is the line pytest
    left unfinished ("" when none: progress letters, a verbose test id waiting for PASSED)."""

    def flush(self) -> None: ...
    def current_line(self) -> str: ...
    def write(self, text: str) -> None: ...


class ProgressDisplay:
    """The controller's thread that renders the board. Every write of pytest's own that can
    happen meanwhile is wrapped in :meth:`paused`, so the two never interleave."""

    def __init__(
        self,
        board: ProgressBoard,
        terminal: Terminal,
        *,
        live: bool,
        width: int = 80,
        period: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.board = board
        self.terminal = terminal
        self.view = ProgressView(live=live)
        self.width = width
        self.period = period
        self.clock = clock
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status_shown = False
        # pytest's unfinished line, moved below ours: written again before pytest goes on, so
        # that "test_x.py::test_a[arm64] PASSED" stays one line.
        self._echo = ""
        # pytest's unfinished line as it was when our lines went below it (not written again):
        # while it is unchanged, the line below ours is still empty.
        self._left_below = ""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="multiarch-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.render(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.render()

    def render(self, *, final: bool = False) -> None:
        lines, parts = self.view.update(self.board.entries(), self.clock(), final=final)
        status = "" if final or not parts else status_line(parts, self.width - 1)
        with self._lock:
            if not lines and not status and not self._status_shown:
                return
            self.terminal.flush()
            pending = self.terminal.current_line()
            if self._status_shown:
                text = "\r\x1b[K"  # our status line, erased: its line is ours again
            else:
                # Nothing after our last lines yet (pytest's line went on below them, and has
                # not grown since): no empty line between.
                text = "\n" if pending and pending != self._left_below else ""
                # A line that already ends in pytest's "[ 42%]" is complete (its newline comes
                # later): written again, it would show a test's result twice. In a log, a line
                # of dots goes on below ours as it is: written again after each of our lines,
                # it would repeat; a test's own line (-v) is, so its result stays on it.
                done = _PERCENT_DONE.search(pending)
                dots = not self.view.live and "::" not in pending
                self._echo = "" if done or dots else pending
            text += "".join(line + "\n" for line in lines)
            if status:
                text += status
            else:
                text += self._echo
                self._left_below = "" if self._echo else pending
                self._echo = ""
            self._status_shown = bool(status)
            self.terminal.write(text)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the terminal for pytest's own writes; the status line comes back next tick."""
        with self._lock:
            if self._status_shown:
                self.terminal.write("\r\x1b[K" + self._echo)
                self._status_shown = False
                self._echo = ""
            yield


_PERCENT_DONE = re.compile(r"\[\s*\d+%\]\s*$")


def status_line(parts: Sequence[str], width: int) -> str:
    """One line for every running build: each part cut to its share of ``width`` (the image,
    platform and time come first in a part, so they stay)."""
    separator = " | "
    room = width - len(PREFIX) - len(separator) * (len(parts) - 1)
    share = max(24, room // len(parts))
    return shorten(PREFIX + separator.join(shorten(part, share) for part in parts), width)


def ci_logs(environ: Mapping[str, str], isatty: bool) -> bool:
    """Whether progress goes to a log (a line per change) rather than a live terminal."""
    return not isatty or environ.get("CI", "").strip().lower() in ("1", "true", "yes")


class PytestTerminal:
    """The terminal of pytest's TerminalReporter, written through a duplicate of its file
    descriptor taken when the display starts (between tests, when nothing is captured): with
    ``-n 0`` a build runs inside a test's setup, while pytest captures file descriptor 1, and
    progress must still reach the terminal rather than the test's captured output."""

    def __init__(self, reporter: Any, fd: int | None) -> None:
        self.reporter = reporter
        self.fd = fd

    @classmethod
    def open(cls, reporter: Any, stream: Any) -> PytestTerminal:
        try:
            fd: int | None = os.dup(stream.fileno())
        except (AttributeError, OSError, ValueError):  # no real file: write through pytest
            fd = None
        return cls(reporter, fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def flush(self) -> None:
        self.reporter.flush()

    def current_line(self) -> str:
        # pytest's TerminalWriter keeps its unfinished line as plain text (no colours).
        writer = getattr(self.reporter, "_tw", None)
        return str(getattr(writer, "_current_line", "") or "")

    def write(self, text: str) -> None:
        if self.fd is None:
            self.reporter.write(text, flush=True)
        else:
            data = memoryview(text.encode(errors="replace"))
            with contextlib.suppress(OSError):  # a closed terminal: progress is best effort
                while data:
                    data = data[os.write(self.fd, data) :]


class ProgressPlugin:
    """Controller-side pytest hooks: the display runs while the tests run (builds happen in
    test setup), and pytest's own report lines pause it. Silent with ``-q`` and without a
    terminal reporter (``-p no:terminal``)."""

    def __init__(self, board: Callable[[], ProgressBoard]) -> None:
        self._board = board
        self._display: ProgressDisplay | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        config = session.config
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None and config.get_verbosity() >= 0:
            live = not ci_logs(os.environ, bool(terminal.isatty()))
            output = PytestTerminal.open(terminal, sys.stdout)
            self._display = ProgressDisplay(
                self._board(), output, live=live, width=shutil.get_terminal_size().columns
            )
            self._display.start()
        try:
            return (yield)
        finally:
            display, self._display = self._display, None
            if display is not None:
                display.stop()
                if isinstance(display.terminal, PytestTerminal):
                    display.terminal.close()

    @contextlib.contextmanager
    def _paused(self) -> Iterator[None]:
        display = self._display
        if display is None:
            yield
        else:
            with display.paused():
                yield

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logstart(self) -> Generator[None]:
        with self._paused():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self) -> Generator[None]:
        with self._paused():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logfinish(self) -> Generator[None]:
        with self._paused():
            return (yield)
