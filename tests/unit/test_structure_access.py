"""The pure parts of running structure-test files: the exported filesystem index (lstat-like
lookups inside the image's root), which files belong to which image, where checks start."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.run.structure_items import check_lines, structure_sources
from pytest_multiarch.structure.access import (
    ExportedFilesystem,
    container_environment,
    read_env_file,
)
from pytest_multiarch.structure.checks import ImageAccessError, go_mode_string
from pytest_multiarch.structure.config import ContainerRunOptions

BUSYBOX = b"\x7fELF busybox"


def _add(
    archive: tarfile.TarFile,
    name: str,
    kind: bytes = tarfile.REGTYPE,
    *,
    data: bytes = b"",
    mode: int = 0o644,
    link: str = "",
    uid: int = 0,
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = uid
    info.gid = uid
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    archive.addfile(info, io.BytesIO(data) if info.size else None)


@pytest.fixture
def filesystem(tmp_path: Path) -> ExportedFilesystem:
    path = tmp_path / "export.tar"
    with tarfile.open(path, "w") as archive:
        _add(archive, "bin", tarfile.DIRTYPE, mode=0o755)
        _add(archive, "bin/busybox", data=BUSYBOX, mode=0o755)
        _add(archive, "bin/sh", tarfile.SYMTYPE, link="busybox", mode=0o777)
        _add(archive, "bin/ls", tarfile.LNKTYPE, link="bin/busybox")
        _add(archive, "etc/real", data=b"name=box\n", mode=0o640, uid=1000)
        _add(archive, "etc/alias", tarfile.SYMTYPE, link="/etc/real", mode=0o777)
        _add(archive, "lib", tarfile.SYMTYPE, link="usr/lib", mode=0o777)
        _add(archive, "usr/lib/libc.so", data=b"libc", mode=0o755)
        _add(archive, "usr/local/bin/app", data=b"#!/bin/sh\n", mode=0o4755)
        _add(archive, "loop1", tarfile.SYMTYPE, link="loop2", mode=0o777)
        _add(archive, "loop2", tarfile.SYMTYPE, link="/loop1", mode=0o777)
        _add(archive, "escape", tarfile.SYMTYPE, link="../../../etc", mode=0o777)
    return ExportedFilesystem(path)


def test_symlink_is_itself_and_hard_link_is_its_file(filesystem: ExportedFilesystem) -> None:
    link = filesystem.file("/bin/sh")
    assert link is not None
    assert link.is_symlink
    assert link.link_target == "busybox"
    assert go_mode_string(link.mode) == "Lrwxrwxrwx"
    hard = filesystem.file("/bin/ls")
    assert hard is not None
    assert stat.S_ISREG(hard.mode)
    assert go_mode_string(hard.mode) == "-rwxr-xr-x"
    assert hard.read() == BUSYBOX
    assert hard.size == len(BUSYBOX)


def test_owner_and_special_bits(filesystem: ExportedFilesystem) -> None:
    real = filesystem.file("/etc/real")
    assert real is not None
    assert (real.uid, real.gid, go_mode_string(real.mode)) == (1000, 1000, "-rw-r-----")
    app = filesystem.file("/usr/local/bin/app")
    assert app is not None
    assert go_mode_string(app.mode) == "urwxr-xr-x"


def test_leading_symlinks_are_resolved_inside_the_image(filesystem: ExportedFilesystem) -> None:
    through = filesystem.file("/lib/libc.so")
    assert through is not None
    assert through.path == "/usr/lib/libc.so"
    assert through.read() == b"libc"
    # ".." above the root stays at the root, as in the kernel; never the host's /etc.
    escaped = filesystem.file("/escape/real")
    assert escaped is not None
    assert escaped.read() == b"name=box\n"
    assert filesystem.file("/../../etc/real") is not None


def test_missing_entries(filesystem: ExportedFilesystem) -> None:
    assert filesystem.file("/nonexistent") is None
    assert filesystem.file("/bin/busybox/inside") is None  # not a directory
    assert filesystem.file("/loop1/x") is None  # a symlink loop
    loop = filesystem.file("/loop1")
    assert loop is not None
    assert loop.is_symlink


def test_directories_without_their_own_entry(filesystem: ExportedFilesystem) -> None:
    implied = filesystem.file("/usr/local")
    assert implied is not None
    assert implied.is_dir
    root = filesystem.file("/")
    assert root is not None
    assert root.is_dir


def test_list_dir(filesystem: ExportedFilesystem) -> None:
    assert filesystem.list_dir("/") == [
        "bin",
        "escape",
        "etc",
        "lib",
        "loop1",
        "loop2",
        "usr",
    ]
    assert filesystem.list_dir("/lib") == ["libc.so"]  # through the symlink
    assert filesystem.list_dir("/bin") == ["busybox", "ls", "sh"]
    assert filesystem.list_dir("/bin/busybox") is None
    assert filesystem.list_dir("/nonexistent") is None


def test_a_broken_export_is_a_clear_error(tmp_path: Path) -> None:
    from pytest_multiarch.structure.checks import ImageAccessError

    path = tmp_path / "broken.tar"
    path.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ImageAccessError, match="cannot read the exported filesystem"):
        ExportedFilesystem(path)


def test_structure_sources(tmp_path: Path) -> None:
    cli = tmp_path / "cli"
    (cli / "checks").mkdir(parents=True)
    (cli / "structure-tests.yaml").write_text("schemaVersion: 2.0.0\n")
    bare = tmp_path / "bare"
    bare.mkdir()
    shared = tmp_path / "shared.yaml"
    images = {
        "cli": ImageSpec("cli", cli, structure_tests=(cli / "checks" / "more.yaml", shared)),
        "bare": ImageSpec("bare", bare, structure_tests=(shared,)),
    }
    assert structure_sources(images) == {
        (cli / "structure-tests.yaml").resolve(): ("cli",),
        # Listed files count even before they exist: collecting image.toml reports them.
        (cli / "checks" / "more.yaml").resolve(): ("cli",),
        shared.resolve(): ("cli", "bare"),
    }


def test_check_lines() -> None:
    text = (
        b"schemaVersion: 2.0.0\n"
        b"commandTests:\n"
        b"  - name: a\n"
        b"    command: x\n"
        b"  - name: b\n"
        b"    command: y\n"
        b"metadataTest:\n"
        b"  user: app\n"
    )
    lines = check_lines(text)
    assert lines[("commandTests", 0)] == 2
    assert lines[("commandTests", 1)] == 4
    assert lines[("metadataTest", 0)] == 6
    assert check_lines(b"[unclosed") == {}


def test_env_file_then_host_names_then_the_checks_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `docker run --env-file F --env NAME --env KEY=VALUE` sets them: later ones win.
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "# comment\n\nMODE=file\n  SPACED=a b \nFROM_HOST\nABSENT\nEMPTY=\nWHO=file\n"
    )
    monkeypatch.setenv("FROM_HOST", "host")
    monkeypatch.setenv("NAMED", "named")
    monkeypatch.delenv("ABSENT", raising=False)
    monkeypatch.delenv("UNSET_NAME", raising=False)
    options = ContainerRunOptions(env_file=str(env_file), env_vars=("NAMED", "UNSET_NAME"))
    assert container_environment(options, {"WHO": "check"}) == {
        "MODE": "file",
        "SPACED": "a b ",
        "FROM_HOST": "host",
        "EMPTY": "",
        "WHO": "check",
        "NAMED": "named",
    }


def test_an_unreadable_or_malformed_env_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageAccessError, match=r"cannot read the envFile '.*missing.env'"):
        read_env_file(str(tmp_path / "missing.env"))
    bad = tmp_path / "bad.env"
    bad.write_text("OK=1\nTWO WORDS=x\n")
    with pytest.raises(ImageAccessError, match=r"'TWO WORDS' at line 2 of the envFile"):
        read_env_file(str(bad))


@pytest.mark.parametrize("steps", [1, 2], ids=["alone", "with setup"])
def test_a_structure_command_on_a_remote_engine_gets_the_runtimes_exec_format_message(
    monkeypatch: pytest.MonkeyPatch, steps: int
) -> None:
    # The commands are the runtime's one-shot runs: an emulator missing on a remote engine is
    # named as the `run` fixture names it, not as "no working emulator" of this host.
    import contextlib
    from types import SimpleNamespace

    from pytest_multiarch.core.platforms import lookup
    from pytest_multiarch.engine.labels import Labels
    from pytest_multiarch.runtime import oneshot
    from pytest_multiarch.runtime.containers import WrongArchitecture
    from pytest_multiarch.structure.access import EngineImageAccess, ImageCache

    def exec_format(*args: object, **kwargs: object) -> object:
        return oneshot._Ran(255, b"", b"exec /bin/sh: exec format error\n")

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("this host's emulators say nothing about another machine")

    monkeypatch.setattr(oneshot, "_run_attached", exec_format)
    monkeypatch.setattr("pytest_multiarch.core.emulation.check_emulator", not_here)
    remote = SimpleNamespace(environment={"DOCKER_HOST": "ssh://ci@z-box"})
    access = EngineImageAccess(
        "img",
        "sha256:1",
        lookup("s390x"),
        Labels("run", "owner", keep=False),
        engine=remote,  # type: ignore[arg-type]
        watch=SimpleNamespace(guard=contextlib.nullcontext),  # type: ignore[arg-type]
        filesystems=None,  # type: ignore[arg-type]
        cache=ImageCache(),
    )
    with pytest.raises(WrongArchitecture, match=r"on the engine at ssh://ci@z-box: no working"):
        access.run_steps(
            [["sh", "-c", "true"]] * steps, env={}, options=ContainerRunOptions(), timeout=9
        )
