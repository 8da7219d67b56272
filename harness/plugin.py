"""pytest wiring for pytest-multiarch: options, markers, parametrization, fixtures, reports.

The work lives in the modules named for what they own; this module only connects them to
pytest. Loaded through the ``pytest11`` entry point.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.runtime.build import BUILD_MODES
from harness.errors import ConfigError, MultiarchError, PlatformError
from harness.images import ImageSpec, discover_images
from harness.platforms import Platform, lookup, parse_platforms
from harness.run.report import Results

MISSING_EMULATOR_MODES = ("error", "skip")

SETTINGS_KEY = pytest.StashKey["Settings"]()
RESULTS_KEY = pytest.StashKey[Results]()
IMAGES_KEY = pytest.StashKey[dict[str, ImageSpec]]()
HARNESS_KEY = pytest.StashKey["Harness"]()
ITEM_BUILDS_KEY = pytest.StashKey[list[dict[str, Any]]]()
ITEM_CONTAINERS_KEY = pytest.StashKey[list[tuple[str, Any]]]()

if TYPE_CHECKING:  # the Docker side is imported only when used
    from harness.publish.push import Destination
    from harness.runtime.session import BuiltImage, Harness, Runner, Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("multiarch", "multi-architecture container tests (pytest-multiarch)")
    group.addoption(
        "--platforms",
        dest="multiarch_platforms",
        default=None,
        metavar="LIST",
        help="platforms to test, comma-separated: amd64, linux/arm64, arm/v7, s390x, aliases "
        "(aarch64, armhf, ...), 'native' or 'all' (default: native; env MULTIARCH_PLATFORMS)",
    )
    group.addoption(
        "--images",
        dest="multiarch_images",
        default=None,
        metavar="DIR",
        help="directory holding one sub-directory per image (default: images/ under rootdir)",
    )
    group.addoption(
        "--build",
        dest="multiarch_build",
        default=None,
        help="auto: build what changed; always: run buildx for every image; never: only use "
        "images built before (default: auto)",
    )
    group.addoption(
        "--missing-emulator",
        dest="multiarch_missing_emulator",
        default=None,
        help="error (default): a platform without a working emulator stops the session; "
        "skip: its tests are skipped with the reason",
    )
    group.addoption(
        "--emulation-timeout-factor",
        dest="multiarch_timeout_factor",
        default=None,
        metavar="FACTOR",
        help="multiply wait and run timeouts by FACTOR on emulated platforms (default: 10)",
    )
    group.addoption(
        "--keep-containers",
        dest="multiarch_keep_containers",
        action="store_true",
        default=None,
        help="leave started containers behind for debugging (prints how to remove them)",
    )
    group.addoption(
        "--multiarch-json",
        dest="multiarch_json",
        default=None,
        metavar="PATH",
        help="write builds and per-platform test results to PATH as JSON",
    )
    group.addoption(
        "--publish",
        dest="multiarch_publish",
        default=None,
        metavar="REGISTRY[/NAMESPACE]",
        help="after the session, push every image whose tests all passed on every platform as "
        "one manifest list REGISTRY/NAMESPACE/<image>:<tag> of exactly the tested digests",
    )
    group.addoption(
        "--publish-tag",
        dest="multiarch_publish_tag",
        default=None,
        metavar="TAG",
        help="tag to publish (default: latest)",
    )
    group.addoption(
        "--publish-overwrite",
        dest="multiarch_publish_overwrite",
        action="store_true",
        default=None,
        help="replace a tag that already exists with other content",
    )
    parser.addini("multiarch_platforms", "default for --platforms", default="")
    parser.addini("multiarch_publish", "default for --publish", default="")
    parser.addini("multiarch_publish_tag", "default for --publish-tag", default="")
    parser.addini(
        "multiarch_publish_overwrite", "default for --publish-overwrite", type="bool", default=False
    )
    parser.addini("multiarch_images", "default for --images", default="")
    parser.addini("multiarch_build", "default for --build", default="")
    parser.addini("multiarch_missing_emulator", "default for --missing-emulator", default="")
    parser.addini(
        "multiarch_emulation_timeout_factor", "default for --emulation-timeout-factor", default=""
    )
    parser.addini(
        "multiarch_keep_containers", "default for --keep-containers", type="bool", default=False
    )
    parser.addini("multiarch_json", "default for --multiarch-json", default="")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _value(
    config: pytest.Config, dest: str, ini: str, option: str, env: str | None = None
) -> tuple[str, str] | None:
    """(value, where it came from), command line first, then environment, then ini."""
    given = config.getoption(dest)
    if given is not None:
        return str(given), option
    if env and os.environ.get(env):
        return os.environ[env], f"environment variable {env}"
    from_ini = config.getini(ini)
    if from_ini:
        return str(from_ini), f"ini option {ini}"
    return None


def _choice(config: pytest.Config, dest: str, ini: str, option: str, choices: Sequence[str]) -> str:
    found = _value(config, dest, ini, option)
    if found is None:
        return choices[0]
    value, where = found
    if value not in choices:
        raise pytest.UsageError(
            f"Invalid value {value!r} from {where}: use one of {', '.join(choices)}"
        )
    return value


def _resolve_settings(config: pytest.Config) -> Settings:
    from harness.runtime.cleanup import owner_id
    from harness.emulation import check_emulator
    from harness.runtime.session import Settings, unusable_reasons

    found = _value(
        config, "multiarch_platforms", "multiarch_platforms", "--platforms", "MULTIARCH_PLATFORMS"
    )
    spec, where = found if found else ("native", "the default")
    try:
        platforms = parse_platforms(
            spec, source=where, can_run=lambda p: check_emulator(p, ask_version=False).usable
        )
    except PlatformError as exc:
        raise pytest.UsageError(str(exc)) from None

    factor_found = _value(
        config,
        "multiarch_timeout_factor",
        "multiarch_emulation_timeout_factor",
        "--emulation-timeout-factor",
    )
    factor = 10.0
    if factor_found:
        try:
            factor = float(factor_found[0])
        except ValueError:
            factor = -1.0
        if not factor > 0:
            raise pytest.UsageError(
                f"Invalid emulation timeout factor {factor_found[0]!r} from {factor_found[1]}: "
                "expected a positive number, such as 10"
            )

    images = _value(config, "multiarch_images", "multiarch_images", "--images")
    images_dir = Path(images[0]) if images else Path("images")
    if not images_dir.is_absolute():
        base = (
            Path(config.invocation_params.dir)
            if images and images[1] == "--images"
            else (config.rootpath)
        )
        images_dir = base / images_dir
    if images and not images_dir.is_dir():
        raise pytest.UsageError(
            f"Invalid images directory {images_dir} from {images[1]}: not a directory"
        )

    json_found = _value(config, "multiarch_json", "multiarch_json", "--multiarch-json")
    json_path = None
    if json_found:
        json_path = Path(json_found[0])
        if not json_path.is_absolute():
            json_path = Path(config.invocation_params.dir) / json_path

    keep = bool(
        config.getoption("multiarch_keep_containers") or config.getini("multiarch_keep_containers")
    )
    missing = _choice(
        config,
        "multiarch_missing_emulator",
        "multiarch_missing_emulator",
        "--missing-emulator",
        MISSING_EMULATOR_MODES,
    )
    unusable = unusable_reasons(platforms)
    if unusable and missing == "error":
        lines = [f"  {name}: {reason}" for name, reason in unusable.items()]
        raise pytest.UsageError(
            "cannot run these platforms here (checked binfmt_misc before running anything):\n"
            + "\n".join(lines)
            + "\nfix the emulator, drop the platform from --platforms, or pass "
            "--missing-emulator=skip to report their tests as skipped"
        )

    run_id = getattr(config.option, "testrunuid", None) or uuid.uuid4().hex
    if hasattr(config.option, "testrunuid"):
        # xdist hands this to every worker as testrun_uid: one id for the whole run.
        config.option.testrunuid = run_id
    return Settings(
        platforms=tuple(platforms),
        images_dir=images_dir,
        build_mode=_choice(config, "multiarch_build", "multiarch_build", "--build", BUILD_MODES),
        missing_emulator=missing,
        timeout_factor=factor,
        keep_containers=keep,
        json_path=json_path,
        run_id=run_id,
        owner=owner_id(),
        unusable=unusable,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image(name): the image under images/<name>/ that this test exercises"
    )
    config.addinivalue_line(
        "markers", "platforms(*names): run this test only on these platforms (others skip)"
    )
    config.addinivalue_line(
        "markers", "skip_platforms(*names, reason=...): skip this test on these platforms"
    )
    config.addinivalue_line(
        "markers",
        "xfail_platforms(*names, reason=...): expect this test to fail on these platforms",
    )
    from harness.runtime.session import Settings

    if _is_worker(config):
        workerinput: Mapping[str, Any] = config.workerinput  # type: ignore[attr-defined]
        settings = Settings.from_workerinput(workerinput["multiarch"])
    else:
        settings = _resolve_settings(config)
        from harness.emulation import check_emulator

        config.stash[RESULTS_KEY] = Results(
            platforms=[p.short for p in settings.platforms],
            run_id=settings.run_id,
            # Emulator faults come and go with QEMU releases: every report names the version.
            emulators={p.short: check_emulator(p).summary for p in settings.platforms},
        )
        config.pluginmanager.register(XdistHooks(settings), "multiarch-xdist")
        publisher = _publisher(config)
        if publisher is not None:
            config.pluginmanager.register(publisher, "multiarch-publish")
        config.pluginmanager.register(
            ResultsCollector(config.stash[RESULTS_KEY]), "multiarch-results"
        )
    config.stash[SETTINGS_KEY] = settings
    try:
        config.stash[IMAGES_KEY] = discover_images(settings.images_dir)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _publisher(config: pytest.Config) -> Publisher | None:
    found = _value(config, "multiarch_publish", "multiarch_publish", "--publish")
    if found is None:
        return None
    from harness.publish.push import PublishError, parse_destination

    tag_found = _value(config, "multiarch_publish_tag", "multiarch_publish_tag", "--publish-tag")
    try:
        destination = parse_destination(
            found[0], tag_found[0] if tag_found else "latest", source=found[1]
        )
    except PublishError as exc:
        raise pytest.UsageError(str(exc)) from None
    overwrite = bool(
        config.getoption("multiarch_publish_overwrite")
        or config.getini("multiarch_publish_overwrite")
    )
    return Publisher(destination, overwrite)


class Publisher:
    """Controller-side: after the last test, publish what passed everywhere."""

    def __init__(self, destination: Destination, overwrite: bool) -> None:
        self.destination = destination
        self.overwrite = overwrite

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from harness.publish.push import PublishError, publish_report

        results = session.config.stash[RESULTS_KEY]
        _describe_images(session.config, results)
        if session.shouldstop or session.exitstatus == pytest.ExitCode.INTERRUPTED:
            results.publications.append(
                {"image": "*", "status": "refused", "detail": "the session was interrupted"}
            )
            return
        try:
            publications = publish_report(
                results.to_json(), self.destination, overwrite=self.overwrite, log=_quiet
            )
        except PublishError as exc:
            results.publications.append({"image": "*", "status": "failed", "detail": str(exc)})
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        results.publications.extend(p.to_dict() for p in publications)
        if any(p.status in ("failed", "refused") for p in publications) and (
            session.exitstatus == pytest.ExitCode.OK
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _quiet(_line: str) -> None:
    """Progress lines of publishing are not printed; the summary section says what happened."""


def _describe_images(config: pytest.Config, results: Results) -> None:
    """What the JSON report says of each tested image: where it publishes, which platforms."""
    settings = config.stash[SETTINGS_KEY]
    images = config.stash[IMAGES_KEY]
    for name in sorted({t.image for t in results.tests.values() if t.image}):
        spec = images.get(name)
        if spec is None:
            continue
        results.images[name] = {
            "repository": spec.repository,
            "platforms": [p.name for p in settings.platforms if spec.allows(p)],
        }


class XdistHooks:
    """Controller-side: hand the resolved settings to each worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["multiarch"] = self.settings.to_workerinput()


def _marker_platforms(marker: pytest.Mark, where: str) -> list[Platform]:
    found = []
    for name in marker.args:
        try:
            found.append(lookup(str(name)))
        except PlatformError:
            pytest.fail(
                f"{where}: unknown platform {name!r} in @pytest.mark.{marker.name}", pytrace=False
            )
    return found


def _image_spec(node: pytest.Item, config: pytest.Config) -> ImageSpec | None:
    marker = node.get_closest_marker("image")
    if marker is None:
        return None
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        pytest.fail(f"{node.nodeid}: @pytest.mark.image takes one image name", pytrace=False)
    images = config.stash[IMAGES_KEY]
    name = marker.args[0]
    if name not in images:
        settings = config.stash[SETTINGS_KEY]
        known = ", ".join(images) or "none"
        pytest.fail(
            f"{node.nodeid}: @pytest.mark.image({name!r}) names no image under "
            f"{settings.images_dir} (found: {known})",
            pytrace=False,
        )
    return images[name]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "platform" not in metafunc.fixturenames:
        return
    config = metafunc.config
    settings = config.stash[SETTINGS_KEY]
    definition = metafunc.definition
    spec = _image_spec(definition, config)
    where = definition.nodeid
    only: list[Platform] | None = None
    for marker in definition.iter_markers("platforms"):
        allowed = _marker_platforms(marker, where)
        names = {p.name for p in allowed}
        only = [p for p in (only if only is not None else allowed) if p.name in names]
    params = []
    for plat in settings.platforms:
        marks: list[pytest.MarkDecorator] = []
        reason = ""
        if only is not None and plat.name not in {p.name for p in only}:
            reason = (
                f"test runs only on {', '.join(p.short for p in only)} (@pytest.mark.platforms)"
            )
        elif spec is not None and not spec.allows(plat):
            reason = (
                f"image {spec.name!r} is restricted to "
                f"{', '.join(p.short for p in spec.platforms)} by {spec.directory / 'image.toml'}"
            )
        elif plat.name in settings.unusable:
            reason = f"{plat.name} cannot run here: {settings.unusable[plat.name]}"
        else:
            for marker in definition.iter_markers("skip_platforms"):
                if plat.name in {p.name for p in _marker_platforms(marker, where)}:
                    reason = str(marker.kwargs.get("reason") or f"skipped on {plat.short}")
                    break
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
        for marker in definition.iter_markers("xfail_platforms"):
            if plat.name in {p.name for p in _marker_platforms(marker, where)}:
                marks.append(
                    pytest.mark.xfail(
                        reason=str(
                            marker.kwargs.get("reason") or f"expected to fail on {plat.short}"
                        ),
                        strict=bool(marker.kwargs.get("strict", False)),
                    )
                )
        params.append(pytest.param(plat, id=plat.short, marks=marks))
    metafunc.parametrize("platform", params)


# ---- fixtures -------------------------------------------------------------------------------


def _harness(config: pytest.Config) -> Harness:
    from harness.runtime.session import Harness

    harness = config.stash.get(HARNESS_KEY, None)
    if harness is None:
        harness = Harness(config.stash[SETTINGS_KEY])
        config.stash[HARNESS_KEY] = harness
    return harness


@pytest.fixture
def platform(request: pytest.FixtureRequest) -> Platform:
    """The platform of this test case (parametrized by --platforms)."""
    param = getattr(request, "param", None)
    if not isinstance(param, Platform):
        pytest.fail(
            "the 'platform' fixture is parametrized by pytest-multiarch only", pytrace=False
        )
    return param


@pytest.fixture
def image(request: pytest.FixtureRequest, platform: Platform) -> BuiltImage:
    """The image of ``@pytest.mark.image(name)`` built for this platform (BuiltImage)."""
    spec = _image_spec(request.node, request.config)
    if spec is None:
        pytest.fail(
            f"{request.node.nodeid} uses an image fixture but has no @pytest.mark.image(name)",
            pytrace=False,
        )
    from harness.runtime.session import ImageUnavailable

    harness = _harness(request.config)
    try:
        built, record = harness.image(spec, platform)
    except ImageUnavailable as exc:
        _stash_build(request, exc.record)
        failure = str(exc)
    else:
        _stash_build(request, record)
        return built
    pytest.fail(failure, pytrace=False)


def _stash_build(request: pytest.FixtureRequest, record: Any) -> None:
    if record is not None:
        request.node.stash.setdefault(ITEM_BUILDS_KEY, []).append(record.to_dict())


@pytest.fixture
def container(
    request: pytest.FixtureRequest, image: BuiltImage, platform: Platform
) -> Generator[Any]:
    """A started testcontainers container of the image, ready per image.toml [wait]."""
    from docker.errors import DockerException

    from harness.runtime.containers import (
        WrongArchitecture,
        check_uname,
        exec_uname,
        make_container,
        start_container,
        stop_container,
    )

    harness = _harness(request.config)
    settings = harness.settings
    spec: ImageSpec = image.spec
    started = make_container(image.reference, spec, platform, harness.labels)
    timeout = settings.timeout(spec.wait.timeout, platform)
    failure = ""
    try:
        start_container(started, spec.wait, timeout)
    except (MultiarchError, DockerException) as exc:
        failure = f"container of {image.reference} ({platform.name}) failed to start: {exc}"
    if failure:
        pytest.fail(failure, pytrace=False)
    request.node.stash.setdefault(ITEM_CONTAINERS_KEY, []).append((platform.short, started))
    try:
        answer = exec_uname(started)
        if answer is not None:
            check_uname(answer, platform, f"container of {image.reference}")
    except WrongArchitecture as exc:
        failure = f"wrong architecture: {exc}"
    if failure:
        if not settings.keep_containers:
            stop_container(started)
        pytest.fail(failure, pytrace=False)
    yield started
    if not settings.keep_containers:
        stop_container(started)


@pytest.fixture
def run(request: pytest.FixtureRequest, image: BuiltImage, platform: Platform) -> Runner:
    """Run a command in a fresh container of this platform: returns exit_code, stdout, stderr."""
    from harness.runtime.session import Runner

    return Runner(_harness(request.config), image, platform)


# ---- reports --------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    callspec = getattr(item, "callspec", None)
    plat = callspec.params.get("platform") if callspec is not None else None
    if not isinstance(plat, Platform):
        return report
    marker = item.get_closest_marker("image")
    image_name = str(marker.args[0]) if marker is not None and marker.args else ""
    data: dict[str, Any] = {"platform": plat.short, "image": image_name}
    builds = item.stash.get(ITEM_BUILDS_KEY, [])
    if builds and report.when == "setup":
        data["builds"] = list(builds)
    report.multiarch = data  # type: ignore[attr-defined]  # carried to the controller by xdist
    report.user_properties.append(("platform", plat.name))
    if report.failed:
        from harness.runtime.containers import container_logs

        for short, started in item.stash.get(ITEM_CONTAINERS_KEY, []):
            logs = container_logs(started, lines=200)
            if logs:
                report.sections.append((f"container logs [{short}]", logs))
    return report


class ResultsCollector:
    """Controller-side: every test report (local, or sent by an xdist worker) lands here."""

    def __init__(self, results: Results) -> None:
        self.results = results

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "multiarch", None)
        if not isinstance(data, dict):
            return
        self.results.builds.extend(data.get("builds", []))
        self.results.record_phase(
            report.nodeid,
            str(data.get("image", "")),
            str(data.get("platform", "")),
            report.when or "",
            report.outcome,
            float(report.duration),
            hasattr(report, "wasxfail"),
        )
        self.results.record_span(
            str(data.get("platform", "")),
            float(getattr(report, "start", 0.0)),
            float(getattr(report, "stop", 0.0)),
        )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS_KEY, None)
    settings = config.stash.get(SETTINGS_KEY, None)
    if results is None or settings is None:
        return
    lines = results.format_lines()
    if lines:
        terminalreporter.write_sep("=", "multiarch: results per platform")
        for line in lines:
            terminalreporter.write_line(line)
    if settings.keep_containers and results.tests:
        terminalreporter.write_line(
            f"containers kept (--keep-containers); remove them with: docker rm -f $(docker ps -aq "
            f"--filter label=pytest-multiarch.run={settings.run_id})"
        )
    if results.publications:
        from harness.publish.push import format_publication_dicts

        terminalreporter.write_sep("=", "multiarch: publish")
        for line in format_publication_dicts(results.publications):
            terminalreporter.write_line(line)
    if settings.json_path is not None:
        _describe_images(config, results)
        results.write_json(settings.json_path)
        terminalreporter.write_line(f"multiarch: JSON report written to {settings.json_path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or _is_worker(config):
        return
    from harness.runtime.session import run_state_dir

    state = run_state_dir(settings.run_id)
    if not state.exists():
        return  # no process of this run touched Docker
    if not settings.keep_containers:
        from harness.runtime.cleanup import sweep

        with contextlib.suppress(MultiarchError):  # engine gone: the next run reaps by label
            sweep(settings.run_id)
    shutil.rmtree(state, ignore_errors=True)
