"""The labels every container of a run carries (its run id, its owner, keep-after-the-run): their
one home, for the runtime's containers, the structure tests' (which are the runtime's one-shot
runs) and the sweeps that remove them by label (pytest_multiarch.engine.cleanup.sweep)."""

from __future__ import annotations

from dataclasses import dataclass

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
