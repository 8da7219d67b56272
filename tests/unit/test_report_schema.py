"""The shipped JSON Schema of run reports is generated from the run model and validates the
reports the model writes (and rejects what it would not read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pytest_multiarch.model.codec import ReportFormatError
from pytest_multiarch.model.records import (
    BuildRecord,
    EngineFacts,
    PlatformFacts,
    Publication,
    RunReport,
    report_schema,
)

SHIPPED = (
    Path(__file__).resolve().parents[2]
    / "harness"
    / "pytest_multiarch"
    / "model"
    / "report.schema.json"
)


def full_report() -> RunReport:
    report = RunReport(
        run_id="r1",
        platforms=[
            PlatformFacts("linux/amd64", "amd64", True, "native"),
            PlatformFacts("linux/s390x", "s390x", False, "qemu-s390x enabled", "7.2.22"),
        ],
        engine=EngineFacts("unix:///run/d.sock", "26.1.5", "1.45", "containerd", "linux", "x86_64"),
    )
    report.builds.append(
        BuildRecord("web", "linux/s390x", "t", "sha256:1", 3.5, False, "", "metadata+uname")
    )
    report.record_phase("t::a[s390x]", "web", "s390x", "call", "failed", 1.0, False)
    report.record_span("s390x", 10.0, 11.0)
    report.publish.append(Publication("web", "127.0.0.1:5000/web:latest", "refused", detail="x"))
    return report


def test_shipped_schema_is_the_generated_one() -> None:
    # Regenerate with:
    #   python -c "import json; from pytest_multiarch.model.records import report_schema;
    #   print(json.dumps(report_schema(), indent=2))" \
    #   > harness/pytest_multiarch/model/report.schema.json
    assert json.loads(SHIPPED.read_text()) == report_schema()


def test_reports_validate_against_the_schema() -> None:
    schema = json.loads(SHIPPED.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(full_report().to_json(), schema)
    jsonschema.validate(RunReport().to_json(), schema)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["tests"][0].update(outcome="exploded"), "$.tests[0].outcome"),
        (lambda d: d["builds"][0].update(seconds="3"), "$.builds[0].seconds"),
        (lambda d: d["engine"].update(image_store="zfs"), "$.engine.image_store"),
        (lambda d: d["platforms"][0].pop("native"), "$.platforms[0]: missing key 'native'"),
        (lambda d: d.update(schema_version=0), "schema_version 0 is not 3"),
    ],
)
def test_schema_and_reader_reject_the_same_mistakes(change: Any, where: str) -> None:
    data = full_report().to_json()
    change(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json.loads(SHIPPED.read_text()))
    with pytest.raises(ReportFormatError, match=where.replace("$", r"\$").replace("[", r"\[")):
        RunReport.from_json(data)
