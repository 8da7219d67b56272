"""run_command with real tiny programs, and the CommandError / CommandTimeout messages."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pytest_multiarch.core.commands import CommandResult, run_command
from pytest_multiarch.core.errors import CommandError, CommandTimeout

NOISY = ["sh", "-c", "echo out; echo err >&2; exit 3"]


def test_true() -> None:
    result = run_command(["true"], timeout=10)
    assert result == CommandResult(["true"], 0, "", "")
    assert result.ok


def test_false_raises() -> None:
    with pytest.raises(CommandError) as info:
        run_command(["false"], timeout=10)
    assert info.value.returncode == 1
    assert info.value.command == ["false"]
    assert "'false'" in str(info.value)
    assert "exited with 1" in str(info.value)
    assert not isinstance(info.value, CommandTimeout)


def test_false_unchecked() -> None:
    result = run_command(["false"], timeout=10, check=False)
    assert result.returncode == 1
    assert not result.ok


def test_captures_stdout_and_stderr() -> None:
    result = run_command(NOISY, timeout=10, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_error_message_has_command_code_and_output_tail() -> None:
    with pytest.raises(CommandError) as info:
        run_command(NOISY, timeout=10, hint="try again later")
    error = info.value
    assert (error.returncode, error.stdout, error.stderr) == (3, "out\n", "err\n")
    message = str(error)
    assert "sh -c echo out; echo err >&2; exit 3" in message
    assert "exited with 3" in message
    assert "output (last lines):" in message
    assert "  err" in message
    assert message.splitlines()[-1] == "hint: try again later"


def test_error_message_uses_stdout_when_stderr_is_empty() -> None:
    with pytest.raises(CommandError) as info:
        run_command(["sh", "-c", "echo only-stdout; exit 2"], timeout=10)
    assert "  only-stdout" in str(info.value)


def test_error_message_keeps_only_the_last_15_lines() -> None:
    script = "for i in $(seq 1 40); do echo line$i >&2; done; exit 1"
    with pytest.raises(CommandError) as info:
        run_command(["sh", "-c", script], timeout=10)
    message = str(info.value)
    assert "  line40" in message
    assert "  line26" in message
    assert "  line25\n" not in message
    assert "line1\n" not in message


def test_error_message_without_output() -> None:
    error = CommandError(["x", "y"], 4, "", "")
    assert str(error) == "command 'x y' exited with 4"


def test_timeout_is_quick() -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        run_command(["sleep", "5"], timeout=0.5)
    assert time.monotonic() - start < 3
    assert isinstance(info.value, CommandError)
    assert info.value.timeout == 0.5
    assert info.value.returncode == -1
    assert "'sleep 5'" in str(info.value)
    assert "did not finish within 0.5s" in str(info.value)


def test_timeout_raises_even_unchecked() -> None:
    with pytest.raises(CommandTimeout):
        run_command(["sleep", "5"], timeout=0.2, check=False)


def test_timeout_keeps_partial_output() -> None:
    with pytest.raises(CommandTimeout) as info:
        run_command(["sh", "-c", "echo started; exec sleep 5"], timeout=0.3, hint="h")
    assert "started" in info.value.stdout
    assert "  started" in str(info.value)
    assert str(info.value).endswith("hint: h")


@pytest.mark.parametrize("check", [True, False])
def test_missing_program(check: bool) -> None:
    with pytest.raises(CommandError) as info:
        run_command(["/nonexistent/program-xyz", "--flag"], timeout=10, check=check)
    assert info.value.returncode == 127
    assert "command not found" in info.value.stderr
    assert "/nonexistent/program-xyz --flag" in str(info.value)
    assert "exited with 127" in str(info.value)


def test_arguments_are_stringified(tmp_path: Path) -> None:
    result = run_command(["echo", tmp_path, 5], timeout=10)  # type: ignore[list-item]
    assert result.command == ["echo", str(tmp_path), "5"]
    assert result.stdout == f"{tmp_path} 5\n"


def test_env_is_added_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIT_KEPT", "kept")
    result = run_command(
        ["sh", "-c", 'echo "$UNIT_KEPT $UNIT_ADDED"'], timeout=10, env={"UNIT_ADDED": "added"}
    )
    assert result.stdout == "kept added\n"


def test_input_text() -> None:
    assert run_command(["cat"], timeout=10, input_text="FROM x\n").stdout == "FROM x\n"


def test_stdin_is_closed_without_input() -> None:
    # cat would wait forever on an inherited terminal; with /dev/null it ends at once
    assert run_command(["cat"], timeout=10).stdout == ""


def test_cwd(tmp_path: Path) -> None:
    assert run_command(["pwd"], timeout=10, cwd=tmp_path).stdout.strip() == str(tmp_path)
