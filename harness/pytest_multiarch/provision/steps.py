"""Set-up as a list of steps, each checked before anything is changed.

A step's ``check()`` looks (no side effects) and says what is there, what is missing and the
exact commands that would fix it. Planning (non-root, or ``--dry-run``) prints those commands
for every step whose check finds something missing and changes nothing; acting (root) runs the
same step's ``apply()`` with the state its check just returned. One truth, two uses.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pytest_multiarch.core.commands import Log
from pytest_multiarch.core.errors import MultiarchError

StepStatus = Literal["done", "skipped", "failed", "needs-root", "planned"]
"""done: applied now; skipped: nothing was missing; failed: applied, still missing;
needs-root: missing, and only root may fix it; planned: missing, left alone by --dry-run."""

GOOD: frozenset[StepStatus] = frozenset({"done", "skipped"})
PENDING: frozenset[StepStatus] = frozenset({"needs-root", "planned"})


@dataclass(frozen=True)
class StepState:
    """What a step's check found."""

    present: str
    """What is there (the whole story when nothing is missing)."""
    missing: str = ""
    """What is not; empty when the step has nothing to do."""
    commands: tuple[str, ...] = ()
    """The commands a root user would run to fix it, as they would type them."""
    items: tuple[str, ...] = ()
    """The missing things by name (packages, platforms), for ``apply``."""

    @property
    def satisfied(self) -> bool:
        return not self.missing


def write_file_command(path: Path, text: str) -> str:
    """The shell command that writes ``text`` to ``path`` (a quoted here-document)."""
    body = text if text.endswith("\n") else text + "\n"
    return f"cat > {shlex.quote(str(path))} <<'EOF'\n{body}EOF"


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did: ``failed`` when it ran but the thing is still missing."""

    detail: str
    status: Literal["done", "failed"] = "done"


class Step(ABC):
    """One idempotent piece of set-up."""

    name: str
    independent: bool = False
    """When true, a failure of ``apply`` is reported and the following steps still run
    (one base image of several); otherwise the error ends the run."""

    @abstractmethod
    def check(self) -> StepState:
        """Look, change nothing."""

    @abstractmethod
    def apply(self, state: StepState) -> Applied:
        """Fix what ``state`` (this step's check, just now) says is missing."""


class Fact(Step):
    """A line in the report that nothing can change (a decision, or why a part is not needed)."""

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.detail = detail

    def check(self) -> StepState:
        return StepState(self.detail)

    def apply(self, state: StepState) -> Applied:  # never called: a fact is never missing
        return Applied(state.present)


@dataclass(frozen=True)
class StepResult:
    name: str
    status: StepStatus
    detail: str
    commands: tuple[str, ...] = ()


@dataclass
class StepReport:
    steps: list[StepResult] = field(default_factory=list)

    def add(
        self,
        name: str,
        status: StepStatus,
        detail: str,
        log: Log,
        commands: Sequence[str] = (),
    ) -> None:
        self.steps.append(StepResult(name, status, detail, tuple(commands)))
        log(f"[{status:>10}] {name}: {detail}")
        for command in commands:
            first, *rest = command.splitlines() or [""]
            log(f"      $ {first}")
            for line in rest:  # a here-document: the file's lines, as they are written
                log(f"        {line}")

    @property
    def ok(self) -> bool:
        """Everything is in place (done now, or found so)."""
        return all(step.status in GOOD for step in self.steps)

    @property
    def pending(self) -> list[StepResult]:
        """Steps a plan found missing."""
        return [step for step in self.steps if step.status in PENDING]


def run_steps(
    steps: Iterable[Step],
    *,
    act: bool,
    root: bool,
    log: Log,
    report: StepReport | None = None,
) -> StepReport:
    """Check each step in order; when ``act``, apply those found missing, else list their
    commands. ``steps`` may be a generator: acting, each step is checked after the previous
    one was applied, so a later step sees what an earlier one installed."""
    report = report if report is not None else StepReport()
    for step in steps:
        state = step.check()
        if state.satisfied:
            report.add(step.name, "skipped", state.present, log)
        elif not act:
            status: StepStatus = "planned" if root else "needs-root"
            report.add(step.name, status, state.missing, log, state.commands)
        else:
            try:
                applied = step.apply(state)
            except MultiarchError as exc:
                if not step.independent:
                    raise
                report.add(step.name, "failed", str(exc), log)
                continue
            report.add(step.name, applied.status, applied.detail, log)
    return report


__all__ = [
    "Applied",
    "Fact",
    "Step",
    "StepReport",
    "StepResult",
    "StepState",
    "StepStatus",
    "run_steps",
    "write_file_command",
]
