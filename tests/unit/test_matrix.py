"""The platform list has one home (pyproject.toml); tox.ini and the nightly workflow follow it,
and the workflow is a valid GitHub Actions workflow (checked offline, with check-jsonschema's
bundled schema)."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.model.codec import ReportFormatError
from pytest_multiarch.model.records import SCHEMA_VERSION, PlatformFacts, RunReport
from pytest_multiarch.reports.matrix import matrix_entries, merge_reports, project_platforms
from pytest_multiarch.reports.summary import markdown

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def test_project_platforms_are_valid_and_include_big_endian() -> None:
    names = project_platforms(ROOT / "pyproject.toml")
    assert names[:2] == ["amd64", "arm64"]
    assert any(lookup(n).byteorder == "big" for n in names)


def test_tox_has_one_environment_per_project_platform() -> None:
    names = project_platforms(ROOT / "pyproject.toml")
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    env_list = [e.strip() for e in tox["tox"]["env_list"].split(",")]
    shorts = [lookup(n).short for n in names]
    for short in shorts:
        assert short in env_list
    generative = next(s for s in tox.sections() if s.startswith("testenv:{"))
    assert re.findall(r"[\w-]+", generative.removeprefix("testenv:")) == shorts
    assert f"MULTIARCH_PLATFORMS = {','.join(names)}" in tox["testenv:multiarch"]["set_env"]
    for env in ("unit", "multiarch", "lint"):
        assert env in env_list


def test_matrix_command_prints_entries_for_fromjson() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_multiarch.cli",
            "matrix",
            "--json",
            "--pyproject",
            str(ROOT / "pyproject.toml"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    entries = json.loads(result.stdout)
    assert [e["name"] for e in entries] == [
        lookup(n).name for n in project_platforms(ROOT / "pyproject.toml")
    ]
    assert {"name", "short", "tox_env", "qemu", "runner"} <= set(entries[0])


def test_matrix_entries_name_the_qemu_platform() -> None:
    entries = matrix_entries(["amd64", "arm/v7", "s390x"])
    assert [e["qemu"] for e in entries] == ["", "arm", "s390x"]
    assert [e["tox_env"] for e in entries] == ["amd64", "arm-v7", "s390x"]


def test_matrix_entries_run_arm64_natively_on_an_arm64_runner() -> None:
    entries = matrix_entries(["amd64", "arm64", "arm/v7", "s390x"])
    assert [e["runner"] for e in entries] == [
        "ubuntu-latest",
        "ubuntu-24.04-arm",
        "ubuntu-latest",
        "ubuntu-latest",
    ]
    assert [e["qemu"] for e in entries] == ["", "", "arm", "s390x"]  # no QEMU where native
    emulated = matrix_entries(["amd64", "arm64"], native_runners=False)
    assert [(e["runner"], e["qemu"]) for e in emulated] == [
        ("ubuntu-latest", ""),
        ("ubuntu-latest", "arm64"),
    ]


def test_bad_project_platforms_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[tool.multiarch]\nplatforms = ["amd64", "vax"]\n')
    with pytest.raises(ConfigError, match=r"tool\.multiarch\.platforms.*'vax'"):
        project_platforms(bad)
    bad.write_text("[tool.multiarch]\nplatforms = []\n")
    with pytest.raises(ConfigError, match="non-empty list"):
        project_platforms(bad)


def test_workflow_reads_the_matrix_instead_of_listing_platforms() -> None:
    text = WORKFLOW.read_text()
    assert "fromJSON(needs.platforms.outputs.matrix)" in text
    assert "multiarch matrix --json" in text
    for name in project_platforms(ROOT / "pyproject.toml"):
        assert f"- {name}" not in text
        assert f"'{name}'" not in text
    assert "docker/setup-qemu-action" in text
    # The runner of each platform comes from the matrix too, and QEMU only where it is needed.
    assert "runs-on: ${{ matrix.platform.runner }}" in text
    assert "if: matrix.platform.qemu != ''" in text
    assert "ubuntu-24.04-arm" not in text
    assert "docker/setup-buildx-action" in text
    assert "workflow_dispatch" in text
    assert "schedule" in text


def test_workflow_is_valid_against_the_github_schema(
    unavailable: Callable[[str], NoReturn],
) -> None:
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(tool).exists():
        unavailable("check-jsonschema is a dev dependency: pip install -e '.[dev]'")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_merged_reports_add_up(tmp_path: Path) -> None:
    def report(name: str, plat: str, passed: int, failed: int) -> Path:
        one = RunReport(run_id=name, platforms=[PlatformFacts(f"linux/{plat}", plat, False, "")])
        for index in range(passed + failed):
            outcome = "passed" if index < passed else "failed"
            one.record_phase(f"t::{index}[{plat}]", "svc", plat, "call", outcome, 1.0, False)
        path = tmp_path / f"{name}.json"
        one.write(path)
        return path

    merged = merge_reports([report("a", "amd64", 3, 0), report("b", "s390x", 2, 1)])
    assert merged.platform_names == ["amd64", "s390x"]
    text = markdown(merged)
    assert "| svc | 3 passed | 2 passed, 1 failed |" in text
    assert text.rstrip().endswith("**FAILED**")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ReportFormatError, match=r"broken\.json"):
        merge_reports([broken])
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"platforms": ["amd64"], "matrix": []}))
    with pytest.raises(ReportFormatError, match=r"old\.json.*schema_version None"):
        merge_reports([old])


@pytest.mark.parametrize(
    ("data", "where"),
    [
        # What `echo '{"schema_version":1}' > r.json` gave: read as a clean run (issue 20.3).
        ({"schema_version": SCHEMA_VERSION}, r"r\.json: missing key 'run_id'"),
        ({"schema_version": 1}, r"r\.json: schema_version 1 is not 3.*older.*run the tests again"),
        ("tests", r"r\.json: missing key 'tests'"),
        ("platforms", r"r\.json: missing key 'platforms'"),
        ("summary", r"r\.json: missing key 'summary'"),
        ("interrupted", r"r\.json: missing key 'interrupted'"),
        ("phases", r"r\.json\.tests\[0\]: missing key 'phases'"),
        ("matrix", r"r\.json\.summary: missing key 'matrix'"),
    ],
)
def test_a_report_without_its_parts_is_rejected(
    tmp_path: Path, data: object, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_multiarch.cli import main

    full = RunReport(run_id="r", platforms=[PlatformFacts("linux/amd64", "amd64", True, "")])
    full.record_phase("t::a[amd64]", "svc", "amd64", "call", "passed", 1.0, False)
    written = full.to_json()
    if isinstance(data, str):
        for part in (written, written["tests"][0], written["summary"]):
            part.pop(data, None)
    else:
        written = data  # type: ignore[assignment]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(written))
    with pytest.raises(ReportFormatError, match=where):
        merge_reports([path])
    assert main(["summary", str(path)]) == 2
    captured = capsys.readouterr()
    assert "all passed" not in captured.out
    assert re.search(where, captured.err), captured.err


def test_the_same_report_twice_is_an_error(tmp_path: Path) -> None:
    one = RunReport(run_id="job-1", platforms=[PlatformFacts("linux/amd64", "amd64", True, "")])
    for index in range(5):
        one.record_phase(f"t::{index}[amd64]", "svc", "amd64", "call", "passed", 1.0, False)
    first, copy = tmp_path / "a.json", tmp_path / "b.json"
    one.write(first)
    one.write(copy)
    for paths in ([first, first], [first, copy]):
        with pytest.raises(ReportFormatError) as raised:
            merge_reports(paths)
        message = str(raised.value)
        assert "'t::0[amd64]'" in message
        assert f"in both {paths[0]} and {paths[1]}" in message
        assert "counted twice" in message


def test_tests_on_every_platform_of_two_jobs_merge(tmp_path: Path) -> None:
    # One job per platform: a test that uses `images` has the same id in each job's report.
    paths = []
    for plat in ("amd64", "arm64"):
        one = RunReport(
            run_id=f"job-{plat}", platforms=[PlatformFacts(f"linux/{plat}", plat, False, "")]
        )
        one.record_phase(f"t::a[{plat}]", "svc", plat, "call", "passed", 1.0, False)
        one.record_phase("t::cmp", "svc", "all", "call", "passed", 1.0, False, True)
        paths.append(tmp_path / f"{plat}.json")
        one.write(paths[-1])
    assert len(merge_reports(paths).tests) == 4
