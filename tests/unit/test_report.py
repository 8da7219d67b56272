"""The run model: outcomes from report phases, the matrix, the terminal lines and the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_multiarch.model.records import (
    OUTCOMES,
    SCHEMA_VERSION,
    BuildRecord,
    EngineFacts,
    MatrixCell,
    PlatformFacts,
    RunReport,
    case_id,
)
from pytest_multiarch.reports.summary import format_lines, markdown

Phase = tuple[str, str, float, bool]  # when, outcome, seconds, wasxfail


def facts(*shorts: str) -> list[PlatformFacts]:
    from pytest_multiarch.core.platforms import lookup

    return [
        PlatformFacts(lookup(s).name, s, s == "amd64", "native" if s == "amd64" else "qemu")
        for s in shorts
    ]


def record(
    results: RunReport, nodeid: str, phases: list[Phase], image: str = "web", plat: str = "amd64"
) -> None:
    for when, outcome, seconds, wasxfail in phases:
        results.record_phase(nodeid, image, plat, when, outcome, seconds, wasxfail)


# What pytest reports for each phase (setup, call, teardown) of common cases.
PASSED = [
    ("setup", "passed", 0.1, False),
    ("call", "passed", 1.0, False),
    ("teardown", "passed", 0.1, False),
]
FAILED = [
    ("setup", "passed", 0.1, False),
    ("call", "failed", 1.0, False),
    ("teardown", "passed", 0.1, False),
]
SETUP_ERROR = [("setup", "failed", 0.1, False), ("teardown", "passed", 0.1, False)]
TEARDOWN_ERROR = [
    ("setup", "passed", 0.1, False),
    ("call", "passed", 1.0, False),
    ("teardown", "failed", 0.1, False),
]
FAILED_AND_TEARDOWN_ERROR = [
    ("setup", "passed", 0.1, False),
    ("call", "failed", 1.0, False),
    ("teardown", "failed", 0.1, False),
]
SKIPPED = [("setup", "skipped", 0.0, False), ("teardown", "passed", 0.0, False)]
SKIPPED_IN_CALL = [
    ("setup", "passed", 0.1, False),
    ("call", "skipped", 0.2, False),
    ("teardown", "passed", 0.1, False),
]
XFAILED = [
    ("setup", "passed", 0.1, False),
    ("call", "skipped", 1.0, True),
    ("teardown", "passed", 0.1, False),
]
XFAILED_IN_SETUP = [("setup", "skipped", 0.1, True), ("teardown", "passed", 0.1, False)]
XPASSED = [
    ("setup", "passed", 0.1, False),
    ("call", "passed", 1.0, True),
    ("teardown", "passed", 0.1, False),
]
XPASS_STRICT = [
    ("setup", "passed", 0.1, False),
    ("call", "failed", 1.0, False),
    ("teardown", "passed", 0.1, False),
]
# Ctrl-C or SIGTERM in its call: no call report arrives, nor a teardown one.
CUT_IN_CALL = [("setup", "passed", 0.04, False)]


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        (PASSED, "passed"),
        (FAILED, "failed"),
        (SETUP_ERROR, "error"),
        (TEARDOWN_ERROR, "error"),
        (FAILED_AND_TEARDOWN_ERROR, "failed"),
        (SKIPPED, "skipped"),
        (SKIPPED_IN_CALL, "skipped"),
        (XFAILED, "xfailed"),
        (XFAILED_IN_SETUP, "xfailed"),
        (XPASSED, "xpassed"),
        (XPASS_STRICT, "failed"),
        (CUT_IN_CALL, "interrupted"),
    ],
    ids=[
        "passed",
        "failed",
        "setup-error",
        "teardown-error",
        "failed+teardown-error",
        "skipped",
        "skipped-in-call",
        "xfailed",
        "xfailed-in-setup",
        "xpassed",
        "xpass-strict",
        "cut-in-call",
    ],
)
def test_record_phase_outcome(phases: list[Phase], expected: str) -> None:
    results = RunReport()
    record(results, "t.py::test[amd64]", phases)
    entry = results.test("t.py::test[amd64]")
    assert entry is not None
    assert entry.outcome == expected
    assert entry.seconds == pytest.approx(sum(p[2] for p in phases))
    assert entry.image == "web"
    assert entry.platform == "amd64"


def test_record_phase_keeps_first_image_and_platform() -> None:
    results = RunReport()
    results.record_phase("n", "web", "arm64", "setup", "passed", 0.5, False)
    results.record_phase("n", "other", "s390x", "call", "passed", 0.5, False)
    entry = results.test("n")
    assert entry is not None
    assert (entry.image, entry.platform, entry.seconds) == ("web", "arm64", 1.0)


def populated() -> RunReport:
    results = RunReport(platforms=facts("amd64", "arm64", "s390x"), run_id="run-1")
    record(results, "t.py::test_a[amd64]", PASSED, "web", "amd64")
    record(results, "t.py::test_b[amd64]", FAILED, "web", "amd64")
    record(results, "t.py::test_a[arm64]", PASSED, "web", "arm64")
    record(results, "t.py::test_b[arm64]", XFAILED, "web", "arm64")
    record(results, "t.py::test_c[arm64]", SETUP_ERROR, "cli", "arm64")
    record(results, "t.py::test_d[arm64]", SKIPPED, "cli", "arm64")
    record(results, "t.py::test_e[arm64]", XPASSED, "cli", "arm64")
    results.builds = [
        BuildRecord(
            "web", "linux/arm64", "r1", "sha256:1", 42.25, False, verified="metadata+uname"
        ),
        BuildRecord("web", "linux/amd64", "r2", "sha256:2", 0.0, True, verified="metadata"),
        BuildRecord("cli", "linux/arm64", "r3", "", 3.0, False, "build of image 'cli' failed"),
    ]
    return results


def test_matrix_counts_per_image_and_platform() -> None:
    cells = {(c.image, c.platform): c for c in populated().matrix()}
    assert set(cells) == {("web", "amd64"), ("web", "arm64"), ("cli", "arm64")}
    assert cells[("web", "amd64")] == MatrixCell("web", "amd64", passed=1, failed=1)
    assert cells[("web", "arm64")] == MatrixCell("web", "arm64", passed=1, xfailed=1)
    assert cells[("cli", "arm64")] == MatrixCell("cli", "arm64", error=1, skipped=1, xpassed=1)
    assert sum(c.count(o) for c in cells.values() for o in OUTCOMES) == 7
    assert cells[("cli", "arm64")].bad
    assert not cells[("web", "arm64")].bad


def test_matrix_empty() -> None:
    assert RunReport().matrix() == []


def test_platform_seconds() -> None:
    seconds = populated().platform_seconds()
    assert set(seconds) == {"amd64", "arm64"}
    assert seconds["amd64"] == pytest.approx(1.2 + 1.2)
    # test_a 1.2 + test_b (xfailed) 1.2 + test_c 0.2 + test_d 0.0 + test_e 1.2
    assert seconds["arm64"] == pytest.approx(1.2 + 1.2 + 0.2 + 0.0 + 1.2)


def test_format_lines_empty() -> None:
    assert format_lines(RunReport()) == []
    assert format_lines(RunReport(platforms=facts("amd64"))) == []


def test_format_lines_table_and_builds() -> None:
    lines = format_lines(populated())
    text = "\n".join(lines)
    header = lines[0].split()
    # only platforms with results, in --platforms order (s390x had no test)
    assert header == ["image", "amd64", "arm64"]
    assert "s390x" not in lines[0]
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert set(rows) == {"cli", "web", "time"}
    assert lines[1].startswith("cli")  # images sorted
    assert lines[2].startswith("web")
    assert "1 passed, 1 failed" in rows["web"]
    assert "1 passed, 1 xfailed" in rows["web"]
    assert "1 skipped, 1 error, 1 xpassed" in rows["cli"]
    assert rows["cli"].split()[1] == "-"  # no cli test on amd64
    assert "2.4s" in rows["time"]
    assert "builds:" in lines
    builds = lines[lines.index("builds:") + 1 : lines.index("builds:") + 4]
    assert lines[lines.index("builds:") + 4] == ""
    assert builds[0].split()[:2] == ["cli", "linux/arm64"]
    assert builds[0].endswith("FAILED")
    assert builds[1].split()[:2] == ["web", "linux/amd64"]
    assert builds[1].endswith("cached  verified: metadata")
    assert "built in 42.2s" in builds[2] or "built in 42.3s" in builds[2]
    assert builds[2].endswith("verified: metadata+uname")
    assert "emulators: amd64: native; arm64: qemu; s390x: qemu" in text


def test_format_lines_columns_align() -> None:
    lines = format_lines(populated())
    table = lines[:4]
    starts = {line.index(line.split()[1], len(line.split()[0])) for line in table if line}
    assert len(starts) == 1


def test_format_lines_unknown_platform_after_known_ones() -> None:
    results = RunReport(platforms=facts("arm64"))
    record(results, "a", PASSED, "web", "s390x")
    record(results, "b", PASSED, "web", "arm64")
    record(results, "c", PASSED, "web", "amd64")
    assert format_lines(results)[0].split() == ["image", "arm64", "amd64", "s390x"]


def test_format_lines_no_image_and_emulators() -> None:
    results = RunReport(
        platforms=[PlatformFacts("linux/arm64", "arm64", False, "qemu-aarch64 enabled")]
    )
    record(results, "plain", PASSED, "", "amd64")
    lines = format_lines(results)
    assert lines[1].startswith("(no image)")
    assert lines[-1] == "emulators: arm64: qemu-aarch64 enabled"


def test_format_lines_builds_only() -> None:
    results = RunReport()
    results.builds = [BuildRecord("web", "linux/amd64", "r", "sha256:1", 1.0, False)]
    lines = format_lines(results)
    assert lines[0].split() == ["image"]
    assert lines[-1].endswith("built in 1.0s")


def test_to_json_structure() -> None:
    results = populated()
    results.engine = EngineFacts(
        "unix:///x.sock", "26.1.5", "1.45", "containerd", "linux", "x86_64"
    )
    data = results.to_json()
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["run_id"] == "run-1"
    assert [p["short"] for p in data["platforms"]] == ["amd64", "arm64", "s390x"]
    assert data["engine"]["version"] == "26.1.5"
    assert data["engine"]["image_store"] == "containerd"
    assert [(b["image"], b["platform"]) for b in data["builds"]] == [
        ("cli", "linux/arm64"),
        ("web", "linux/amd64"),
        ("web", "linux/arm64"),
    ]
    assert data["builds"][2]["verified"] == "metadata+uname"
    nodeids = [t["nodeid"] for t in data["tests"]]
    assert nodeids == sorted(nodeids)
    assert len(nodeids) == 7
    by_id = {t["nodeid"]: t for t in data["tests"]}
    assert by_id["t.py::test_c[arm64]"]["outcome"] == "error"
    assert by_id["t.py::test_a[amd64]"]["seconds"] == pytest.approx(1.2)
    matrix = {(m["image"], m["platform"]): m for m in data["summary"]["matrix"]}
    assert matrix[("cli", "arm64")] == {
        "image": "cli",
        "platform": "arm64",
        **dict.fromkeys(OUTCOMES, 0),
        "error": 1,
        "skipped": 1,
        "xpassed": 1,
    }
    assert data["summary"]["platform_seconds"]["amd64"] == pytest.approx(2.4)
    assert data["summary"]["build_seconds"] == {"arm64": pytest.approx(45.25), "amd64": 0.0}


def test_json_round_trips_through_the_model() -> None:
    original = populated()
    original.engine = EngineFacts("unix:///x.sock", "26", "1.45", "classic", "linux", "x86_64")
    again = RunReport.from_json(json.loads(json.dumps(original.to_json())))
    assert again.to_json() == original.to_json()
    assert again.test("t.py::test_c[arm64]") is not None


def test_write_and_read(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.json"
    populated().write(target)
    assert target.read_text().endswith("\n")
    assert RunReport.read(target).run_id == "run-1"
    assert [p.name for p in tmp_path.joinpath("deep").iterdir()] == ["report.json"]


def test_to_json_empty() -> None:
    data = RunReport().to_json()
    assert data["tests"] == []
    assert data["builds"] == []
    assert data["engine"] is None
    assert data["summary"]["matrix"] == []


def test_markdown_table() -> None:
    text = markdown(populated())
    assert "| image | amd64 | arm64 |" in text
    assert "| web | 1 passed, 1 failed | 1 passed, 1 xfailed |" in text
    assert "| cli | - | 1 skipped, 1 error, 1 xpassed |" in text
    assert text.endswith("**FAILED**")


def test_wall_time_spans_each_platform_from_first_start_to_last_stop() -> None:
    results = RunReport(platforms=facts("amd64", "arm64"))
    results.record_span("arm64", 100.0, 103.0)
    results.record_span("arm64", 101.0, 110.5)  # overlapping, as with xdist
    results.record_span("amd64", 100.0, 101.0)
    results.record_span("amd64", 0.0, 0.0)  # a report without timestamps is ignored
    assert results.platform_wall_seconds() == {"arm64": 10.5, "amd64": 1.0}
    results.record_phase("t::a[arm64]", "img", "arm64", "call", "passed", 3.0, False)
    results.record_phase("t::a[amd64]", "img", "amd64", "call", "passed", 1.0, False)
    wall_row = next(line for line in format_lines(results) if line.startswith("wall"))
    assert "1.0s" in wall_row
    assert "10.5s" in wall_row
    assert results.to_json()["summary"]["platform_wall_seconds"] == {"arm64": 10.5, "amd64": 1.0}


def test_case_id_takes_the_platform_id_out() -> None:
    assert case_id("t.py::test_x[amd64]", "amd64") == "t.py::test_x[*]"
    assert case_id("t.py::test_x[arm-v7-2]", "arm-v7") == "t.py::test_x[*-2]"
    assert case_id("t.py::test_x[2-s390x]", "s390x") == "t.py::test_x[2-*]"
    # only a whole id is the platform's: "xamd64" is another parameter's
    assert case_id("t.py::test_x[xamd64-amd64]", "amd64") == "t.py::test_x[xamd64-*]"
    assert case_id("t.py::test_x", "amd64") == "t.py::test_x"
    assert case_id("t.py::test_x[amd64]", "all") == "t.py::test_x[amd64]"


def slow_run() -> RunReport:
    results = RunReport(platforms=facts("amd64", "arm64", "s390x"))
    for name, native, arm, s390x in [("a", 1.0, 6.0, 9.0), ("b", 3.0, 10.0, 11.0)]:
        record(results, f"t.py::test_{name}[amd64]", [("call", "passed", native, False)])
        record(results, f"t.py::test_{name}[arm64]", [("call", "passed", arm, False)], plat="arm64")
        record(
            results, f"t.py::test_{name}[s390x]", [("call", "passed", s390x, False)], plat="s390x"
        )
    # Not matched with a native run: ran only on arm64, or skipped natively; never counted.
    record(results, "t.py::test_only_arm[arm64]", [("call", "passed", 50.0, False)], plat="arm64")
    record(results, "t.py::test_c[amd64]", SKIPPED)
    record(results, "t.py::test_c[arm64]", [("call", "passed", 70.0, False)], plat="arm64")
    results.builds = [
        BuildRecord("web", "linux/arm64", "r1", "sha256:1", 30.0, False),
        BuildRecord("cli", "linux/arm64", "r2", "sha256:2", 12.5, False),
        BuildRecord("web", "linux/amd64", "r3", "sha256:3", 2.0, False),
    ]
    return results


def test_slowdown_against_native_on_the_same_tests() -> None:
    slowdown = slow_run().slowdown()
    assert set(slowdown) == {"arm64", "s390x"}  # the native platform has none
    assert slowdown["arm64"] == pytest.approx((6.0 + 10.0) / (1.0 + 3.0))
    assert slowdown["s390x"] == pytest.approx((9.0 + 11.0) / (1.0 + 3.0))


def test_slowdown_needs_a_native_platform_and_common_tests() -> None:
    no_native = RunReport(platforms=facts("arm64"))
    no_native.platforms = [PlatformFacts("linux/arm64", "arm64", False, "qemu")]
    record(no_native, "t.py::a[arm64]", PASSED, plat="arm64")
    assert no_native.slowdown() == {}
    nothing_in_common = RunReport(platforms=facts("amd64", "arm64"))
    record(nothing_in_common, "t.py::a[amd64]", PASSED)
    record(nothing_in_common, "t.py::b[arm64]", PASSED, plat="arm64")
    assert nothing_in_common.slowdown() == {}
    assert "slowdown" not in "\n".join(format_lines(nothing_in_common))


def test_build_and_slowdown_rows_and_json_summary() -> None:
    results = slow_run()
    lines = format_lines(results)
    rows = {line.split()[0]: line.split()[1:] for line in lines if line}
    assert rows["image"] == ["amd64", "arm64", "s390x"]
    # Builds are summed per platform apart from the tests' time.
    assert rows["build"] == ["2.0s", "42.5s", "-"]
    assert rows["time"] == ["4.0s", "136.0s", "20.0s"]
    assert rows["slowdown"] == ["-", "4.0x", "5.0x"]
    summary = results.to_json()["summary"]
    assert summary["slowdown"] == {"arm64": pytest.approx(4.0), "s390x": pytest.approx(5.0)}
    assert summary["build_seconds"] == {"arm64": 42.5, "amd64": 2.0}


def test_no_slowdown_from_milliseconds() -> None:
    results = RunReport(platforms=facts("amd64", "arm64"))
    record(results, "t.py::a[amd64]", [("call", "passed", 0.01, False)])
    record(results, "t.py::a[arm64]", [("call", "passed", 0.07, False)], plat="arm64")
    assert results.slowdown() == {}


def test_slowdown_leaves_out_tests_that_ran_on_every_platform() -> None:
    results = slow_run()
    # Its arm64 case ran the same commands on every platform as its amd64 case did.
    record(results, "t.py::test_cmp[amd64]", [("call", "passed", 5.0, False)])
    results.record_phase(
        "t.py::test_cmp[arm64]", "web", "arm64", "call", "passed", 5.0, False, True
    )
    results.record_phase(
        "t.py::test_cmp[amd64]", "web", "amd64", "call", "passed", 0.0, False, True
    )
    assert results.slowdown()["arm64"] == pytest.approx(4.0)
    assert results.test("t.py::test_cmp[arm64]").every_platform  # type: ignore[union-attr]
    again = RunReport.from_json(json.loads(json.dumps(results.to_json())))
    assert again.slowdown() == results.slowdown()


def test_slowdown_compares_only_tests_that_passed_on_both() -> None:
    # A failed, errored or interrupted run stopped at a point of its own: its time is no
    # measure of the platform (these gave "0.0x" and "0.2x"); neither is a case of milliseconds.
    results = RunReport(platforms=facts("amd64", "arm64", "s390x"))
    record(results, "t.py::test_a[amd64]", PASSED)  # 1.2 s
    record(results, "t.py::test_a[arm64]", [("setup", "passed", 0.04, False)], plat="arm64")
    record(results, "t.py::test_a[s390x]", SETUP_ERROR, plat="s390x")
    record(results, "t.py::test_b[amd64]", FAILED)
    record(results, "t.py::test_b[arm64]", PASSED, plat="arm64")
    record(results, "t.py::test_c[amd64]", [("call", "passed", 0.02, False)])
    record(results, "t.py::test_c[arm64]", [("call", "passed", 0.3, False)], plat="arm64")
    assert results.test("t.py::test_a[arm64]").outcome == "interrupted"  # type: ignore[union-attr]
    assert results.slowdown() == {}
    rows = {line.split()[0]: line.split()[1:] for line in format_lines(results) if line}
    assert "slowdown" not in rows
    assert "| slowdown | - | - | - |" in markdown(results)
    # One case that passed on both: only it counts.
    record(results, "t.py::test_d[amd64]", [("call", "passed", 2.0, False)])
    record(results, "t.py::test_d[arm64]", [("call", "passed", 14.0, False)], plat="arm64")
    assert results.slowdown() == {"arm64": pytest.approx(7.0)}


def test_a_test_passes_only_when_its_call_and_teardown_reported() -> None:
    results = RunReport(platforms=facts("amd64"))
    record(results, "t.py::test_cut[amd64]", CUT_IN_CALL)
    # Cut off in its teardown: its call passed, the teardown never reported.
    record(results, "t.py::test_teardown[amd64]", PASSED[:2])
    record(results, "t.py::test_whole[amd64]", PASSED)
    record(results, "t.py::test_skip[amd64]", SKIPPED)
    results.finish(interrupted=True)
    outcomes = {t.nodeid: t.outcome for t in results.tests}
    assert outcomes == {
        "t.py::test_cut[amd64]": "interrupted",
        "t.py::test_teardown[amd64]": "interrupted",
        "t.py::test_whole[amd64]": "passed",
        "t.py::test_skip[amd64]": "skipped",
    }
    assert results.test("t.py::test_whole[amd64]").phases == ["setup", "call", "teardown"]  # type: ignore[union-attr]
    assert results.test("t.py::test_cut[amd64]").headline == (  # type: ignore[union-attr]
        "the session stopped during its call: it did not finish"
    )
    assert results.interrupted
    assert results.failed
    cells = results.matrix()
    assert [(c.passed, c.interrupted, c.skipped) for c in cells] == [(1, 2, 1)]
    text = markdown(results)
    assert "| web | 1 passed, 1 skipped, 2 interrupted |" in text
    assert "- `t.py::test_cut[amd64]` **interrupted**: the session stopped during its call" in text
    assert "was interrupted" in text
    assert text.endswith("**INTERRUPTED**")
    assert format_lines(results)[-1].startswith("INTERRUPTED: The session was interrupted")
    again = RunReport.from_json(json.loads(json.dumps(results.to_json())))
    assert again.interrupted
    assert again.to_json() == results.to_json()


def test_a_finished_session_with_every_phase_is_not_interrupted() -> None:
    results = RunReport(platforms=facts("amd64"))
    record(results, "t.py::test_whole[amd64]", PASSED)
    results.finish(interrupted=False)
    assert not results.interrupted
    assert not results.failed
    assert markdown(results).endswith("**all passed**")


def test_an_empty_report_is_no_pass() -> None:
    assert markdown(RunReport()).endswith("**no tests ran**")
