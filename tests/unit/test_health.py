"""The engine watch without an engine: a fake ping, a marker file in a temporary directory."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
import requests
import urllib3
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.engine.health import (
    INTERRUPT_SIGNAL,
    RECHECK_TIMEOUT,
    EngineStoppedAnswering,
    EngineWatch,
    describe_cause,
)

ENDPOINT = "unix:///run/test/docker.sock"


class FakePing:
    """Answers as told; counts how often it was asked."""

    def __init__(self, answer: str = "") -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self, timeout: float) -> str:
        self.calls += 1
        return self.answer


def _watch(tmp_path: Path, ping: FakePing, **options: float) -> EngineWatch:
    return EngineWatch(ENDPOINT, tmp_path / "run" / "engine-dead", pinger=ping, **options)


def test_the_message_names_the_endpoint_and_the_cause() -> None:
    error = EngineStoppedAnswering(ENDPOINT, "connection refused")
    assert str(error).startswith(f"Docker engine at {ENDPOINT} stopped answering (connection")
    assert isinstance(error, MultiarchError)


def test_a_lost_podman_engine_is_named_as_podman_for_every_process(tmp_path: Path) -> None:
    podman_socket = "unix:///run/podman/podman.sock"
    marker = tmp_path / "run" / "engine-dead"
    watch = EngineWatch(
        podman_socket, marker, pinger=FakePing("connection refused"), engine=lambda: "Podman 4.3.1"
    )
    lost = watch.alive()
    assert lost is not None
    assert str(lost).startswith(f"Podman engine at {podman_socket} stopped answering (connection")
    assert f"Check Podman 4.3.1's API service (`podman --url {podman_socket} info`" in str(lost)
    assert "docker info" not in str(lost)
    # Another process of the run that never learnt what the engine is: the marker tells it.
    other = EngineWatch(podman_socket, marker, pinger=FakePing(""))
    with pytest.raises(EngineStoppedAnswering, match=r"^Podman engine at .*connection refused"):
        other.check()


def test_causes_are_short() -> None:
    refused = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError(
            "Connection aborted.", ConnectionRefusedError(111, "Connection refused")
        )
    )
    assert describe_cause(refused) == "connection refused"
    timed_out = requests.exceptions.ReadTimeout("UnixHTTPConnectionPool: Read timed out.")
    assert describe_cause(timed_out, 3) == "no answer within 3 s"
    assert describe_cause(FileNotFoundError(2, "No such file or directory")) == (
        "no such file or directory"
    )
    assert describe_cause(RuntimeError("")) == "RuntimeError"


def test_a_live_engine_is_not_declared_dead(tmp_path: Path) -> None:
    ping = FakePing("")
    watch = _watch(tmp_path, ping)
    assert watch.alive() is None
    assert watch.dead() is None
    assert not watch.marker.exists()


def test_one_slow_answer_is_not_enough(tmp_path: Path) -> None:
    answers = iter(["no answer within 3 s", ""])
    watch = EngineWatch(ENDPOINT, tmp_path / "dead", pinger=lambda _timeout: next(answers))
    assert watch.alive() is None
    assert not (tmp_path / "dead").exists()


def test_a_dead_engine_is_recorded_for_every_process_of_the_run(tmp_path: Path) -> None:
    ping = FakePing("connection refused")
    watch = _watch(tmp_path, ping)
    lost = watch.alive()
    assert lost is not None
    assert lost.cause == "connection refused"
    # Another process of the run (another watch on the same marker) knows without asking.
    other_ping = FakePing("")
    other = _watch(tmp_path, other_ping)
    with pytest.raises(EngineStoppedAnswering, match="connection refused"):
        other.check()
    with pytest.raises(EngineStoppedAnswering), other.guard():
        pytest.fail("a guarded call on a known-dead engine must not start")
    assert other_ping.calls == 0


def test_the_first_cause_stands(tmp_path: Path) -> None:
    watch = _watch(tmp_path, FakePing())
    watch.declare("connection refused")
    assert str(watch.declare("no answer within 3 s")).count("connection refused") == 1


def test_a_planted_marker_link_is_neither_followed_nor_written(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "engine-dead").symlink_to(victim)
    watch = _watch(tmp_path, FakePing("connection refused"))
    assert watch.dead() is None
    watch.declare("connection refused")
    assert victim.read_text() == "precious"


def test_engine_errors_crossing_a_guard_are_translated_when_the_engine_is_gone(
    tmp_path: Path,
) -> None:
    watch = _watch(tmp_path, FakePing("connection refused"))
    refused = requests.exceptions.ConnectionError("Connection aborted.")
    with pytest.raises(EngineStoppedAnswering, match="connection refused"), watch.guard():
        raise refused


def test_errors_of_a_live_engine_pass_unchanged(tmp_path: Path) -> None:
    ping = FakePing("")
    watch = _watch(tmp_path, ping)
    with pytest.raises(MultiarchError, match="no such image"), watch.guard():
        raise MultiarchError("no such image")
    assert ping.calls == 1
    # An assertion in a test is no sign of an engine problem: no ping.
    with pytest.raises(AssertionError), watch.guard():
        raise AssertionError("1 != 2")
    assert ping.calls == 1


def test_interrupts_are_never_hidden(tmp_path: Path) -> None:
    watch = _watch(tmp_path, FakePing("connection refused"))
    with pytest.raises(KeyboardInterrupt), watch.guard():
        raise KeyboardInterrupt


def test_a_frozen_engine_interrupts_the_guarded_call(
    tmp_path: Path, unavailable: Callable[[str], NoReturn]
) -> None:
    """A call that would block for good (an engine that accepts and never answers) is
    interrupted by the watch thread once the engine stops answering its pings."""
    if threading.current_thread() is not threading.main_thread():
        unavailable("signals reach the main thread only: run this test in pytest's main thread")
    previous = signal.getsignal(INTERRUPT_SIGNAL)
    watch = _watch(tmp_path, FakePing("no answer within 3 s"), interval=0.05)
    blocked = threading.Event()
    try:
        with pytest.raises(EngineStoppedAnswering, match="no answer"), watch.guard():
            blocked.wait(30)  # interrupted long before
    finally:
        watch.close()
    assert signal.getsignal(INTERRUPT_SIGNAL) == previous


def test_the_second_ping_after_no_answer_is_short(tmp_path: Path) -> None:
    """Issue 21: a frozen engine is told within seconds, not after two full time limits."""
    asked: list[float] = []

    def frozen(timeout: float) -> str:
        asked.append(timeout)
        return f"no answer within {timeout:g} s"

    watch = EngineWatch(ENDPOINT, tmp_path / "dead", ping_timeout=2.0, pinger=frozen)
    assert watch.alive() is not None
    assert asked == [2.0, RECHECK_TIMEOUT]


def test_the_preflight_declares_a_frozen_engine_once(tmp_path: Path) -> None:
    ping = FakePing("no answer within 1 s")
    watch = _watch(tmp_path, ping)
    lost = watch.preflight()
    assert lost is not None
    assert "no answer" in str(lost)
    assert watch.marker.exists()
    assert ping.calls == 2
    assert watch.preflight() is not None  # known since: no ping
    assert ping.calls == 2


def test_the_preflight_leaves_a_refused_connection_to_the_calls(tmp_path: Path) -> None:
    """An engine that is down is told by the calls themselves, with their own message."""
    ping = FakePing("connection refused")
    watch = _watch(tmp_path, ping)
    assert watch.preflight() is None
    assert not watch.marker.exists()


def test_the_preflight_pings_once_per_watch_when_the_engine_answers(tmp_path: Path) -> None:
    ping = FakePing("")
    watch = _watch(tmp_path, ping)
    assert watch.preflight() is None
    assert watch.preflight() is None
    assert ping.calls == 1
