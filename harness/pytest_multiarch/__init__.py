"""pytest-multiarch: build container images per platform and test each architecture.

The public API is small: the pytest plugin (fixtures ``platform``, ``image``, ``container``,
``shared_container``, ``run``, ``images``; markers ``image``, ``platforms``, ``skip_platforms``,
``xfail_platforms``) and the types below, for annotations and ``pytest.raises``. Types that
need the Docker side load on first use, so loading the plugin stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.core.version import __version__

if TYPE_CHECKING:
    from pytest_multiarch.runtime.compare import PlatformImages
    from pytest_multiarch.runtime.containers import WrongArchitecture
    from pytest_multiarch.runtime.oneshot import OutputCut, RunResult, RunTimeout
    from pytest_multiarch.runtime.process import BuiltImage, Runner

__all__ = [
    "BuiltImage",
    "MultiarchError",
    "OutputCut",
    "Platform",
    "PlatformImages",
    "RunResult",
    "RunTimeout",
    "Runner",
    "WrongArchitecture",
    "__version__",
]

_LAZY = {
    "BuiltImage": "pytest_multiarch.runtime.process",
    "OutputCut": "pytest_multiarch.runtime.oneshot",
    "PlatformImages": "pytest_multiarch.runtime.compare",
    "RunResult": "pytest_multiarch.runtime.oneshot",
    "RunTimeout": "pytest_multiarch.runtime.oneshot",
    "Runner": "pytest_multiarch.runtime.process",
    "WrongArchitecture": "pytest_multiarch.runtime.containers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
