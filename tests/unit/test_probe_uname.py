"""probe_uname: the answer of ``uname -m``, None without a uname, and an engine that lost the
output asked again instead of taking '' for a machine (no engine: run_once is a stand-in)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.engine.labels import Labels
from pytest_multiarch.engine.probe import UNAME_ATTEMPTS, CliRun
from pytest_multiarch.engine.probe import probe_uname as read_uname
from pytest_multiarch.runtime import oneshot
from pytest_multiarch.runtime.oneshot import RunResult, probe_uname

ARM64 = lookup("arm64")
LABELS = Labels("run", "owner", keep=False)


def answers(monkeypatch: pytest.MonkeyPatch, *results: RunResult) -> list[int]:
    """run_once gives ``results`` in turn; the returned list counts the calls."""
    calls: list[int] = []
    queue: Iterator[RunResult] = iter(results)

    def run_once(*args: Any, **kwargs: Any) -> RunResult:
        calls.append(1)
        return next(queue)

    monkeypatch.setattr(oneshot, "run_once", run_once)
    return calls


def test_the_machine_it_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = answers(monkeypatch, RunResult(0, b"aarch64\n", b""))
    assert probe_uname("img", ARM64, LABELS, 60) == "aarch64\n"
    assert len(calls) == 1


def test_an_output_the_engine_lost_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = answers(monkeypatch, RunResult(0, b"", b""), RunResult(0, b"aarch64\n", b""))
    assert probe_uname("img", ARM64, LABELS, 60) == "aarch64\n"
    assert len(calls) == 2


def test_no_output_every_time_is_an_error_not_a_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = answers(monkeypatch, *[RunResult(0, b"", b"")] * UNAME_ATTEMPTS)
    with pytest.raises(MultiarchError, match=r"exited 0 but printed nothing, 3 times"):
        probe_uname("img", ARM64, LABELS, 60)
    assert len(calls) == UNAME_ATTEMPTS


@pytest.mark.parametrize(
    "result",
    [
        RunResult(127, b"", b"docker: Error response from daemon: executable file not found\n"),
        RunResult(126, b"", b"permission denied\n"),
        RunResult(1, b"", b"exec: uname: not found\n"),
    ],
)
def test_an_image_without_uname_has_no_answer(
    monkeypatch: pytest.MonkeyPatch, result: RunResult
) -> None:
    answers(monkeypatch, result)
    assert probe_uname("img", ARM64, LABELS, 60) is None


def test_a_failing_uname_is_an_error_with_its_output(monkeypatch: pytest.MonkeyPatch) -> None:
    answers(monkeypatch, RunResult(2, b"", b"uname: bad option\n"))
    with pytest.raises(MultiarchError, match=r"exited 2: uname: bad option"):
        probe_uname("img", ARM64, LABELS, 60)


def test_dockers_own_failure_is_not_an_image_without_uname() -> None:
    # The CLI run of doctor and publish: a pull that found nothing says "not found" too.
    refused = CliRun(125, "", "docker: Error response from daemon: manifest unknown: not found\n")
    with pytest.raises(MultiarchError, match=r"docker could not run img \(linux/arm64\)"):
        read_uname(lambda: refused, "img (linux/arm64)")
