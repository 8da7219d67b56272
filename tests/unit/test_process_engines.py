"""One Engine per engine in a test process, the default engine included: which engine a platform
gets, the engine's run-state files, its once-per-run sweep, why it cannot be used, the verification
key's engine part and the order engines are closed in. No engine is asked anything here."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.engine.endpoints import EngineEndpoint, EngineRef
from pytest_multiarch.runtime import engine as engine_module
from pytest_multiarch.runtime.process import ProcessRuntime
from pytest_multiarch.runtime.settings import Settings

from tests.unit.fakes import make_settings

AMD64 = lookup("amd64")
ARM64 = replace(lookup("arm64"), engine="arm-box", emulated=False)
S390X = replace(lookup("s390x"), engine="tcp://z.example:2376", emulated=True)
RISCV = replace(lookup("riscv64"), engine="gone")
ARM_BOX = EngineEndpoint(
    "arm-box", "unix:///run/arm-box.sock", id="ARM1", architecture="aarch64", image_store="classic"
)
Z_BOX = EngineEndpoint(
    "tcp://z.example:2376",
    "tcp://z.example:2376",
    id="Z1",
    architecture="s390x",
    image_store="containerd",
)
GONE = EngineEndpoint("gone", "tcp://gone:2376", problem="no answer within 8 s")


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MULTIARCH_RUN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/default.sock")
    return tmp_path / "state"


def settings(**changes: object) -> Settings:
    return make_settings(
        (AMD64, ARM64, S390X, RISCV),
        Path("/nonexistent/images"),
        endpoints={"arm-box": ARM_BOX, "tcp://z.example:2376": Z_BOX, "gone": GONE},
        sources={"engine linux/riscv64": "--engine"},
        **changes,
    )


def test_every_platform_gets_its_engine_once_the_default_engine_included() -> None:
    runtime = ProcessRuntime(settings())
    default = runtime.engine_for(AMD64)
    assert default.endpoint == EngineEndpoint("", "unix:///run/default.sock")
    assert default.endpoint.ref == EngineRef()
    assert runtime.engine_for(ARM64).endpoint is ARM_BOX
    assert runtime.engine_for(lookup("amd64")) is default  # the same engine, the same object
    assert runtime.engine_for(replace(lookup("arm"), engine="arm-box")) is runtime.engine_for(ARM64)
    assert [e.endpoint.spec for e in runtime.engines()] == [
        "",
        "arm-box",
        "tcp://z.example:2376",
        "gone",
    ]


def test_each_engine_has_its_own_marker_and_connection(state_home: Path) -> None:
    runtime = ProcessRuntime(settings())
    default, arm = runtime.engine_for(AMD64), runtime.engine_for(ARM64)
    run_dir = state_home / "runs" / "run-r"
    # The default engine's marker keeps its name from before platforms could be mapped.
    assert default.watch.marker == run_dir / "engine-dead"
    assert arm.watch.marker.parent == run_dir
    assert arm.watch.marker.name.startswith("engine-dead-")
    assert arm.watch.marker != runtime.engine_for(S390X).watch.marker
    assert default.watch.endpoint == "unix:///run/default.sock"
    assert arm.watch.endpoint == "arm-box (context, unix:///run/arm-box.sock)"
    assert default.api.environment is None  # the process's own environment, as the CLI's
    assert arm.api.environment == {"DOCKER_HOST": "unix:///run/arm-box.sock"}
    assert default.api is not arm.api


def test_an_engine_is_swept_once_per_run_by_the_first_process_that_uses_it(
    monkeypatch: pytest.MonkeyPatch, state_home: Path
) -> None:
    swept: list[EngineRef | None] = []
    monkeypatch.setattr(engine_module, "sweep", lambda run_id, engine: swept.append(engine))
    # Dead runs' private build tags go with their containers, from each engine once.
    tags_swept: list[EngineRef | None] = []
    monkeypatch.setattr(engine_module, "sweep_dead_private_tags", tags_swept.append)
    first, second = ProcessRuntime(settings()), ProcessRuntime(settings())
    first.start()
    for runtime in (first, second):  # two processes of one run
        for platform in (AMD64, ARM64, AMD64):
            runtime.engine_for(platform).sweep_once()
    assert swept == [EngineRef(), EngineRef("arm-box")]
    # Another run sweeps again.
    other = ProcessRuntime(settings(run_id="r2"))
    other.start()
    other.engine_for(AMD64).sweep_once()
    assert swept[-1] == EngineRef()
    assert len(swept) == 3
    assert tags_swept == swept


def test_an_engine_that_did_not_answer_at_the_start_is_unreachable_for_its_platforms() -> None:
    runtime = ProcessRuntime(settings())
    reason = runtime.engine_for(RISCV).unreachable(RISCV)
    assert reason == (
        "linux/riscv64 runs on engine gone (context, tcp://gone:2376) (from --engine), which did "
        "not answer when the run began: no answer within 8 s"
    )
    assert runtime.engine_for(AMD64).unreachable(AMD64) == ""
    assert runtime.engine_for(ARM64).unreachable(ARM64) == ""


def test_a_dead_engine_is_unreachable_and_no_other() -> None:
    runtime = ProcessRuntime(settings())
    runtime.engine_for(ARM64).watch.declare("connection refused")
    assert "stopped answering (connection refused)" in runtime.engine_for(ARM64).unreachable(ARM64)
    assert runtime.engine_for(AMD64).unreachable(AMD64) == ""
    # Every process of the run sees it.
    assert "connection refused" in ProcessRuntime(settings()).engine_for(ARM64).unreachable(ARM64)


def test_the_verification_key_names_a_mapped_engine_and_not_the_default_one() -> None:
    runtime = ProcessRuntime(settings())
    here = "qemu-s390x enabled, flags PF"
    assert runtime.engine_for(AMD64).emulator_identity(AMD64, "native") == "native"
    assert (
        runtime.engine_for(ARM64).emulator_identity(ARM64, "native")
        == "native; engine ARM1 (aarch64)"
    )
    assert runtime.engine_for(S390X).emulator_identity(S390X, here) == (
        "emulated on engine Z1 (s390x)"
    )


def test_builds_are_locked_per_engine_id(state_home: Path) -> None:
    runtime = ProcessRuntime(settings())
    arm = runtime.engine_for(ARM64).builds
    assert arm is runtime.engine_for(ARM64).builds
    assert arm.classic_store is True
    assert arm.engine_lock_dir.parent == state_home / "engines"
    # Another name of the same engine (its id) shares the locks.
    same = ProcessRuntime(
        make_settings(
            (ARM64,),
            Path("/nonexistent/images"),
            endpoints={"arm-box": replace(ARM_BOX, spec="arm-box", host="ssh://ci@arm-box")},
        )
    ).engine_for(ARM64)
    assert same.builds.engine_lock_dir == arm.engine_lock_dir
    assert runtime.engine_for(S390X).builds.engine_lock_dir != arm.engine_lock_dir


def test_engines_are_closed_in_reverse_order_of_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = ProcessRuntime(settings())
    closed: list[str] = []
    for platform in (S390X, AMD64, ARM64):
        engine = runtime.engine_for(platform)
        monkeypatch.setattr(engine, "close", lambda e=engine: closed.append(e.endpoint.spec))
    runtime.close()
    assert closed == ["arm-box", "", "tcp://z.example:2376"]
