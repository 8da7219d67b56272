"""Builders per platform: the builder map and where it comes from, what ``docker buildx
inspect`` says, how an image reaches the engine that runs its platform (load, save | load, or a
registry), the build commands of each way, the doctor's checks and the report."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.commands import CommandResult
from pytest_multiarch.core.errors import (
    CommandError,
    CommandTimeout,
    ConfigError,
    EngineUnavailable,
)
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.doctor import _builder_checks, _builder_platform_check
from pytest_multiarch.engine.buildx import BuilderInfo, BuilderNode, parse_buildx_inspect
from pytest_multiarch.engine.docker import EngineInfo
from pytest_multiarch.model.records import BuilderFacts, Delivery, PlatformFacts, RunReport
from pytest_multiarch.reports.summary import format_lines
from pytest_multiarch.run.options import BY_NAME, resolve_layers
from pytest_multiarch.run.settings import builder_map
from pytest_multiarch.runtime import build as build_module
from pytest_multiarch.runtime.build import _deliver, _found, _Unobserved, build_command
from pytest_multiarch.runtime.builders import (
    BuilderRef,
    parse_builder_map,
    pipe_commands,
    plan_builder,
    project_builder_map,
    registry_output,
    registry_reference,
    resolve_builder,
)
from pytest_multiarch.runtime.settings import Settings

from tests.unit.fakes import FakeConfig, make_settings

AMD64 = lookup("amd64")
ARM64 = lookup("arm64")
TAG = "pytest-multiarch/web:0123456789abcdef-arm64"
REGISTRY = "127.0.0.1:5000/multiarch-transfer"

DOCKER_DRIVER = """\
Name:   e12-ctx
Driver: docker

Nodes:
Name:             e12-ctx
Endpoint:         e12-ctx
Status:           running
BuildKit version: v0.0.0+unknown
Platforms:        linux/amd64, linux/amd64/v2, linux/arm64, linux/s390x
Labels:
 org.mobyproject.buildkit.worker.executor:             containerd
 org.mobyproject.buildkit.worker.hostname:             vm
"""

MULTI_NODE = """\
Name:          native-pair
Driver:        docker-container
Last Activity: 2026-11-25 17:17:58 +0000 UTC

Nodes:
Name:      native-pair0
Endpoint:  unix:///var/run/docker.sock
Status:    running
Buildkit:  v0.13.2
Platforms: linux/amd64, linux/amd64/v2, linux/386

Name:      native-pair1
Endpoint:  ssh://ci@arm-box
Status:    running
Buildkit:  v0.13.2
Platforms: linux/arm64, linux/arm/v7
"""

REMOTE_INACTIVE = """\
Name:          remote-x
Driver:        remote
Last Activity: 2026-11-25 17:17:58 +0000 UTC

Nodes:
Name:     remote-x0
Endpoint: tcp://127.0.0.1:1234
Status:   inactive
"""


@pytest.fixture(autouse=True)
def plain_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_multiarch.engine.docker.DOCKER", "docker")
    monkeypatch.delenv("MULTIARCH_BUILDERS", raising=False)


def facts(delivery: Delivery, **changes: Any) -> BuilderFacts:
    base = BuilderFacts("e12-ctx", "docker", "load", context="e12-ctx")
    return replace(base, delivery=delivery, **changes)


def info_of(engine_id: str, architecture: str = "x86_64") -> EngineInfo:
    return EngineInfo(
        engine_id, "x", "26", "1.45", "containerd", "overlayfs", (), "linux", architecture
    )


# ---- the map ----------------------------------------------------------------------------------


def test_map_entries_name_a_builder_and_maybe_a_registry() -> None:
    found = parse_builder_map(
        [f"aarch64=e12-ctx, s390x=remote-z@{REGISTRY}", "arm/v7=", "ppc64le=p.b_1+x"], "--builder"
    )
    assert found == {
        "linux/arm64": BuilderRef("e12-ctx"),
        "linux/s390x": BuilderRef("remote-z", REGISTRY),
        "linux/arm/v7": BuilderRef(),  # mapped back to its engine's own builder
        "linux/ppc64le": BuilderRef("p.b_1+x"),
    }
    assert str(found["linux/s390x"]) == f"remote-z@{REGISTRY}"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "arm64",
            "Invalid builder mapping 'arm64' from --builder: expected PLATFORM=BUILDER or "
            "PLATFORM=BUILDER@REGISTRY, e.g. arm64=arm-builder",
        ),
        ("sparc=x", "Invalid platform 'sparc' in builder mapping 'sparc=x' from --builder"),
        ("arm64=-x", "Invalid builder name '-x' in builder mapping 'arm64=-x' from --builder"),
        ("arm64=a b", "Invalid builder name 'a b'"),
        ("arm64=@127.0.0.1:5000/x", "Invalid builder name ''"),
        ("arm64=x@team", "Invalid registry 'team' in builder mapping 'arm64=x@team' from"),
        ("arm64=x@", "Invalid registry ''"),
        ("arm64=x@127.0.0.1:5000/Team", "Invalid registry '127.0.0.1:5000/Team'"),
        ("arm64=x@127.0.0.1:99999/t", "Invalid registry '127.0.0.1:99999/t'"),
        ("arm64=x@127.0.0.1:5000//t", "Invalid registry '127.0.0.1:5000//t'"),
        ("arm64=x@host.example/t:tag", "Invalid registry 'host.example/t:tag'"),
        ("arm64=x@a@b.example", "Invalid registry 'a@b.example'"),
    ],
)
def test_bad_entries_name_the_value_and_the_source(item: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_builder_map([item], "--builder")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "registry",
    ["127.0.0.1:5000", "localhost/t", "registry.example/team/sub", "[::1]:5000/t", "r:443/a-b_c"],
)
def test_registries_that_are_accepted(registry: str) -> None:
    assert parse_builder_map([f"arm64=x@{registry}"], "-")["linux/arm64"].registry == registry


def test_project_table_takes_names_and_inline_tables(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        "[tool.multiarch.builders]\n"
        'arm64 = "e12-ctx"\n'
        f's390x = {{ builder = "remote-z", registry = "{REGISTRY}" }}\n'
        'ppc64le = { builder = "p-box" }\n'
    )
    assert project_builder_map(pyproject) == {
        "linux/arm64": BuilderRef("e12-ctx"),
        "linux/s390x": BuilderRef("remote-z", REGISTRY),
        "linux/ppc64le": BuilderRef("p-box"),
    }
    assert project_builder_map(tmp_path / "absent.toml") == {}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("builders = 3", "expected a table of platform"),
        ("builders = { arm64 = 3 }", 'expected "BUILDER" or { builder = "BUILDER"'),
        ("builders = { arm64 = { registry = 'r.example' } }", 'expected "BUILDER"'),
        ("builders = { arm64 = { builder = 'x', reg = 'r.example' } }", "unknown keys reg"),
        ("builders = { arm64 = { builder = 'x', registry = 1 } }", "registry is not a string"),
        ("builders = { arm64 = { builder = '' } }", "builder is empty"),
        ("builders = { arm64 = { builder = 'x', registry = 'team' } }", "Invalid registry 'team'"),
    ],
)
def test_bad_project_tables_name_the_file_and_table(
    tmp_path: Path, table: str, message: str
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f"[tool.multiarch]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        project_builder_map(pyproject)
    assert f"{pyproject} [tool.multiarch.builders]" in str(caught.value)
    assert message in str(caught.value)


def test_the_option_is_declared_like_the_engine_map() -> None:
    option = BY_NAME["builder"]
    assert (option.flag, option.dest, option.env, option.kind) == (
        "--builder",
        "multiarch_builders",
        "MULTIARCH_BUILDERS",
        "append",
    )


def test_later_places_override_single_platforms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.multiarch.builders]\narm64 = "a"\ns390x = "z"\nppc64le = "p"\n'
    )
    config = FakeConfig(
        tmp_path,
        options={"multiarch_builders": [f"s390x=rz@{REGISTRY}", "ppc64le="]},
        ini={"multiarch_builders": ["arm/v7=ini7", "arm64=ini-a"]},
    )
    monkeypatch.setenv("MULTIARCH_BUILDERS", "arm64=env-a")
    builders, where = builder_map(config)  # type: ignore[arg-type]
    assert builders == {
        "linux/arm64": BuilderRef("env-a"),
        "linux/s390x": BuilderRef("rz", REGISTRY),
        "linux/arm/v7": BuilderRef("ini7"),
    }
    assert where["linux/arm64"] == "environment variable MULTIARCH_BUILDERS"
    assert where["linux/s390x"] == "--builder"
    assert where["linux/ppc64le"] == "--builder"  # mapped back there
    assert where["linux/arm/v7"] == "ini option multiarch_builders"
    layers = resolve_layers(config, "builder")  # type: ignore[arg-type]
    assert [layer.source for layer in layers] == [
        "ini option multiarch_builders",
        "environment variable MULTIARCH_BUILDERS",
        "--builder",
    ]


# ---- what a builder is ------------------------------------------------------------------------


def test_inspect_of_a_docker_driver_builder() -> None:
    info = parse_buildx_inspect(DOCKER_DRIVER)
    assert (info.name, info.driver) == ("e12-ctx", "docker")
    assert info.nodes == (
        BuilderNode(
            "e12-ctx",
            "e12-ctx",
            "running",
            ("linux/amd64", "linux/amd64/v2", "linux/arm64", "linux/s390x"),
        ),
    )


def test_inspect_of_a_multi_node_builder_lists_every_nodes_platforms() -> None:
    info = parse_buildx_inspect(MULTI_NODE)
    assert (info.name, info.driver) == ("native-pair", "docker-container")
    assert [node.endpoint for node in info.nodes] == [
        "unix:///var/run/docker.sock",
        "ssh://ci@arm-box",
    ]
    assert "linux/arm64" in info.platforms
    assert "linux/386" in info.platforms
    inactive = parse_buildx_inspect(REMOTE_INACTIVE)
    assert (inactive.driver, inactive.platforms, inactive.nodes[0].status) == (
        "remote",
        (),
        "inactive",
    )


def _plan(
    text: str, ref: BuilderRef, monkeypatch: pytest.MonkeyPatch, *, builder_id: str, running: str
) -> BuilderFacts:
    asked: list[str] = []

    def engine_info(timeout: float = 15, engine: Any = None) -> EngineInfo:
        asked.append(engine.spec)
        return info_of(builder_id)

    monkeypatch.setattr("pytest_multiarch.engine.docker.engine_info", engine_info)
    found = plan_builder(
        ref, parse_buildx_inspect(text), ARM64, "--builder", running_engine_id=lambda: running
    )
    assert asked in ([], ["e12-ctx"])
    return found


def test_a_docker_driver_of_the_running_engine_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    found = _plan(DOCKER_DRIVER, BuilderRef("e12-ctx"), monkeypatch, builder_id="E", running="E")
    assert (found.delivery, found.context, found.source) == ("load", "e12-ctx", "--builder")
    assert "linux/arm64" in found.platforms


def test_a_docker_driver_of_another_engine_transfers(monkeypatch: pytest.MonkeyPatch) -> None:
    found = _plan(DOCKER_DRIVER, BuilderRef("e12-ctx"), monkeypatch, builder_id="E", running="D")
    assert (found.delivery, found.context) == ("transfer", "e12-ctx")
    assert "moved by docker save | docker load" in found.describe()


def test_without_the_running_engines_id_the_names_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    found = _plan(DOCKER_DRIVER, BuilderRef("e12-ctx"), monkeypatch, builder_id="E", running="")
    assert found.delivery == "transfer"  # arm64 runs on the default engine, not e12-ctx
    mapped = plan_builder(
        BuilderRef("e12-ctx"),
        parse_buildx_inspect(DOCKER_DRIVER),
        replace(ARM64, engine="e12-ctx"),
        "-",
        running_engine_id=lambda: "",
    )
    assert mapped.delivery == "load"


def test_a_registry_carries_any_drivers_images(monkeypatch: pytest.MonkeyPatch) -> None:
    found = _plan(
        REMOTE_INACTIVE, BuilderRef("remote-x", REGISTRY), monkeypatch, builder_id="", running=""
    )
    assert (found.delivery, found.driver, found.registry, found.context) == (
        "registry",
        "remote",
        REGISTRY,
        "",
    )


@pytest.mark.parametrize("text", [REMOTE_INACTIVE, MULTI_NODE])
def test_another_driver_without_a_registry_is_refused_with_the_fix(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = parse_buildx_inspect(text).name
    with pytest.raises(ConfigError) as caught:
        _plan(text, BuilderRef(name), monkeypatch, builder_id="", running="")
    message = str(caught.value)
    assert f"Builder {name!r} for linux/arm64 from --builder has driver" in message
    assert "no engine to load into linux/arm64's engine (the default engine)" in message
    assert f'arm64 = {{ builder = "{name}", registry = "{REGISTRY}" }}' in message
    assert f"--builder arm64={name}@{REGISTRY}" in message


def test_a_builder_that_does_not_exist_names_builder_platform_source_and_remedy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(command: list[str], **_: Any) -> CommandResult:
        raise CommandError(command, 1, "", 'ERROR: no builder "arm-bx" found\n')

    monkeypatch.setattr("pytest_multiarch.engine.buildx.run_command", missing)
    with pytest.raises(ConfigError) as caught:
        resolve_builder(
            BuilderRef("arm-bx"),
            ARM64,
            "environment variable MULTIARCH_BUILDERS",
            running_engine_id=lambda: "",
        )
    assert str(caught.value).startswith(
        "Invalid builder 'arm-bx' for linux/arm64 from environment variable MULTIARCH_BUILDERS: "
        '`docker buildx inspect arm-bx` failed: ERROR: no builder "arm-bx" found; list the '
        "builders with `docker buildx ls`"
    )


def test_inspect_is_asked_with_the_running_engines_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def answer(command: list[str], **_: Any) -> CommandResult:
        seen.append(command)
        return CommandResult(command, 0, REMOTE_INACTIVE, "")

    monkeypatch.setattr("pytest_multiarch.engine.buildx.run_command", answer)
    on_e12 = replace(ARM64, engine="unix:///run/e12.sock")
    resolve_builder(BuilderRef("remote-x", REGISTRY), on_e12, "-", running_engine_id=lambda: "")
    assert seen == [["docker", "--host", "unix:///run/e12.sock", "buildx", "inspect", "remote-x"]]


# ---- build commands ---------------------------------------------------------------------------


@pytest.fixture
def spec(tmp_path: Path) -> ImageSpec:
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\n")
    return ImageSpec(name="web", directory=tmp_path)


def test_without_a_builder_the_command_is_todays(spec: ImageSpec) -> None:
    command = build_command(spec, replace(ARM64, engine="e12"), TAG)
    assert command[:7] == [
        "docker",
        "--context",
        "e12",
        "buildx",
        "build",
        "--platform",
        "linux/arm64",
    ]
    assert "--builder" not in command


@pytest.mark.parametrize("delivery", ["load", "transfer"])
def test_a_docker_driver_builds_under_its_context_and_loads(
    spec: ImageSpec, delivery: Delivery
) -> None:
    # The platform's engine is named differently (an endpoint): buildx wants the context.
    plat = replace(ARM64, engine="unix:///run/e12.sock")
    command = build_command(spec, plat, TAG, builder=facts(delivery))
    assert command[:12] == [
        "docker",
        "--context",
        "e12-ctx",
        "buildx",
        "build",
        "--builder",
        "e12-ctx",
        "--platform",
        "linux/arm64",
        "--load",
        "--provenance=false",
        "--progress=plain",
    ]
    assert command[12:14] == ["--tag", TAG]
    assert "--output" not in command
    assert "--push" not in command


def test_through_a_registry_the_build_pushes_and_does_not_load(spec: ImageSpec) -> None:
    remote = BuilderFacts("remote-x", "remote", "registry", REGISTRY)
    command = build_command(spec, ARM64, TAG, builder=remote)
    reference = f"{REGISTRY}/pytest-multiarch-web:0123456789abcdef-arm64"
    assert command[:7] == [
        "docker",
        "buildx",
        "build",
        "--builder",
        "remote-x",
        "--platform",
        "linux/arm64",
    ]
    assert "--load" not in command
    assert "--tag" not in command
    output = command[command.index("--output") + 1]
    assert output == f"type=image,name={reference},push=true,registry.insecure=true"
    assert command[-3:] == ["--file", str(spec.dockerfile), str(spec.directory)]
    on_docker = build_command(spec, ARM64, TAG, builder=facts("registry", registry=REGISTRY))
    assert on_docker[1:3] == ["--context", "e12-ctx"]


def test_registry_names() -> None:
    assert (
        registry_reference(REGISTRY, TAG)
        == f"{REGISTRY}/pytest-multiarch-web:0123456789abcdef-arm64"
    )
    assert (
        registry_reference("r.example:5000", TAG)
        == "r.example:5000/pytest-multiarch-web:0123456789abcdef-arm64"
    )
    assert "registry.insecure" not in registry_output("registry.example/team", TAG)
    assert "registry.insecure=true" in registry_output("localhost:5000", TAG)


# ---- where the image goes ---------------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def run(command: list[str], **_: Any) -> CommandResult:
        seen.append(" ".join(command[1:]))
        return CommandResult(command, 0, "", "")

    def pipe(first: list[str], second: list[str], **_: Any) -> CommandResult:
        seen.append(" ".join(first[1:]) + " | " + " ".join(second[1:]))
        return CommandResult([*first, "|", *second], 0, "", "")

    monkeypatch.setattr(build_module, "run_command", run)
    monkeypatch.setattr(build_module, "pipe_commands", pipe)
    return seen


def test_load_only_renames_in_the_running_engine(calls: list[str]) -> None:
    _deliver("T-tmp", TAG, ARM64, facts("load"), 60, _Unobserved())
    assert calls == [f"tag T-tmp {TAG}", "image rm T-tmp"]


def test_transfer_streams_save_into_load_then_cleans_the_builders_engine(calls: list[str]) -> None:
    _deliver("T-tmp", TAG, replace(ARM64, engine="arm-box"), facts("transfer"), 60, _Unobserved())
    assert calls == [
        "--context e12-ctx save T-tmp | --context arm-box load --quiet",
        "--context e12-ctx image rm T-tmp",
        f"--context arm-box tag T-tmp {TAG}",
        "--context arm-box image rm T-tmp",
    ]


def test_registry_pulls_the_platform_then_tags_and_untags(calls: list[str]) -> None:
    reference = registry_reference(REGISTRY, TAG)
    _deliver(TAG, TAG, ARM64, facts("registry", registry=REGISTRY), 60, _Unobserved())
    assert calls == [
        f"pull --quiet --platform linux/arm64 {reference}",
        f"tag {reference} {TAG}",
        f"image rm {reference}",
        f"--context e12-ctx image rm {reference}",  # the docker driver named it there too
    ]
    calls.clear()
    _deliver(TAG, TAG, ARM64, BuilderFacts("r", "remote", "registry", REGISTRY), 60, _Unobserved())
    assert calls[-1] == f"image rm {reference}"


def test_a_failed_transfer_still_cleans_the_builders_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    def run(command: list[str], **_: Any) -> CommandResult:
        seen.append(" ".join(command[1:]))
        return CommandResult(command, 0, "", "")

    def pipe(first: list[str], second: list[str], **kwargs: Any) -> CommandResult:
        raise CommandError([*first, "|", *second], 1, "", "no space left on device", kwargs["hint"])

    monkeypatch.setattr(build_module, "run_command", run)
    monkeypatch.setattr(build_module, "pipe_commands", pipe)
    with pytest.raises(CommandError) as caught:
        _deliver("T-tmp", TAG, ARM64, facts("transfer"), 60, _Unobserved())
    assert seen == ["--context e12-ctx image rm T-tmp"]
    message = str(caught.value)
    assert "exited with 1" in message
    assert "no space left on device" in message
    assert "hint: builder e12-ctx built linux/arm64 on Docker context e12-ctx" in message


class FakeImages:
    def __init__(self, attrs: dict[str, str]) -> None:
        self.attrs = attrs

    def get(self, reference: str) -> FakeImages:
        return self


@dataclass
class FakeClient:
    images: FakeImages


def test_a_delivered_image_of_another_platform_is_refused(spec: ImageSpec) -> None:
    client: Any = FakeClient(FakeImages({"Id": "sha256:1", "Os": "linux", "Architecture": "amd64"}))
    record = _found(spec, ARM64, TAG, 1.0, client, facts("transfer"))
    assert "is linux/amd64 in the engine that runs linux/arm64, not linux/arm64" in record.error
    assert "e12-ctx (docker driver" in record.error
    good: Any = FakeClient(FakeImages({"Id": "sha256:2", "Os": "linux", "Architecture": "arm64"}))
    assert _found(spec, ARM64, TAG, 1.0, good, facts("transfer")).image_id == "sha256:2"


# ---- two processes, one pipe ------------------------------------------------------------------


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_pipe_commands_streams_the_first_into_the_second() -> None:
    result = pipe_commands(
        _python("print('a' * 100000)"),
        _python("import sys; print(len(sys.stdin.read().strip()))"),
        timeout=60,
    )
    assert result.stdout.strip() == "100000"
    assert "|" in result.command


def test_pipe_commands_names_the_failing_side() -> None:
    with pytest.raises(CommandError) as first:
        pipe_commands(
            _python("import sys; sys.stderr.write('no such image'); sys.exit(3)"),
            _python("import sys; sys.stdin.read()"),
            timeout=60,
            hint="look",
        )
    assert first.value.returncode == 3
    assert "no such image" in str(first.value)
    assert "hint: look" in str(first.value)
    with pytest.raises(CommandError) as second:
        pipe_commands(
            _python("print('x')"),
            _python("import sys; sys.stdin.read(); sys.stderr.write('bad tar'); sys.exit(5)"),
            timeout=60,
        )
    assert second.value.returncode == 5
    assert "bad tar" in str(second.value)


def test_pipe_commands_ends_both_at_the_time_limit() -> None:
    with pytest.raises(CommandTimeout):
        pipe_commands(
            _python("import time; time.sleep(30)"),
            _python("import sys; sys.stdin.read()"),
            timeout=0.5,
        )


# ---- settings, report, doctor ------------------------------------------------------------------


def test_settings_carry_the_builders_to_workers(tmp_path: Path) -> None:
    settings = make_settings(
        (AMD64, ARM64),
        tmp_path,
        builders={"linux/arm64": facts("transfer", platforms=("linux/arm64",), source="--builder")},
    )
    back = Settings.from_workerinput(settings.to_workerinput())
    assert back == settings
    assert back.builders["linux/arm64"].platforms == ("linux/arm64",)


def test_the_report_says_which_builder_built_a_platform() -> None:
    report = RunReport(
        platforms=[
            PlatformFacts("linux/amd64", "amd64", True, "native"),
            PlatformFacts("linux/arm64", "arm64", False, "qemu", builder=facts("transfer")),
        ]
    )
    report.record_phase("t.py::t[arm64]", "web", "arm64", "call", "passed", 1.0, False)
    lines = format_lines(report)
    assert (
        "builders: arm64: e12-ctx (docker driver, built on context e12-ctx, moved by docker "
        "save | docker load)"
    ) in lines
    back = RunReport.from_json(report.to_json())
    assert back.platforms[1].builder == facts("transfer")
    assert back.platforms[0].builder is None


def test_doctor_names_a_missing_builder_and_the_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str, engine: Any = None, **_: Any) -> BuilderInfo:
        raise CommandError(["docker", "buildx", "inspect", name], 1, "", 'no builder "nope" found')

    monkeypatch.setattr("pytest_multiarch.doctor.inspect_builder", missing)
    [check] = _builder_checks(ARM64, BuilderRef("nope"))
    assert (check.name, check.platform, check.status) == ("builder", "arm64", "fail")
    assert "no buildx builder 'nope'" in check.detail
    assert "docker buildx ls" in check.remedy


def test_doctor_refuses_another_driver_without_a_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "pytest_multiarch.doctor.inspect_builder",
        lambda name, engine=None, **_: parse_buildx_inspect(MULTI_NODE),
    )
    [check] = _builder_checks(ARM64, BuilderRef("native-pair"))
    assert check.status == "fail"
    assert 'registry = "127.0.0.1:5000/multiarch-transfer"' in check.remedy


def test_doctor_notes_native_emulated_or_missing_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "pytest_multiarch.doctor.engine_info",
        lambda timeout=15, engine=None: info_of("E", "x86_64"),
    )
    ok = _builder_platform_check(ARM64, ("linux/amd64", "linux/arm64"), "e12-ctx")
    assert (ok.status, ok.detail) == ("ok", "linux/arm64 emulated on x86_64")
    native = _builder_platform_check(AMD64, ("linux/amd64",), "e12-ctx")
    assert native.detail == "linux/amd64 native"
    missing = _builder_platform_check(ARM64, ("linux/amd64",), "")
    assert missing.status == "warn"
    assert "multiarch host up --platforms arm64" in missing.remedy


# ---- a builder whose engine does not answer: only the builds that need it fail -------------------

# `docker buildx inspect` of a Docker context whose engine is down: exit 0, an Error line.
UNANSWERED = """\
Name:   e12-ctx
Driver: 
Error:  Cannot connect to the Docker daemon at unix:///run/e12.sock. Is the docker daemon running?
"""  # noqa: W291 - buildx prints the empty driver so


def test_inspect_of_a_builder_whose_engine_is_down_keeps_the_error() -> None:
    info = parse_buildx_inspect(UNANSWERED)
    assert (info.name, info.driver, info.nodes) == ("e12-ctx", "", ())
    assert info.error.startswith("Cannot connect to the Docker daemon at unix:///run/e12.sock")


def test_a_builder_whose_engine_is_down_is_a_problem_of_its_platform_not_of_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "pytest_multiarch.engine.buildx.run_command",
        lambda command, **_: CommandResult(command, 0, UNANSWERED, ""),
    )
    found = resolve_builder(BuilderRef("e12-ctx"), ARM64, "--builder", running_engine_id=lambda: "")
    assert found.problem.startswith(
        "builder 'e12-ctx' of linux/arm64 did not answer at the start of the run: Cannot connect"
    )
    assert found.problem.endswith(
        "start its engine, or build arm64 elsewhere (`--builder arm64=` builds it with the "
        "engine that runs it)"
    )
    assert found.describe().startswith("e12-ctx (not answering: builder 'e12-ctx'")


def test_a_listed_builder_whose_engine_stops_before_its_id_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def engine_info(timeout: float = 15, engine: Any = None) -> EngineInfo:
        raise EngineUnavailable("Docker engine e12-ctx not reachable: connection refused")

    monkeypatch.setattr("pytest_multiarch.engine.docker.engine_info", engine_info)
    found = plan_builder(
        BuilderRef("e12-ctx"),
        parse_buildx_inspect(DOCKER_DRIVER),
        ARM64,
        "--builder",
        running_engine_id=lambda: "E0",
    )
    assert "did not answer at the start of the run: Docker engine e12-ctx not reachable" in (
        found.problem
    )


def test_a_build_by_a_builder_that_did_not_answer_fails_with_why_and_runs_nothing(
    spec: ImageSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no command may run")

    monkeypatch.setattr(build_module, "stream_command", never)
    monkeypatch.setattr(build_module, "inspect_platform", lambda reference, client: None)
    down = replace(facts("transfer"), problem="builder 'e12-ctx' of linux/arm64 did not answer")
    record = build_module.build_image(spec, ARM64, "auto", timeout=60, client=Any, builder=down)
    assert record.error == (
        "build of image 'web' for linux/arm64: builder 'e12-ctx' of linux/arm64 did not answer"
    )
    # An image that is there already needs no builder: nothing fails.
    monkeypatch.setattr(
        build_module, "inspect_platform", lambda reference, client: ("sha256:1", "linux/arm64")
    )
    found = build_module.build_image(spec, ARM64, "auto", timeout=60, client=Any, builder=down)
    assert (found.error, found.image_id) == ("", "sha256:1")


def test_doctor_fails_a_builder_whose_engine_is_down_with_how_to_start_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "pytest_multiarch.doctor.inspect_builder",
        lambda name, engine=None, **_: parse_buildx_inspect(UNANSWERED),
    )
    [check] = _builder_checks(ARM64, BuilderRef("e12-ctx"))
    assert check.status == "fail"
    assert check.detail.startswith("e12-ctx: Cannot connect to the Docker daemon")
    assert check.remedy == "start the builder's engine (`docker --context e12-ctx info`)"


def test_doctors_buildx_line_reads_the_one_inspect_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # `docker buildx inspect` of the current builder: the builder's name and driver, not the
    # first node's (the parser that the builder map uses).
    from pytest_multiarch.engine.buildx import buildx_info

    answers = {
        "version": "github.com/docker/buildx 0.13.1+ds1 0.13.1\n",
        "inspect": MULTI_NODE,
    }

    def answer(command: list[str], **_: Any) -> CommandResult:
        return CommandResult(command, 0, answers[command[-1]], "")

    monkeypatch.setattr("pytest_multiarch.engine.buildx.run_command", answer)
    found = buildx_info()
    assert (found.version, found.builder.name, found.builder.driver) == (
        "0.13.1+ds1",
        "native-pair",
        "docker-container",
    )
