"""pytest-multiarch: build container images per platform and test each architecture.

The public API is small: the pytest plugin (fixtures ``platform``, ``image``, ``container``,
``shared_container``, ``run``, ``images``; markers ``image``, ``platforms``, ``skip_platforms``,
``xfail_platforms``) and the types below, for annotations and ``pytest.raises``. Types that
need the Docker side load on first use, so loading the plugin stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.errors import MultiarchError
from harness.platforms import Platform

if TYPE_CHECKING:
    from harness.runtime.compare import PlatformImages
    from harness.runtime.containers import RunResult, RunTimeout, WrongArchitecture
    from harness.runtime.session import BuiltImage, Runner

__all__ = [
    "BuiltImage",
    "MultiarchError",
    "Platform",
    "PlatformImages",
    "RunResult",
    "RunTimeout",
    "Runner",
    "WrongArchitecture",
]
__version__ = "0.1.0"

_LAZY = {
    "BuiltImage": "harness.runtime.session",
    "PlatformImages": "harness.runtime.compare",
    "RunResult": "harness.runtime.containers",
    "RunTimeout": "harness.runtime.containers",
    "Runner": "harness.runtime.session",
    "WrongArchitecture": "harness.runtime.containers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
