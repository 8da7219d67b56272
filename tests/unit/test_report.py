"""Results: outcomes from report phases, the matrix, the terminal lines and the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.run.report import OUTCOMES, Results

Phase = tuple[str, str, float, bool]  # when, outcome, seconds, wasxfail


def record(
    results: Results, nodeid: str, phases: list[Phase], image: str = "web", plat: str = "amd64"
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
    ],
)
def test_record_phase_outcome(phases: list[Phase], expected: str) -> None:
    results = Results()
    record(results, "t.py::test[amd64]", phases)
    entry = results.tests["t.py::test[amd64]"]
    assert entry.outcome == expected
    assert entry.seconds == pytest.approx(sum(p[2] for p in phases))
    assert entry.image == "web"
    assert entry.platform == "amd64"


def test_record_phase_keeps_first_image_and_platform() -> None:
    results = Results()
    results.record_phase("n", "web", "arm64", "setup", "passed", 0.5, False)
    results.record_phase("n", "other", "s390x", "call", "passed", 0.5, False)
    entry = results.tests["n"]
    assert (entry.image, entry.platform, entry.seconds) == ("web", "arm64", 1.0)


def populated() -> Results:
    results = Results(platforms=["amd64", "arm64", "s390x"], run_id="run-1")
    record(results, "t.py::test_a[amd64]", PASSED, "web", "amd64")
    record(results, "t.py::test_b[amd64]", FAILED, "web", "amd64")
    record(results, "t.py::test_a[arm64]", PASSED, "web", "arm64")
    record(results, "t.py::test_b[arm64]", XFAILED, "web", "arm64")
    record(results, "t.py::test_c[arm64]", SETUP_ERROR, "cli", "arm64")
    record(results, "t.py::test_d[arm64]", SKIPPED, "cli", "arm64")
    record(results, "t.py::test_e[arm64]", XPASSED, "cli", "arm64")
    results.builds = [
        {
            "image": "web",
            "platform": "linux/arm64",
            "reference": "r1",
            "image_id": "sha256:1",
            "seconds": 42.25,
            "cached": False,
            "error": "",
        },
        {
            "image": "web",
            "platform": "linux/amd64",
            "reference": "r2",
            "image_id": "sha256:2",
            "seconds": 0.0,
            "cached": True,
            "error": "",
        },
        {
            "image": "cli",
            "platform": "linux/arm64",
            "reference": "r3",
            "image_id": "",
            "seconds": 3.0,
            "cached": False,
            "error": "build of image 'cli' failed",
        },
    ]
    return results


def test_matrix_counts_per_image_and_platform() -> None:
    cells = populated().matrix()
    assert set(cells) == {("web", "amd64"), ("web", "arm64"), ("cli", "arm64")}
    for counts in cells.values():
        assert set(counts) == set(OUTCOMES)
    assert cells[("web", "amd64")] == {**dict.fromkeys(OUTCOMES, 0), "passed": 1, "failed": 1}
    assert cells[("web", "arm64")] == {**dict.fromkeys(OUTCOMES, 0), "passed": 1, "xfailed": 1}
    assert cells[("cli", "arm64")] == {
        **dict.fromkeys(OUTCOMES, 0),
        "error": 1,
        "skipped": 1,
        "xpassed": 1,
    }
    assert sum(sum(c.values()) for c in cells.values()) == 7


def test_matrix_empty() -> None:
    assert dict(Results().matrix()) == {}


def test_platform_seconds() -> None:
    seconds = populated().platform_seconds()
    assert set(seconds) == {"amd64", "arm64"}
    assert seconds["amd64"] == pytest.approx(1.2 + 1.2)
    # test_a 1.2 + test_b (xfailed) 1.2 + test_c 0.2 + test_d 0.0 + test_e 1.2
    assert seconds["arm64"] == pytest.approx(1.2 + 1.2 + 0.2 + 0.0 + 1.2)


def test_format_lines_empty() -> None:
    assert Results().format_lines() == []
    assert Results(platforms=["amd64"]).format_lines() == []


def test_format_lines_table_and_builds() -> None:
    lines = populated().format_lines()
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
    builds = lines[lines.index("builds:") + 1 :]
    assert len(builds) == 3
    assert builds[0].split()[:2] == ["cli", "linux/arm64"]
    assert builds[0].endswith("FAILED")
    assert builds[1].split()[:2] == ["web", "linux/amd64"]
    assert builds[1].endswith("cached")
    assert builds[2].endswith("built in 42.2s") or builds[2].endswith("built in 42.3s")
    assert "emulators:" not in text


def test_format_lines_columns_align() -> None:
    lines = populated().format_lines()
    table = lines[:4]
    starts = {line.index(line.split()[1], len(line.split()[0])) for line in table if line}
    assert len(starts) == 1


def test_format_lines_unknown_platform_after_known_ones() -> None:
    results = Results(platforms=["arm64"])
    record(results, "a", PASSED, "web", "s390x")
    record(results, "b", PASSED, "web", "arm64")
    record(results, "c", PASSED, "web", "amd64")
    assert results.format_lines()[0].split() == ["image", "arm64", "amd64", "s390x"]


def test_format_lines_no_image_and_emulators() -> None:
    results = Results(platforms=["amd64"], emulators={"arm64": "qemu-aarch64 enabled"})
    record(results, "plain", PASSED, "", "amd64")
    lines = results.format_lines()
    assert lines[1].startswith("(no image)")
    assert lines[-1] == "emulators: arm64: qemu-aarch64 enabled"


def test_format_lines_builds_only() -> None:
    results = Results(platforms=["amd64"])
    results.builds = [
        {"image": "web", "platform": "linux/amd64", "seconds": 1.0, "cached": False, "error": ""}
    ]
    lines = results.format_lines()
    assert lines[0].split() == ["image"]
    assert lines[-1].endswith("built in 1.0s")


def test_to_json_structure() -> None:
    results = populated()
    results.engine = {"version": "26.1"}
    data = results.to_json()
    assert set(data) >= {"run_id", "platforms", "builds", "tests", "matrix"}
    assert data["run_id"] == "run-1"
    assert data["platforms"] == ["amd64", "arm64", "s390x"]
    assert data["engine"] == {"version": "26.1"}
    assert [(b["image"], b["platform"]) for b in data["builds"]] == [
        ("cli", "linux/arm64"),
        ("web", "linux/amd64"),
        ("web", "linux/arm64"),
    ]
    nodeids = [t["nodeid"] for t in data["tests"]]
    assert nodeids == sorted(nodeids)
    assert len(nodeids) == 7
    for test in data["tests"]:
        assert set(test) >= {"nodeid", "platform", "outcome", "seconds"}
        assert test["outcome"] in OUTCOMES
    by_id = {t["nodeid"]: t for t in data["tests"]}
    assert by_id["t.py::test_c[arm64]"]["outcome"] == "error"
    assert by_id["t.py::test_c[arm64]"]["platform"] == "arm64"
    assert by_id["t.py::test_a[amd64]"]["seconds"] == pytest.approx(1.2)
    assert data["matrix"] == [
        {
            "image": "cli",
            "platform": "arm64",
            **dict.fromkeys(OUTCOMES, 0),
            "error": 1,
            "skipped": 1,
            "xpassed": 1,
        },
        {
            "image": "web",
            "platform": "amd64",
            **dict.fromkeys(OUTCOMES, 0),
            "passed": 1,
            "failed": 1,
        },
        {
            "image": "web",
            "platform": "arm64",
            **dict.fromkeys(OUTCOMES, 0),
            "passed": 1,
            "xfailed": 1,
        },
    ]
    assert data["platform_seconds"]["amd64"] == pytest.approx(2.4)


def test_to_json_is_serializable_and_round_trips() -> None:
    data = populated().to_json()
    again = json.loads(json.dumps(data))
    assert again["tests"] == data["tests"]
    assert again["matrix"] == data["matrix"]


def test_write_json(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.json"
    populated().write_json(target)
    assert json.loads(target.read_text())["run_id"] == "run-1"
    assert target.read_text().endswith("\n")


def test_to_json_empty() -> None:
    data = Results().to_json()
    assert data["tests"] == []
    assert data["matrix"] == []
    assert data["builds"] == []


def test_wall_time_spans_each_platform_from_first_start_to_last_stop() -> None:
    results = Results(platforms=["amd64", "arm64"])
    results.record_span("arm64", 100.0, 103.0)
    results.record_span("arm64", 101.0, 110.5)  # overlapping, as with xdist
    results.record_span("amd64", 100.0, 101.0)
    results.record_span("amd64", 0.0, 0.0)  # a report without timestamps is ignored
    assert results.platform_wall_seconds() == {"arm64": 10.5, "amd64": 1.0}
    results.record_phase("t::a[arm64]", "img", "arm64", "call", "passed", 3.0, False)
    results.record_phase("t::a[amd64]", "img", "amd64", "call", "passed", 1.0, False)
    wall_row = next(line for line in results.format_lines() if line.startswith("wall"))
    assert "1.0s" in wall_row
    assert "10.5s" in wall_row
    assert results.to_json()["platform_wall_seconds"] == {"arm64": 10.5, "amd64": 1.0}
