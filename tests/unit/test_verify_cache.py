"""The on-disk cache of verification outcomes: hits, misses, entries that must not be trusted."""

from __future__ import annotations

import json
import os
import stat
import threading
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from pytest_multiarch.runtime.elf import ForeignBinary
from pytest_multiarch.runtime.verify_cache import (
    Verification,
    VerificationCacheWarning,
    VerificationKey,
    default_directory,
    load,
    path_for,
    store,
)

KEY = VerificationKey(
    image_id="sha256:" + "ab" * 32,
    platform="linux/arm64",
    emulator="qemu-aarch64 7.2.19 flags PF",
    harness_version="0.1.0",
)
FAILED = Verification(
    how="metadata+elf+uname",
    ok=False,
    problem="wrong architecture: /app is x86-64, linux/arm64 needs aarch64",
    elf_files=12,
    foreign=(ForeignBinary("/app", "x86-64", "aarch64", True),),
    seconds=0.41,
    uname_machine="aarch64",
)
PASSED = Verification(how="metadata+scripts-only", ok=True, seconds=0.2)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "verified"


def test_a_stored_verification_is_a_hit(cache: Path) -> None:
    assert load(KEY, directory=cache) is None
    assert store(KEY, FAILED, directory=cache) is True
    assert load(KEY, directory=cache) == FAILED
    assert store(KEY, PASSED, directory=cache) is True
    assert load(KEY, directory=cache) == PASSED


def test_directory_is_private_and_holds_only_the_entry(cache: Path) -> None:
    store(KEY, FAILED, directory=cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert [p.name for p in cache.iterdir()] == [KEY.file_name]
    assert path_for(KEY, cache) == cache / KEY.file_name


@pytest.mark.parametrize(
    "changed",
    [
        {"image_id": "sha256:" + "cd" * 32},
        {"platform": "linux/s390x"},
        {"emulator": "qemu-aarch64 8.2.0 flags PF"},
        {"harness_version": "0.2.0"},
        {"foreign_binaries": '["/usr/aarch64-linux-gnu/**"]'},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_any_part_of_the_key_changed_is_a_miss(cache: Path, changed: dict[str, str]) -> None:
    store(KEY, PASSED, directory=cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(replace(KEY, **changed), directory=cache) is None


def test_default_directory_is_under_the_user_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MULTIARCH_CACHE_DIR", str(tmp_path / "user-cache"))
    assert default_directory() == tmp_path / "user-cache" / "verified"
    assert store(KEY, PASSED) is True
    assert (tmp_path / "user-cache" / "verified" / KEY.file_name).is_file()
    assert load(KEY) == PASSED


def test_empty_key_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="image_id"):
        replace(KEY, image_id="")


def entry_document() -> dict[str, object]:
    return {"format": 1, "key": asdict(KEY), "verification": asdict(FAILED)}


def with_verification(**changes: object) -> bytes:
    document = entry_document()
    body = dict(asdict(FAILED))
    body.update(changes)
    document["verification"] = body
    return json.dumps(document).encode()


def without(field: str) -> bytes:
    document = entry_document()
    body = dict(asdict(FAILED))
    del body[field]
    document["verification"] = body
    return json.dumps(document).encode()


GOOD_ENTRY = json.dumps(entry_document()).encode()
OTHER_KEY = replace(KEY, image_id="sha256:" + "ee" * 32)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "Expecting value"),
        (GOOD_ENTRY[: len(GOOD_ENTRY) // 2], "Unterminated|Expecting"),
        (b"\xff\xfe garbage", "utf-8|Expecting value"),
        (b"[1, 2, 3]", "not a verification entry"),
        (json.dumps({**entry_document(), "format": 2}).encode(), "entry format 2"),
        (json.dumps({**entry_document(), "key": asdict(OTHER_KEY)}).encode(), "entry is for"),
        (with_verification(ok="yes"), "ok must be true or false"),
        (with_verification(elf_files=-1), "elf_files must be a count"),
        (with_verification(elf_files=True), "elf_files must be a count"),
        (with_verification(seconds=float("nan")), "seconds must be a duration"),
        (with_verification(how=None), "how must be a string"),
        (with_verification(extra=1), "exactly the fields"),
        (without("problem"), "exactly the fields"),
        (with_verification(foreign=[{"path": "/app"}]), "foreign entry"),
        (with_verification(foreign="/app"), "foreign must be a list"),
    ],
    ids=[
        "empty",
        "truncated",
        "not-utf8",
        "not-an-object",
        "other-format",
        "other-key",
        "ok-string",
        "negative-count",
        "bool-count",
        "nan-seconds",
        "how-null",
        "extra-field",
        "missing-field",
        "foreign-shape",
        "foreign-string",
    ],
)
def test_corrupted_entries_are_ignored_with_a_warning(
    cache: Path, content: bytes, problem: str
) -> None:
    store(KEY, PASSED, directory=cache)
    path_for(KEY, cache).write_bytes(content)
    with pytest.warns(VerificationCacheWarning, match=problem):
        assert load(KEY, directory=cache) is None
    # Verifying again overwrites the bad entry.
    assert store(KEY, FAILED, directory=cache) is True
    assert load(KEY, directory=cache) == FAILED


def test_entry_stored_for_another_key_under_this_name_is_not_trusted(cache: Path) -> None:
    store(OTHER_KEY, PASSED, directory=cache)
    os.replace(path_for(OTHER_KEY, cache), path_for(KEY, cache))
    with pytest.warns(VerificationCacheWarning, match="entry is for"):
        assert load(KEY, directory=cache) is None


def test_planted_symlink_at_the_entry_is_neither_read_nor_written_through(
    cache: Path, tmp_path: Path
) -> None:
    store(KEY, PASSED, directory=cache)
    victim = tmp_path / "victim.json"
    victim.write_bytes(GOOD_ENTRY)  # a valid entry: following the link would make it a hit
    entry = path_for(KEY, cache)
    entry.unlink()
    entry.symlink_to(victim)
    with pytest.warns(VerificationCacheWarning, match="symbolic link"):
        assert load(KEY, directory=cache) is None
    assert store(KEY, PASSED, directory=cache) is True
    assert victim.read_bytes() == GOOD_ENTRY
    assert not entry.is_symlink()
    assert load(KEY, directory=cache) == PASSED


def test_a_symlinked_cache_directory_is_not_used(cache: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    cache.parent.mkdir(parents=True)
    cache.symlink_to(elsewhere)
    with pytest.warns(VerificationCacheWarning, match="not a directory"):
        assert store(KEY, PASSED, directory=cache) is False
    assert list(elsewhere.iterdir()) == []
    with pytest.warns(VerificationCacheWarning, match="not a directory"):
        assert load(KEY, directory=cache) is None


def test_a_directory_others_can_write_is_not_trusted(cache: Path) -> None:
    store(KEY, PASSED, directory=cache)
    cache.chmod(0o777)
    with pytest.warns(VerificationCacheWarning, match="writable only by it"):
        assert load(KEY, directory=cache) is None


def test_a_fifo_at_the_entry_does_not_hang_the_run(cache: Path) -> None:
    store(KEY, PASSED, directory=cache)
    entry = path_for(KEY, cache)
    entry.unlink()
    os.mkfifo(entry)
    with pytest.warns(VerificationCacheWarning, match="not a regular file"):
        assert load(KEY, directory=cache) is None


def test_a_directory_at_the_entry_makes_store_warn_not_crash(cache: Path) -> None:
    store(KEY, PASSED, directory=cache)
    entry = path_for(KEY, cache)
    entry.unlink()
    (entry / "inside").mkdir(parents=True)
    with pytest.warns(VerificationCacheWarning, match="cannot cache"):
        assert store(KEY, FAILED, directory=cache) is False
    assert [p.name for p in cache.iterdir()] == [KEY.file_name]  # no temporary file left


def test_concurrent_writers_never_expose_a_partial_entry(cache: Path) -> None:
    variants = [replace(FAILED, seconds=float(n), problem="x" * 5000 * n) for n in range(4)]
    store(KEY, variants[0], directory=cache)
    stop = threading.Event()

    def write(verification: Verification) -> None:
        while not stop.is_set():
            store(KEY, verification, directory=cache)

    writers = [threading.Thread(target=write, args=(v,)) for v in variants]
    with warnings.catch_warnings():
        warnings.simplefilter("error", VerificationCacheWarning)
        for writer in writers:
            writer.start()
        try:
            seen = [load(KEY, directory=cache) for _ in range(300)]
        finally:
            stop.set()
            for writer in writers:
                writer.join()
    assert all(found in variants for found in seen)
    assert [p.name for p in cache.iterdir()] == [KEY.file_name]
