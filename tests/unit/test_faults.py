"""Emulator faults told apart from test failures: QEMU's own lines count, a plain failure
never does; and the docker command a ``run`` call stands for."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from pytest_multiarch.model.records import RunReport
from pytest_multiarch.runtime.faults import (
    EmulatorFault,
    RecordedRun,
    docker_run_line,
    fault_line,
    find_fault,
)

# Lines as QEMU 7.2 (Debian bookworm's qemu-user-static) prints them on the container's stderr.
QEMU_LINES = [
    ("signal", "qemu: uncaught target signal 11 (Segmentation fault) - core dumped"),
    ("signal", "qemu: uncaught target signal 4 (Illegal instruction) - core dumped"),
    ("signal", "qemu: uncaught target signal 6 (Aborted) - core dumped"),
    ("crash", "QEMU internal SIGSEGV {code=MAPERR, addr=0x20}"),
    ("crash", "qemu:handle_cpu_signal received signal outside vCPU context @ pc=0x7f3a"),
    ("crash", "qemu: unhandled CPU exception 0x8 - aborting"),
    ("unsupported", "Unsupported syscall: 435"),
]


@pytest.mark.parametrize(("kind", "line"), QEMU_LINES)
def test_qemu_lines_are_emulator_faults(kind: str, line: str) -> None:
    found = find_fault(["some output\n", f"before\n{line}\nSegmentation fault\n"])
    assert found is not None
    assert (found.kind, found.evidence) == (kind, line)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "exit status 1",
        "Segmentation fault",  # a crash natively: the program's, no emulator involved
        "Illegal instruction (core dumped)",
        "assert 3 == 0",
        "error: qemu-img not found",
        "qemu-aarch64: Could not open '/lib/ld-linux-aarch64.so.1': No such file or directory",
    ],
)
def test_plain_failures_are_not_emulator_faults(text: str) -> None:
    assert find_fault([text]) is None


def test_exec_format_error_counts_only_when_the_handler_is_gone() -> None:
    text = "exec /bin/sh: exec format error"
    assert find_fault([text], lambda: "") is None  # handler fine: a foreign binary in the image
    found = find_fault([text], lambda: "binfmt_misc handler qemu-aarch64 is disabled")
    assert found is not None
    assert found.kind == "binfmt"
    assert found.evidence == "exec format error: binfmt_misc handler qemu-aarch64 is disabled"


def test_handler_is_not_asked_without_exec_format_error() -> None:
    def never() -> str:
        raise AssertionError("asked")

    assert find_fault(["exit 1"], never) is None


def test_docker_run_line_reruns_the_call() -> None:
    line = docker_run_line(
        "img:1",
        "linux/arm64",
        ["sh", "-c", "echo 'a b' > /x"],
        entrypoint=["/bin/env", "-i"],
        user="1000",
        workdir="/w",
        env={"MODE": "fast lane"},
    )
    assert shlex.split(line) == [
        "docker",
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "--entrypoint",
        "/bin/env",
        "--user",
        "1000",
        "--workdir",
        "/w",
        "--env",
        "MODE=fast lane",
        "img:1",
        "-i",
        "sh",
        "-c",
        "echo 'a b' > /x",
    ]
    assert RecordedRun(line, "exit 2").line().endswith("  # exit 2")


def test_fault_outcome_in_the_model_and_matrix() -> None:
    report = RunReport()
    test = report.record_phase("t::a[arm64]", "web", "arm64", "call", "failed", 1.0, False)
    test.mark_emulator_fault("qemu: uncaught target signal 11 (Segmentation fault)")
    report.record_phase("t::a[arm64]", "web", "arm64", "teardown", "failed", 0.1, False)
    assert test.outcome == "emulator_fault"  # a teardown error does not hide it
    (cell,) = report.matrix()
    assert (cell.emulator_fault, cell.failed, cell.bad) == (1, 0, True)
    assert report.failed
    data = report.to_json()
    assert data["tests"][0]["fault"].startswith("qemu: uncaught target signal 11")
    assert RunReport.from_json(data).tests[0].outcome == "emulator_fault"


def test_only_failures_become_emulator_faults() -> None:
    report = RunReport()
    test = report.record_phase("t::a[arm64]", "web", "arm64", "call", "passed", 1.0, False)
    test.mark_emulator_fault("qemu: uncaught target signal 11")
    assert (test.outcome, test.fault) == ("passed", "")


def test_a_vanished_handlers_line_says_the_bracket_is_the_state_at_the_start() -> None:
    gone = EmulatorFault(
        "binfmt", "exec format error: binfmt_misc handler qemu-ppc64le is disabled"
    )
    at_start = "qemu-ppc64le enabled, flags PF, QEMU 7.2.22"
    assert fault_line(gone, at_start) == (
        "exec format error: binfmt_misc handler qemu-ppc64le is disabled "
        "[at the start of the run: qemu-ppc64le enabled, flags PF, QEMU 7.2.22]"
    )
    segv = EmulatorFault("signal", "qemu: uncaught target signal 11 (Segmentation fault)")
    assert fault_line(segv, at_start).endswith(
        "fault) [qemu-ppc64le enabled, flags PF, QEMU 7.2.22]"
    )
    assert fault_line(segv, "") == segv.evidence


@pytest.mark.parametrize(
    "stdin",
    [
        "hello\n",
        "-n 100% \\ 'quoted' \"too\"\n\tand\nno end",
        b"\x00\x01\xff binary\r\n",
        "",
    ],
)
def test_docker_run_line_gives_the_input_and_keeps_stdin_open(stdin: str | bytes) -> None:
    line = docker_run_line("img:1", "linux/arm64", ["cat"], stdin=stdin)
    feed, _, rerun = line.partition(" | docker ")
    assert shlex.split(rerun) == ["run", "--rm", "-i", "--platform", "linux/arm64", "img:1", "cat"]
    # What the printf part gives the container is the input, byte for byte.
    fed = subprocess.run(["sh", "-c", feed], capture_output=True, check=True).stdout
    assert fed == (stdin.encode() if isinstance(stdin, str) else stdin)


def test_docker_run_line_names_input_too_long_to_show() -> None:
    line = docker_run_line("img:1", "linux/arm64", ["cat"], stdin="x" * 5000)
    assert line == "docker run --rm -i --platform linux/arm64 img:1 cat < stdin-5000-bytes"
    assert "-i" not in shlex.split(docker_run_line("img:1", "linux/arm64", ["cat"]))
