"""Per-test time limits that follow the platform: pytest-timeout's limits are native seconds,
multiplied by the emulation factor on emulated platforms, and
``@pytest.mark.platform_timeout(arm64=..., s390x=...)`` sets a platform's own limit.

A limit is the test's: waiting for an image's build and verification is not in it. pytest-timeout
arms its timer before setup (where the image fixtures wait for builds); :func:`timer_paused`
stops it for such a wait and arms it again, through pytest-timeout's own hooks, with the time
the test had left."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_multiarch.core.errors import PlatformError
from pytest_multiarch.core.platforms import Platform, lookup


def platform_timeout(item: pytest.Item, plat: Platform) -> float | None:
    """``@pytest.mark.platform_timeout(arm64=120, s390x=300, arm_v7=240)``: the time limit of
    the test on those platforms, in seconds as given (not scaled: it is that platform's own).
    None on the platforms it does not name, which keep the scaled limit."""
    marker = item.get_closest_marker("platform_timeout")
    if marker is None:
        return None
    found = None
    for key, value in marker.kwargs.items():
        try:
            named = lookup(key.replace("_", "/"))
        except PlatformError:
            raise pytest.UsageError(
                f"{item.nodeid}: unknown platform {key!r} in @pytest.mark.platform_timeout "
                "(write arm/v7 as arm_v7)"
            ) from None
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = 0.0
        if not seconds > 0:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.platform_timeout({key}={value!r}): expected "
                "a positive number of seconds"
            )
        if named.name == plat.name:
            found = seconds
    if marker.args:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.platform_timeout takes platform=seconds keywords only"
        )
    return found


# How an item's limit came to be, when this plugin set it: "3 s x emulation factor 10".
LIMIT_KEY = pytest.StashKey[str]()


def limit_explained(item: pytest.Item) -> str:
    """How this plugin set ``item``'s limit ("30 s = 3 s x emulation factor 10 on
    linux/arm64"), or "" when it kept pytest-timeout's own."""
    return item.stash.get(LIMIT_KEY, "")


def explain_timeout(report: pytest.TestReport, item: pytest.Item) -> None:
    """A pytest-timeout failure of ``item`` whose limit this plugin set says how it was set: in
    its one-line message and in a section of its own."""
    how = limit_explained(item)
    longrepr = report.longrepr
    if not how or not report.failed or "from pytest-timeout" not in report.longreprtext:
        return
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and "from pytest-timeout" in crash.message:
        crash.message = f"{crash.message.rstrip()} (limit {how})"
    add_section = getattr(longrepr, "addsection", None)  # pytest's ExceptionRepr
    if callable(add_section):
        add_section("multiarch: time limit", f"limit {how}")


def set_timeout(item: pytest.Item, seconds: float, how: str = "") -> None:
    """pytest-timeout's limit for ``item``, keeping the method of its own timeout marker;
    ``how`` says where the figure came from."""
    if how:
        item.stash[LIMIT_KEY] = f"{seconds:g} s: {how}"
    marker = item.get_closest_marker("timeout")
    kwargs: dict[str, Any] = {}
    if marker is not None:
        kwargs = {k: v for k, v in marker.kwargs.items() if k == "method"}
        if len(marker.args) > 1:
            kwargs["method"] = marker.args[1]
    item.add_marker(pytest.mark.timeout(seconds, **kwargs), append=False)


def configured_pytest_timeout(config: pytest.Config) -> float | None:
    """pytest-timeout's configured limit (--timeout, PYTEST_TIMEOUT, the timeout ini option; 0
    when none), or None when pytest-timeout is not installed."""
    if not config.pluginmanager.hasplugin("timeout"):
        return None
    import importlib

    configured = importlib.import_module("pytest_timeout").get_env_settings(config).timeout
    try:
        return float(configured or 0)
    except (TypeError, ValueError):
        return 0.0  # a bad value: pytest-timeout reports it itself


def scale_timeout(item: pytest.Item, factor: float, configured: float, where: str = "") -> None:
    """pytest-timeout's limits are native seconds: on an emulated platform (``where``), its
    ``timeout`` marker (or else the configured limit) is multiplied by the emulation factor."""
    if factor == 1.0:
        return
    marker = item.get_closest_marker("timeout")
    kwargs: dict[str, Any] = {}
    seconds: object = configured
    if marker is not None:
        kwargs = {k: v for k, v in marker.kwargs.items() if k != "timeout"}
        if len(marker.args) > 1:
            kwargs["method"] = marker.args[1]
        seconds = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    try:
        native = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return  # pytest-timeout reports a bad marker itself
    if native > 0:
        # Prepended, so that it is the closest marker, the one pytest-timeout reads.
        item.add_marker(pytest.mark.timeout(native * factor, **kwargs), append=False)
        on = f" on {where}" if where else ""
        item.stash[LIMIT_KEY] = (
            f"{native * factor:g} s = {native:g} s x emulation factor {factor:g}{on}"
        )


@dataclass
class ArmedTimer:
    """pytest-timeout's timer of the test this process runs, as armed (by its own hook)."""

    item: pytest.Item
    settings: Any  # pytest_timeout.Settings, a named tuple
    started: float  # monotonic time of the last arming
    left: float  # seconds the test had then
    paused: bool = False
    rearming: bool = False  # our own cancel and arm calls, not pytest-timeout's


# On the config of the process that runs tests: its armed timer, if any.
ARMED_KEY = pytest.StashKey[ArmedTimer]()


def timer_armed(item: pytest.Item, settings: Any) -> None:
    """pytest-timeout arms ``item``'s timer (its hook ``pytest_timeout_set_timer``)."""
    armed = item.config.stash.get(ARMED_KEY, None)
    if armed is not None and armed.item is item and armed.rearming:
        return
    try:
        seconds = float(settings.timeout)
    except (AttributeError, TypeError, ValueError):
        return
    item.config.stash[ARMED_KEY] = ArmedTimer(item, settings, time.monotonic(), seconds)


def timer_cancelled(item: pytest.Item) -> None:
    """pytest-timeout cancels ``item``'s timer (its hook ``pytest_timeout_cancel_timer``)."""
    armed = item.config.stash.get(ARMED_KEY, None)
    if armed is not None and armed.item is item and not armed.rearming:
        del item.config.stash[ARMED_KEY]


@contextmanager
def timer_paused(config: pytest.Config) -> Iterator[None]:
    """While a build or its verification is waited for, the running test's pytest-timeout timer
    is stopped, then goes on with the time the test had left (under -n too: each worker pauses
    its own test's timer). Its "signal" method's alarm is paused and resumed as it is, so that
    its message still names the test's limit; its "thread" method's timer is cancelled and armed
    again with the time left, through pytest-timeout's own hooks."""
    armed = config.stash.get(ARMED_KEY, None)
    if armed is None or armed.paused:
        yield
        return
    # pytest-timeout itself uses its thread method off the main thread.
    if armed.settings.method == "signal" and threading.current_thread() is threading.main_thread():
        left, _ = signal.setitimer(signal.ITIMER_REAL, 0)
        armed.paused = True
        try:
            yield
        finally:
            armed.paused = False
            if left > 0:
                signal.setitimer(signal.ITIMER_REAL, left)
        return
    hook = config.pluginmanager.hook
    used = time.monotonic() - armed.started
    armed.rearming = armed.paused = True
    try:
        hook.pytest_timeout_cancel_timer(item=armed.item)
    finally:
        armed.rearming = False
    try:
        yield
    finally:
        armed.left = max(armed.left - used, 0.001)
        armed.started = time.monotonic()
        armed.rearming = True
        try:
            hook.pytest_timeout_set_timer(
                item=armed.item, settings=armed.settings._replace(timeout=armed.left)
            )
        finally:
            armed.rearming = armed.paused = False
