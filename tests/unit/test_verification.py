"""Verification once per image id: the cache in front of Verifier.verify, and the pieces of a
one-shot container run over the engine's API that need no engine (attach frames, start errors).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.model.records import BuildRecord
from pytest_multiarch.runtime import verify_cache
from pytest_multiarch.runtime.elf import ForeignBinary
from pytest_multiarch.runtime.oneshot import _Expired, _feed, _read_frames, _start_refused
from pytest_multiarch.runtime.process import ProcessRuntime
from pytest_multiarch.runtime.verification import (
    VERIFICATION_LOGIC,
    Verifier,
    verification_version,
)

from tests.unit.fakes import make_settings

ARM64 = lookup("arm64")
RECORD = BuildRecord(
    "app", "linux/arm64", "pytest-multiarch/app:1-arm64", "sha256:" + "a" * 64, 0, True
)
WRONG = verify_cache.Verification(
    "metadata+elf",
    False,
    "wrong architecture: /app is x86-64, linux/arm64 needs aarch64",
    elf_files=3,
    foreign=(ForeignBinary("/app", "x86-64", "aarch64", True),),
)


class CountingVerifier(Verifier):
    """A Verifier whose verification is a stand-in that counts its calls (no engine)."""

    def __init__(self, outcome: verify_cache.Verification, lasting: bool = True) -> None:
        settings = make_settings(
            (ARM64,), Path("/nonexistent/images"), run_id="run", owner="host:1:1"
        )
        runtime = ProcessRuntime(settings)
        super().__init__(settings, runtime.labels, runtime.engine_for, runtime.filesystems)
        self.outcome = outcome
        self.lasting = lasting
        self.calls = 0

    def emulator(self, platform: object) -> str:
        return "qemu-aarch64 enabled, flags PF, QEMU 7.2.22"

    def verify(
        self, reference: str, spec: ImageSpec, platform: object
    ) -> tuple[verify_cache.Verification, bool]:
        self.calls += 1
        return self.outcome, self.lasting


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MULTIARCH_CACHE_DIR", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unexpected cache warning fails the test
        yield tmp_path / "cache" / "verified"


def spec(*globs: str) -> ImageSpec:
    return ImageSpec("app", Path("/nonexistent/images/app"), foreign_binaries=globs)


def test_second_check_of_an_image_id_is_read_from_the_cache() -> None:
    first = CountingVerifier(WRONG)
    verdict = first.check(RECORD, spec(), ARM64)
    assert (verdict.how, verdict.problem, verdict.cached) == ("metadata+elf", WRONG.problem, False)
    # Another process of a later run: nothing is verified again.
    later = CountingVerifier(WRONG)
    again = later.check(RECORD, spec(), ARM64)
    assert (again.how, again.problem, again.cached) == ("metadata+elf", WRONG.problem, True)
    assert (first.calls, later.calls) == (1, 0)


def test_a_changed_image_id_or_allow_list_is_verified_again() -> None:
    verifier = CountingVerifier(WRONG)
    verifier.check(RECORD, spec(), ARM64)
    rebuilt = BuildRecord(**{**RECORD.__dict__, "image_id": "sha256:" + "b" * 64})
    assert verifier.check(rebuilt, spec(), ARM64).cached is False
    # The allow-globs decide what is foreign and are not in the image id: part of the key.
    assert verifier.check(RECORD, spec("/app"), ARM64).cached is False
    assert verifier.calls == 3
    assert verifier.check(RECORD, spec("/app"), ARM64).cached is True


def test_an_engine_failure_is_not_cached() -> None:
    flaky = verify_cache.Verification("metadata+elf", False, "`uname -m` timed out")
    verifier = CountingVerifier(flaky, lasting=False)
    verifier.check(RECORD, spec(), ARM64)
    verifier.check(RECORD, spec(), ARM64)
    assert verifier.calls == 2


def test_a_corrupted_entry_warns_and_is_verified_again(cache: Path) -> None:
    CountingVerifier(WRONG).check(RECORD, spec(), ARM64)
    (entry,) = cache.glob("*.json")
    document = json.loads(entry.read_text())
    document["verification"].update(ok=True, problem="", elf_files=-1)  # forged, and malformed
    entry.write_text(json.dumps(document))
    verifier = CountingVerifier(WRONG)
    with pytest.warns(verify_cache.VerificationCacheWarning, match="ignoring verification cache"):
        verdict = verifier.check(RECORD, spec(), ARM64)
    assert (verdict.problem, verdict.cached, verifier.calls) == (WRONG.problem, False, 1)
    assert json.loads(entry.read_text())["verification"]["ok"] is False  # stored afresh


def test_verification_version_names_the_logic() -> None:
    assert verification_version().endswith(f"+verification.{VERIFICATION_LOGIC}")


# ---- one-shot containers: the attach stream -------------------------------------------------


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Our end of an attach stream, and the engine's."""
    ours, engine = socket.socketpair()
    with ours, engine:
        yield ours, engine


def test_frames_are_split_into_stdout_and_stderr_byte_exact(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, engine = pair
    payload = [frame(1, b"out\xff\x00"), frame(2, b"err\n"), frame(1, b"more"), frame(1, b"")]
    data = b"".join(payload)
    # Delivered in awkward pieces: a header split in two, frames glued together.
    engine.sendall(data[:3])
    engine.sendall(data[3:20])
    engine.sendall(data[20:])
    engine.shutdown(socket.SHUT_WR)
    assert _read_frames(ours, time.monotonic() + 5) == (b"out\xff\x00more", b"err\n")


def test_frames_past_the_deadline_expire(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, engine = pair
    engine.sendall(frame(1, b"partial"))
    started = time.monotonic()
    with pytest.raises(_Expired):
        _read_frames(ours, time.monotonic() + 0.2)
    assert time.monotonic() - started < 5


def test_stdin_is_sent_then_its_end_signalled(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, engine = pair
    feeder = threading.Thread(target=_feed, args=(ours, b"line 1\nline 2"))
    feeder.start()
    received = b""
    while chunk := engine.recv(4096):
        received += chunk
    feeder.join(5)
    assert received == b"line 1\nline 2"


def test_stdin_to_a_command_that_stopped_reading_is_no_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, engine = pair
    engine.shutdown(socket.SHUT_RDWR)
    _feed(ours, b"x" * 1_000_000)  # EPIPE or ECONNRESET, swallowed


@pytest.mark.parametrize(
    ("explanation", "code"),
    [
        ('exec: "nosuch": executable file not found in $PATH: unknown', 127),
        ('exec: "/nosuch": stat /nosuch: no such file or directory: unknown', 127),
        ('exec: "/etc": permission denied: unknown', 126),
        ("cannot join network namespace of a stopped container", 125),
    ],
)
def test_start_refusals_give_docker_runs_exit_codes(explanation: str, code: int) -> None:
    exit_code, out, err = _start_refused(explanation)
    assert (exit_code, out) == (code, b"")
    assert err == f"docker: Error response from daemon: {explanation}\n".encode()
