"""owner_id / owner_alive: deciding whether the process that owns a run is still alive; the
sweep's removal when another run removes the same containers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.errors import CommandError
from pytest_multiarch.engine.cleanup import owner_alive, owner_id, sweep


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait(timeout=10)
    assert not os.path.exists(f"/proc/{process.pid}")
    return process.pid


def test_owner_id_format() -> None:
    found = owner_id()
    host, pid, ticks = found.rsplit(":", 2)
    assert host == socket.gethostname()
    assert pid == str(os.getpid())
    assert re.fullmatch(r"\d+", ticks)


def test_owner_id_is_stable_for_a_process() -> None:
    # The process's start time read here, independently: field 22 of /proc/PID/stat.
    ticks = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    expected = f"{socket.gethostname()}:{os.getpid()}:{ticks}"
    assert owner_id() == expected
    assert owner_id(os.getpid()) == expected


def test_owner_id_of_another_live_process() -> None:
    with subprocess.Popen(["sleep", "30"]) as child:
        try:
            found = owner_id(child.pid)
            assert found.split(":")[1] == str(child.pid)
            assert found != owner_id()
            assert owner_alive(found) is True
        finally:
            child.kill()
            child.wait(timeout=10)
    assert owner_alive(found) is False


def test_owner_id_of_dead_pid_has_unknown_ticks() -> None:
    pid = dead_pid()
    assert owner_id(pid) == f"{socket.gethostname()}:{pid}:?"


def test_own_process_is_alive() -> None:
    assert owner_alive(owner_id()) is True


def test_unknown_ticks_for_a_live_pid_is_alive() -> None:
    assert owner_alive(f"{socket.gethostname()}:{os.getpid()}:?") is True


def test_dead_pid_is_not_alive() -> None:
    pid = dead_pid()
    assert owner_alive(f"{socket.gethostname()}:{pid}:12345") is False
    assert owner_alive(f"{socket.gethostname()}:{pid}:?") is False


def test_live_pid_with_wrong_start_ticks_is_not_alive() -> None:
    ticks = owner_id().rsplit(":", 1)[1]
    wrong = str(int(ticks) + 1)
    assert owner_alive(f"{socket.gethostname()}:{os.getpid()}:{wrong}") is False


def test_other_host_is_not_ours_to_judge() -> None:
    other = socket.gethostname() + "-elsewhere"
    assert owner_alive(f"{other}:{os.getpid()}:1") is None
    assert owner_alive(owner_id().replace(socket.gethostname(), other, 1)) is None


@pytest.mark.parametrize(
    "owner",
    ["", "garbage", "HOST:", "HOST::", "HOST:abc:1", "HOST:-1:1", "HOST: 12:1", "HOST:1.5:2"],
)
def test_malformed_owner_is_none(owner: str) -> None:
    assert owner_alive(owner.replace("HOST", socket.gethostname())) is None


# ---- regressions: bugs found and fixed, kept fixed ----------------------------------------------


@pytest.mark.parametrize("suffix", ["", ":"], ids=["no-ticks-field", "empty-ticks"])
def test_owner_without_ticks_of_live_pid_is_not_judged_dead(suffix: str) -> None:
    assert owner_alive(f"{socket.gethostname()}:{os.getpid()}{suffix}") is None


def test_owner_with_non_ascii_digit_pid_is_none() -> None:
    assert owner_alive(f"{socket.gethostname()}:\u00b2:1") is None


def _answer(returncode: int, stderr: str) -> Any:
    from pytest_multiarch.core.commands import CommandResult

    def fake(command: list[str], *, check: bool = True, **_: Any) -> CommandResult:
        # As run_command: check=True raises on a non-zero exit.
        if command[1:3] == ["ps", "-a"]:
            return CommandResult(
                command, 0, "c1\trun-x\tnowhere:1:1\t\nc2\trun-x\tnowhere:1:1\t\n", ""
            )
        if command[1:3] == ["network", "ls"]:  # the run made no network (no stack)
            return CommandResult(command, 0, "", "")
        if check and returncode:
            raise CommandError(command, returncode, "", stderr)
        return CommandResult(command, returncode, "", stderr)

    return fake


@pytest.mark.parametrize(
    "stderr",
    [
        "Error response from daemon: removal of container c1 is already in progress\n",
        "Error response from daemon: No such container: c1\n"
        "Error response from daemon: No such container: c2\n",
    ],
)
def test_a_sweep_racing_another_removal_of_the_same_containers_succeeds(
    monkeypatch: pytest.MonkeyPatch, stderr: str
) -> None:
    # Two runs on one engine sweep the same dead run's containers: whoever comes second is
    # told the containers are going or gone, which is what the sweep wanted.
    monkeypatch.setattr("pytest_multiarch.engine.cleanup.run_command", _answer(1, stderr))
    assert sweep("run-x").removed == 2


def test_a_sweep_that_cannot_remove_a_container_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = (
        "Error response from daemon: No such container: c1\n"
        "Error response from daemon: cannot remove container c2: device or resource busy\n"
    )
    monkeypatch.setattr("pytest_multiarch.engine.cleanup.run_command", _answer(1, stderr))
    with pytest.raises(CommandError, match="device or resource busy"):
        sweep("run-x")


def test_a_sweep_removes_the_networks_of_dead_runs_after_their_containers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The stacks' networks (pytest_multiarch.runtime.stacks) carry the run's labels: a dead
    # run's go with its containers (after them: a network in use cannot be removed); a live
    # run's and kept ones stay.
    from pytest_multiarch.core.commands import CommandResult

    dead = f"{socket.gethostname()}:{dead_pid()}:1"
    alive = owner_id()
    calls: list[list[str]] = []

    def fake(command: list[str], **_: Any) -> CommandResult:
        calls.append(command)
        if command[1:3] == ["ps", "-a"]:
            return CommandResult(command, 0, f"c1\trun-d\t{dead}\t\n", "")
        if command[1:3] == ["network", "ls"]:
            rows = f"n1\trun-d\t{dead}\t\nn2\trun-l\t{alive}\t\nn3\trun-k\t{dead}\t1\n"
            return CommandResult(command, 0, rows, "")
        return CommandResult(command, 0, "", "")

    monkeypatch.setattr("pytest_multiarch.engine.cleanup.run_command", fake)
    assert sweep().removed == 1
    removals = [c[1:] for c in calls if "rm" in c]
    assert removals == [["rm", "-f", "-v", "c1"], ["network", "rm", "n1"]]


def test_a_sweep_of_a_run_removes_its_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_multiarch.core.commands import CommandResult

    calls: list[list[str]] = []

    def fake(command: list[str], **_: Any) -> CommandResult:
        calls.append(command)
        if command[1:3] == ["network", "ls"]:
            assert "label=pytest-multiarch.run=run-x" in command
            return CommandResult(command, 0, f"n1\trun-x\t{owner_id()}\t\n", "")
        return CommandResult(command, 0, "", "")

    monkeypatch.setattr("pytest_multiarch.engine.cleanup.run_command", fake)
    sweep("run-x")
    assert calls[-1][1:] == ["network", "rm", "n1"]


def test_a_sweep_waits_for_a_removal_another_process_began(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's teardown, cut short by the end of the session, began removing c1: the sweep
    returns only once the engine no longer lists it (SIGTERM at -n 2 left it 'removing')."""
    from pytest_multiarch.core.commands import CommandResult

    inspections: list[list[str]] = []
    sweeping = _answer(
        1, "Error response from daemon: removal of container c1 is already in progress\n"
    )

    def fake(command: list[str], timeout: float = 0, check: bool = True) -> Any:
        if command[1:3] == ["container", "inspect"]:
            inspections.append(command)
            still = "c1000000000000\n" if len(inspections) < 3 else ""
            return CommandResult(command, 0 if still else 1, still, "")
        return sweeping(command, timeout=timeout, check=check)

    monkeypatch.setattr("pytest_multiarch.engine.cleanup.run_command", fake)
    monkeypatch.setattr("pytest_multiarch.engine.cleanup._REMOVAL_POLL", 0.0)
    assert sweep("run-x").removed == 2
    assert len(inspections) == 3
