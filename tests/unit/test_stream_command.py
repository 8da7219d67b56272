"""stream_command with real tiny programs: lines arrive as they are written, the errors and the
time limit are those of run_command, and the kept output is bounded."""

from __future__ import annotations

import time

import pytest
from pytest_multiarch.core.commands import stream_command
from pytest_multiarch.core.errors import CommandError, CommandTimeout


def test_lines_of_both_streams_arrive_in_order_of_writing() -> None:
    seen: list[str] = []
    script = "echo one; echo two >&2; echo three"
    result = stream_command(["sh", "-c", script], timeout=10, on_line=seen.append)
    assert sorted(seen) == ["one", "three", "two"]
    assert seen.index("one") < seen.index("three")
    assert result.stdout == "one\nthree\n"
    assert result.stderr == "two\n"
    assert result.ok


def test_a_line_is_seen_before_the_program_ends() -> None:
    arrivals: list[float] = []
    started = time.monotonic()
    stream_command(
        ["sh", "-c", "echo early; sleep 2; echo late"],
        timeout=10,
        on_line=lambda _line: arrivals.append(time.monotonic() - started),
    )
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] > 1.0  # the first came while the program still slept


def test_failure_raises_command_error_with_the_output() -> None:
    with pytest.raises(CommandError) as caught:
        stream_command(["sh", "-c", "echo bad >&2; exit 3"], timeout=10, on_line=lambda _: None)
    assert caught.value.returncode == 3
    assert "bad" in caught.value.stderr


def test_unchecked_failure_returns_the_status() -> None:
    result = stream_command(["sh", "-c", "exit 4"], timeout=10, check=False, on_line=print)
    assert result.returncode == 4


def test_timeout_kills_the_program_and_keeps_what_it_wrote() -> None:
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        stream_command(["sh", "-c", "echo partial; exec sleep 30"], timeout=1, on_line=print)
    assert time.monotonic() - started < 10
    assert "partial" in caught.value.stdout


def test_missing_program_is_a_command_error() -> None:
    with pytest.raises(CommandError) as caught:
        stream_command(["/nonexistent/prog"], timeout=5, on_line=print)
    assert caught.value.returncode == 127


def test_input_is_sent() -> None:
    result = stream_command(["cat"], timeout=10, input_text="hello\n", on_line=lambda _: None)
    assert result.stdout == "hello\n"


def test_only_the_tail_is_kept() -> None:
    seen: list[str] = []
    result = stream_command(
        ["sh", "-c", "i=0; while [ $i -lt 50 ]; do echo line$i; i=$((i+1)); done"],
        timeout=10,
        on_line=seen.append,
        keep_lines=5,
    )
    assert len(seen) == 50
    assert result.stdout.splitlines() == [f"line{i}" for i in range(45, 50)]
