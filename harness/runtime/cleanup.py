"""Removing what a run left behind: its own containers at the end, and those of runs whose owning
process is provably dead at the start of the next run. A run that is still alive is never swept.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from harness.commands import run_command
from harness.runtime.containers import KEEP_LABEL, OWNER_LABEL, RUN_LABEL
from harness.runtime.engine import docker
from harness.processes import start_ticks


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
    removed_containers: int
    removed_networks: int
    removed_volumes: int
    runs: tuple[str, ...]


def _list(kind: str, label: str) -> list[tuple[str, str, str]]:
    fmt = f'{{{{.ID}}}}\t{{{{.Label "{RUN_LABEL}"}}}}\t{{{{.Label "{OWNER_LABEL}"}}}}'
    if kind == "container":
        args = docker("ps", "-a", "--filter", f"label={label}", "--format", fmt)
    elif kind == "network":
        args = docker("network", "ls", "--filter", f"label={label}", "--format", fmt)
    else:
        fmt = fmt.replace(".ID", ".Name")
        args = docker("volume", "ls", "--filter", f"label={label}", "--format", fmt)
    result = run_command(args, timeout=60, check=False)
    rows = []
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            rows.append((parts[0], parts[1], parts[2]))
    return rows


def _kept(kind: str) -> set[str]:
    if kind != "container":
        return set()
    result = run_command(
        docker("ps", "-aq", "--no-trunc", "--filter", f"label={KEEP_LABEL}"),
        timeout=60,
        check=False,
    )
    return {line[:12] for line in result.stdout.split()}


def _remove(kind: str, ids: list[str]) -> None:
    if not ids:
        return
    if kind == "container":
        run_command(docker("rm", "-f", "-v", *ids), timeout=180, check=False)
    else:
        run_command(docker(kind, "rm", *ids), timeout=180, check=False)


def sweep(run_id: str | None = None, *, include_kept: bool = False) -> SweepResult:
    """With ``run_id``: remove that run's containers, networks and volumes. Without: remove those
    of every run whose owner is provably dead. Kept containers (``--keep-containers``) stay
    unless ``include_kept``."""
    counts: dict[str, int] = {}
    runs: set[str] = set()
    label = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    for kind in ("container", "network", "volume"):
        kept = set() if include_kept else _kept(kind)
        doomed = []
        for ident, run, owner in _list(kind, label):
            if ident[:12] in kept:
                continue
            if run_id is None and owner_alive(owner) is not False:
                continue
            doomed.append(ident)
            runs.add(run)
        _remove(kind, doomed)
        counts[kind] = len(doomed)
    return SweepResult(
        counts["container"], counts["network"], counts["volume"], tuple(sorted(runs))
    )
