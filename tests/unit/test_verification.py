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
from types import SimpleNamespace

import pytest
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.engine.labels import Labels
from pytest_multiarch.model.records import BuildRecord
from pytest_multiarch.runtime import oneshot, verify_cache
from pytest_multiarch.runtime.elf import ForeignBinary
from pytest_multiarch.runtime.oneshot import (
    CUT_ATTEMPTS,
    HostOptions,
    OutputCut,
    _Expired,
    _feed,
    _read_ahead,
    _read_frames,
    _start_refused,
    output_may_be_cut,
)
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


def test_frames_begin_with_the_bytes_read_ahead_and_may_straddle_them(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, engine = pair
    data = frame(1, b"amd64\n") + frame(2, b"warning\n") + frame(1, b"tail")
    # The first frame whole and the second's header half in the prefix, the rest on the socket.
    engine.sendall(data[16:])
    engine.shutdown(socket.SHUT_WR)
    out, err = _read_frames(ours, time.monotonic() + 5, prefix=data[:16])
    assert (out, err) == (b"amd64\ntail", b"warning\n")


def test_a_tty_stream_begins_with_the_bytes_read_ahead(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, engine = pair
    engine.sendall(b"rest")
    engine.shutdown(socket.SHUT_WR)
    assert _read_frames(ours, time.monotonic() + 5, raw=True, prefix=b"first ") == (
        b"first rest",
        b"",
    )


def attach_response(ours: socket.socket) -> tuple[SimpleNamespace, socket.socket]:
    """What docker-py's attach_socket returns for a plain socket: the socket beneath the
    buffered reader http.client read the response's headers through, with the response kept
    on it as ``_response`` (response.raw._fp.fp is that reader)."""
    reader = ours.makefile("rb")
    while reader.readline() not in (b"\r\n", b""):
        pass  # the headers, as http.client reads them
    response = SimpleNamespace(raw=SimpleNamespace(_fp=SimpleNamespace(fp=reader)))
    return SimpleNamespace(_response=response, _sock=ours), ours


def test_bytes_buffered_with_the_attach_headers_are_not_lost(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, engine = pair
    # The headers and the first frame in one write: the reader buffers the frame with them.
    engine.sendall(b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\n" + frame(1, b"amd64\n"))
    time.sleep(0.05)  # both on the wire before the headers are read (not a timing assertion)
    attached, duplex = attach_response(ours)
    prefix = _read_ahead(attached, duplex)
    engine.sendall(frame(1, b"more"))
    engine.shutdown(socket.SHUT_WR)
    assert _read_frames(duplex, time.monotonic() + 5, prefix=prefix) == (b"amd64\nmore", b"")


def test_reading_ahead_with_nothing_buffered_does_not_wait(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, engine = pair
    engine.sendall(b"HTTP/1.1 101 UPGRADED\r\n\r\n")
    attached, duplex = attach_response(ours)
    assert _read_ahead(attached, duplex) == b""
    assert ours.gettimeout() is None  # blocking again
    assert _read_ahead(object(), duplex) == b""  # no response kept: nothing to take


@pytest.mark.parametrize(
    ("elapsed", "started", "finished", "cut"),
    [
        # The engine's 2 s wait ran out: the end came 2.3 s after the exit.
        (2.5, "2026-12-04T22:00:00.000000000Z", "2026-12-04T22:00:00.200000000Z", True),
        # A long command, its output promptly delivered: 0.3 s from exit to end at most.
        (9.5, "2026-12-04T22:00:00.100000000Z", "2026-12-04T22:00:09.300000000Z", False),
        # Nanoseconds, or none, as the engine writes them.
        (4.0, "2026-12-04T22:00:00Z", "2026-12-04T22:00:03.5Z", False),
        # An unset or unreadable time gives no credit.
        (2.5, "0001-01-01T00:00:00Z", "2026-12-04T22:00:00.2Z", True),
        (2.5, "", "2026-12-04T22:00:00.2Z", True),
        (1.0, "", "", False),
    ],
)
def test_output_may_be_cut_when_the_end_came_late_after_the_exit(
    elapsed: float, started: str, finished: str, cut: bool
) -> None:
    assert output_may_be_cut(elapsed, started, finished) is cut


def test_on_this_machines_engine_exit_to_end_is_measured_on_the_one_clock() -> None:
    exited = "2026-12-04T22:00:00.500000000Z"
    at = 1796421600.0  # 2026-12-04T22:00:00Z
    # A slow start (3 s from our request to the end) but the end 0.4 s after the exit.
    assert output_may_be_cut(3.0, "2026-12-04T22:00:00.4Z", exited, at + 0.9) is False
    assert output_may_be_cut(3.0, "2026-12-04T22:00:00.4Z", exited, at + 2.6) is True
    # FinishedAt unreadable: the bound without the clock.
    assert output_may_be_cut(3.0, "", "", at) is True


def cut_runs(monkeypatch: pytest.MonkeyPatch, cuts: int, cut_output: bytes = b"") -> list[int]:
    """_run_attached replaced: its first ``cuts`` runs may have been cut (and gave
    ``cut_output``); the calls made."""
    calls: list[int] = []

    def run(*args: object, **kwargs: object) -> oneshot._Ran:
        calls.append(len(calls))
        if len(calls) <= cuts:
            return oneshot._Ran(0, cut_output, b"", cut=True)
        return oneshot._Ran(0, b"arm64\n", b"")

    monkeypatch.setattr(oneshot, "_run_attached", run)
    return calls


def run_cat(host: HostOptions | None = None) -> oneshot.RunResult:
    return oneshot.run_once(
        "img",
        ARM64,
        ["cat", "/target-arch"],
        Labels("run", "owner", keep=False),
        timeout=10,
        engine=SimpleNamespace(environment=None),  # type: ignore[arg-type]
        host=host,
    )


def test_a_run_the_engine_may_have_cut_is_run_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = cut_runs(monkeypatch, CUT_ATTEMPTS - 1)
    assert run_cat().stdout == "arm64\n"
    assert len(calls) == CUT_ATTEMPTS


def test_a_run_cut_on_every_attempt_fails_rather_than_pass_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = cut_runs(monkeypatch, CUT_ATTEMPTS)
    with pytest.raises(OutputCut, match=r"img \(linux/arm64\).* on each of 3 attempts.*incomplete"):
        run_cat()
    assert len(calls) == CUT_ATTEMPTS


def test_two_runs_that_may_have_been_cut_but_agree_are_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = cut_runs(monkeypatch, CUT_ATTEMPTS, cut_output=b"arm64\n")
    assert run_cat().stdout == "arm64\n"
    assert len(calls) == 2


def test_a_run_with_host_binds_is_not_run_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = cut_runs(monkeypatch, 1)
    with pytest.raises(OutputCut, match=r"after the command exited; past that"):
        run_cat(HostOptions(binds=("/tmp:/host",)))
    assert len(calls) == 1


def scripted_runs(monkeypatch: pytest.MonkeyPatch, *results: oneshot._Ran) -> list[int]:
    """_run_attached replaced: its runs end as ``results`` say, in order; the calls made."""
    calls: list[int] = []

    def run(*args: object, **kwargs: object) -> oneshot._Ran:
        calls.append(len(calls))
        return results[len(calls) - 1]

    monkeypatch.setattr(oneshot, "_run_attached", run)
    return calls


SILENT = oneshot._Ran(0, b"", b"")


def test_a_silent_run_is_run_again_and_its_lost_output_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine lost the whole output without a sign (exit 0, nothing printed, not late):
    the second run's output is taken (issue 20 point 2: 1 call in 5000 came back empty)."""
    calls = scripted_runs(monkeypatch, SILENT, oneshot._Ran(0, b"arm64\n", b""))
    assert run_cat().stdout == "arm64\n"
    assert len(calls) == 2


def test_silence_twice_is_believed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = scripted_runs(monkeypatch, SILENT, SILENT, oneshot._Ran(0, b"never\n", b""))
    result = run_cat()
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert len(calls) == 2


def test_a_failing_or_printing_run_is_run_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for first in (oneshot._Ran(1, b"", b""), oneshot._Ran(0, b"", b"warning\n")):
        calls = scripted_runs(monkeypatch, first, SILENT)
        assert run_cat().exit_code == first.code
        assert len(calls) == 1


def test_a_silent_run_with_effects_outside_its_container_is_run_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Host binds, or a stack's network: running it again would repeat its effects."""
    calls = scripted_runs(monkeypatch, SILENT, oneshot._Ran(0, b"again\n", b""))
    assert run_cat(HostOptions(binds=("/tmp:/host",))).stdout == ""
    assert len(calls) == 1
    calls = scripted_runs(monkeypatch, SILENT, oneshot._Ran(0, b"again\n", b""))
    result = oneshot.run_once(
        "img",
        ARM64,
        ["true"],
        Labels("run", "owner", keep=False),
        timeout=10,
        engine=SimpleNamespace(environment=None),  # type: ignore[arg-type]
        network="stack-net",
    )
    assert result.stdout == ""
    assert len(calls) == 1


def test_a_silent_run_then_a_cut_one_is_settled_by_the_third(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cut_empty = oneshot._Ran(0, b"", b"", cut=True)
    calls = scripted_runs(monkeypatch, SILENT, cut_empty, oneshot._Ran(0, b"arm64\n", b""))
    assert run_cat().stdout == "arm64\n"
    assert len(calls) == 3


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
