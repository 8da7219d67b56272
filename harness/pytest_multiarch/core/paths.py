"""Where the harness keeps files between runs."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from pytest_multiarch.core.errors import MultiarchError


def cache_dir() -> Path:
    """Root of the on-disk cache (rootfs tarballs, apt lists). ``MULTIARCH_CACHE_DIR`` wins."""
    explicit = os.environ.get("MULTIARCH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pytest-multiarch"


STATE_DIR = Path(os.environ.get("MULTIARCH_STATE_DIR", "/var/lib/pytest-multiarch"))
LOG_DIR = Path(os.environ.get("MULTIARCH_LOG_DIR", "/var/log/pytest-multiarch"))


class UnsafeStateDir(MultiarchError):
    """A state directory that another user could write to."""


def run_state_root() -> Path:
    """This user's private directory for run state and build locks (created mode 0700).

    Refused when it is a symlink, owned by another user or open to others: whoever can write
    there could hand a run a stale image or make it write through a planted link."""
    explicit = os.environ.get("MULTIARCH_RUN_STATE_DIR")
    if explicit:
        root = Path(explicit)
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".local" / "state") / "pytest-multiarch"
    return private_dir(root)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only this user can use: made with mode 0700, or checked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    problem = ""
    if stat.S_ISLNK(info.st_mode):
        problem = f"is a symbolic link to {os.readlink(path)}"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != os.geteuid():
        problem = f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    elif info.st_mode & 0o077:
        problem = f"has mode {stat.S_IMODE(info.st_mode):04o}; others may write or read it"
    if problem:
        raise UnsafeStateDir(
            f"state directory {path} {problem}: refusing to use it, since another user could "
            f"plant images or records there. Remove it (it is recreated with mode 0700), or "
            f"point MULTIARCH_RUN_STATE_DIR at a directory of your own"
        )
    return path
