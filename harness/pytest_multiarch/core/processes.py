"""Facts about local processes, read from /proc."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """Fields 3 onwards of /proc/<pid>/stat (state first), or None when there is no such
    process. The command name before them may contain spaces, so the split is after its ')'."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def start_ticks(pid: int) -> str | None:
    """When ``pid`` started (field 22, clock ticks since boot): tells a reused pid apart."""
    fields = stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an exited daemon whose parent never reaped
    it still has a /proc entry, and pgrep still lists it)."""
    fields = stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] != "Z"
