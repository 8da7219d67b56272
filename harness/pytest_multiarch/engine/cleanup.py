"""Removing what a run left behind: its own containers at the end, and those of runs whose owning
process is provably dead at the start of the next run. A run that is still alive is never swept.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.errors import CommandError
from pytest_multiarch.core.processes import start_ticks
from pytest_multiarch.engine.docker import docker
from pytest_multiarch.engine.labels import KEEP_LABEL, OWNER_LABEL, RUN_LABEL

if TYPE_CHECKING:
    from pytest_multiarch.engine.endpoints import EngineRef


def owner_id(pid: int | None = None) -> str:
    """``host:pid:starttime`` of the process that owns a run; the start time guards against a
    recycled pid being taken for the owner."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{start_ticks(pid) or '?'}"


def owner_alive(owner: str) -> bool | None:
    """True/False when provable on this host, None when the owner lives elsewhere (or the label
    is malformed): then it is not ours to judge."""
    host, _, rest = owner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not (pid_text.isascii() and pid_text.isdigit()):
        return None
    if not ticks:
        return None
    current = start_ticks(int(pid_text))
    if current is None:
        return False
    return ticks in ("?", current)


@dataclass(frozen=True)
class SweepResult:
    removed: int
    runs: tuple[str, ...]


def _labelled(
    label: str, engine: EngineRef | None, kind: str = "container"
) -> list[tuple[str, str, str, bool]]:
    """(id, run, owner, kept) of every container (``kind`` "network": network) carrying
    ``label``."""
    fmt = (
        f'{{{{.ID}}}}\t{{{{.Label "{RUN_LABEL}"}}}}\t{{{{.Label "{OWNER_LABEL}"}}}}'
        f'\t{{{{.Label "{KEEP_LABEL}"}}}}'
    )
    listing = ("ps", "-a") if kind == "container" else ("network", "ls")
    listed = run_command(
        docker(*listing, "--filter", f"label={label}", "--format", fmt, engine=engine),
        timeout=60,
    )
    rows = []
    for line in listed.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4:
            rows.append((parts[0], parts[1], parts[2], bool(parts[3])))
    return rows


def sweep(run_id: str | None = None, engine: EngineRef | None = None) -> SweepResult:
    """With ``run_id``: remove that run's containers, then its networks (the stacks',
    pytest_multiarch.runtime.stacks). Without: remove those of every run whose owner is
    provably dead. Kept ones (``--keep-containers``) stay. On ``engine`` (a platform's mapped
    engine), else on the default engine. Raises CommandError when the engine cannot list or
    remove them (the caller says so; nothing is hidden). ``removed`` counts containers."""
    label = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    doomed = []
    runs = set()
    for ident, run, owner, kept in _labelled(label, engine):
        if kept or (run_id is None and owner_alive(owner) is not False):
            continue
        doomed.append(ident)
        runs.add(run)
    if doomed:
        _remove(doomed, engine)
    networks = [
        ident
        for ident, _run, owner, kept in _labelled(label, engine, "network")
        if not kept and (run_id is not None or owner_alive(owner) is False)
    ]
    if networks:
        _remove(networks, engine, "network")
    return SweepResult(len(doomed), tuple(sorted(runs)))


# What `docker rm -f` says of a container that someone else (another run's sweep, the owner's
# own teardown) is removing or has removed meanwhile: gone either way, so not a failure.
_ALREADY_GOING = ("is already in progress", "No such container", "not found")


def _remove(ids: list[str], engine: EngineRef | None, kind: str = "container") -> None:
    """Force-remove ``ids`` (containers, or networks: ``kind`` "network"); CommandError only for
    one that is still there after it."""
    removal = ("rm", "-f", "-v") if kind == "container" else ("network", "rm")
    command = docker(*removal, *ids, engine=engine)
    done = run_command(command, timeout=180, check=False)
    if done.returncode == 0:
        return
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    if errors and all(any(gone in line for gone in _ALREADY_GOING) for line in errors):
        if kind == "container" and any(_ALREADY_GOING[0] in line for line in errors):
            _wait_removed(ids, engine)
        return
    raise CommandError(command, done.returncode, done.stdout, done.stderr)


# A container that another process began removing (a worker's teardown cut short by the end of
# the session) is still listed, "removing", until the engine is done with it: the sweep waits
# for that, bounded, so that nothing of a run is there when it ends.
REMOVAL_WAIT = 60.0
_REMOVAL_POLL = 0.2


def _wait_removed(ids: list[str], engine: EngineRef | None, within: float = REMOVAL_WAIT) -> None:
    """Return once none of ``ids`` exists any more, or ``within`` seconds have passed (then the
    engine is still removing them: the next run's sweep takes what is left)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        command = docker("container", "inspect", "--format", "{{.Id}}", *ids, engine=engine)
        present = run_command(command, timeout=30, check=False).stdout.split()
        if not any(full.startswith(short) for full in present for short in ids):
            return
        time.sleep(_REMOVAL_POLL)
