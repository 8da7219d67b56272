"""`host up --podman` steps that edit files: the ulimits fix and the mirror entry, idempotent."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.provision.podman import (
    MirrorStep,
    UlimitsStep,
    mirror_text,
    ulimits_cleared,
    ulimits_text,
)


def test_ulimits_into_an_empty_file() -> None:
    text = ulimits_text("")
    assert tomllib.loads(text) == {"containers": {"default_ulimits": []}}


def test_ulimits_keep_every_other_setting() -> None:
    current = '[engine]\ncgroup_manager = "cgroupfs"\n\n[containers]\nlog_driver = "k8s-file"\n'
    data = tomllib.loads(ulimits_text(current))
    assert data["engine"] == {"cgroup_manager": "cgroupfs"}
    assert data["containers"] == {"log_driver": "k8s-file", "default_ulimits": []}


def test_ulimits_replace_a_limit_above_the_hard_one() -> None:
    current = '[containers]\ndefault_ulimits = ["nofile=1048576:1048576"]\n'
    assert tomllib.loads(ulimits_text(current)) == {"containers": {"default_ulimits": []}}


def test_ulimits_step_is_idempotent(tmp_path: Path) -> None:
    conf = tmp_path / "containers.conf"
    step = UlimitsStep(conf)
    state = step.check()
    assert not state.satisfied
    assert "nofile" in state.missing
    step.apply(state)
    assert ulimits_cleared(conf.read_text())
    assert step.check().satisfied
    before = conf.read_text()
    assert step.check().satisfied
    assert conf.read_text() == before


def test_ulimits_step_refuses_a_broken_file(tmp_path: Path) -> None:
    conf = tmp_path / "containers.conf"
    conf.write_text("[containers\n")
    with pytest.raises(MultiarchError, match="not valid TOML"):
        UlimitsStep(conf).check()


def test_mirror_step(tmp_path: Path) -> None:
    step = MirrorStep("127.0.0.1:5000", tmp_path / "registries.conf.d")
    state = step.check()
    assert not state.satisfied
    step.apply(state)
    data = tomllib.loads(step.path.read_text())
    assert data["registry"][0]["prefix"] == "docker.io"
    assert data["registry"][0]["mirror"] == [{"location": "127.0.0.1:5000", "insecure": True}]
    assert step.check().satisfied
    assert step.path.read_text() == mirror_text("127.0.0.1:5000")


def test_host_down_stops_only_podman(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_multiarch.cli import main

    assert main(["host", "down"]) == 2
    assert "pass --podman" in capsys.readouterr().err


def test_service_down_leaves_a_service_it_did_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_multiarch.provision import podman

    monkeypatch.setattr(podman, "_answering_podman", lambda url: "4.3.1")
    state = podman.ServiceDownStep("unix:///x.sock", tmp_path / "none.pid").check()
    assert state.satisfied
    assert "left running" in state.present
