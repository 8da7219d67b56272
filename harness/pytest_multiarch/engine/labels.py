"""The labels every container of a run carries (its run id, its owner, keep-after-the-run), and
removal by label: the one home of both, for the runtime, the sweeps and the structure tests."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.engine.docker import docker
from pytest_multiarch.engine.endpoints import EngineRef

RUN_LABEL = "pytest-multiarch.run"
OWNER_LABEL = "pytest-multiarch.owner"
KEEP_LABEL = "pytest-multiarch.keep"
CALL_LABEL = "pytest-multiarch.call"


@dataclass(frozen=True)
class Labels:
    """The labels of one run's containers (and of the images it names for itself)."""

    run_id: str
    owner: str
    keep: bool

    def as_dict(self) -> dict[str, str]:
        labels = {RUN_LABEL: self.run_id, OWNER_LABEL: self.owner}
        if self.keep:
            labels[KEEP_LABEL] = "1"
        return labels


def remove_by_label(selector: str, engine: EngineRef | None = None) -> int:
    """Force-remove every container matching the label ``selector`` (on ``engine``, else the
    default engine); returns how many. Raises CommandError when the engine cannot list or
    remove them."""
    listed = run_command(
        docker("ps", "-aq", "--filter", f"label={selector}", engine=engine), timeout=60
    )
    ids = listed.stdout.split()
    if ids:
        run_command(docker("rm", "-f", "-v", *ids, engine=engine), timeout=120)
    return len(ids)
