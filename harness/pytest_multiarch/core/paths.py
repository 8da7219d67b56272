"""Where the harness keeps files between runs."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
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
    """``path`` as a directory only this user can use: made with mode 0700, or checked. Every
    directory and link on the way to it is checked too (:func:`check_parents`)."""
    path = Path(os.path.abspath(path))
    # The part that exists first, so that nothing is created inside another user's directory.
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    check_parents(existing, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_parents(path.parent, path)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    problem = ""
    if stat.S_ISLNK(info.st_mode):
        problem = f"is a symbolic link to {os.readlink(path)}"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != os.geteuid():
        problem = f"is owned by {_user(info.st_uid)}, not by this user ({_user(os.geteuid())})"
    elif info.st_mode & 0o077:
        problem = f"has mode {stat.S_IMODE(info.st_mode):04o}; others may write or read it"
    if problem:
        raise UnsafeStateDir(
            f"state directory {path} {problem}: refusing to use it, since another user could "
            f"plant images or records there. Remove it (it is recreated with mode 0700), or "
            f"point MULTIARCH_RUN_STATE_DIR at a directory of your own"
        )
    return path


# Symbolic links followed on the way to a directory before it is taken for a loop (as the
# kernel's limit).
_MAX_LINKS = 40


def check_parents(directory: Path, for_path: Path) -> None:
    """Raise UnsafeStateDir unless every directory from ``/`` to ``directory``, and every link
    followed on the way, is safe for ``for_path``: owned by root or this user, and not writable
    by others unless sticky (as ``/tmp``: others cannot rename what is ours there). The owner of
    any other directory on the way could rename ``for_path`` away and put one of theirs in its
    place; the owner of a link could point it elsewhere (as ssh's StrictModes and sudo check)."""
    pending = list(Path(os.path.abspath(directory)).parts[1:])
    current = Path("/")
    _check_one(current, os.lstat(current), for_path)
    links = 0
    while pending:
        name = pending.pop(0)
        if name in (".", ".."):
            current = current if name == "." else current.parent
            continue
        step = current / name
        try:
            info = os.lstat(step)
        except FileNotFoundError:
            return  # nothing there yet: what exists was checked
        _check_one(step, info, for_path)
        if not stat.S_ISLNK(info.st_mode):
            current = step
            continue
        links += 1
        if links > _MAX_LINKS:
            raise UnsafeStateDir(f"too many symbolic links on the way to {for_path} ({step})")
        # Go on from the link's target, as the kernel does.
        target = Path(os.readlink(step))
        if target.is_absolute():
            current = Path("/")
            pending = list(target.parts[1:]) + pending
        else:
            pending = list(target.parts) + pending


def _check_one(path: Path, info: os.stat_result, for_path: Path) -> None:
    me = os.geteuid()
    link = stat.S_ISLNK(info.st_mode)
    kind = "symbolic link" if link else "directory"
    problem = ""
    if info.st_uid not in (0, me):
        problem = f"is owned by {_user(info.st_uid)}, neither this user ({_user(me)}) nor root"
    elif not link and not info.st_mode & stat.S_ISVTX and _writable_by_others(info):
        # A link's own mode means nothing; a sticky directory keeps others from renaming ours.
        problem = (
            f"(owner {_user(info.st_uid)}) has mode {stat.S_IMODE(info.st_mode):04o}: others "
            "may write to it, and it is not sticky"
        )
    if problem:
        raise UnsafeStateDir(
            f"{kind} {path}, on the way to the state directory {for_path}, {problem}: whoever "
            f"owns or can write to it could replace the state directory with one of theirs. "
            f"Make it yours and not writable by others (chown, chmod go-w), or point "
            f"XDG_STATE_HOME or MULTIARCH_RUN_STATE_DIR at a directory whose every parent is "
            f"owned by you or root"
        )


def _writable_by_others(info: os.stat_result) -> bool:
    """Writable by a user other than this one and root: by all, or by a group with such a member
    (a user-private group, as a umask of 002 makes, is this user's own)."""
    if info.st_mode & stat.S_IWOTH:
        return True
    return bool(info.st_mode & stat.S_IWGRP) and not _group_is_private(info.st_gid)


def _group_is_private(gid: int) -> bool:
    """Whether only this user and root are in group ``gid`` (as members or by primary group)."""
    trusted = {0, os.geteuid()}
    try:
        members = grp.getgrgid(gid).gr_mem
    except KeyError:
        return False
    for name in members:
        try:
            if pwd.getpwnam(name).pw_uid not in trusted:
                return False
        except KeyError:
            return False
    return all(entry.pw_uid in trusted for entry in pwd.getpwall() if entry.pw_gid == gid)


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"
