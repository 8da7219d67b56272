"""The doctor's table and JSON output (no engine needed)."""

from __future__ import annotations

import json

import pytest
from pytest_multiarch.doctor import Check, doctor_ok, format_table, to_json

CHECKS = [
    Check("engine", "", "ok", "Docker 26.1.5 (API 1.45), containerd image store"),
    Check("emulator", "arm64", "ok", "qemu-aarch64 enabled, flags PF", "not shown when ok"),
    Check(
        "emulator",
        "s390x",
        "fail",
        "no binfmt_misc handler qemu-s390x",
        "apt-get install qemu-user-static",
    ),
    Check("base", "s390x", "warn", "busybox:latest cannot be pulled", "multiarch host up"),
    Check("probe", "arm-v7", "fail", "probe failed"),
]


def test_format_table_rows_and_header() -> None:
    lines = format_table(CHECKS).splitlines()
    assert lines[0].split() == ["CHECK", "PLATFORM", "STATUS", "DETAIL"]
    assert lines[1].split()[:3] == ["engine", "-", "OK"]
    assert lines[1].endswith("Docker 26.1.5 (API 1.45), containerd image store")
    assert any(line.split()[:3] == ["emulator", "s390x", "FAIL"] for line in lines)
    assert any(line.split()[:3] == ["base", "s390x", "WARN"] for line in lines)


def test_format_table_remedy_under_failing_checks_only() -> None:
    lines = format_table(CHECKS).splitlines()
    remedies = [line.strip() for line in lines if line.strip().startswith("remedy:")]
    assert remedies == [
        "remedy: apt-get install qemu-user-static",
        "remedy: multiarch host up",
    ]
    assert "not shown when ok" not in format_table(CHECKS)
    fail_index = next(i for i, line in enumerate(lines) if "no binfmt_misc handler" in line)
    assert lines[fail_index + 1].strip() == "remedy: apt-get install qemu-user-static"
    warn_index = next(i for i, line in enumerate(lines) if "cannot be pulled" in line)
    assert lines[warn_index + 1].strip() == "remedy: multiarch host up"
    # a failing check without a remedy gets no remedy line
    probe_index = next(i for i, line in enumerate(lines) if "probe failed" in line)
    assert probe_index == len(lines) - 1


def test_format_table_remedy_is_indented_past_the_first_columns() -> None:
    lines = format_table(CHECKS).splitlines()
    detail_column = lines[0].index("DETAIL")
    for line in lines:
        if line.strip().startswith("remedy:"):
            assert line.index("remedy:") == detail_column


def test_format_table_columns_align() -> None:
    lines = [line for line in format_table(CHECKS).splitlines() if "remedy:" not in line]
    detail_column = lines[0].index("DETAIL")
    status_column = lines[0].index("STATUS")
    for line, check in zip(lines[1:], CHECKS, strict=True):
        assert line[detail_column:] == check.detail
        assert line[status_column:].startswith(check.status.upper())


def test_format_table_empty() -> None:
    assert format_table([]).split() == ["CHECK", "PLATFORM", "STATUS", "DETAIL"]


@pytest.mark.parametrize(
    ("statuses", "ok"),
    [
        ((), True),
        (("ok",), True),
        (("ok", "warn"), True),
        (("ok", "fail"), False),
        (("fail",), False),
        (("warn", "warn", "fail"), False),
    ],
)
def test_doctor_ok(statuses: tuple[str, ...], ok: bool) -> None:
    assert doctor_ok([Check("c", "", s, "d") for s in statuses]) is ok


def test_to_json_round_trips() -> None:
    data = json.loads(to_json(CHECKS))
    assert data["ok"] is False
    assert [Check(**item) for item in data["checks"]] == CHECKS
    assert set(data["checks"][0]) == {"name", "platform", "status", "detail", "remedy"}


def test_to_json_ok() -> None:
    data = json.loads(to_json(CHECKS[:2]))
    assert data["ok"] is True
    assert json.loads(to_json([])) == {"ok": True, "checks": []}
