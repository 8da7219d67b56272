"""Pools of engines (``--engine amd64=a,b``): the map's grammar (every form of one engine per
platform still reads as before), the workers' engines (one engine of each pool per worker), the
scheduler's spread over a pool's engines, and a worker moving to the pool's next engine when its
own stops answering. No engine is asked anything here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.engine.endpoints import (
    EngineEndpoint,
    EngineRef,
    parse_engine_map,
    parse_engine_pools,
    project_engine_pools,
)
from pytest_multiarch.run.scheduling import (
    assign_engines,
    engine_grouper,
    make_scheduler,
    pool_group,
    staffing,
    worker_number,
)
from pytest_multiarch.runtime.builders import parse_builder_map
from pytest_multiarch.runtime.process import ProcessRuntime
from pytest_multiarch.runtime.settings import Settings

from tests.unit.fakes import make_settings

B = "unix:///run/e12/docker.sock"
C = "tcp://x86c.example:2376"

# ---- the grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["arm64=arm-box"], {"linux/arm64": ("arm-box",)}),
        (
            ["aarch64=arm-box, s390x=tcp://z:2376"],
            {"linux/arm64": ("arm-box",), "linux/s390x": ("tcp://z:2376",)},
        ),
        (
            ["arm64=arm-box", "s390x=tcp://z:2376"],
            {"linux/arm64": ("arm-box",), "linux/s390x": ("tcp://z:2376",)},
        ),
        (["arm64=a,arm64=b"], {"linux/arm64": ("b",)}),  # a later entry replaces, as before
        (["arm64=default"], {"linux/arm64": ("",)}),
        ([" , arm64=a ,"], {"linux/arm64": ("a",)}),
    ],
)
def test_every_map_of_one_engine_per_platform_reads_as_before(
    items: list[str], expected: dict[str, tuple[str, ...]]
) -> None:
    pools = parse_engine_pools(items, "--engine")
    assert {name: tuple(ref.spec for ref in pool) for name, pool in pools.items()} == expected
    assert parse_engine_map(items, "--engine") == {
        name: EngineRef(pool[0]) for name, pool in expected.items()
    }


def test_a_pool_is_a_platform_with_several_engines() -> None:
    pools = parse_engine_pools([f"amd64=default,{B},{C},arm64=arm-box"], "--engine")
    assert pools == {
        "linux/amd64": (EngineRef(), EngineRef(B), EngineRef(C)),
        "linux/arm64": (EngineRef("arm-box"),),
    }
    # Repeated flags, or one; spaces around commas are ignored.
    assert parse_engine_pools([f"amd64=default, {B}", "arm64=arm-box"], "x") == pools | {
        "linux/amd64": (EngineRef(), EngineRef(B))
    }
    # The map of one engine per platform (the CLI's doctor) takes each pool's first.
    assert parse_engine_map([f"amd64={B},default"], "x") == {"linux/amd64": EngineRef(B)}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (f"{B},amd64=default", "Invalid engine mapping 'unix:///run/e12/docker.sock'"),
        ("amd64=default,not a context", "Invalid engine 'not a context'"),
        ("amd64=default,tcp://", "the endpoint has no address"),
        (f"amd64={B},{B}", "named twice in the pool of linux/amd64"),
        ("amd64=default,default", "'default' is named twice"),
        ("sparc=a,b", "Invalid platform 'sparc'"),
    ],
)
def test_bad_pools_name_the_value_and_the_source(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        parse_engine_pools([item], "environment variable MULTIARCH_ENGINES")
    assert "environment variable MULTIARCH_ENGINES" in str(raised.value)


def test_other_maps_keep_one_value_per_platform() -> None:
    # A builder map has no pools: a part without PLATFORM= is still an error there.
    with pytest.raises(ConfigError, match="Invalid builder mapping 'b' from --builder"):
        parse_builder_map(["arm64=a,b"], "--builder")


def test_pyproject_pools(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f'[tool.multiarch.engines]\namd64 = ["default", "{B}"]\narm64 = "a,b"\n')
    assert project_engine_pools(pyproject) == {
        "linux/amd64": (EngineRef(), EngineRef(B)),
        "linux/arm64": (EngineRef("a"), EngineRef("b")),
    }
    for bad in ("amd64 = []", 'amd64 = ["a", 3]', 'amd64 = ["a,b"]', 'amd64 = ["a", "a"]'):
        pyproject.write_text(f"[tool.multiarch.engines]\n{bad}\n")
        with pytest.raises(ConfigError, match=r"\[tool.multiarch.engines\]"):
            project_engine_pools(pyproject)


# ---- each worker's engines ---------------------------------------------------------------------


def test_workers_are_spread_round_robin_over_each_pool() -> None:
    pools = {"linux/amd64": ["", B], "linux/arm64": ["a1", "a2", "a3"]}
    assigned = [assign_engines(pools, n) for n in range(4)]
    assert [a["linux/amd64"] for a in assigned] == ["", B, "", B]
    assert [a["linux/arm64"] for a in assigned] == ["a1", "a2", "a3", "a1"]
    assert assign_engines({}, 3) == {}
    assert [worker_number(w) for w in ("gw0", "gw7", "gw12", "main")] == [0, 7, 12, 0]


AMD64 = lookup("amd64")
ON_B = replace(AMD64, engine=B)
ON_C = replace(AMD64, engine=C, emulated=True)
ENDPOINTS = {B: EngineEndpoint(B, B, id="E12"), C: EngineEndpoint(C, C, id="X86C")}


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MULTIARCH_RUN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/default.sock")
    return tmp_path / "state"


def pooled_settings() -> Settings:
    return make_settings(
        (AMD64, lookup("arm64")),
        Path("/nonexistent/images"),
        endpoints=ENDPOINTS,
        pools={AMD64.name: (AMD64, ON_B, ON_C)},
    )


def test_a_worker_sees_its_platforms_on_its_engines() -> None:
    settings = pooled_settings()
    assert settings.pool(AMD64) == (AMD64, ON_B, ON_C)
    assert settings.pool(lookup("arm64")) == (lookup("arm64"),)
    mine = settings.for_engines({AMD64.name: C})
    assert [p.engine for p in mine.platforms] == [C, ""]
    assert mine.platforms[0].emulated  # as measured on that engine by the controller
    assert mine.engines == {AMD64.name: C}
    assert mine.pools == settings.pools
    assert settings.for_engines({}) == settings
    # Shipped to workers: the pools survive the trip.
    back = Settings.from_workerinput(settings.to_workerinput())
    assert [p.engine for p in back.pools[AMD64.name]] == ["", B, C]


def test_a_process_moves_to_the_pools_next_engine_that_answers() -> None:
    runtime = ProcessRuntime(pooled_settings().for_engines({AMD64.name: B}))
    on_b = runtime.settings.platforms[0]
    assert runtime.serving(on_b) is on_b
    # Every engine of a pool is the run's (swept at its end).
    assert [e.endpoint.spec for e in runtime.engines()] == ["", B, C]
    for engine in runtime.engines():  # no engine is asked anything here: each one answers
        engine.watch.preflight = lambda: None  # type: ignore[method-assign]
    runtime.engine_for(on_b).watch.declare("connection refused")
    runtime.engine_for(ON_C).watch.declare("connection refused")
    moved = runtime.fail_over(on_b)
    assert moved is not None
    assert moved.engine == ""  # C is gone too: round to the first
    assert runtime.serving(replace(on_b, timeout_factor=3.0)).engine == ""
    assert runtime.serving(replace(on_b, timeout_factor=3.0)).timeout_factor == 3.0
    runtime.engine_for(AMD64).watch.declare("connection refused")
    assert runtime.fail_over(moved) is None  # nothing left: its tests fail as before
    assert runtime.fail_over(lookup("arm64")) is None  # not a pool


# ---- the scheduler's spread --------------------------------------------------------------------


def test_staffing_is_counted_per_engine_of_a_pool() -> None:
    pool = pool_group(["", B])
    busy = Counter({"": 2, B: 1, "arm-box": 1})
    # This worker works for B in the pool: one other worker is on B, two on the default engine.
    assert staffing([pool, "arm-box", ""], {pool: B}, busy) == Counter(
        {pool: 1, "arm-box": 1, "": 2}
    )
    assert staffing([pool], {pool: ""}, busy) == Counter({pool: 2})
    assert pool not in ("", B)  # never an engine's own name


@dataclass(frozen=True)
class FakeGateway:
    id: str


@dataclass(eq=False)
class FakeNode:
    workerinput: dict[str, Any]
    sent: list[int] = field(default_factory=list)
    shutting_down: bool = False
    gateway: FakeGateway = FakeGateway("gw")

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent += indices

    def shutdown(self) -> None:
        self.shutting_down = True


class FakeXdistConfig:
    def getvalue(self, name: str) -> Any:
        return ["4*popen"] if name == "tx" else None

    def getoption(self, name: str) -> Any:
        return None


def test_a_pools_tests_are_spread_over_its_engines() -> None:
    """16 one-second amd64 tests, 4 workers, a pool of two engines: each engine runs half."""
    pools = {AMD64.name: ["", B]}
    group = pool_group(pools[AMD64.name])
    collection = [f"t.py::test_sleep[amd64-{i}]" for i in range(16)]
    scheduler = make_scheduler(
        FakeXdistConfig(),
        None,
        engine_grouper({"amd64": group}),
        None,
        lambda node: {group: node.workerinput["multiarch_engines"][AMD64.name]},
    )
    nodes = [FakeNode({"multiarch_engines": assign_engines(pools, n)}) for n in range(4)]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)
    scheduler.schedule()
    ran: Counter[str] = Counter()
    while any(n.sent for n in nodes):
        for node in nodes:
            if node.sent:
                index = node.sent.pop(0)
                ran[node.workerinput["multiarch_engines"][AMD64.name]] += 1
                scheduler.mark_test_complete(node, index, 1.0)
    assert ran == Counter({"": 8, B: 8})
