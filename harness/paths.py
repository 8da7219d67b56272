"""Where the harness keeps files between runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of the on-disk cache (rootfs tarballs, apt lists). ``MULTIARCH_CACHE_DIR`` wins."""
    explicit = os.environ.get("MULTIARCH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pytest-multiarch"


STATE_DIR = Path(os.environ.get("MULTIARCH_STATE_DIR", "/var/lib/pytest-multiarch"))
LOG_DIR = Path(os.environ.get("MULTIARCH_LOG_DIR", "/var/log/pytest-multiarch"))
