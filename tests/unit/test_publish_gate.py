"""What publishing takes from a run report: only tests whose call reported passing, and never a
report of an interrupted session (issue 20.1). Checked before any registry is reached."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_multiarch.cli import main
from pytest_multiarch.model.records import BuildRecord, ImageTarget, PlatformFacts, RunReport
from pytest_multiarch.publish.push import (
    PublishError,
    candidates,
    parse_destination,
    refuse_unfinished,
)

PASSED = [("setup", "passed"), ("call", "passed"), ("teardown", "passed")]


def report(phases: list[tuple[str, str]]) -> RunReport:
    run = RunReport(
        run_id="r1",
        platforms=[PlatformFacts("linux/amd64", "amd64", True, "native")],
        images={"box": ImageTarget("", ["linux/amd64"])},
        builds=[BuildRecord("box", "linux/amd64", "box:t", "sha256:1", 1.0, False)],
    )
    for when, outcome in phases:
        run.record_phase("t.py::test_a[amd64]", "box", "amd64", when, outcome, 0.1, False)
    return run


def test_a_finished_pass_is_a_candidate() -> None:
    run = report(PASSED)
    run.finish(interrupted=False)
    refuse_unfinished(run, "r.json")
    (found,) = candidates(run, parse_destination("127.0.0.1:1", "v1"))
    assert found.refused == ""
    assert found.tested == {"linux/amd64": "sha256:1"}


def test_an_interrupted_report_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = report([("setup", "passed")])  # its call was cut off by SIGTERM
    run.finish(interrupted=True)
    with pytest.raises(PublishError, match=r"r\.json is the report of an interrupted session"):
        refuse_unfinished(run, "r.json")
    (found,) = candidates(run, parse_destination("127.0.0.1:1", "v1"))
    assert "t.py::test_a[amd64] (interrupted)" in found.refused
    assert "no test passed on amd64" in found.refused
    path = tmp_path / "r.json"
    run.write(path)
    assert main(["publish", "--report", str(path), "--to", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert f"{path} is the report of an interrupted session" in err
    assert "nothing was published" in err


def test_a_pass_without_a_call_phase_is_refused() -> None:
    # Written by hand, or by a writer that defaulted the outcome: "passed", no call phase.
    run = report([("setup", "passed"), ("teardown", "passed")])
    run.tests[0].outcome = "passed"
    with pytest.raises(PublishError, match=r"1 test\(s\) passed without a call phase"):
        refuse_unfinished(run, "r.json")
    (found,) = candidates(run, parse_destination("127.0.0.1:1", "v1"))
    assert "t.py::test_a[amd64] (passed without a call phase)" in found.refused
