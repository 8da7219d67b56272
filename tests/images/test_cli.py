"""Behaviour of images/cli on every platform: a busybox shell tool with a usage contract.

Exit codes: 0 on success, 64 (EX_USAGE) with a message on standard error for bad input.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.image("cli")

EX_USAGE = 64


def test_help(run):
    result = run(["--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith("usage: macli COMMAND")
    for command in ("greet", "add", "mul", "arch", "version"):
        assert f"  {command}" in result.stdout
    assert result.stderr == ""


def test_default_command_is_help(run):
    result = run([])
    assert result.exit_code == 0
    assert result.stdout.startswith("usage: macli")


def test_greet(run):
    result = run(["greet", "World", "Grace Hopper"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["Hello, World!", "Hello, Grace Hopper!"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["add", "2", "40"], "42", id="add"),
        pytest.param(["add", "10", "-15", "007"], "2", id="add-negative-leading-zeros"),
        # Beyond 32 bits: busybox's $(( )) is 64-bit on 32-bit platforms too.
        pytest.param(["add", "4000000000", "4000000000"], "8000000000", id="add-64-bit"),
        pytest.param(["mul", "-3", "7"], "-21", id="mul"),
        pytest.param(["mul", "65536", "65536", "65536"], "281474976710656", id="mul-64-bit"),
    ],
)
def test_arithmetic(run, args, expected):
    result = run(args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == expected + "\n"


def test_arch_is_the_platform_machine(run, platform):
    result = run(["arch"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == platform.uname


def test_version_names_the_target(run, platform):
    result = run(["version"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"macli 1.0.0 {platform.arch} ({platform.name})"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--bogus"], "unknown option: --bogus", id="unknown-option"),
        pytest.param(["frobnicate"], "unknown command: frobnicate", id="unknown-command"),
        pytest.param(["add", "1", "two"], "not an integer: 'two'", id="non-integer"),
        pytest.param(["add", "1.5"], "not an integer: '1.5'", id="decimal"),
        pytest.param(["mul", "-"], "not an integer: '-'", id="lone-minus"),
        pytest.param(["add", "1" * 19], "integer out of range", id="too-many-digits"),
        pytest.param(["add"], "add needs at least one INT", id="no-operands"),
        pytest.param(["greet"], "greet needs at least one NAME", id="greet-nobody"),
        pytest.param(["greet", "--loud"], "unknown option: --loud", id="greet-option"),
        pytest.param(["arch", "extra"], "arch takes no arguments", id="arch-extra"),
    ],
)
def test_bad_input_exits_64_with_usage_on_stderr(run, args, message):
    result = run(args)
    assert result.exit_code == EX_USAGE
    assert result.stdout == ""
    assert result.stderr.startswith(f"macli: {message}")
    assert "usage: macli" in result.stderr


def test_no_command_is_a_usage_error(run):
    # Overriding the entrypoint drops the image's default CMD (--help): macli gets no arguments.
    result = run([], entrypoint="/usr/local/bin/macli")
    assert result.exit_code == EX_USAGE
    assert result.stdout == ""
    assert result.stderr.startswith("macli: missing command")
