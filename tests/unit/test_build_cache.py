"""--build-cache: the spec, the buildx arguments per (image, platform), whether a builder can
export, what buildx's plain progress says about steps and the cache, and the reports."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.model.codec import dump, load
from pytest_multiarch.model.progress import BuildProgress, ProgressBoard, ProgressView
from pytest_multiarch.model.records import BuildRecord, RunReport
from pytest_multiarch.reports.html import render_html
from pytest_multiarch.reports.summary import format_lines, markdown
from pytest_multiarch.run.options import resolve
from pytest_multiarch.runtime.build import BuildCoordinator, build_command, build_image
from pytest_multiarch.runtime.build_cache import (
    BuildCache,
    StepCount,
    cache_arguments,
    directory_problem,
    environment_problem,
    export_problem,
    parse_build_cache,
    registry_scope,
    replace_local,
    staging,
)
from pytest_multiarch.runtime.settings import Settings

from tests.unit.test_options import FakeConfig

AMD64 = lookup("amd64")
ARM64 = lookup("arm64")
ARMV7 = lookup("arm/v7")


@pytest.fixture(autouse=True)
def plain_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_multiarch.engine.docker.DOCKER", "docker")


# ---- the spec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "location", "mode"),
    [
        ("local:/var/cache/bk", "local", "/var/cache/bk", "max"),
        ("local:rel/dir,mode=min", "local", "rel/dir", "min"),
        ("registry:127.0.0.1:5000/cache/app", "registry", "127.0.0.1:5000/cache/app", "max"),
        ("registry:reg.example/c:ci,mode=max", "registry", "reg.example/c:ci", "max"),
        ("gha", "gha", "multiarch", "max"),
        ("gha:nightly", "gha", "nightly", "max"),
    ],
)
def test_parse_build_cache(text: str, kind: str, location: str, mode: str) -> None:
    cache = parse_build_cache(text)
    assert (cache.kind, cache.location, cache.mode, cache.spec) == (kind, location, mode, text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("s3:bucket", "unknown cache kind 's3'"),
        ("/some/dir", "unknown cache kind '/some/dir'"),
        ("local:", "local needs a directory"),
        ("registry:", "registry needs an image reference"),
        ("registry:Not A Ref", "registry needs an image reference"),
        ("gha:a b", "a gha scope is"),
        ("local:/x,mode=all", "unknown cache mode 'all'"),
    ],
)
def test_bad_specs_say_why_and_how_to_build_without(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_build_cache(text)
    assert why in str(raised.value)
    assert "to build without a cache, drop --build-cache" in str(raised.value)


def test_option_from_environment_names_value_and_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIARCH_BUILD_CACHE", "s3:bucket")
    with pytest.raises(pytest.UsageError) as raised:
        resolve(FakeConfig(), "build-cache")  # type: ignore[arg-type]
    assert str(raised.value).startswith(
        "Invalid value 's3:bucket' from environment variable MULTIARCH_BUILD_CACHE: unknown cache "
        "kind 's3'"
    )


def test_option_from_ini_and_default() -> None:
    found = resolve(FakeConfig(ini={"multiarch_build_cache": "gha"}), "build-cache")  # type: ignore[arg-type]
    assert (found.value.kind, found.source) == ("gha", "ini option multiarch_build_cache")
    assert resolve(FakeConfig(), "build-cache").value is None  # type: ignore[arg-type]


def test_settings_carry_the_cache_to_workers() -> None:
    cache = replace(parse_build_cache("local:/c,mode=min"), source="--build-cache")
    settings = Settings(
        platforms=(AMD64,),
        images_dir=Path("/i"),
        build_mode="auto",
        build_timeout=1.0,
        missing_emulator="error",
        timeout_factor=10.0,
        keep_containers=False,
        bind_address="127.0.0.1",
        json_path=None,
        run_id="r",
        owner="o",
        build_cache=cache,
    )
    assert Settings.from_workerinput(settings.to_workerinput()).build_cache == cache


# ---- buildx arguments, one scope per (image, platform) ------------------------------------------


def test_local_scope_per_image_and_platform_and_missing_dir_is_cold(tmp_path: Path) -> None:
    cache = parse_build_cache(f"local:{tmp_path}")
    arm = tmp_path / "app" / "arm64"
    # Nothing there yet: not read (a cold build), written with mode=max.
    assert cache_arguments(cache, "app", ARM64.short) == [
        "--cache-to",
        f"type=local,dest={arm},mode=max",
    ]
    (arm).mkdir(parents=True)
    assert cache_arguments(cache, "app", ARM64.short)[:1] == ["--cache-to"]  # empty dir: cold
    (arm / "index.json").write_text("{}")
    assert cache_arguments(cache, "app", ARM64.short) == [
        "--cache-from",
        f"type=local,src={arm}",
        "--cache-to",
        f"type=local,dest={arm},mode=max",
    ]
    # Another platform of the same image never shares (or evicts) that scope.
    assert cache_arguments(cache, "app", ARMV7.short) == [
        "--cache-to",
        f"type=local,dest={tmp_path / 'app' / 'arm-v7'},mode=max",
    ]
    # A retry after an unreadable cache only writes; a staged export goes aside.
    staged = staging(cache, "app", ARM64.short, "s1")
    assert cache_arguments(cache, "app", ARM64.short, read=False, stage="s1") == [
        "--cache-to",
        f"type=local,dest={staged},mode=max",
    ]


def test_registry_scope_is_a_tag_suffix() -> None:
    plain = parse_build_cache("registry:127.0.0.1:5000/cache/app")
    tagged = parse_build_cache("registry:127.0.0.1:5000/cache/app:ci,mode=min")
    assert registry_scope(plain, "svc", "arm64") == "127.0.0.1:5000/cache/app:svc-arm64"
    assert registry_scope(tagged, "svc", "arm-v7") == "127.0.0.1:5000/cache/app:ci-svc-arm-v7"
    assert cache_arguments(tagged, "svc", "amd64") == [
        "--cache-from",
        "type=registry,ref=127.0.0.1:5000/cache/app:ci-svc-amd64",
        "--cache-to",
        "type=registry,ref=127.0.0.1:5000/cache/app:ci-svc-amd64,mode=min",
    ]


def test_gha_scope_per_image_and_platform() -> None:
    assert cache_arguments(parse_build_cache("gha"), "svc", "arm64") == [
        "--cache-from",
        "type=gha,scope=multiarch-svc-arm64",
        "--cache-to",
        "type=gha,scope=multiarch-svc-arm64,mode=max",
    ]
    assert cache_arguments(parse_build_cache("gha:nightly"), "svc", "amd64")[1] == (
        "type=gha,scope=nightly-svc-amd64"
    )


def test_build_command_carries_the_cache_arguments(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\n")
    spec = ImageSpec(name="web", directory=tmp_path)
    arguments = cache_arguments(parse_build_cache("gha"), "web", ARM64.short)
    command = build_command(spec, ARM64, "t", cache=arguments)
    at = command.index("--cache-from")
    assert command[at : at + 4] == arguments
    assert command[-3:] == ["--file", str(tmp_path / "Dockerfile"), str(tmp_path)]


def test_replace_local_swaps_in_the_staged_export(tmp_path: Path) -> None:
    cache = parse_build_cache(f"local:{tmp_path}")
    scope = tmp_path / "app" / "amd64"
    scope.mkdir(parents=True)
    (scope / "old-blob").write_text("stale")
    staged = staging(cache, "app", "amd64", "s1")
    staged.mkdir()
    (staged / "index.json").write_text("{}")
    replace_local(cache, "app", "amd64", "s1")
    assert sorted(p.name for p in scope.iterdir()) == ["index.json"]  # old blobs gone
    assert sorted(p.name for p in scope.parent.iterdir()) == ["amd64"]


# ---- what cannot work ----------------------------------------------------------------------------


def test_docker_driver_on_classic_store_cannot_export() -> None:
    cache = replace(parse_build_cache("local:/c"), source="--build-cache")
    problem = export_problem(cache, "default", "docker", "classic", "arm64")
    assert "builder 'default' (driver docker) cannot export a build cache" in problem
    assert "local:/c (from --build-cache)" in problem
    assert "containerd-snapshotter" in problem
    assert "docker-container" in problem
    assert "to build without a cache" in problem
    assert export_problem(cache, "default", "docker", "containerd") == ""
    assert export_problem(cache, "cb", "docker-container", "classic") == ""


def test_coordinator_refuses_before_building_on_classic_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docker driver on a classic store: every build of the run fails with the builder and
    the remedy, and buildx is never started."""
    calls: list[list[str]] = []

    class Found:
        ok = True
        stdout = "Name:   default\nDriver: docker\n\nNodes:\nName: default\n"

    def fake_run(command: list[str], **_: Any) -> Found:
        calls.append(command)
        return Found()

    monkeypatch.setattr("pytest_multiarch.engine.buildx.run_command", fake_run)
    cache = replace(parse_build_cache(f"local:{tmp_path}"), source="--build-cache")
    coordinator = BuildCoordinator(
        tmp_path,
        tmp_path,
        "auto",
        timeout=lambda p: 60.0,
        classic_store=True,
        client=lambda: None,  # type: ignore[arg-type,return-value]
        cache=cache,
    )
    problem = coordinator.export_problem_for(ARM64)
    assert "builder 'default' (driver docker) cannot export" in problem
    assert calls == [["docker", "buildx", "inspect"]]
    coordinator.export_problem_for(AMD64)
    assert len(calls) == 1  # asked once per engine

    monkeypatch.setattr("pytest_multiarch.runtime.build.inspect_platform", lambda *_: None)

    def no_build(*_: Any, **__: Any) -> None:
        raise AssertionError("buildx must not run")

    monkeypatch.setattr("pytest_multiarch.runtime.build.stream_command", no_build)
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\n")
    record = build_image(
        ImageSpec(name="web", directory=tmp_path),
        ARM64,
        "auto",
        client=None,  # type: ignore[arg-type]
        cache=cache,
        cache_problem=problem,
    )
    assert record.error.startswith("build of image 'web' for linux/arm64: --build-cache local:")
    assert "driver docker" in record.error


def test_unwritable_directory_and_gha_outside_actions(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = replace(parse_build_cache(f"local:{blocker}/cache"), source="--build-cache")
    assert f"cannot create {blocker}/cache" in directory_problem(cache)
    assert directory_problem(parse_build_cache(f"local:{tmp_path}/new")) == ""
    assert (tmp_path / "new").is_dir()
    gha = parse_build_cache("gha")
    assert "ACTIONS_RUNTIME_TOKEN" in environment_problem(gha, {})
    actions = {"ACTIONS_RUNTIME_TOKEN": "t", "ACTIONS_RESULTS_URL": "https://r/"}
    assert environment_problem(gha, actions) == ""


# ---- buildx's plain progress ---------------------------------------------------------------------

WARM = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#2 [internal] load metadata for docker.io/library/debian:bookworm-slim
#2 DONE 0.2s
#3 importing cache manifest from local:1499810006
#3 DONE 0.0s
#4 [1/4] FROM docker.io/library/debian:bookworm-slim@sha256:abc
#4 CACHED
#5 [2/4] RUN apt-get update
#5 CACHED
#6 [3/4] COPY server.py /opt/server.py
#6 CACHED
#7 [4/4] RUN useradd service
#7 0.312 adding user
#7 DONE 0.9s
#8 exporting to image
#8 DONE 0.4s
"""


def count(text: str) -> StepCount:
    steps = StepCount()
    for line in text.splitlines():
        steps.feed(line)
    return steps


def test_steps_cached_and_run_without_from_and_internal_steps() -> None:
    steps = count(WARM)
    assert (steps.cached, steps.run, steps.unreadable) == (2, 1, "")


def test_stage_names_count_too() -> None:
    steps = count("#4 [build 2/3] RUN make\n#4 CACHED\n#5 [stage-1 1/1] COPY --from=build a b\n")
    assert (steps.cached, steps.run) == (1, 0)


def test_a_registry_ref_nobody_wrote_is_a_cold_build() -> None:
    steps = count(
        "#4 importing cache manifest from 127.0.0.1:5000/c:svc-arm64\n"
        "#4 ERROR: failed to configure registry cache importer: 127.0.0.1:5000/c:svc-arm64: "
        "not found\n"
    )
    assert steps.unreadable == ""


@pytest.mark.parametrize(
    ("log", "said"),
    [
        (
            "#4 importing cache manifest from local:1499\n#4 ERROR: failed to configure local "
            "cache importer: NotFound: content sha256:f1f7: not found\n",
            "content sha256:f1f7: not found",
        ),
        (
            "WARNING: local cache import at /c/app/amd64 not found due to err: could not "
            'unmarshal /c/app/amd64/index.json ("{bad"): invalid character',
            "could not unmarshal",
        ),
    ],
)
def test_a_corrupt_cache_is_told(log: str, said: str) -> None:
    assert said in count(log).unreadable


def test_a_missing_local_index_is_not_corrupt() -> None:
    log = (
        "WARNING: local cache import at /c not found due to err: could not read /c/index.json: "
        "open /c/index.json: no such file or directory"
    )
    assert count(log).unreadable == ""


# ---- reported ------------------------------------------------------------------------------------


def record(**changes: Any) -> BuildRecord:
    base = BuildRecord("svc", "linux/arm64", "pytest-multiarch/svc:x-arm64", "sha256:1", 3.0, False)
    return replace(base, **changes)


def test_the_record_round_trips_and_every_report_shows_cache_use() -> None:
    built = record(
        steps_cached=5, steps_run=2, build_cache="local:/c/svc/arm64", verified="metadata"
    )
    warned = replace(
        record(platform="linux/amd64", steps_run=7, build_cache="local:/c/svc/amd64"),
        cache_warning="the build cache local:/c/svc/amd64 could not be read (x); built without it",
    )
    assert load(BuildRecord, dump(built), "r") == built
    assert built.cache_use == "5 of 7 steps cached"
    report = RunReport(run_id="r")
    report.builds += [built, warned]
    lines = format_lines(report)
    assert any("built in 3.0s (5 of 7 steps cached from local:/c/svc/arm64)" in x for x in lines)
    assert any("WARNING: the build cache local:/c/svc/amd64 could not be read" in x for x in lines)
    md = markdown(report)
    assert "| svc | linux/arm64 | 5 | 2 | local:/c/svc/arm64 |" in md
    assert "WARNING: the build cache local:/c/svc/amd64" in md
    page = render_html(report)
    assert "5 of 7 steps cached" in page
    assert "WARNING: the build cache" in page


def test_no_cache_columns_when_nothing_was_built() -> None:
    report = RunReport(run_id="r")
    report.builds.append(record(cached=True))
    assert "steps cached" not in markdown(report)


def test_progress_line_tells_cache_use(tmp_path: Path) -> None:
    board = ProgressBoard(tmp_path)
    progress = BuildProgress(board, "svc", replace(ARM64, emulated=True))
    progress.finished(record(steps_cached=5, steps_run=2, build_cache="local:/c/svc/arm64"))
    lines, _ = ProgressView(live=False).update(board.entries(), 1e12, final=True)
    assert lines == [
        "multiarch: svc linux/arm64 (QEMU) built in 3.0s "
        "(5 of 7 steps cached from local:/c/svc/arm64)"
    ]


def test_build_cache_type_is_frozen() -> None:
    cache = BuildCache("local", "/c")
    with pytest.raises(AttributeError):
        cache.kind = "gha"  # type: ignore[misc]


# ---- a build whose cache cannot be read ----------------------------------------------------------

CORRUPT = (
    "#3 importing cache manifest from local:1499\n"
    "#3 ERROR: failed to configure local cache importer: content sha256:f1f7: not found\n"
    "#5 [2/2] RUN make\n"
)


def test_failed_build_that_could_not_read_the_cache_runs_again_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_multiarch.core.errors import CommandError
    from pytest_multiarch.runtime import build

    cache = replace(parse_build_cache(f"local:{tmp_path / 'c'}"), source="--build-cache")
    scope = tmp_path / "c" / "web" / "amd64"
    scope.mkdir(parents=True)
    (scope / "index.json").write_text("{}")
    commands: list[list[str]] = []

    def fake_stream(command: list[str], *, on_line: Any, **_: Any) -> None:
        commands.append(command)
        if "--cache-from" in command:
            for line in CORRUPT.splitlines():
                on_line(line)
            raise CommandError(command, 1, "", CORRUPT + "ERROR: failed to solve")
        for line in ("#5 [2/2] RUN make", "#5 DONE 1.0s"):
            on_line(line)
        staged = Path(command[command.index("--cache-to") + 1].split("dest=")[1].split(",")[0])
        staged.mkdir()
        (staged / "index.json").write_text('{"new": 1}')

    monkeypatch.setattr(build, "stream_command", fake_stream)
    monkeypatch.setattr(build, "_deliver", lambda *_: None)
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\nRUN make\n")
    steps = StepCount()
    error = build._run_build(
        ImageSpec(name="web", directory=tmp_path),
        AMD64,
        "t",
        60.0,
        {},
        build._Unobserved(),
        cache=cache,
        steps=steps,
    )
    assert error == ""
    assert ["--cache-from" in c for c in commands] == [True, False]
    assert (steps.cached, steps.run) == (0, 1)
    assert steps.unreadable.startswith(f"the build cache local:{scope} could not be read (")
    assert "content sha256:f1f7: not found" in steps.unreadable
    assert steps.unreadable.endswith("built without it")
    # The new export replaced the unreadable cache.
    assert (scope / "index.json").read_text() == '{"new": 1}'
    assert sorted(p.name for p in scope.parent.iterdir()) == ["amd64"]
