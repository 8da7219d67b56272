"""pytest wiring for pytest-multiarch: options, markers, parametrization, fixtures, reports.

The work lives in the modules named for what they own; this module only connects them to
pytest. Loaded through the ``pytest11`` entry point.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import threading
from collections.abc import Generator
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_multiarch.core.errors import ConfigError, MultiarchError, PlatformError
from pytest_multiarch.core.images import IMAGE_TOML, ImageSpec, survey_images
from pytest_multiarch.core.paths import UnsafeStateDir
from pytest_multiarch.core.platforms import Platform, lookup
from pytest_multiarch.core.secrets import (
    SecretLikeBuildArg,
    present_secret_values,
    redact_values,
    secret_like_build_args,
)
from pytest_multiarch.engine.resolve import platform_facts
from pytest_multiarch.model.codec import dump, load
from pytest_multiarch.model.progress import ProgressBoard, ProgressPlugin
from pytest_multiarch.model.records import (
    PlatformFacts,
    RunReport,
)
from pytest_multiarch.run.items import (
    ITEM_KEY,
    ItemState,
    built_image,
    image_spec,
    item_platform,
    item_state,
    item_target,
    parametrizes_platform,
    runtime_of,
)
from pytest_multiarch.run.options import add_options, resolve
from pytest_multiarch.run.state import (
    BROKEN_IMAGES_KEY,
    IMAGES_KEY,
    REPORT_ATTRIBUTE,
    REPORT_KEY,
    RETRIED,
    RUNTIME_KEY,
    SETTINGS_KEY,
    ItemFacts,
)
from pytest_multiarch.run.timeouts import (
    configured_pytest_timeout,
    explain_timeout,
    platform_timeout,
    scale_timeout,
    set_timeout,
    timer_armed,
    timer_cancelled,
)

if TYPE_CHECKING:  # the Docker side is imported only when used
    from pathlib import Path
    from types import FrameType

    from testcontainers.core.container import DockerContainer

    from pytest_multiarch.runtime.compare import PlatformImages
    from pytest_multiarch.runtime.faults import RecordedRun
    from pytest_multiarch.runtime.process import BuiltImage, ProcessRuntime, Runner
    from pytest_multiarch.runtime.settings import Settings
    from pytest_multiarch.runtime.stacks import Stack

# Values of the build secrets declared in image.toml files: redacted from test reports.
SECRETS_KEY = pytest.StashKey[list[str]]()
# The SIGTERM handler that was there before ours (restored at unconfigure).
SIGTERM_KEY = pytest.StashKey[Any]()
# Fixtures that talk to the engine: tests using them are guarded (pytest_multiarch.engine.health).
ENGINE_FIXTURES = frozenset({"image", "images", "container", "shared_container", "run", "services"})
# The platform of an item that is not a parametrized function (a structure-test check).
PLATFORM_MARKERS = ("platforms", "skip_platforms", "xfail_platforms")
# The matrix column of tests that compare every platform in one (the images fixture).
CROSS_PLATFORM = "all"
# Of a failed test, kept for the run report: its last commands.
COMMANDS_KEPT = 10
# The platform facts the controller read at the start, on every process (workers get them).
PLATFORM_FACTS_KEY = pytest.StashKey[dict[str, PlatformFacts]]()
# The exit status of a worker that outlived its controller (nobody reads it: the status of a
# process killed by SIGKILL, as its controller was).
ORPHANED_EXIT = 128 + signal.SIGKILL
# The test a worker runs after this one (pytest's nextitem): its container is started ahead.
NEXT_ITEM_KEY = pytest.StashKey["pytest.Item | None"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


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
        "platform_timeout(arm64=SECONDS, s390x=..., arm_v7=...): pytest-timeout's limit of this "
        "test on those platforms, as given (others keep the emulation-scaled limit)",
    )
    config.addinivalue_line(
        "markers",
        "xfail_platforms(*names, reason=..., strict=...): expect this test to fail on these "
        "platforms (strict defaults to the xfail_strict ini option, as for pytest.mark.xfail)",
    )
    config.addinivalue_line(
        "markers",
        "requires_native(reason=...): run this test only where its platform runs natively on "
        "its engine (not under QEMU); elsewhere it is skipped with the reason",
    )
    from pytest_multiarch.run.settings import resolve_settings
    from pytest_multiarch.runtime.settings import Settings

    if _is_worker(config):
        workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
        settings = Settings.from_workerinput(workerinput["multiarch"])
        # The engine of each pool this worker works for (XdistHooks.pytest_configure_node).
        settings = settings.for_engines(workerinput.get("multiarch_engines", {}))
        facts = [
            load(PlatformFacts, item, "workerinput['multiarch_platforms']")
            for item in workerinput["multiarch_platforms"]
        ]
        _leave_with_the_controller()
    else:
        settings = resolve_settings(config)
        # Emulator faults come and go with QEMU releases: every report names the version.
        facts = platform_facts(settings.platforms, settings.endpoints, settings.builders)
        config.stash[REPORT_KEY] = RunReport(run_id=settings.run_id, platforms=facts)
        config.pluginmanager.register(XdistHooks(settings, facts), "multiarch-xdist")
        from pytest_multiarch.run.collector import ReportCollector, publisher_for

        config.pluginmanager.register(
            ReportCollector(config.stash[REPORT_KEY], publisher_for(config)),
            "multiarch-report",
        )
        config.pluginmanager.register(
            ProgressPlugin(lambda: _progress_board(settings.run_id)), "multiarch-progress"
        )
        from pytest_multiarch.run.durations import register_recorder

        register_recorder(config)  # each test's duration, for the next run's longest first
    config.stash[SETTINGS_KEY] = settings
    config.stash[PLATFORM_FACTS_KEY] = {fact.name: fact for fact in facts}
    images, broken = survey_images(settings.images_dir)
    images = _with_verified_ref(config, images)
    if broken and not images:  # nothing could be tested: say so before anything runs
        raise pytest.UsageError("\n".join(broken.values()))
    # One image's bad image.toml fails that image's tests (image_spec); the others run.
    config.stash[IMAGES_KEY] = images
    config.stash[BROKEN_IMAGES_KEY] = broken
    config.stash[SECRETS_KEY] = present_secret_values(
        secret for spec in images.values() for secret in spec.secrets
    )
    if not _is_worker(config) and images:
        _check_state_dir()
        _warn_secret_like_build_args(config, images)
    _handle_sigterm_like_ctrl_c(config)


def _with_verified_ref(config: pytest.Config, images: dict[str, ImageSpec]) -> dict[str, ImageSpec]:
    """``images`` with --verify-ref's REF as the ``ref`` of the image it names (multiarch
    verify): its tests run against that published image, pulled by digest, not a build."""
    from pytest_multiarch.core.published import parse_ref_override, with_ref_override

    given = resolve(config, "verify-ref")
    if given.value is None:
        return images
    try:
        name, ref = parse_ref_override(given.value, given.source)
        return with_ref_override(images, name, ref, given.source)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _leave_with_the_controller() -> None:
    """An xdist worker whose controller died (SIGKILL, a closed terminal) kills what it started
    (buildx, the docker CLI) and exits at once, without a word: its channel to the controller
    is closed, so every report it would send fails with ``OSError: cannot send`` printed into
    the user's terminal, minutes after the prompt came back. The run's containers are the
    next run's sweep's (their owner is dead)."""
    from pytest_multiarch.core.processes import kill_descendants, watch_parent

    def leave() -> None:
        kill_descendants(os.getpid())
        os._exit(ORPHANED_EXIT)

    watch_parent(leave)


def _start_shown(
    image: BuiltImage,
    platform: Platform,
    runtime: ProcessRuntime,
    ahead: Future[DockerContainer] | None = None,
    network: str = "",
) -> DockerContainer:
    """A started, verified container; shown in the live progress while it takes long (an
    emulated service can take a while to become ready). ``ahead``: the start begun for this test
    while the one before ran, if there is one (pytest_multiarch.runtime.prestart)."""
    from pytest_multiarch.runtime.services import readiness, start_verified

    waits = [strategy.describe() for strategy in readiness(image.spec.wait)]
    with _progress_board(runtime.settings.run_id).waiting(
        image.name, platform, " ".join(["container start", *filter(None, waits)])
    ):
        if ahead is not None:
            return ahead.result()
        return start_verified(image, platform, runtime, network=network)


def _progress_board(run_id: str) -> ProgressBoard:
    from pytest_multiarch.runtime.process import progress_board

    return progress_board(run_id)


def _check_state_dir() -> None:
    """A state directory another user could write to is refused before anything runs."""
    from pytest_multiarch.core.paths import run_state_root

    try:
        run_state_root()
    except MultiarchError as exc:
        raise pytest.UsageError(str(exc)) from None
    except OSError as exc:
        raise pytest.UsageError(
            f"cannot create this user's state directory for pytest-multiarch ({exc}); set "
            "XDG_STATE_HOME or MULTIARCH_RUN_STATE_DIR to a directory of your own"
        ) from None


def _warn_secret_like_build_args(config: pytest.Config, images: dict[str, ImageSpec]) -> None:
    for spec in images.values():
        for name in secret_like_build_args(spec.build_args):
            config.issue_config_time_warning(
                SecretLikeBuildArg(
                    f"{spec.directory / 'image.toml'}: build arg {name} looks like a secret; "
                    "build-arg values end up in `docker history` of the image and in build "
                    f"logs. Declare it as a build secret instead: secrets = {{ "
                    f'{name.lower()} = {{ env = "{name}" }} }} and read it in the Dockerfile '
                    f"with RUN --mount=type=secret,id={name.lower()}"
                ),
                stacklevel=2,
            )


def _handle_sigterm_like_ctrl_c(config: pytest.Config) -> None:
    """CI systems and tox cancel with SIGTERM: let it unwind like Ctrl-C (fixture teardown, the
    run's sweep), in the controller and in every xdist worker. Only when nobody else handles it."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    config.stash[SIGTERM_KEY] = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)


def _interrupt_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"terminated by signal {signal.Signals(signum).name}")


class XdistHooks:
    """Controller-side: hand the resolved settings to each worker."""

    def __init__(self, settings: Settings, facts: list[PlatformFacts]) -> None:
        self.settings = settings
        self.facts = facts

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["multiarch"] = self.settings.to_workerinput()
        node.workerinput["multiarch_platforms"] = dump(self.facts)
        if self.settings.pools:
            from pytest_multiarch.run.scheduling import assign_engines, worker_number

            pools = {name: [p.engine for p in pool] for name, pool in self.settings.pools.items()}
            number = worker_number(str(node.gateway.id))
            node.workerinput["multiarch_engines"] = assign_engines(pools, number)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """With platforms on engines of their own, ``-n`` shares the workers between engines
        (pytest_multiarch.run.scheduling): a native engine's tests never wait behind emulated
        ones. With durations of earlier runs (``--multiarch-order=longest``), the longest tests
        go out first."""
        if config.getvalue("dist") != "load":
            return None
        from pytest_multiarch.run.durations import recorded_durations
        from pytest_multiarch.run.scheduling import engine_grouper, make_scheduler

        durations = recorded_durations(config) if self.settings.order == "longest" else {}
        settings = self.settings
        if not settings.engines and not settings.pools and not durations:
            return None
        from pytest_multiarch.run.scheduling import pool_group

        groups = {
            p.name: pool_group([q.engine for q in settings.pool(p)])
            if p.name in settings.pools
            else p.engine
            for p in settings.platforms
        }
        engines = {p.short: groups[p.name] for p in settings.platforms}
        mapped = settings.engines or settings.pools
        group_of = engine_grouper(engines) if mapped else None

        def worker_engines(node: Any) -> dict[str, str]:
            assigned = node.workerinput.get("multiarch_engines", {})
            return {groups[name]: spec for name, spec in assigned.items() if name in groups}

        return make_scheduler(config, log, group_of, durations or None, worker_engines)


# ---- collection: one item per platform, platform markers ------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Images' container-structure-test files: one item per (check, platform); an image's
    Dockerfile (or image.toml without one): its variants check."""
    images = parent.config.stash.get(IMAGES_KEY, {})
    found = None
    if any(spec.structure_test_files() for spec in images.values()):
        # Else the structure-test machinery (YAML and all) is not even imported.
        from pytest_multiarch.run.structure_items import collect_file

        found = collect_file(file_path, parent)
    if found is None and images and file_path.name in ("Dockerfile", IMAGE_TOML):
        from pytest_multiarch.run.variants_items import collect_variants

        found = collect_variants(file_path, parent)
    return found


def _marker_platforms(marker: pytest.Mark, where: str) -> set[str]:
    found = set()
    for name in marker.args:
        try:
            found.add(lookup(str(name)).name)
        except PlatformError:
            raise pytest.UsageError(
                f"{where}: unknown platform {name!r} in @pytest.mark.{marker.name}"
            ) from None
    return found


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "platform" not in metafunc.fixturenames or parametrizes_platform(metafunc.definition):
        return
    settings = metafunc.config.stash[SETTINGS_KEY]
    # A module-scoped fixture may only depend on a parameter of module scope (or wider).
    scope: Literal["module", "function"] = (
        "module" if "shared_container" in metafunc.fixturenames else "function"
    )
    metafunc.parametrize(
        "platform",
        [pytest.param(_with_factor(settings, p), id=p.short) for p in settings.platforms],
        scope=scope,
    )


def _with_factor(settings: Settings, plat: Platform) -> Platform:
    """``plat`` carrying this run's timeout factor (not part of its identity: ids, equality and
    hashes stay as they are, so every xdist worker collects the same items)."""
    return replace(plat, timeout_factor=settings.factor(plat))


def _engine_label(plat: Platform) -> str:
    """``engine arm-box``, or ``the default engine``."""
    from pytest_multiarch.engine.endpoints import EngineRef

    return f"engine {EngineRef(plat.engine).label}" if plat.engine else "the default engine"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Platform markers, read from the item, so that marks on a parameter set, a class or a
    module count exactly like marks on the function (as pytest's own markers do)."""
    settings = config.stash[SETTINGS_KEY]
    timeouts = configured_pytest_timeout(config)
    for item in items:
        plat = item_platform(item)
        if plat is None:
            if timeouts is not None and item_target(item).every_platform:
                # A test that reaches every platform is as slow as the slowest of them.
                slowest = max(settings.platforms, key=settings.factor)
                scale_timeout(item, settings.factor(slowest), timeouts, slowest.name)
            continue
        # The image name is a keyword of its items: `-k service` selects that image's tests.
        image_name = item_target(item).image
        if image_name:
            item.extra_keyword_matches.add(image_name)
        _apply_platform_markers(config, item, plat)
        own_limit = platform_timeout(item, plat)
        if own_limit is not None and timeouts is None:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.platform_timeout sets pytest-timeout's limit, and "
                "pytest-timeout is not installed (pip install pytest-timeout)"
            )
        if own_limit is not None:
            set_timeout(item, own_limit, f"@pytest.mark.platform_timeout on {plat.name}")
        elif timeouts is not None:
            scale_timeout(item, settings.factor(plat), timeouts, plat.name)


def _apply_platform_markers(config: pytest.Config, item: pytest.Item, plat: Platform) -> None:
    settings = config.stash[SETTINGS_KEY]
    where = item.nodeid
    reason = ""
    for marker in item.iter_markers("platforms"):
        only = _marker_platforms(marker, where)
        if plat.name not in only:
            shorts = ", ".join(sorted(lookup(n).short for n in only))
            reason = f"test runs only on {shorts} (@pytest.mark.platforms)"
    image = config.stash[IMAGES_KEY].get(item_target(item).image)
    if not reason and image is not None and not image.allows(plat):
        reason = (
            f"image {image.name!r} is restricted to "
            f"{', '.join(p.short for p in image.platforms)} by {image.directory / 'image.toml'}"
        )
    if not reason and plat.name in settings.unusable:
        reason = f"{plat.name} cannot run here: {settings.unusable[plat.name]}"
    if not reason and plat.emulated:
        native = item.get_closest_marker("requires_native")
        if native is not None:
            why = str(native.kwargs.get("reason") or (native.args[0] if native.args else ""))
            where = _engine_label(plat)
            reason = (
                f"{why or 'needs a native machine'} (@pytest.mark.requires_native): "
                f"{plat.short} runs under QEMU on {where} in this run"
            )
    if not reason:
        for marker in item.iter_markers("skip_platforms"):
            if plat.name in _marker_platforms(marker, where):
                reason = str(marker.kwargs.get("reason") or f"skipped on {plat.short}")
                break
    if reason:
        item.add_marker(pytest.mark.skip(reason=reason))
        return
    for marker in item.iter_markers("xfail_platforms"):
        if plat.name in _marker_platforms(marker, where):
            strict = marker.kwargs.get("strict", config.getini("xfail_strict"))
            item.add_marker(
                pytest.mark.xfail(
                    reason=str(marker.kwargs.get("reason") or f"expected to fail on {plat.short}"),
                    strict=bool(strict),
                    raises=marker.kwargs.get("raises"),
                )
            )
            break


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def platform(request: pytest.FixtureRequest) -> Platform:
    """The platform of this test case (parametrized by --platforms)."""
    param = getattr(request, "param", None)
    if not isinstance(param, Platform):
        pytest.fail(
            "the 'platform' fixture is parametrized by pytest-multiarch only", pytrace=False
        )
    return param


def _serving(config: pytest.Config, plat: Platform) -> Platform:
    """``plat`` on the engine of its pool this process works for now (ProcessRuntime.serving);
    ``plat`` itself for a platform of one engine."""
    if plat.name not in config.stash[SETTINGS_KEY].pools:
        return plat
    return runtime_of(config).serving(plat)


@pytest.fixture
def image(request: pytest.FixtureRequest, platform: Platform) -> BuiltImage:
    """The image of ``@pytest.mark.image(name)`` built for this platform (BuiltImage)."""
    spec = image_spec(request.node, request.config)
    if spec is None:
        pytest.fail(
            f"{request.node.nodeid} uses an image fixture but has no @pytest.mark.image(name)",
            pytrace=False,
        )
    found = built_image(request.node, request.config, spec, platform)
    if isinstance(found, str):
        pytest.fail(found, pytrace=False)
    item_state(request.node).image_id = found.id
    return found


def _started_container(
    request: pytest.FixtureRequest,
    image: BuiltImage,
    platform: Platform,
    *,
    prestarted: bool = False,
) -> Generator[DockerContainer]:
    """A started, ready container of ``image`` for the requesting node, removed afterwards
    (unless kept, or its engine is gone: then the end-of-run sweep or the next run takes it).
    ``prestarted``: the node is a test whose container may have been started ahead, and whose
    next test's container is started while this one starts and runs."""
    from pytest_multiarch.runtime.prestart import PrestartKey
    from pytest_multiarch.runtime.services import stop_container

    runtime = runtime_of(request.config)
    platform = _serving(request.config, platform)
    stack = _stack_of(request, image)
    ahead = None
    if prestarted and stack is None:
        ahead = runtime.prestarter.take(PrestartKey(image.reference, image.id, platform.name))
        # Begun before this test's own container is ready, not after: consecutive service tests
        # then overlap their starts, instead of each waiting for its own in its setup.
        if isinstance(request.node, pytest.Item):
            _prestart_next(request.node)
    try:
        # Started ahead on its stack (the services fixture adopted both), or started now.
        ready = stack.take_prestarted() if stack is not None else None
        network = stack.network if stack is not None else ""
        started = ready or _start_shown(image, platform, runtime, ahead, network)
    except MultiarchError as exc:
        pytest.fail(str(exc), pytrace=False)
    item_state(request.node).containers.append((platform.short, started))
    yield started
    if not runtime.settings.keep_containers and runtime.engine_for(platform).watch.dead() is None:
        stop_container(started)


@pytest.fixture
def container(
    request: pytest.FixtureRequest, image: BuiltImage, platform: Platform
) -> Generator[DockerContainer]:
    """A started testcontainers container of the image, ready per image.toml [wait]."""
    yield from _started_container(request, image, platform, prestarted=True)


@pytest.fixture
def run(request: pytest.FixtureRequest, image: BuiltImage, platform: Platform) -> Runner:
    """Run a command in a fresh container of this platform: returns exit_code, stdout, stderr."""
    stack = _stack_of(request, image)
    return _recording_runner(request, image, platform, stack.network if stack else "")


@pytest.fixture
def services(
    request: pytest.FixtureRequest, image: BuiltImage, platform: Platform
) -> Generator[Stack]:
    """The image's services (``[services.<alias>]`` in image.toml), started on a network of
    this test's own that its ``run`` and ``container`` join: ``services["db"].container``,
    ``services["db"].platform`` (pytest_multiarch.runtime.stacks)."""
    from pytest_multiarch.runtime.prestart import PrestartKey
    from pytest_multiarch.runtime.stacks import adopt, open_stack, place_stack

    config = request.config
    runtime = runtime_of(config)
    node = request.node
    ahead = None
    # A test with a container of its own: its stack and container may have been started ahead.
    if image.spec.services and isinstance(node, pytest.Item) and _uses_plugin_container(node):
        ahead = runtime.prestarter.take(PrestartKey(image.reference, image.id, platform.name))
        _prestart_next(node)
    try:
        if ahead is not None:
            stack = adopt(_start_shown(image, platform, runtime, ahead))
        else:
            known: dict[str, ImageSpec] = config.stash[IMAGES_KEY]
            placed = place_stack(image.spec, platform, runtime, known)
            resolve = functools.partial(_resolved_image, node, config)
            stack = open_stack(image.name, platform, runtime, placed, resolve)
    except MultiarchError as exc:
        pytest.fail(str(exc), pytrace=False)
    state = item_state(node)
    state.services = stack.platforms()
    state.containers += stack.log_sources()  # their logs go with a failure's report
    yield stack
    stack.close()


def _resolved_image(
    node: pytest.Item | pytest.Collector, config: pytest.Config, spec: ImageSpec, plat: Platform
) -> BuiltImage:
    """built_image, raising why there is none (a stack's service image)."""
    found = built_image(node, config, spec, plat)
    if isinstance(found, str):
        raise MultiarchError(found)
    return found


def _stack_of(request: pytest.FixtureRequest, image: BuiltImage) -> Stack | None:
    """The test's stack when its image has services (None when not): started first, so that
    the test's containers can join its network."""
    if not image.spec.services:
        return None
    if request.scope != "function":
        pytest.fail(
            f"image {image.name!r} has services, which are started per test: use `container` "
            "or `run`, not a container shared by a module",
            pytrace=False,
        )
    stack: Stack = request.getfixturevalue("services")
    return stack


def _recording_runner(
    request: pytest.FixtureRequest, image: BuiltImage, platform: Platform, network: str = ""
) -> Runner:
    """A Runner that keeps what it ran on the test's state: for its report, and to tell an
    emulator fault from a failure (pytest_multiarch.runtime.faults)."""
    from pytest_multiarch.runtime.recording import RecordingRunner

    secrets: list[str] = request.config.stash.get(SECRETS_KEY, [])
    return RecordingRunner(
        runtime_of(request.config), image, platform, item_state(request.node).runs, secrets, network
    )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every process (each xdist worker too) finishes removing its containers in the
    background before the controller sweeps the run: the two must not race."""
    runtime = session.config.stash.get(RUNTIME_KEY, None)
    if runtime is not None:
        runtime.close()


@pytest.fixture
def images(request: pytest.FixtureRequest) -> PlatformImages:
    """Every selected platform's image of ``@pytest.mark.image(name)``, built once per run and
    verified like ``image``: ``images["s390x"].run([...])``,
    ``images.assert_same_on_every_platform([...])``. Without ``platform``, the test runs once."""
    from pytest_multiarch.runtime.compare import PlatformImages

    spec = image_spec(request.node, request.config)
    if spec is None:
        pytest.fail(
            f"{request.node.nodeid} uses the images fixture but has no @pytest.mark.image(name)",
            pytrace=False,
        )
    settings = request.config.stash[SETTINGS_KEY]
    runners: dict[str, Runner] = {}
    problems: list[str] = []
    for plat in settings.platforms:
        if not spec.allows(plat) or plat.name in settings.unusable:
            continue  # left out, as the per-platform tests are skipped there
        scaled = _with_factor(settings, plat)
        found = built_image(request.node, request.config, spec, scaled)
        if isinstance(found, str):
            problems.append(f"{plat.short}: {found}")
        else:
            runners[plat.short] = _recording_runner(request, found, scaled)
    if problems:
        pytest.fail(
            f"image {spec.name!r} is not usable on every platform:\n" + "\n".join(problems),
            pytrace=False,
        )
    return PlatformImages(spec.name, runners)


@pytest.fixture(scope="module")
def shared_container(
    request: pytest.FixtureRequest, platform: Platform
) -> Generator[DockerContainer]:
    """One started container per test module and platform, shared by the module's tests that
    ask for it; labelled like every container of the run, and removed after the module's last
    test on that platform. Its image is the module's ``pytestmark = pytest.mark.image(name)``."""

    spec = image_spec(request.node, request.config)
    if spec is None:
        pytest.fail(
            f"{request.node.nodeid}: shared_container is shared by a module's tests, so its "
            "image comes from the module: add `pytestmark = pytest.mark.image(name)`",
            pytrace=False,
        )
    found = built_image(request.node, request.config, spec, platform)
    if isinstance(found, str):
        pytest.fail(found, pytrace=False)
    yield from _started_container(request, found, platform)


def _engine_kind(config: pytest.Config, plat: Platform | None) -> tuple[str, str]:
    """(kind, version) of the engine that ran a test: a mapped one as the controller found it,
    the default one as this process's connection told it; ("", "") when not known. Never an
    engine call: a report must not wait on an engine that stopped answering."""
    settings = config.stash[SETTINGS_KEY]
    if plat is not None and plat.engine:
        mapped = settings.engine_endpoint(plat)
        return mapped.kind, mapped.version
    runtime = config.stash.get(RUNTIME_KEY, None)
    on_default = plat or next((p for p in settings.platforms if not p.engine), None)
    if runtime is None or on_default is None:
        return "", ""
    info = runtime.engine_for(on_default).known_info
    return (info.kind, info.version) if info is not None else ("", "")


# ---- engine calls: a dead or frozen engine fails the tests that need it, at once ----------


def _guarded(item: pytest.Item) -> Generator[None]:
    """Setup and call of a test that uses the engine: refused at once when the engine is known
    to be gone, interrupted when it stops answering, and then failed with that one line."""
    uses_engine = ENGINE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if not uses_engine and not item_target(item).every_platform:
        return (yield)
    from pytest_multiarch.engine.health import EngineStoppedAnswering

    runtime = runtime_of(item.config)
    plat = item_platform(item)
    plat = _serving(item.config, plat) if plat is not None else None
    # Each engine has a watch of its own: a test is guarded by its platform's engine, a test
    # that reaches every platform (the images fixture, a variants check) by each of theirs.
    everywhere = item.config.stash[SETTINGS_KEY].platforms
    reached = [plat] if plat is not None else [_serving(item.config, p) for p in everywhere]
    try:
        # Its engine did not answer when the run began, or died since: this platform's tests
        # fail at once with why; the other platforms' tests run on. A platform of a pool moves
        # to the pool's next engine that answers (only the tests in flight there failed).
        down = runtime.engine_for(plat).unreachable(plat) if plat is not None else ""
        if not down and plat is not None and plat.name in runtime.settings.pools:
            # A ping (milliseconds) before each test of a pool: an engine that died between
            # two tests costs no test, the next one goes to the pool's next engine.
            lost = runtime.engine_for(plat).watch.alive()
            down = str(lost) if lost is not None else ""
        moved = runtime.fail_over(plat) if down and plat is not None else None
        if moved is not None:
            plat, down, reached = moved, "", [moved]
        watches = list({id(w): w for w in (runtime.engine_for(p).watch for p in reached)}.values())
        if not down and plat is not None:
            # An engine frozen before the run began: told once, then failed at once like one
            # that is down (a ping per process and engine; milliseconds when it answers).
            frozen = runtime.engine_for(plat).watch.preflight()
            down = str(frozen) if frozen is not None else ""
    except UnsafeStateDir as exc:  # made unsafe since the run began: no INTERNALERROR
        down = str(exc)
    if down:
        pytest.fail(down, pytrace=False)
    try:
        with contextlib.ExitStack() as guards:
            for watch in watches:
                guards.enter_context(watch.guard(translating=(pytest.fail.Exception,)))
            return (yield)
    except EngineStoppedAnswering as exc:
        failure = str(exc)
    pytest.fail(failure, pytrace=False)  # out of the except: one line, no chained context


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None]:
    # A test with a container of its own begins the next one's start once it has taken its own
    # (the container fixture); any other test begins it at once.
    if not _uses_plugin_container(item):
        _prestart_next(item)
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None]:
    # The test's own platform argument names the engine it runs on: a pool's worker that moved
    # (ProcessRuntime.fail_over) runs it elsewhere than its parameter says. The parameter is
    # passed as is (direct parametrization: no fixture function sees it), so it is swapped here,
    # after the fixtures (which ask _serving themselves) and before the call.
    funcargs: dict[str, object] | None = getattr(item, "funcargs", None)
    given = funcargs.get("platform") if funcargs is not None else None
    if funcargs is not None and isinstance(given, Platform):
        funcargs["platform"] = _serving(item.config, given)
    return (yield from _guarded(item))


def _prestart_next(item: pytest.Item) -> None:
    """While ``item`` is set up and runs, start the container of the next test when it uses
    ``container`` (pytest_multiarch.runtime.prestart), unless ``--no-prestart``. Only for an
    image that is built and checked already: work done ahead never builds, verifies, waits or
    fails the current test."""
    settings = item.config.stash.get(SETTINGS_KEY, None)
    nextitem = item.stash.get(NEXT_ITEM_KEY, None)
    if settings is None or settings.no_prestart or nextitem is None:
        return
    if not _uses_plugin_container(nextitem) or nextitem.get_closest_marker("skip"):
        return
    plat = item_platform(nextitem)
    try:
        spec = image_spec(nextitem, item.config)
    except pytest.fail.Exception:  # the next test's own error (a bad or unknown image)
        return
    if plat is None or spec is None or not spec.allows(plat) or plat.name in settings.unusable:
        return
    plat = _serving(item.config, plat)
    from pytest_multiarch.runtime.prestart import PrestartKey
    from pytest_multiarch.runtime.services import start_verified

    runtime = runtime_of(item.config)
    with contextlib.suppress(MultiarchError, OSError):
        if not runtime.resolvable_at_once(spec, plat):
            return
        # Resolved for the next test, on its own state: a build record it produces is its.
        image = built_image(nextitem, item.config, spec, plat)
        if isinstance(image, str):
            return
        key = PrestartKey(image.reference, image.id, plat.name)
        if not spec.services:
            runtime.prestarter.begin(
                key, lambda cancelled: start_verified(image, plat, runtime, cancelled)
            )
            return
        # Its stack too, with the container on its network (pytest_multiarch.runtime.stacks).
        from pytest_multiarch.runtime.stacks import prestart_stack

        resolve = functools.partial(_resolved_image, nextitem, item.config)
        known = item.config.stash[IMAGES_KEY]
        starter = prestart_stack(image, plat, runtime, known, resolve)
        if starter is not None:
            runtime.prestarter.begin(key, starter)


def _uses_plugin_container(item: pytest.Item) -> bool:
    """Whether ``item`` gets its ``container`` from this plugin (not from a fixture of the
    project's that has the same name)."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get("container", ()) if info is not None else ()
    if not definitions:
        return False
    function = definitions[-1].func
    return bool(function.__module__ == __name__ and function.__name__ == "container")


# ---- emulator faults: told apart, and run again on request ----------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """``--emulator-fault-retries N``: a test on an emulated platform whose failure was the
    emulator's (pytest_multiarch.runtime.faults) runs again, up to N times; only its last run
    counts, the ones before are reported as ``rerun``. Failures of the test itself never run
    again."""
    item.stash[NEXT_ITEM_KEY] = nextitem
    plat = item_platform(item)
    settings = item.config.stash.get(SETTINGS_KEY, None)
    retries = settings.emulator_fault_retries if settings is not None else 0
    if plat is None or not plat.emulated or retries <= 0:
        return None
    # pytest's own protocol without logging, so that a faulted run can be relabelled before it
    # is reported (the way pytest-rerunfailures does it).
    from _pytest.runner import runtestprotocol

    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    properties = list(item.user_properties)
    faults: list[str] = []
    for attempt in range(retries + 1):
        reports = runtestprotocol(item, log=False, nextitem=nextitem)
        fault = _fault_of(reports) if attempt < retries else ""
        for report in reports:
            if fault and report.when == "teardown":
                continue  # it runs again: one teardown report, the last run's
            if fault and report.failed:
                report.outcome = RETRIED  # type: ignore[assignment]
            ihook.pytest_runtest_logreport(report=report)
        if not fault:
            break
        faults.append(fault)
        item.stash[ITEM_KEY] = ItemState()
        item.user_properties[:] = [*properties, *(("emulator_fault_retried", f) for f in faults)]
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """pytest-timeout arms a test's timer: noted, so that a build wait can pause it (it arms the
    timer itself: this returns None)."""
    timer_armed(item, settings)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    timer_cancelled(item)


def _fault_of(reports: list[pytest.TestReport]) -> str:
    """The emulator fault that failed one run of a test, or "" (also when its teardown failed:
    a test is only run again from a clean state)."""
    if any(r.failed and r.when == "teardown" for r in reports):
        return ""
    for report in reports:
        facts = getattr(report, REPORT_ATTRIBUTE, None)
        if report.failed and isinstance(facts, dict) and facts.get("fault"):
            return str(facts["fault"])
    return ""


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
    if report.outcome == RETRIED:
        return RETRIED, "R", ("RERUN (emulator fault)", {"yellow": True})
    facts = getattr(report, REPORT_ATTRIBUTE, None)
    if report.failed and isinstance(facts, dict) and facts.get("fault"):
        category = "failed" if report.when == "call" else "error"
        return category, "Q", ("EMULATOR FAULT", {"red": True})
    return None


# ---- reports --------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    plat = item_platform(item)
    plat = _serving(item.config, plat) if plat is not None else None
    column = plat.short if plat is not None else _cross_platform_column(item)
    if column is None:
        return report
    state = item_state(item)
    # A module-scoped fixture (shared_container) keeps its state on the module.
    shared = [s for node in item.listchain()[:-1] if (s := node.stash.get(ITEM_KEY, None))]
    facts = ItemFacts(column, item_target(item).image)
    facts.every_platform = item_target(item).every_platform
    if report.when == "setup":
        facts.builds = list(state.builds)
        facts.build_wait_seconds = state.build_wait_seconds
        for module_state in shared:  # set up during this item's setup: charged here, once
            facts.builds += module_state.builds
            facts.build_wait_seconds += module_state.build_wait_seconds
            module_state.builds, module_state.build_wait_seconds = [], 0.0
        report.duration = max(0.0, report.duration - facts.build_wait_seconds)
        # On the item, not this report: JUnit XML takes the properties of the teardown report,
        # which pytest copies from the item.
        properties = item.user_properties
        if facts.build_wait_seconds >= 0.05:
            properties.append(("build_seconds", f"{facts.build_wait_seconds:.1f}"))
        settings = item.config.stash[SETTINGS_KEY]
        if plat is not None:
            properties.extend(
                [
                    ("platform", plat.name),
                    ("emulated", "true" if plat.emulated else "false"),
                    ("timeout_factor", f"{settings.factor(plat):g}"),
                ]
            )
            emulator, version = _emulator(item.config, plat)
            properties.append(("emulator", emulator))
            if version:
                properties.append(("emulator_version", version))
        if state.image_id:
            properties.append(("image_id", state.image_id))
        facts.services = dict(state.services)
        properties.extend(("service", f"{a}={p}") for a, p in state.services.items())
        from pytest_multiarch.engine.docker import endpoint

        # The engine the test ran on; a test of every platform (images) names the default one.
        engine = settings.engine_endpoint(plat).host if plat is not None else endpoint()
        properties.append(("engine", engine))
        facts.engine = engine
        kind, version = _engine_kind(item.config, plat)
        if kind:
            properties += [("engine_kind", kind), ("engine_version", version)]
        if plat is not None and plat.engine:  # mapped (--engine): the matrix header's name
            properties.append(("engine_label", _engine_label(plat).removeprefix("engine ")))
    runtime = item.config.stash.get(RUNTIME_KEY, None)
    if report.failed and runtime is not None:
        from pytest_multiarch.runtime.services import container_logs

        platforms = {p.short: p for p in runtime.settings.platforms}
        for short, started in [c for s in (state, *shared) for c in s.containers]:
            on = platforms.get(short, plat)
            try:
                gone = on is not None and runtime.engine_for(on).watch.dead() is not None
            except UnsafeStateDir:  # the test's error says so; its logs are not worth a crash
                break
            if gone:
                continue  # no logs from an engine that stopped answering
            logs = container_logs(started, lines=200)
            if logs:
                report.sections.append((f"container logs [{short}]", logs))
    if report.failed and report.when in ("setup", "call"):
        runs = [run for s in (state, *shared) for run in s.runs]
        facts.commands = [run.line() for run in runs[-COMMANDS_KEPT:]]
        if plat is not None and plat.emulated:
            facts.fault = _emulator_fault(item.config, plat, report, runs)
        if facts.fault:
            item.user_properties.append(("emulator_fault", facts.fault))
            report.sections.append(
                (
                    "multiarch: emulator fault",
                    f"{facts.fault}\nThe emulator failed here, not (necessarily) the test; "
                    "--emulator-fault-retries N runs such tests again.",
                )
            )
    explain_timeout(report, item)
    secrets = item.config.stash.get(SECRETS_KEY, [])
    _redact_report(report, secrets)
    facts.commands = [redact_values(command, secrets) for command in facts.commands]
    setattr(report, REPORT_ATTRIBUTE, dump(facts))
    return report


def _emulator(config: pytest.Config, plat: Platform) -> tuple[str, str]:
    """(emulator summary, QEMU version) of ``plat`` as the controller read them at the start."""
    fact = config.stash[PLATFORM_FACTS_KEY].get(plat.name)
    return (fact.emulator, fact.qemu_version) if fact is not None else ("", "")


def _emulator_fault(
    config: pytest.Config, plat: Platform, report: pytest.TestReport, runs: list[RecordedRun]
) -> str:
    """The emulator's fault in a failed phase of a test on emulated ``plat`` (its failure, its
    containers' logs, its ``run`` calls' stderr), with the emulator's version; or ""."""
    from pytest_multiarch.core.emulation import check_emulator
    from pytest_multiarch.runtime.faults import fault_line, find_fault

    texts = [report.longreprtext]
    texts += [text for title, text in report.sections if title.startswith("container logs")]
    texts += [run.stderr for run in runs]
    found = find_fault(texts, lambda: check_emulator(plat, ask_version=False).problem)
    if found is None:
        return ""
    return fault_line(found, _emulator(config, plat)[0])


def _redact_report(report: pytest.TestReport, secrets: list[str]) -> None:
    """Build secrets out of what the terminal, JUnit XML and xdist get: the failure, captured
    output and container logs (a failed build's log is redacted where it is made)."""
    if not secrets:
        return
    report.sections = [(title, redact_values(text, secrets)) for title, text in report.sections]
    if report.longrepr is not None:
        text = str(report.longrepr)
        if any(value in text for value in secrets):
            report.longrepr = redact_values(text, secrets)


def _cross_platform_column(item: pytest.Item) -> str | None:
    """The matrix column of a test that reaches every platform (through ``images``, or a
    variants check) and is not itself one per platform; None for a test that uses no image."""
    return CROSS_PLATFORM if item_target(item).every_platform else None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    report = config.stash.get(REPORT_KEY, None)
    settings = config.stash.get(SETTINGS_KEY, None)
    if report is None or settings is None:
        return  # an xdist worker, or a run the plugin took no part in
    from pytest_multiarch.reports.summary import format_lines, format_publications
    from pytest_multiarch.run.collector import ReportCollector

    lines = format_lines(report)
    if lines:
        terminalreporter.write_sep("=", "multiarch: results per platform")
        for line in lines:
            terminalreporter.write_line(line)
    if settings.keep_containers and report.tests:
        terminalreporter.write_line(
            f"containers kept (--keep-containers); remove them with: docker rm -f $(docker ps -aq "
            f"--filter label=pytest-multiarch.run={settings.run_id})"
        )
        if any(test.services for test in report.tests):  # the stacks' networks were kept too
            terminalreporter.write_line(
                "  and then their networks: docker network rm $(docker network ls -q --filter "
                f"label=pytest-multiarch.run={settings.run_id})"
            )
        for spec in sorted({p.engine for p in settings.platforms if p.engine}):
            from pytest_multiarch.engine.endpoints import EngineRef

            cli = " ".join(["docker", *EngineRef(spec).cli_flags()])
            terminalreporter.write_line(
                f"  and on engine {spec}: {cli} rm -f $({cli} ps -aq "
                f"--filter label=pytest-multiarch.run={settings.run_id})"
            )
    collector = config.pluginmanager.get_plugin("multiarch-report")
    if isinstance(collector, ReportCollector) and collector.cleanup_problem:
        terminalreporter.write_line(f"multiarch: WARNING: {collector.cleanup_problem}", red=True)
    if report.publish:
        terminalreporter.write_sep("=", "multiarch: publish")
        for line in format_publications(report.publish):
            terminalreporter.write_line(line)
    for lost in report.lost_engines:
        terminalreporter.write_line(
            f"multiarch: WARNING: engine {lost} of a pool stopped answering during the run: the "
            "tests in flight there failed, its platform's other tests ran on the pool's other "
            "engines",
            red=True,
        )
    if settings.json_path is not None:
        terminalreporter.write_line(f"multiarch: JSON report written to {settings.json_path}")
    if isinstance(collector, ReportCollector):
        for line in collector.written:
            terminalreporter.write_line(line, red="WARNING" in line)


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(SIGTERM_KEY, None)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or _is_worker(config):
        return
    from pytest_multiarch.runtime.build import PRIVATE_TAGS_DIR, sweep_private_tags
    from pytest_multiarch.runtime.process import run_state_dir

    with contextlib.suppress(MultiarchError):
        state = run_state_dir(settings.run_id)
        # A build interrupted between buildx's export and the retag left its private tag.
        sweep_private_tags(state / PRIVATE_TAGS_DIR, timeout=5)
        shutil.rmtree(state, ignore_errors=True)
