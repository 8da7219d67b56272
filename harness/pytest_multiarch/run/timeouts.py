"""Per-test time limits that follow the platform: pytest-timeout's limits are native seconds,
multiplied by the emulation factor on emulated platforms, and
``@pytest.mark.platform_timeout(arm64=..., s390x=...)`` sets a platform's own limit."""

from __future__ import annotations

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


def set_timeout(item: pytest.Item, seconds: float) -> None:
    """pytest-timeout's limit for ``item``, keeping the method of its own timeout marker."""
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


def scale_timeout(item: pytest.Item, factor: float, configured: float) -> None:
    """pytest-timeout's limits are native seconds: on an emulated platform, its ``timeout``
    marker (or else the configured limit) is multiplied by the emulation factor."""
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
