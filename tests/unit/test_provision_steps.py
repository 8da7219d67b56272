"""Planning and acting share one truth: the steps' checks. A step found missing is listed with
its commands when planning and applied (with that very state) when acting; a step found
present is skipped by both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.platforms import parse_platforms
from pytest_multiarch.provision import host
from pytest_multiarch.provision.steps import Applied, Fact, Step, StepReport, StepState, run_steps


class FakeStep(Step):
    def __init__(self, name: str, state: StepState, outcome: Applied | Exception | None = None):
        self.name = name
        self.state = state
        self.outcome = outcome or Applied(f"fixed {name}")
        self.checked = 0
        self.applied: list[StepState] = []

    def check(self) -> StepState:
        self.checked += 1
        return self.state

    def apply(self, state: StepState) -> Applied:
        self.applied.append(state)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


PRESENT = StepState("all there")
MISSING = StepState("", "the widget is missing", ("apt-get install widget", "widget --on"))


def pair() -> tuple[FakeStep, FakeStep]:
    return FakeStep("present", PRESENT), FakeStep("missing", MISSING)


@pytest.mark.parametrize("root", [False, True], ids=["non-root", "dry-run"])
def test_plan_lists_the_missing_steps_commands_and_changes_nothing(root: bool) -> None:
    present, missing = pair()
    lines: list[str] = []
    report = run_steps([present, missing], act=False, root=root, log=lines.append)
    assert [(s.name, s.status) for s in report.steps] == [
        ("present", "skipped"),
        ("missing", "planned" if root else "needs-root"),
    ]
    assert report.steps[1].commands == MISSING.commands
    assert report.steps[1].detail == MISSING.missing
    assert lines[-2:] == ["      $ apt-get install widget", "      $ widget --on"]
    assert not present.applied
    assert not missing.applied
    assert not report.ok
    assert [s.name for s in report.pending] == ["missing"]


def test_act_applies_exactly_what_the_plan_lists_with_the_checked_state() -> None:
    plan = run_steps(pair(), act=False, root=False, log=lambda _: None)
    present, missing = pair()
    acted = run_steps([present, missing], act=True, root=True, log=lambda _: None)
    planned = {s.name for s in plan.pending}
    applied = {step.name for step in (present, missing) if step.applied}
    assert planned == applied == {"missing"}
    assert missing.applied == [MISSING]  # the state its check returned, not a second opinion
    assert missing.checked == 1
    assert [(s.name, s.status, s.detail) for s in acted.steps] == [
        ("present", "skipped", "all there"),
        ("missing", "done", "fixed missing"),
    ]
    assert acted.ok


def test_nothing_missing_plans_and_acts_alike() -> None:
    planned = run_steps([FakeStep("a", PRESENT)], act=False, root=False, log=lambda _: None)
    acted = run_steps([FakeStep("a", PRESENT)], act=True, root=True, log=lambda _: None)
    assert planned.steps == acted.steps
    assert planned.ok
    assert acted.ok
    assert not planned.pending


def test_a_step_still_missing_after_apply_is_failed() -> None:
    step = FakeStep("emulator", MISSING, Applied("still disabled", "failed"))
    report = run_steps([step], act=True, root=True, log=lambda _: None)
    assert report.steps[0].status == "failed"
    assert not report.ok


def test_an_independent_failure_is_reported_and_the_rest_runs() -> None:
    first = FakeStep("base debian", MISSING, MultiarchError("mirror mid-sync"))
    first.independent = True
    second = FakeStep("base busybox", MISSING)
    report = run_steps([first, second], act=True, root=True, log=lambda _: None)
    assert [(s.name, s.status) for s in report.steps] == [
        ("base debian", "failed"),
        ("base busybox", "done"),
    ]
    assert "mirror mid-sync" in report.steps[0].detail


def test_a_dependent_failure_ends_the_run() -> None:
    first = FakeStep("packages", MISSING, MultiarchError("apt-get failed"))
    second = FakeStep("engine", MISSING)
    with pytest.raises(MultiarchError, match="apt-get failed"):
        run_steps([first, second], act=True, root=True, log=lambda _: None)
    assert second.checked == 0


def test_acting_checks_each_step_after_the_previous_one_was_applied() -> None:
    installed: list[str] = []

    class Install(Step):
        name = "install"

        def check(self) -> StepState:
            return StepState("there") if installed else StepState("", "absent", ("install",))

        def apply(self, state: StepState) -> Applied:
            installed.append("tool")
            return Applied("installed")

    seen: list[bool] = []

    def steps() -> Iterator[Step]:
        yield Install()
        seen.append(bool(installed))  # what the next step is built from
        yield Fact("uses the tool", "ok")

    run_steps(steps(), act=True, root=True, log=lambda _: None)
    assert seen == [True]


def test_report_lines() -> None:
    lines: list[str] = []
    report = StepReport()
    report.add("engine", "skipped", "running", lines.append)
    assert lines == ["[   skipped] engine: running"]


# ---- real steps, on a fake binfmt_misc directory -------------------------------------------------


def fake_binfmt(tmp_path: Path, *, enabled: bool) -> Path:
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    (binfmt / "register").write_text("")
    state = "enabled" if enabled else "disabled"
    (binfmt / "qemu-ppc64le").write_text(
        f"{state}\ninterpreter /usr/libexec/qemu-binfmt/ppc64le-binfmt-P\nflags: PF\n"
    )
    return binfmt


def test_emulator_step_applies_the_command_its_plan_prints(tmp_path: Path) -> None:
    binfmt = fake_binfmt(tmp_path, enabled=False)
    (ppc64le,) = parse_platforms("ppc64le", source="test")
    step = host.EmulatorStep(ppc64le, binfmt)
    state = step.check()
    handler = binfmt / "qemu-ppc64le"
    assert "disabled" in state.missing
    assert state.commands == (f"echo 1 > {handler}",)
    assert handler.read_text().startswith("disabled")  # checking changed nothing
    step.apply(state)
    assert handler.read_text() == "1"  # what `echo 1 >` writes, and nothing else


def test_binfmt_mount_step(tmp_path: Path) -> None:
    step = host.BinfmtMountStep(tmp_path)
    state = step.check()
    assert state.commands == (f"mount -t binfmt_misc binfmt_misc {tmp_path}",)
    (tmp_path / "register").write_text("")
    assert step.check().satisfied


# ---- the engine's packages: one rule for the package list and the engine binary ------------------


@pytest.mark.parametrize(
    ("dockerd", "answers", "engine_wanted"),
    [
        ("/usr/sbin/dockerd", True, False),
        ("/usr/sbin/dockerd", False, False),  # installed, merely stopped: the engine step starts it
        (None, True, False),  # an engine answers without a local dockerd (a mounted socket)
        (None, False, True),
    ],
)
def test_package_and_engine_binary_steps_agree_on_the_engine(
    monkeypatch: pytest.MonkeyPatch, dockerd: str | None, answers: bool, engine_wanted: bool
) -> None:
    asked: list[list[str]] = []

    def missing_packages(names: list[str]) -> list[str]:
        asked.append(list(names))
        return list(names)

    monkeypatch.setattr("shutil.which", lambda name: dockerd if name == "dockerd" else None)
    monkeypatch.setattr(host, "_engine_answers", lambda: answers)
    monkeypatch.setattr(host, "missing_packages", missing_packages)
    monkeypatch.setattr(host, "_trixie_commands", lambda package: (f"fetch {package}",))
    packages = host.PackagesStep().check()
    binary = host.EngineBinaryStep().check()
    assert (set(host.ENGINE_PACKAGES) <= set(asked[0])) is engine_wanted
    assert (not binary.satisfied) is engine_wanted
    assert set(packages.items) == set(asked[0])
    assert packages.commands[-1].endswith(" ".join(packages.items))


# ---- HostSetup: the same steps for a plan and for root ---------------------------------------


def test_host_setup_plans_and_acts_over_the_same_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[list[FakeStep]] = []

    def steps(self: host.HostSetup) -> Iterator[Step]:
        fresh = list(pair())
        made.append(fresh)
        yield from fresh

    monkeypatch.setattr(host.HostSetup, "steps", steps)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(host, "current_context", lambda: None)

    def setup(is_root: bool, dry_run: bool = False) -> host.HostSetup:
        return host.HostSetup([], [], log=lambda _: None, is_root=is_root, dry_run=dry_run)

    plan = setup(is_root=False).run()
    dry = setup(is_root=True, dry_run=True).run()
    acted = setup(is_root=True).run()
    assert [s.status for s in plan.steps] == ["skipped", "needs-root"]
    assert [s.status for s in dry.steps] == ["skipped", "planned"]
    assert [s.status for s in acted.steps] == ["skipped", "done"]
    assert plan.steps[1].commands == dry.steps[1].commands == MISSING.commands
    assert [bool(step.applied) for run in made for step in run] == [
        False,
        False,  # non-root
        False,
        False,  # dry run
        False,
        True,  # root: only the missing step
    ]
