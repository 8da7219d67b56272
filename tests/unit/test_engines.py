"""Platforms on engines of their own: the engine map and where it comes from, endpoints, what is
native where, the docker CLI prefix, the matrix header, requires_native's inputs and the
scheduler that shares xdist workers between engines."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.engine.docker import DOCKER, docker
from pytest_multiarch.engine.endpoints import (
    EngineEndpoint,
    EngineRef,
    endpoint_hostname,
    engine_of,
    implicit_default_engine,
    parse_endpoint,
    parse_engine_map,
    project_engine_map,
    remote_emulator,
)
from pytest_multiarch.model.records import PlatformFacts, RunReport
from pytest_multiarch.reports.summary import column_title, format_lines, markdown
from pytest_multiarch.run.options import resolve_layers
from pytest_multiarch.run.scheduling import choose_group, engine_grouper, make_scheduler
from pytest_multiarch.run.settings import engine_map, on_engine
from pytest_multiarch.runtime.settings import Settings

from tests.unit.fakes import FakeConfig, make_settings

E12 = "unix:///run/pytest-multiarch/e12/docker.sock"
EVERYWHERE = "0.0.0.0"  # noqa: S104 - an address the code maps, nothing binds here


@pytest.fixture(autouse=True)
def no_engine_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MULTIARCH_ENGINES", raising=False)


# ---- the map ----------------------------------------------------------------------------------


def test_map_entries_name_platforms_by_any_alias() -> None:
    found = parse_engine_map(["aarch64=arm-box, s390x=tcp://z.example:2376"], "--engine")
    assert found == {
        "linux/arm64": EngineRef("arm-box"),
        "linux/s390x": EngineRef("tcp://z.example:2376"),
    }


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("arm64", "expected PLATFORM=ENDPOINT"),
        ("sparc=arm-box", "Invalid platform 'sparc'"),
        ("arm64=tcp://", "the endpoint has no address"),
        ("arm64=not a context", "expected a Docker context name or an endpoint"),
    ],
)
def test_bad_entries_name_the_value_and_the_source(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        parse_engine_map([item], "environment variable MULTIARCH_ENGINES")
    assert "environment variable MULTIARCH_ENGINES" in str(raised.value)


def test_project_table(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    assert project_engine_map(pyproject) == {}
    pyproject.write_text('[tool.multiarch.engines]\narm64 = "arm-box"\n')
    assert project_engine_map(pyproject) == {"linux/arm64": EngineRef("arm-box")}
    pyproject.write_text("[tool.multiarch.engines]\narm64 = 3\n")
    with pytest.raises(ConfigError, match=r"\[tool.multiarch.engines\]"):
        project_engine_map(pyproject)


def test_later_places_override_single_platforms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.multiarch.engines]\narm64 = "arm-box"\ns390x = "z-box"\nppc64le = "p-box"\n'
    )
    config = FakeConfig(
        tmp_path,
        options={"multiarch_engines": ["s390x=tcp://z.example:2376", "ppc64le=default"]},
        ini={"multiarch_engines": ["arm/v7=armhf-box"]},
    )
    monkeypatch.setenv("MULTIARCH_ENGINES", "arm64=ssh://ci@arm-box,arm/v7=ctx7")
    engines, where = engine_map(config)  # type: ignore[arg-type]
    assert engines == {
        "linux/arm64": "ssh://ci@arm-box",
        "linux/s390x": "tcp://z.example:2376",
        "linux/arm/v7": "ctx7",
    }
    assert where["linux/arm64"] == "environment variable MULTIARCH_ENGINES"
    assert where["linux/s390x"] == "--engine"
    assert where["linux/ppc64le"] == "--engine"  # mapped back to the default engine there
    assert where["linux/arm/v7"] == "environment variable MULTIARCH_ENGINES"


def test_option_layers_lowest_priority_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = FakeConfig(tmp_path, options={"multiarch_engines": ["a=b"]}, ini={})
    monkeypatch.setenv("MULTIARCH_ENGINES", "c=d")
    config.ini["multiarch_engines"] = ["e=f", " "]
    layers = resolve_layers(config, "engine")  # type: ignore[arg-type]
    assert [(layer.value, layer.source) for layer in layers] == [
        (["e=f"], "ini option multiarch_engines"),
        (["c=d"], "environment variable MULTIARCH_ENGINES"),
        (["a=b"], "--engine"),
    ]


# ---- engines and endpoints --------------------------------------------------------------------


def test_cli_flags_select_the_engine() -> None:
    assert docker("ps") == [DOCKER, "ps"]
    assert docker("ps", engine=EngineRef(E12)) == [DOCKER, "--host", E12, "ps"]
    assert docker("buildx", "ls", engine=EngineRef("arm-box")) == [
        DOCKER,
        "--context",
        "arm-box",
        "buildx",
        "ls",
    ]
    assert engine_of(lookup("arm64")) is None
    assert engine_of(replace(lookup("arm64"), engine="arm-box")) == EngineRef("arm-box")


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ("", "default"),
        ("arm-box", "arm-box"),
        (E12, "e12"),
        ("tcp://z.example:2376", "z.example"),
        ("ssh://ci@arm-box", "arm-box"),
    ],
)
def test_labels(spec: str, label: str) -> None:
    assert EngineRef(spec).label == label
    assert parse_endpoint(spec or "default", "x") == EngineRef(spec)


@pytest.mark.parametrize(
    ("host", "local", "service_host", "publish"),
    [
        (E12, True, "127.0.0.1", "127.0.0.1"),
        ("tcp://127.0.0.1:2375", True, "127.0.0.1", "127.0.0.1"),
        ("tcp://arm-box.example:2376", False, "arm-box.example", EVERYWHERE),
        ("ssh://ci@arm-box:2222", False, "arm-box", EVERYWHERE),
    ],
)
def test_where_published_ports_are(host: str, local: bool, service_host: str, publish: str) -> None:
    found = EngineEndpoint("x", host)
    assert found.is_local is local
    assert found.service_host(EVERYWHERE) == service_host
    assert found.publish_address("127.0.0.1") == publish
    # An explicit non-loopback bind address is kept on every engine.
    assert found.publish_address("10.1.2.3") == "10.1.2.3"


def test_hostnames_of_endpoints() -> None:
    assert endpoint_hostname("tcp://[fd00::1]:2376") == "fd00::1"
    assert endpoint_hostname("ssh://ci@arm-box") == "arm-box"
    assert endpoint_hostname("tcp://z:2376/") == "z"


def test_sdk_environment_carries_tls() -> None:
    plain = EngineEndpoint("x", "tcp://z:2375")
    assert plain.sdk_environment() == {"DOCKER_HOST": "tcp://z:2375"}
    tls = EngineEndpoint("ctx", "tcp://z:2376", "/c/tls/docker", True)
    assert tls.sdk_environment() == {
        "DOCKER_HOST": "tcp://z:2376",
        "DOCKER_CERT_PATH": "/c/tls/docker",
        "DOCKER_TLS_VERIFY": "1",
    }


def test_native_or_emulated_is_measured_on_the_engine() -> None:
    arm64 = replace(lookup("arm64"), emulated=True)
    arm_box = EngineEndpoint("arm-box", "ssh://ci@arm-box", architecture="aarch64")
    x86_box = EngineEndpoint("x86", "tcp://x86:2376", architecture="x86_64")
    down = EngineEndpoint("gone", "tcp://gone:2376", problem="no answer")
    endpoints = {"arm-box": arm_box, "x86": x86_box, "gone": down}
    assert on_engine(arm64, "", endpoints) is arm64
    native = on_engine(arm64, "arm-box", endpoints)
    assert (native.engine, native.emulated) == ("arm-box", False)
    assert on_engine(arm64, "x86", endpoints).emulated
    assert on_engine(arm64, "gone", endpoints).emulated
    # The engine is not part of a platform's identity: test ids and equality stay.
    assert replace(native, emulated=True) == arm64
    assert remote_emulator(native, arm_box) == "native on arm-box, aarch64"
    assert "not visible from here" in remote_emulator(on_engine(arm64, "x86", endpoints), x86_box)
    assert "did not answer" in remote_emulator(arm64, down)


def test_settings_carry_the_map_to_workers(tmp_path: Path) -> None:
    arm64 = replace(lookup("arm64"), engine="arm-box", emulated=False)
    settings = make_settings(
        (lookup("amd64"), arm64),
        tmp_path,
        engines={"linux/arm64": "arm-box"},
        endpoints={
            "arm-box": EngineEndpoint("arm-box", "ssh://ci@arm-box", architecture="aarch64")
        },
    )
    back = Settings.from_workerinput(settings.to_workerinput())
    assert back == settings
    assert back.platforms[1].engine == "arm-box"
    assert back.endpoint(back.platforms[1]) == settings.endpoints["arm-box"]
    assert back.endpoint(back.platforms[0]) is None
    assert back.factor(back.platforms[1]) == 1.0  # native on its engine: no emulation factor


# ---- reports ---------------------------------------------------------------------------------


def _report(engines: bool) -> RunReport:
    report = RunReport(
        platforms=[
            PlatformFacts("linux/amd64", "amd64", True, "native"),
            PlatformFacts("linux/arm64", "arm64", True, "native on arm-box", "", "arm-box")
            if engines
            else PlatformFacts("linux/arm64", "arm64", False, "qemu-aarch64", "7.2"),
            PlatformFacts("linux/s390x", "s390x", False, "qemu-s390x", "7.2"),
        ]
    )
    for short in ("amd64", "arm64", "s390x"):
        report.record_phase(f"t.py::t[{short}]", "web", short, "call", "passed", 1.0, False)
    return report


def test_matrix_header_says_how_and_where_once_engines_are_mapped() -> None:
    mapped = _report(engines=True)
    assert [column_title(mapped, p) for p in ("amd64", "arm64", "s390x")] == [
        "amd64 native@default",
        "arm64 native@arm-box",
        "s390x qemu@default",
    ]
    assert "arm64 native@arm-box" in format_lines(mapped)[0]
    assert "| arm64 native@arm-box |" in markdown(mapped)
    plain = _report(engines=False)
    assert format_lines(plain)[0].split() == ["image", "amd64", "arm64", "s390x"]


# ---- scheduling --------------------------------------------------------------------------------


def test_tests_are_grouped_by_their_platforms_engine() -> None:
    group_of = engine_grouper({"amd64": "", "arm64": "arm-box", "arm-v7": "arm-box", "s390x": ""})
    assert group_of("t.py::test_x[arm64]") == "arm-box"
    assert group_of("t.py::test_x[arm-v7-2]") == "arm-box"
    assert group_of("t.py::test_x[3-arm64]") == "arm-box"
    assert group_of("t.py::test_x[s390x]") == ""
    assert group_of("t.py::test_x") == ""
    assert group_of("t.py::test_x[armchair]") == ""


def test_a_worker_stays_with_its_engine_then_joins_the_least_staffed() -> None:
    groups = ["slow", "slow", "slow", "fast", "fast", "native"]
    group = groups.__getitem__
    pending = [0, 1, 2, 3, 4, 5]
    assert choose_group(pending, group, "fast", Counter()) == 3  # its own engine first
    assert choose_group(pending, group, "", Counter()) == 0  # "" is an engine too (default)
    assert choose_group(pending, group, None, Counter({"slow": 1})) == 3
    assert choose_group(pending, group, None, Counter({"slow": 1, "fast": 1})) == 5
    assert choose_group([1, 2], group, "fast", Counter({"slow": 5})) == 0  # only slow ones left


@dataclass(frozen=True)
class FakeGateway:
    id: str


@dataclass(eq=False)
class FakeNode:
    sent: list[int] = field(default_factory=list)
    shutting_down: bool = False
    gateway: FakeGateway = FakeGateway("gw")

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent += indices

    def shutdown(self) -> None:
        self.shutting_down = True


class FakeXdistConfig:
    def getvalue(self, name: str) -> Any:
        return ["2*popen"] if name == "tx" else None

    def getoption(self, name: str) -> Any:
        return None


# Collection order puts eight emulated tests first, as a module of s390x tests would; each
# takes ten times as long as a native arm64 test.
COLLECTION = [f"t.py::slow[s390x-{i}]" for i in range(8)] + [
    f"t.py::fast[arm64-{i}]" for i in range(8)
]
GROUP_OF = engine_grouper({"s390x": "", "arm64": "arm-box"})


def _simulate(scheduler: Any) -> tuple[float, list[int]]:
    """Two workers run what they are sent, in order; (when the last arm64 test finished,
    every test index run)."""
    nodes = [FakeNode(), FakeNode()]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, COLLECTION)
    scheduler.schedule()
    clock = dict.fromkeys(range(len(nodes)), 0.0)
    running = dict.fromkeys(range(len(nodes)), 0)
    fast_done = 0.0
    ran: list[int] = []
    while True:
        busy = [n for n in range(len(nodes)) if running[n] < len(nodes[n].sent)]
        if not busy:
            return fast_done, ran
        n = min(busy, key=lambda k: clock[k])
        index = nodes[n].sent[running[n]]
        running[n] += 1
        cost = 10.0 if "slow" in COLLECTION[index] else 1.0
        clock[n] += cost
        if "fast" in COLLECTION[index]:
            fast_done = max(fast_done, clock[n])
        ran.append(index)
        scheduler.mark_test_complete(nodes[n], index, cost)


def test_a_native_engine_is_not_queued_behind_emulated_tests() -> None:
    from xdist.scheduler import LoadScheduling

    by_engine, ran = _simulate(make_scheduler(FakeXdistConfig(), None, GROUP_OF))
    assert sorted(ran) == list(range(len(COLLECTION)))  # each test once
    in_collection_order, ran_plain = _simulate(LoadScheduling(FakeXdistConfig(), None))
    assert sorted(ran_plain) == list(range(len(COLLECTION)))
    # xdist's own order sends the fast tests only after every slow one has been handed out.
    assert in_collection_order >= 40
    assert by_engine == 8.0  # one worker ran them back to back, from the start
    # Within an engine, collection order is kept.
    fast = [i for i in ran if "fast" in COLLECTION[i]]
    assert fast == sorted(fast)


# ---- the docker CLI's own default engine, when the SDK would not find it -----------------------


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, ""),
        ({"DOCKER_HOST": "unix:///var/run/docker.sock"}, ""),
        ({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, ""),
        ({"DOCKER_HOST": "tcp://arm-box:2376"}, "tcp://arm-box:2376"),
        ({"DOCKER_HOST": "ssh://ci@arm-box"}, "ssh://ci@arm-box"),
        ({"DOCKER_CONTEXT": "arm-box"}, "arm-box"),
        ({"DOCKER_CONTEXT": "default"}, ""),
        # DOCKER_HOST wins over a context, as in the docker CLI.
        ({"DOCKER_HOST": "unix:///run/user.sock", "DOCKER_CONTEXT": "arm-box"}, ""),
    ],
)
def test_implicit_default_engine_from_the_environment(
    environment: dict[str, str], expected: str, tmp_path: Path
) -> None:
    assert implicit_default_engine(environment, home=tmp_path) == expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('{"currentContext": "arm-box"}', "arm-box"),
        ('{"currentContext": "default"}', ""),
        ('{"auths": {}}', ""),
        ("not json", ""),  # the CLI would complain; the run goes on with this machine's engine
        ("[]", ""),
    ],
)
def test_implicit_default_engine_from_the_clis_current_context(
    config: str, expected: str, tmp_path: Path
) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(config)
    assert implicit_default_engine({}, home=tmp_path) == expected
    # DOCKER_CONFIG moves the CLI's config directory, and DOCKER_CONTEXT overrides it.
    assert implicit_default_engine({"DOCKER_CONFIG": str(tmp_path / ".docker")}) == expected
    assert implicit_default_engine({"DOCKER_CONTEXT": "z"}, home=tmp_path) == "z"


def test_an_exec_format_error_on_another_machine_does_not_ask_this_hosts_binfmt_misc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_multiarch.runtime.oneshot import _exec_format_error

    def not_here(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("this host's emulators say nothing about another machine")

    monkeypatch.setattr("pytest_multiarch.core.emulation.check_emulator", not_here)
    message = _exec_format_error("img", lookup("s390x"), {"DOCKER_HOST": "ssh://ci@z-box"})
    assert message == (
        "img (linux/s390x) failed with 'exec format error' on the engine at ssh://ci@z-box: no "
        "working emulator for linux/s390x on that machine (its binfmt_misc handlers cannot be "
        "seen from here); register QEMU's handlers there, or map this platform to an engine "
        "that runs it"
    )
