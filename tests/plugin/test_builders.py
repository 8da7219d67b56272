"""A platform built by a buildx builder of its own, for real, on one machine: the docker-driver
builder of a second engine (``multiarch host engine up e12``, reached through a Docker context
in a private docker config) builds arm64 while arm64 runs on the default engine. The image
moves by ``docker save | docker load``, or through a registry (pushed, then pulled); a builder
that does not exist, or one that cannot load anywhere and has no registry, is a usage error."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from acceptance import BUSYBOX_IMAGE, Project, assert_outcome, docker_cli, manifest, read_json
from pytest_multiarch.provision.second_engines import EngineLayout

CONTEXT = "e12-ctx"
TOML = '[wait]\nlog = "ready"\ntimeout = 30\n'

TESTS = """
    import pytest

    pytestmark = pytest.mark.image("box")

    def test_built_for(run, platform):
        assert run(["cat", "/built-for"]).stdout.strip() == platform.name
        assert run(["uname", "-m"]).stdout.strip() == platform.uname

    def test_where(platform):
        print(f"PLATFORM {platform.short} engine={platform.engine!r}")
"""


def _private_config(project: Project, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A docker config of this test's own (its contexts and buildx builders); the buildx plugin
    is a system CLI plugin, so the docker CLI still finds it."""
    config = project.path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    version = docker_cli(None, "buildx", "version")
    assert version.returncode == 0, f"buildx not found with DOCKER_CONFIG={config}: {version}"
    return config


def _e12_builder(project: Project, monkeypatch: pytest.MonkeyPatch, e12: str) -> None:
    """A Docker context for e12: buildx lists it as a builder of driver docker."""
    _private_config(project, monkeypatch)
    made = docker_cli(None, "context", "create", CONTEXT, "--docker", f"host={e12}")
    assert made.returncode == 0, made.stderr
    listed = docker_cli(None, "buildx", "ls")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == [CONTEXT, "docker"] for line in listed.stdout.splitlines()), (
        listed.stdout
    )


def _image_events(engine: str, since: float) -> list[dict[str, Any]]:
    events = docker_cli(
        engine,
        "events",
        "--since",
        f"{since:.0f}",
        "--until",
        f"{time.time() + 1:.0f}",
        "--filter",
        "type=image",
        "--format",
        "{{json .}}",
    )
    assert events.returncode == 0, events.stderr
    return [json.loads(line) for line in events.stdout.splitlines() if line]


def _platform_of(engine: str | None, reference: str) -> str:
    platform = "{{.Os}}/{{.Architecture}}"
    found = docker_cli(engine, "image", "inspect", "--format", platform, reference)
    return found.stdout.strip() if found.returncode == 0 else ""


def _builds(project: Project, platform: str) -> list[str]:
    return [
        call
        for call in project.docker_calls()
        if "buildx build" in call and f"--platform {platform}" in call
    ]


def test_another_engines_builder_builds_and_the_image_moves_to_the_running_engine(
    project: Project, second_engine: EngineLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    e12 = second_engine.docker_host
    _e12_builder(project, monkeypatch, e12)
    project.image("box", BUSYBOX_IMAGE, TOML)
    project.tests(TESTS)
    (project.path / "pyproject.toml").write_text(
        f'[tool.multiarch.builders]\narm64 = "{CONTEXT}"\n'
    )
    since = time.time() - 1
    result = project.run("-v", "-s", "--platforms", "amd64,arm64", "--multiarch-json=r.json")
    assert result.ret == 0, result.stdout.str()
    for short in ("amd64", "arm64"):
        assert_outcome(result, f"test_built_for[{short}]", "PASSED")
    result.stdout.fnmatch_lines(["*PLATFORM arm64 engine=''*"])  # it runs on the default engine
    result.stdout.fnmatch_lines(
        [f"builders: arm64: {CONTEXT} (docker driver, built on context {CONTEXT}, moved by*"]
    )

    # Built by e12's builder, under its context; amd64 by the default engine's, as before.
    [arm64_build] = _builds(project, "linux/arm64")
    assert arm64_build.startswith(f"--context {CONTEXT} buildx build --builder {CONTEXT} "), (
        arm64_build
    )
    assert " --load " in f" {arm64_build} "
    [amd64_build] = _builds(project, "linux/amd64")
    assert amd64_build.startswith("buildx build --platform linux/amd64 "), amd64_build
    private = arm64_build.split(" --tag ", 1)[1].split()[0]
    calls = project.docker_calls()
    assert f"--context {CONTEXT} save {private}" in calls
    assert "load --quiet" in calls  # into the default engine

    report = read_json(project.path / "r.json")
    built = {b["platform"]: b for b in report["builds"]}
    reference = built["linux/arm64"]["reference"]
    # The running engine has the tag, for arm64; e12 keeps neither the tag nor the private one.
    assert _platform_of(None, reference) == "linux/arm64"
    assert _platform_of(e12, reference) == ""
    assert _platform_of(e12, private) == ""
    # e12 made the very image the default engine ran: it saved it, then dropped its name.
    events = _image_events(e12, since)
    saved = {e["Actor"]["ID"] for e in events if e["Action"] == "save"}
    assert built["linux/arm64"]["image_id"] in saved, events
    untagged = [e["Actor"]["Attributes"]["name"] for e in events if e["Action"] == "untag"]
    assert private in untagged, events
    facts = {p["short"]: p for p in report["platforms"]}
    builder = facts["arm64"]["builder"]
    assert (builder["name"], builder["driver"], builder["delivery"], builder["context"]) == (
        CONTEXT,
        "docker",
        "transfer",
        CONTEXT,
    )
    assert builder["source"].endswith("pyproject.toml [tool.multiarch.builders]")
    assert facts["amd64"]["builder"] is None


def test_a_builder_with_a_registry_pushes_and_the_running_engine_pulls(
    project: Project, second_engine: EngineLayout, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    e12 = second_engine.docker_host
    _e12_builder(project, monkeypatch, e12)
    project.image("box", BUSYBOX_IMAGE, TOML)
    project.tests(TESTS)
    transfer = f"{registry}/transfer"
    result = project.run(
        "-v",
        "--platforms",
        "amd64,arm64",
        f"--builder=arm64={CONTEXT}@{transfer}",
        "--multiarch-json=r.json",
    )
    assert result.ret == 0, result.stdout.str()
    assert_outcome(result, "test_built_for[arm64]", "PASSED")

    reference = {
        b["platform"]: b["reference"] for b in read_json(project.path / "r.json")["builds"]
    }["linux/arm64"]
    version = reference.rsplit(":", 1)[1]
    pushed = f"{transfer}/pytest-multiarch-box:{version}"
    [arm64_build] = _builds(project, "linux/arm64")
    assert arm64_build.startswith(f"--context {CONTEXT} buildx build --builder {CONTEXT} ")
    assert f"--output type=image,name={pushed},push=true,registry.insecure=true" in arm64_build
    assert " --load " not in f" {arm64_build} "
    # In the registry, and pulled by the default engine for arm64, then tagged.
    assert manifest(registry, "transfer/pytest-multiarch-box", version) is not None
    calls = project.docker_calls()
    assert f"pull --quiet --platform linux/arm64 {pushed}" in calls
    assert f"tag {pushed} {reference}" in calls
    assert _platform_of(None, reference) == "linux/arm64"
    # The registry's name is not left in either engine, nor the image in e12.
    assert _platform_of(None, pushed) == ""
    assert _platform_of(e12, pushed) == ""
    assert _platform_of(e12, reference) == ""
    facts = {p["short"]: p for p in read_json(project.path / "r.json")["platforms"]}
    assert (facts["arm64"]["builder"]["delivery"], facts["arm64"]["builder"]["registry"]) == (
        "registry",
        transfer,
    )


def test_a_builder_that_does_not_exist_is_a_usage_error_naming_it(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _private_config(project, monkeypatch)
    monkeypatch.setenv("MULTIARCH_BUILDERS", "arm64=arm-bx")
    project.tests(TESTS)
    result = project.run("--platforms", "amd64,arm64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(
        [
            "*Invalid builder 'arm-bx' for linux/arm64 from environment variable "
            'MULTIARCH_BUILDERS: `docker buildx inspect arm-bx` failed: *no builder "arm-bx" '
            "found; list the builders with `docker buildx ls`*"
        ]
    )
    assert not [call for call in project.docker_calls() if "buildx build" in call]


def test_a_builder_that_cannot_load_and_has_no_registry_is_refused_with_the_fix(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A remote-driver builder is only a record until it is used: nothing needs to listen.
    _private_config(project, monkeypatch)
    made = docker_cli(
        None, "buildx", "create", "--driver", "remote", "--name", "remote-x", "tcp://127.0.0.1:9"
    )
    assert made.returncode == 0, made.stderr
    project.tests(TESTS)
    result = project.run("--platforms", "amd64,arm64", "--builder", "arm64=remote-x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(
        [
            "*Builder 'remote-x' for linux/arm64 from --builder has driver 'remote': it has no "
            "engine to load into linux/arm64's engine (the default engine)*Give one: arm64 = "
            '{ builder = "remote-x", registry = "127.0.0.1:5000/multiarch-transfer" }*'
        ]
    )


def test_the_current_docker_context_is_the_default_engine_for_every_engine_call(
    project: Project, second_engine: EngineLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``docker context use e12-ctx`` (here: DOCKER_CONTEXT): the docker CLI talks to e12, and
    so must everything the run does through the SDK (image lookups, ``run``, cleanup), or the
    image is built on one engine and looked for on another."""
    e12 = second_engine.docker_host
    _e12_builder(project, monkeypatch, e12)
    monkeypatch.setenv("DOCKER_CONTEXT", CONTEXT)
    project.image("box", BUSYBOX_IMAGE, TOML)
    project.tests(TESTS)
    since = time.time() - 1
    result = project.run("-v", "-s", "--platforms", "amd64,arm64", "--multiarch-json=r.json")
    assert result.ret == 0, result.stdout.str()
    for short in ("amd64", "arm64"):
        assert_outcome(result, f"test_built_for[{short}]", "PASSED")
        result.stdout.fnmatch_lines([f"*PLATFORM {short} engine='{CONTEXT}'*"])
    report = read_json(project.path / "r.json")
    assert {fact["engine"] for fact in report["platforms"]} == {CONTEXT}
    # Every build went to e12 (through the context), every container of the run ran there.
    builds = [call for call in project.docker_calls() if "buildx build" in call]
    assert len(builds) == 2
    assert all(call.startswith(f"--context {CONTEXT} buildx build ") for call in builds), builds
    started = docker_cli(
        e12, "events", "--since", f"{since:.0f}", "--until", f"{time.time() + 1:.0f}",
        "--filter", "type=container", "--filter", "event=start", "--format", "{{json .}}",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    on_e12 = [json.loads(line) for line in started.stdout.splitlines() if line]
    run_id = report["run_id"]
    ours = [e for e in on_e12 if e["Actor"]["Attributes"].get("pytest-multiarch.run") == run_id]
    assert len(ours) >= 4  # two run() calls per platform, plus the verification probes


def test_a_builder_whose_engine_is_down_fails_only_its_platforms_tests(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _private_config(project, monkeypatch)
    # A socket path nobody listens on (short: unix socket paths have a length limit).
    dead = f"unix:///tmp/multiarch-down-{uuid.uuid4().hex[:8]}.sock"
    made = docker_cli(None, "context", "create", "down-ctx", "--docker", f"host={dead}")
    assert made.returncode == 0, made.stderr
    project.image("box", BUSYBOX_IMAGE, TOML)
    project.tests(TESTS)
    result = project.run("-v", "--platforms", "amd64,arm64", "--builder", "arm64=down-ctx")
    assert result.ret == 1, result.stdout.str()  # tests failed; not a usage error
    assert_outcome(result, "test_built_for[amd64]", "PASSED")
    assert_outcome(result, "test_built_for[arm64]", "ERROR")
    result.stdout.fnmatch_lines(
        [
            "*build of image 'box' for linux/arm64: builder 'down-ctx' of linux/arm64 did not "
            "answer at the start of the run: Cannot connect to the Docker daemon*",
        ]
    )
    assert not [call for call in project.docker_calls() if call.startswith("--context down-ctx")]
