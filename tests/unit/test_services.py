"""Service containers (pytest_multiarch.runtime.services) without an engine: the image.toml
``[wait]`` table as wait strategies, the strategies against stand-in containers, and the
testcontainers subclass: its run arguments, its host, its plain error for a command that has
ended, and no change to testcontainers' process-wide configuration."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, ImageNotFound
from pytest_multiarch.core.images import ImageSpec, WaitSpec
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.engine.labels import Labels
from pytest_multiarch.runtime import services
from pytest_multiarch.runtime.services import (
    ContainerExited,
    ContainerNotReady,
    Deadline,
    ExitedEarly,
    HttpWait,
    LogWait,
    MultiarchContainer,
    PortWait,
    default_service_host,
    make_container,
    readiness,
)
from testcontainers.core.config import testcontainers_config

ARM64 = lookup("arm64")


class FakeEngine:
    """What MultiarchContainer reads of an EngineApi: no connection is made."""

    api_version = "1.45"
    environment = None


# Given the API version, a client asks the engine nothing until it is used.
ENGINE: Any = FakeEngine()


class Stand:
    """A stand-in started container: ``states`` are returned one per ``state()`` call (the last
    one repeats), ``logs`` is what it printed so far."""

    def __init__(self, *states: tuple[str, int], logs: bytes = b"") -> None:
        self._states: Iterator[tuple[str, int]] = iter(states)
        self._last = states[-1]
        self.logs = logs
        self.calls = 0

    def state(self) -> tuple[str, int]:
        self.calls += 1
        self._last = next(self._states, self._last)
        return self._last

    def get_logs(self) -> tuple[bytes, bytes]:
        return self.logs, b""

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def get_exposed_port(self, port: int) -> int:
        return 1  # nothing listens there


def wait(strategy: Any, stand: Stand, seconds: float = 5, cancelled: Any = None) -> None:
    strategy.wait(stand, Deadline.after(seconds), cancelled)


def test_each_wait_table_becomes_its_strategy() -> None:
    (log,) = readiness(WaitSpec(log="ready"))
    (http,) = readiness(WaitSpec(http="/health", port=8080))
    (port,) = readiness(WaitSpec(port=5432))
    (none,) = readiness(WaitSpec())
    assert isinstance(log, LogWait)
    assert log.describe() == "for log line matching 'ready'"
    assert isinstance(http, HttpWait)
    assert http.describe() == "for HTTP /health on port 8080"
    assert type(port) is PortWait
    assert port.describe() == "for port 5432"
    assert isinstance(none, ExitedEarly)
    assert none.describe() == ""


def test_a_log_wait_returns_once_the_line_is_printed() -> None:
    stand = Stand(("running", 0))
    strategy = LogWait(r"listening on \d+")
    stand.logs = b"starting\nlistening on 80\n"
    wait(strategy, stand)
    assert stand.calls == 1


def test_a_log_line_printed_before_exiting_counts() -> None:
    wait(LogWait("ready"), Stand(("exited", 0), logs=b"ready\n"))


def test_an_exit_before_ready_fails_with_the_code_and_the_logs() -> None:
    stand = Stand(("running", 0), ("exited", 3), logs=b"fatal: config missing\n")
    with pytest.raises(ContainerNotReady) as caught:
        wait(PortWait(5432), stand)
    message = str(caught.value)
    assert "container exited with code 3 before it was ready (waiting for port 5432)" in message
    assert message.endswith("fatal: config missing")


def test_the_deadline_ends_a_wait_with_the_scaled_limit_and_a_hint() -> None:
    with pytest.raises(ContainerNotReady, match=r"container not ready after 0\.05s"):
        wait(LogWait("never"), Stand(("running", 0), logs=b"booting"), seconds=0.05)


def test_a_cancelled_start_stops_waiting() -> None:
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(ContainerNotReady, match="abandoned"):
        wait(LogWait("never"), Stand(("running", 0)), cancelled=cancelled)


def test_without_wait_only_an_error_exit_fails_the_start() -> None:
    wait(ExitedEarly(), Stand(("running", 0)))
    wait(ExitedEarly(), Stand(("exited", 0)))  # fails when a test uses it: ContainerExited
    with pytest.raises(ContainerNotReady, match="exited with code 2 right after start"):
        wait(ExitedEarly(), Stand(("exited", 2), logs=b"boom"))


def spec(**changes: Any) -> ImageSpec:
    return dataclasses.replace(ImageSpec("svc", Path("images/svc")), **changes)


LABELS = Labels("run1", "owner1", keep=False)


def test_every_run_argument_is_given_in_one_place() -> None:
    made = make_container(
        "pytest-multiarch/svc:1-arm64",
        spec(ports=(80, 443), command=("serve", "--fast"), env={"A": "1"}),
        ARM64,
        LABELS,
        "127.0.0.1",
        ENGINE,
        "127.0.0.1",
    )
    assert made._kwargs == {"platform": "linux/arm64", "labels": LABELS.as_dict()}
    assert made.ports == {"80": ("127.0.0.1", None), "443": ("127.0.0.1", None)}
    assert made._command == ["serve", "--fast"]
    assert made.env == {"A": "1"}
    assert made.image_name == "svc"


def test_the_reference_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(testcontainers_config, "hub_image_name_prefix", "mirror.example/")
    made = MultiarchContainer("pytest-multiarch/svc:1-arm64", ARM64, labels={}, engine=ENGINE)
    assert made.image == "pytest-multiarch/svc:1-arm64"


def test_each_container_carries_its_host_and_testcontainers_config_is_left_alone() -> None:
    before = (
        testcontainers_config.tc_host_override,
        testcontainers_config.connection_mode_override,
    )
    local = MultiarchContainer("a", ARM64, labels={}, engine=ENGINE, service_host="::1")
    remote = MultiarchContainer(
        "b",
        ARM64,
        labels={},
        engine=ENGINE,
        service_host="arm-box",
        bind_address="0.0.0.0",  # noqa: S104 - the remote machine's ports
        ports=(80,),
    )
    assert local.get_container_host_ip() == "::1"
    assert remote.get_container_host_ip() == "arm-box"
    assert remote.ports == {"80": ("0.0.0.0", None)}  # noqa: S104
    after = (testcontainers_config.tc_host_override, testcontainers_config.connection_mode_override)
    assert after == before
    assert testcontainers_config.ryuk_disabled  # set once per process: cannot be pulled offline


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("::", "::1")],  # noqa: S104
)
def test_the_default_local_engine_is_reached_at_the_bind_address(
    monkeypatch: pytest.MonkeyPatch, bind: str, expected: str
) -> None:
    for name in ("DOCKER_HOST", "TC_HOST", "TESTCONTAINERS_HOST_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TESTCONTAINERS_CONNECTION_MODE", raising=False)
    assert default_service_host(bind) == expected


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DOCKER_HOST", "tcp://arm-box:2376", ""),  # testcontainers' own: the engine's host
        ("TESTCONTAINERS_CONNECTION_MODE", "gateway_ip", ""),  # the user's mode decides
        ("TESTCONTAINERS_CONNECTION_MODE", "docker_host", "127.0.0.1"),
        ("TC_HOST", "10.0.0.7", "10.0.0.7"),  # the user's host
    ],
)
def test_the_users_testcontainers_settings_are_followed(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    for name in ("DOCKER_HOST", "TC_HOST", "TESTCONTAINERS_HOST_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TESTCONTAINERS_CONNECTION_MODE", raising=False)
    monkeypatch.setenv(variable, value)
    assert default_service_host("127.0.0.1") == expected


class Wrapped:
    """A docker-py Container stand-in whose command has ended."""

    id = "c0ffee"

    def __init__(self, status: str, code: int, output: bytes) -> None:
        self.attrs = {"State": {"Status": status, "ExitCode": code}}
        self.output = output

    def reload(self) -> None:
        pass

    def exec_run(self, **_: Any) -> Any:
        raise APIError("409 Client Error: Conflict (container c0ffee is not running)")

    def logs(self, stdout: bool = True, stderr: bool = True) -> bytes:
        return self.output if stdout else b""


def test_using_a_container_whose_command_ended_says_so_plainly() -> None:
    made = MultiarchContainer(
        "pytest-multiarch/quick:1", ARM64, labels={}, image_name="quick", engine=ENGINE
    )
    made._container = Wrapped("exited", 0, b"quick-said-this\n")  # type: ignore[assignment]
    with pytest.raises(ContainerExited) as caught:
        made.exec(["true"])
    message = str(caught.value)
    assert message.startswith("container of 'quick' exited (code 0) before the test used it")
    assert message.endswith("quick-said-this")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_an_engine_error_of_a_running_container_stays_what_it_is() -> None:
    made = MultiarchContainer(
        "pytest-multiarch/svc:1", ARM64, labels={}, image_name="svc", engine=ENGINE
    )
    made._container = Wrapped("running", 0, b"")  # type: ignore[assignment]
    with pytest.raises(APIError):
        made.exec(["true"])


def test_exec_uname_is_none_when_nothing_runs_any_more() -> None:
    made = MultiarchContainer(
        "pytest-multiarch/quick:1", ARM64, labels={}, image_name="quick", engine=ENGINE
    )
    made._container = Wrapped("exited", 0, b"")  # type: ignore[assignment]
    assert services.exec_uname(made) is None


class Removals(FakeEngine):
    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove_later(self, container_id: str) -> None:
        self.removed.append(container_id)


def test_a_removal_is_handed_to_the_containers_engine() -> None:
    engine: Any = Removals()
    made = MultiarchContainer("pytest-multiarch/svc:1", ARM64, labels={}, engine=engine)
    made._container = Wrapped("running", 0, b"")  # type: ignore[assignment]
    services.stop_container(made)
    assert engine.removed == ["c0ffee"]
    assert made._container is None
    services.stop_container(made)  # a second time: nothing left to remove
    assert engine.removed == ["c0ffee"]


def test_readiness_runs_the_strategies_as_testcontainers_wait_strategy() -> None:
    made = MultiarchContainer("pytest-multiarch/svc:1", ARM64, labels={}, engine=ENGINE)
    made._container = Wrapped("running", 0, b"booting\nready\n")  # type: ignore[assignment]
    made.waiting_for(services.Readiness(readiness(WaitSpec(log="ready")), 5))
    assert made._wait_strategy is not None
    made._wait_strategy.wait_until_ready(made)  # returns: the line is there
    with pytest.raises(ContainerNotReady, match=r"not ready after 0\.05s"):
        services.Readiness([LogWait("never")], 0.05).wait_until_ready(made)


class Images:
    """docker-py's image collection, of an engine that does not have the image."""

    def __init__(self) -> None:
        self.pulls: list[tuple[str, str]] = []

    def get(self, reference: str) -> Any:
        raise ImageNotFound(reference)

    def pull(self, reference: str, platform: str = "") -> None:
        self.pulls.append((reference, platform))


def test_a_missing_image_is_pulled_for_the_containers_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = MultiarchContainer("registry.example/svc:1", ARM64, labels={}, engine=ENGINE)
    images = Images()
    client: Any = type("Client", (), {"images": images})()
    monkeypatch.setattr(made.get_docker_client(), "client", client)
    made._configure()  # testcontainers' hook, called by start() before its own pull and create
    assert images.pulls == [("registry.example/svc:1", "linux/arm64")]
