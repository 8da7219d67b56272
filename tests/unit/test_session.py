"""Settings: the worker hand-over and timeout scaling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.platforms import lookup, parse_platforms, with_host
from pytest_multiarch.runtime.process import run_state_dir
from pytest_multiarch.runtime.settings import Settings


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        # emulated flags as this host (where workers re-parse the names) would set them
        "platforms": tuple(parse_platforms("native,arm64,arm/v7,s390x", source="test")),
        "images_dir": Path("/srv/project/images"),
        "build_mode": "auto",
        "build_timeout": 3600.0,
        "bind_address": "127.0.0.1",
        "sources": {"platforms": "--platforms"},
        "missing_emulator": "skip",
        "timeout_factor": 7.5,
        "keep_containers": True,
        "json_path": Path("/srv/project/report.json"),
        "run_id": "0123abcd",
        "owner": "host:123:456",
        "unusable": {"linux/s390x": "no handler; remedy: apt-get install qemu-user-static"},
    }
    values.update(changes)
    return Settings(**values)


@pytest.mark.parametrize(
    "changes",
    [{}, {"json_path": None}, {"unusable": {}}, {"keep_containers": False, "build_mode": "never"}],
    ids=["full", "no-json", "all-usable", "never"],
)
def test_workerinput_round_trip(changes: dict[str, Any]) -> None:
    original = settings(**changes)
    assert Settings.from_workerinput(original.to_workerinput()) == original


def test_workerinput_survives_json() -> None:
    # xdist sends workerinput through execnet: only plain data may be in it
    original = settings()
    data = json.loads(json.dumps(original.to_workerinput()))
    assert Settings.from_workerinput(data) == original


def test_workerinput_content() -> None:
    data = settings().to_workerinput()
    assert [p["arch"] for p in data["platforms"]][1:] == ["arm64", "arm", "s390x"]
    assert data["images_dir"] == "/srv/project/images"
    assert data["json_path"] == "/srv/project/report.json"
    assert data["timeout_factor"] == 7.5
    assert settings(json_path=None).to_workerinput()["json_path"] is None


def test_workerinput_unusable_is_a_copy() -> None:
    original = settings()
    data = original.to_workerinput()
    data["unusable"]["linux/arm64"] = "changed"
    assert "linux/arm64" not in original.unusable


AMD64 = lookup("amd64")


@pytest.mark.parametrize(
    ("plat_name", "emulated", "expected"),
    [("amd64", False, 30.0), ("arm64", True, 225.0), ("s390x", True, 225.0)],
)
def test_timeout_scales_only_emulated(plat_name: str, emulated: bool, expected: float) -> None:
    plat = with_host(lookup(plat_name), native=AMD64)
    assert plat.emulated is emulated
    assert settings().timeout(30, plat) == pytest.approx(expected)


def test_timeout_native_non_amd64_host() -> None:
    arm_host = lookup("arm64")
    assert settings().timeout(10, with_host(lookup("arm64"), native=arm_host)) == 10
    assert settings().timeout(10, with_host(lookup("amd64"), native=arm_host)) == 75


def test_run_state_dir_is_per_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv("MULTIARCH_RUN_STATE_DIR", raising=False)
    assert run_state_dir("a") != run_state_dir("b")
    assert run_state_dir("a").name == "run-a"
    assert run_state_dir("a") == tmp_path / "pytest-multiarch" / "runs" / "run-a"
