"""The state directory and every directory and link on the way to it (issue 21.2): whoever owns
or may write to a parent could rename the run's directory away and put one of theirs there."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pytest_multiarch.core.paths import UnsafeStateDir, check_parents, private_dir

OTHER_UID = 65534  # nobody

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another user")


@needs_root
def test_a_parent_owned_by_another_user_is_refused_and_nothing_is_made_in_it(
    tmp_path: Path,
) -> None:
    state_home = tmp_path / "state-home"
    state_home.mkdir(mode=0o777)
    state_home.chmod(0o777)
    os.chown(state_home, OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafeStateDir) as caught:
        private_dir(state_home / "pytest-multiarch")
    message = str(caught.value)
    assert f"directory {state_home}, on the way to the state directory" in message
    assert f"is owned by uid {OTHER_UID}" in message
    assert "XDG_STATE_HOME or MULTIARCH_RUN_STATE_DIR" in message
    assert list(state_home.iterdir()) == []


@needs_root
def test_nothing_is_created_below_a_parent_of_another_user(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafeStateDir, match="is owned by uid 65534"):
        private_dir(theirs / "deeper" / "still" / "pytest-multiarch")
    assert list(theirs.iterdir()) == []


@needs_root
def test_a_link_owned_by_another_user_is_refused_even_to_a_safe_directory(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link = tmp_path / "state-home"
    link.symlink_to(mine)
    os.lchown(link, OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafeStateDir) as caught:
        private_dir(link / "pytest-multiarch")
    assert f"symbolic link {link}, on the way" in str(caught.value)
    assert list(mine.iterdir()) == []


@needs_root
def test_a_link_of_ours_to_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    link = tmp_path / "state-home"
    link.symlink_to("theirs")  # relative, resolved from the link's directory
    with pytest.raises(UnsafeStateDir, match=f"directory {theirs}, on the way"):
        private_dir(link / "pytest-multiarch")


def test_a_parent_open_to_all_is_refused_unless_sticky(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(UnsafeStateDir, match="has mode 0777: others may write to it"):
        private_dir(open_dir / "pytest-multiarch")
    # Sticky, as /tmp: others cannot rename or remove what is ours in it.
    open_dir.chmod(0o1777)
    made = private_dir(open_dir / "pytest-multiarch")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700


def test_links_and_parents_of_ours_are_accepted_and_missing_parents_made(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "link").symlink_to("../real")
    made = private_dir(tmp_path / "sub" / "link" / "a" / "b" / "pytest-multiarch")
    assert made.is_dir()
    assert (real / "a" / "b" / "pytest-multiarch").is_dir()


@needs_root
def test_a_parent_writable_by_a_group_with_another_member_is_refused(tmp_path: Path) -> None:
    import grp

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o775)
    # A group root is in alone is ours; "nogroup" (nobody's group) is not.
    os.chown(shared, 0, grp.getgrnam("nogroup").gr_gid)
    with pytest.raises(UnsafeStateDir, match="has mode 0775"):
        private_dir(shared / "pytest-multiarch")
    os.chown(shared, 0, 0)
    assert private_dir(shared / "pytest-multiarch").is_dir()


def test_a_link_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(UnsafeStateDir, match="too many symbolic links"):
        check_parents(tmp_path / "a" / "x", tmp_path / "a" / "x" / "y")
