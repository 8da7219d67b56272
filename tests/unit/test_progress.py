"""Live progress: the buildx log parser, the board files, and what the view prints when."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pytest_multiarch.core.platforms import Platform, lookup
from pytest_multiarch.model.progress import (
    BuildLogParser,
    ProgressBoard,
    ProgressDisplay,
    ProgressEntry,
    ProgressView,
    ci_logs,
    status_line,
)
from pytest_multiarch.model.records import BuildRecord

# What `docker buildx build --progress=plain` printed for a three-step build (trimmed).
PLAIN_LOG = """\
#0 building with "default" instance using docker driver

#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 152B 0.0s done
#1 DONE 0.1s

#4 [1/3] FROM docker.io/library/busybox:latest@sha256:9812
#4 resolve docker.io/library/busybox:latest@sha256:9812 0.0s done
#4 DONE 0.0s

#5 [2/3] RUN apt-get update && apt-get install -y --no-install-recommends python3 ca-certificates
#5 0.512 Get:1 http://deb.example/debian bookworm InRelease [151 kB]
#5 DONE 4.1s

#6 [3/3] COPY app.py /app.py
#6 CACHED

#7 exporting to image
#7 exporting layers done
#7 DONE 0.2s
"""


def steps(log: str) -> list[str]:
    parser = BuildLogParser()
    seen: list[str] = []
    for line in log.splitlines():
        step = parser.feed(line)
        if step and (not seen or seen[-1] != step):
            seen.append(step)
    return seen


def test_parser_follows_the_steps_and_ignores_the_banner() -> None:
    assert steps(PLAIN_LOG) == [
        "[internal] load build definition from Dockerfile",
        "[1/3] FROM docker.io/library/busybox:latest@sha256:9812",
        "[2/3] RUN apt-get update && apt-get install -y --no-install-recommend...",
        "[3/3] COPY app.py /app.py",
        "exporting to image",
    ]


def test_parser_shows_the_step_that_printed_last_while_steps_run_in_parallel() -> None:
    parser = BuildLogParser()
    parser.feed("#5 [build 2/4] RUN make")
    parser.feed("#6 [stage-1 1/2] FROM busybox")
    assert parser.feed("#5 3.2 cc -c main.c") == "[build 2/4] RUN make"
    assert parser.feed("#5 DONE 9.0s") == "[stage-1 1/2] FROM busybox"


def test_parser_ignores_lines_that_are_not_buildx_vertices() -> None:
    parser = BuildLogParser()
    assert parser.feed("WARNING: something") == ""
    assert parser.feed("#3 [1/1] FROM scratch") == "[1/1] FROM scratch"
    assert parser.feed("") == "[1/1] FROM scratch"


def entry(key: str = "build--box--arm64", **changes: object) -> ProgressEntry:
    values: dict[str, object] = {
        "key": key,
        "kind": "build",
        "image": "box",
        "platform": "linux/arm64",
        "emulated": True,
        "state": "building",
        "started": 100.0,
        "step": "[2/3] RUN make",
    }
    values.update(changes)
    return ProgressEntry(**values)  # type: ignore[arg-type]


def test_log_view_prints_a_build_once_then_step_changes_at_most_every_interval() -> None:
    view = ProgressView(live=False, interval=3.0)
    assert view.update([entry()], 101.0)[0] == [
        "multiarch: box linux/arm64 (QEMU) 1s [2/3] RUN make"
    ]
    assert view.update([entry()], 101.5)[0] == []  # same step: nothing new
    assert view.update([entry(step="[3/3] COPY a /a")], 102.0)[0] == []  # 1 s after: held back
    assert view.update([entry(step="[3/3] COPY a /a")], 104.0)[0] == [
        "multiarch: box linux/arm64 (QEMU) 4s [3/3] COPY a /a"
    ]
    done = entry(state="built", seconds=9.25, step="")
    assert view.update([done], 109.0) == (["multiarch: box linux/arm64 (QEMU) built in 9.2s"], [])
    assert view.update([done], 120.0) == ([], [])  # told once


def test_cached_images_are_listed_in_one_line() -> None:
    view = ProgressView(live=False, cached_settle=1.0)
    first = entry("build--box--amd64", platform="linux/amd64", emulated=False, state="cached")
    second = entry(state="cached")
    assert view.update([first], 100.0)[0] == []
    assert view.update([first, second], 100.5)[0] == []
    assert view.update([first, second], 101.6)[0] == [
        "multiarch: already built: box linux/amd64 (native), box linux/arm64 (QEMU)"
    ]


def test_cached_images_are_flushed_at_the_end() -> None:
    view = ProgressView(live=False)
    assert view.update([entry(state="cached")], 100.0, final=True)[0] == [
        "multiarch: already built: box linux/arm64 (QEMU)"
    ]


def test_failed_build_says_so() -> None:
    view = ProgressView(live=False)
    failed = entry(state="failed", seconds=2.0, step="wrong architecture: /app is x86-64")
    lines, _ = view.update([failed], 103.0)
    assert lines == ["multiarch: box linux/arm64 (QEMU) FAILED: wrong architecture: /app is x86-64"]


def test_what_ends_at_once_is_told_by_its_end_alone() -> None:
    view = ProgressView(live=False)
    verifying = entry(state="verifying", step="verifying the architecture", started=100.0)
    assert view.update([verifying], 100.4) == ([], [])
    assert view.update([entry(state="cached")], 100.5) == ([], [])


def test_short_waits_are_not_shown() -> None:
    view = ProgressView(live=False, wait_after=5.0)
    wait = entry("wait--1--0", kind="wait", state="waiting", step="container start")
    assert view.update([wait], 103.0)[0] == []
    assert view.update([wait], 106.0)[0] == [
        "multiarch: box linux/arm64 (QEMU) 6s waiting: container start"
    ]


def test_live_view_has_one_status_line_for_every_running_build() -> None:
    view = ProgressView(live=True)
    other = entry("build--cli--amd64", image="cli", platform="linux/amd64", emulated=False)
    lines, parts = view.update([entry(), other], 123.0)
    assert lines == []
    assert parts == [
        "box linux/arm64 (QEMU) 23s [2/3] RUN make",
        "cli linux/amd64 (native) 23s [2/3] RUN make",
    ]
    assert status_line(parts, 200) == "multiarch: " + " | ".join(parts)
    # On a narrow terminal every build keeps its name, platform and time.
    assert status_line(parts, 79) == (
        "multiarch: box linux/arm64 (QEMU) 23s [2... | cli linux/amd64 (native) 23s..."
    )


@pytest.mark.parametrize(
    ("environ", "isatty", "logs"),
    [
        ({}, True, False),
        ({}, False, True),
        ({"CI": "true"}, True, True),
        ({"CI": "1"}, True, True),
        ({"CI": "false"}, True, False),
    ],
)
def test_ci_logs_without_a_tty_or_in_ci(environ: dict[str, str], isatty: bool, logs: bool) -> None:
    assert ci_logs(environ, isatty) is logs


def emulated(name: str) -> Platform:
    return replace(lookup(name), emulated=True)


def test_board_round_trip_and_build_observer(tmp_path: Path) -> None:
    board = ProgressBoard(tmp_path / "progress")
    observer = board.build("box", emulated("arm64"))
    observer.building()
    observer.line("#5 [2/3] RUN make")
    (found,) = board.entries()
    assert (found.image, found.platform, found.emulated) == ("box", "linux/arm64", True)
    assert (found.state, found.step) == ("building", "[2/3] RUN make")
    observer.finished(BuildRecord("box", "linux/arm64", "t", "sha256:1", 3.0, False))
    (found,) = board.entries()
    assert (found.state, found.seconds) == ("built", 3.0)
    assert oct((tmp_path / "progress").stat().st_mode & 0o777) == "0o700"


def test_board_cached_and_failed_states(tmp_path: Path) -> None:
    board = ProgressBoard(tmp_path / "progress")
    board.build("a", lookup("amd64")).finished(BuildRecord("a", "linux/amd64", "t", "i", 0, True))
    board.build("b", lookup("amd64")).finished(
        BuildRecord("b", "linux/amd64", "t", "", 1.0, False, "boom")
    )
    board.build("c", lookup("amd64")).finished(
        BuildRecord("c", "linux/amd64", "t", "i", 1.0, False), "wrong architecture"
    )
    assert [(e.state, e.step) for e in board.entries()] == [
        ("cached", ""),
        ("failed", "boom"),
        ("failed", "wrong architecture"),
    ]


def test_board_never_makes_the_run_directory(tmp_path: Path) -> None:
    board = ProgressBoard(tmp_path / "run-x" / "progress")
    board.build("box", lookup("amd64")).building()
    assert not (tmp_path / "run-x").exists()
    assert board.entries() == []


def test_wait_is_withdrawn_afterwards(tmp_path: Path) -> None:
    board = ProgressBoard(tmp_path)
    with board.waiting("box", emulated("arm64"), "container start"):
        (found,) = board.entries()
        assert (found.kind, found.step) == ("wait", "container start")
    assert board.entries() == []


def test_board_skips_files_that_are_not_entries(tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"what": 1}')
    assert ProgressBoard(tmp_path).entries() == []


class FakeTerminal:
    """Records what the display writes; ``pytest_line`` is what pytest left unfinished."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.pytest_line = ""

    def flush(self) -> None:
        self.out.append("<flush>")

    def current_line(self) -> str:
        return self.pytest_line

    def write(self, text: str) -> None:
        self.out.append(text)


STEP_LINE = "multiarch: box linux/arm64 (QEMU) 5s [2/3] RUN make"


def test_log_lines_go_between_and_pytest_line_is_written_again(tmp_path: Path) -> None:
    board = ProgressBoard(tmp_path)
    board.publish(entry(started=0.0))
    terminal = FakeTerminal()
    terminal.pytest_line = "test_x.py::test_a[arm64] "  # waiting for its PASSED
    display = ProgressDisplay(board, terminal, live=False, clock=lambda: 5.0)
    display.render()
    assert terminal.out == ["<flush>", f"\n{STEP_LINE}\ntest_x.py::test_a[arm64] "]
    display.render()  # nothing new
    assert len(terminal.out) == 2


def test_a_finished_pytest_line_is_not_written_again(tmp_path: Path) -> None:
    board = ProgressBoard(tmp_path)
    board.publish(entry(started=0.0))
    terminal = FakeTerminal()
    terminal.pytest_line = "test_x.py::test_a[arm64] PASSED          [ 50%]"
    ProgressDisplay(board, terminal, live=False, clock=lambda: 5.0).render()
    assert terminal.out == ["<flush>", f"\n{STEP_LINE}\n"]


def test_log_lines_on_an_empty_line(tmp_path: Path) -> None:
    board = ProgressBoard(tmp_path)
    board.publish(entry(started=0.0))
    terminal = FakeTerminal()
    ProgressDisplay(board, terminal, live=False, clock=lambda: 5.0).render()
    assert terminal.out == ["<flush>", f"{STEP_LINE}\n"]


def test_status_line_is_rewritten_and_gives_pytest_its_line_back(tmp_path: Path) -> None:
    board = ProgressBoard(tmp_path)
    board.publish(entry(started=0.0))
    terminal = FakeTerminal()
    terminal.pytest_line = "test_x.py .."
    display = ProgressDisplay(board, terminal, live=True, width=200, clock=lambda: 5.0)
    display.render()
    assert terminal.out == ["<flush>", f"\n{STEP_LINE}"]
    display.render()
    assert terminal.out[2:] == ["<flush>", f"\r\x1b[K{STEP_LINE}"]  # rewritten in place
    with display.paused():
        terminal.out.append("pytest writes")
    assert terminal.out[4:] == ["\r\x1b[Ktest_x.py ..", "pytest writes"]
    terminal.pytest_line = "test_x.py ..."
    display.render()
    assert terminal.out[6:] == ["<flush>", f"\n{STEP_LINE}"]
    display.render(final=True)
    assert terminal.out[-1] == "\r\x1b[Ktest_x.py ..."


def test_status_is_cut_to_the_terminal_width(tmp_path: Path) -> None:
    board = ProgressBoard(tmp_path)
    board.publish(entry(started=0.0))
    terminal = FakeTerminal()
    ProgressDisplay(board, terminal, live=True, width=30, clock=lambda: 5.0).render()
    assert terminal.out[-1] == "multiarch: box linux/arm64..."


def test_a_line_of_dots_is_not_written_again_after_each_log_line(tmp_path: Path) -> None:
    """In a log (no TTY), pytest's dots go on below our lines as they are: the dots line is not
    repeated after every progress line (issue 21.6)."""
    board = ProgressBoard(tmp_path)
    board.publish(entry(started=0.0))
    now = [5.0]
    terminal = FakeTerminal()
    terminal.pytest_line = "test_x.py .."
    display = ProgressDisplay(board, terminal, live=False, clock=lambda: now[0])
    display.render()
    assert terminal.out == ["<flush>", f"\n{STEP_LINE}\n"]
    # Nothing from pytest since: the next line goes right below, no empty line between.
    board.publish(entry(started=0.0, step="[3/3] COPY a /a"))
    now[0] = 9.0
    display.render()
    assert terminal.out[2:] == ["<flush>", "multiarch: box linux/arm64 (QEMU) 9s [3/3] COPY a /a\n"]
    # pytest wrote a dot below them: our next line starts a line of its own.
    terminal.pytest_line = "test_x.py ..."
    board.publish(entry(state="built", seconds=12.0, step=""))
    now[0] = 12.0
    display.render()
    assert terminal.out[4:] == ["<flush>", "\nmultiarch: box linux/arm64 (QEMU) built in 12.0s\n"]
    assert not any("test_x.py" in text for text in terminal.out)
