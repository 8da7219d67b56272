"""The ``multiarch`` argument parser and its platform errors (nothing is run)."""

from __future__ import annotations

import pytest
from pytest_multiarch.cli import build_parser, main


def test_parse_doctor() -> None:
    args = build_parser().parse_args(["doctor", "--platforms", "amd64,arm64", "--json"])
    assert args.command == "doctor"
    assert args.platforms == "amd64,arm64"
    assert args.json is True
    assert args.no_probe is False
    assert args.func.__name__ == "cmd_doctor"


def test_parse_doctor_defaults() -> None:
    args = build_parser().parse_args(["doctor", "--no-probe"])
    assert args.platforms is None
    assert args.json is False
    assert args.no_probe is True


def test_parse_host_up() -> None:
    args = build_parser().parse_args(["host", "up", "--platforms", "s390x", "--bases", "busybox"])
    assert args.command == "host"
    assert args.host_command == "up"
    assert args.platforms == "s390x"
    assert args.bases == "busybox"
    assert args.registry_port is None
    assert args.offline is False
    assert args.func.__name__ == "cmd_host_up"


def test_parse_host_up_defaults_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MULTIARCH_IMAGE_STORE", raising=False)
    args = build_parser().parse_args(
        ["host", "up", "--image-store", "classic", "--registry-port", "5001", "--offline"]
    )
    assert args.platforms is None
    assert args.bases == "debian,busybox"
    assert args.image_store == "classic"
    assert args.registry_port == 5001
    assert args.offline is True
    assert build_parser().parse_args(["host", "up"]).image_store == "containerd"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["host"],
        ["nope"],
        ["host", "up", "--image-store", "zfs"],
        ["host", "up", "--registry-port", "abc"],
        ["doctor", "--bogus-flag"],
    ],
)
def test_parser_rejects(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    assert "usage: multiarch" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "bad"),
    [
        (["doctor", "--platforms", "bogus"], "'bogus'"),
        (["doctor", "--platforms", "amd64,windows/amd64"], "'windows/amd64'"),
        (["host", "up", "--platforms", "arm64,mips"], "'mips'"),
    ],
)
def test_main_bad_platform_exits_2(
    argv: list[str], bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "multiarch: error:" in err
    assert bad in err
    assert "--platforms" in err
    assert "valid names are" in err


def test_main_empty_item_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["doctor", "--platforms", "amd64,,arm64"])
    assert info.value.code == 2
    assert "empty platform name" in capsys.readouterr().err


def test_main_bad_platform_from_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MULTIARCH_PLATFORMS", "bogus")
    with pytest.raises(SystemExit) as info:
        main(["doctor"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "'bogus'" in err
    assert "MULTIARCH_PLATFORMS" in err


def test_verify_takes_pytest_arguments_after_a_double_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    from pytest_multiarch.runtime import published

    found = published.Published("r.example/app:1", "sha256:" + "a" * 64, True, {"linux/amd64": ""})
    monkeypatch.setattr(published, "read_published", lambda *_, **__: found)
    ran: list[list[str]] = []

    def fake_run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(subprocess, "run", fake_run)
    argv = ["verify", "r.example/app:1", "--image", "app", "--platforms", "amd64,arm64"]
    assert main([*argv, "--engine", "arm64=ctx", "--", "-k", "smoke", "-n", "2"]) == 1
    [command] = ran
    assert command[1:] == [
        "-m",
        "pytest",
        "--verify-ref",
        "app=r.example/app:1",
        "--platforms",
        "amd64,arm64",
        "--engine",
        "arm64=ctx",
        "-k",
        "smoke",
        "-n",
        "2",
    ]
    assert "r.example/app:1 is a published index sha256:aaaa" in capsys.readouterr().out


def test_verify_refuses_a_bad_ref_before_any_test(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "Not A Ref", "--platforms", "amd64"]) == 2
    assert capsys.readouterr().err.startswith(
        "multiarch: error: 'Not A Ref' from multiarch verify is not an image reference"
    )


def test_only_verify_takes_pytest_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["summary", "r.json", "--", "-k", "x"])
    assert "only multiarch verify takes pytest arguments" in capsys.readouterr().err
