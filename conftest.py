# The plugin itself is loaded once, through its pytest11 entry point; never list it here.
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

pytest_plugins = ["pytester"]


@pytest.fixture
def binfmt_lock() -> Iterator[None]:
    """Held by every test that changes the machine's binfmt_misc handlers or needs the ones
    others change (s390x, ppc64le), so xdist workers never interleave them. A file lock, not
    xdist_group: --dist loadgroup silently stopped grouping with pytest 9.2 (xdist#1386)."""
    with FileLock(str(Path(tempfile.gettempdir()) / "pytest-multiarch-tests-binfmt.lock")):
        yield
