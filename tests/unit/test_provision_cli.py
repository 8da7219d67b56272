"""`multiarch host up --dry-run` and `multiarch host engine up|down NAME`: argument parsing
and the refusals that need no root and start nothing."""

from __future__ import annotations

import pytest
from pytest_multiarch.cli import build_parser, main


def test_parse_host_up_dry_run() -> None:
    assert build_parser().parse_args(["host", "up"]).dry_run is False
    assert build_parser().parse_args(["host", "up", "--dry-run"]).dry_run is True


def test_parse_engine_up() -> None:
    args = build_parser().parse_args(["host", "engine", "up", "arm-box"])
    assert (args.command, args.host_command, args.engine_command) == ("host", "engine", "up")
    assert args.name == "arm-box"
    assert args.image_store == "containerd"
    assert args.registry_port is None
    assert args.dry_run is False
    assert args.func.__name__ == "cmd_host_engine"


def test_parse_engine_down() -> None:
    args = build_parser().parse_args(["host", "engine", "down", "arm-box", "--purge"])
    assert args.engine_command == "down"
    assert args.purge is True
    assert args.func.__name__ == "cmd_host_engine"


@pytest.mark.parametrize(
    "argv",
    [
        ["host", "engine"],
        ["host", "engine", "up"],
        ["host", "engine", "start", "x"],
        ["host", "engine", "up", "x", "--image-store", "zfs"],
        ["host", "engine", "up", "x", "--purge"],
    ],
)
def test_engine_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2


@pytest.mark.parametrize("verb", ["up", "down"])
def test_an_unusable_engine_name_exits_2_naming_it(
    verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["host", "engine", verb, "../docker"]) == 2
    err = capsys.readouterr().err
    assert "'../docker'" in err
    assert "1-12 characters" in err
