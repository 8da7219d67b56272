"""The option table: every option has one flag, one ini twin and a validator; values resolve
command line > environment > ini > default, and carry where they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.run.options import (
    BY_NAME,
    DEFAULT_SOURCE,
    OPTIONS,
    bind_address,
    positive_number,
    resolve,
)


@dataclass
class FakeConfig:
    options: dict[str, Any] = field(default_factory=dict)
    ini: dict[str, Any] = field(default_factory=dict)

    def getoption(self, dest: str) -> Any:
        return self.options.get(dest)

    def getini(self, dest: str) -> Any:
        return self.ini.get(dest, "")


def resolved(config: FakeConfig, name: str) -> tuple[Any, str]:
    found = resolve(config, name)  # type: ignore[arg-type]
    return found.value, found.source


def test_every_option_has_a_unique_flag_dest_and_ini_twin() -> None:
    assert len({o.flag for o in OPTIONS}) == len(OPTIONS)
    assert len({o.dest for o in OPTIONS}) == len(OPTIONS)
    assert all(o.dest.startswith("multiarch_") for o in OPTIONS)
    assert BY_NAME["multiarch-json"].dest == "multiarch_json"
    assert BY_NAME["emulation-timeout-factor"].dest == "multiarch_emulation_timeout_factor"


def test_default_when_nothing_is_given() -> None:
    assert resolved(FakeConfig(), "build") == ("auto", DEFAULT_SOURCE)
    assert resolved(FakeConfig(), "emulation-timeout-factor") == (10.0, DEFAULT_SOURCE)
    assert resolved(FakeConfig(), "bind-address") == ("127.0.0.1", DEFAULT_SOURCE)
    assert resolved(FakeConfig(), "keep-containers") == (False, DEFAULT_SOURCE)
    assert resolved(FakeConfig(), "publish") == (None, DEFAULT_SOURCE)


def test_command_line_beats_environment_beats_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    config = FakeConfig(ini={"multiarch_platforms": "s390x"})
    assert resolved(config, "platforms") == ("s390x", "ini option multiarch_platforms")
    monkeypatch.setenv("MULTIARCH_PLATFORMS", "arm64")
    assert resolved(config, "platforms") == ("arm64", "environment variable MULTIARCH_PLATFORMS")
    config.options["multiarch_platforms"] = "amd64"
    assert resolved(config, "platforms") == ("amd64", "--platforms")


def test_flags_from_command_line_or_ini() -> None:
    given = FakeConfig(options={"multiarch_keep_containers": True})
    assert resolved(given, "keep-containers") == (True, "--keep-containers")
    assert resolved(FakeConfig(ini={"multiarch_keep_containers": True}), "keep-containers") == (
        True,
        "ini option multiarch_keep_containers",
    )


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        (
            "build",
            FakeConfig(options={"multiarch_build": "sometimes"}),
            "Invalid value 'sometimes' from --build: use one of auto, always, never",
        ),
        (
            "build-timeout",
            FakeConfig(ini={"multiarch_build_timeout": "-5"}),
            "Invalid value '-5' from ini option multiarch_build_timeout: expected a positive",
        ),
        (
            "bind-address",
            FakeConfig(options={"multiarch_bind_address": "localhost"}),
            "Invalid value 'localhost' from --bind-address: expected an IP address",
        ),
        (
            "missing-emulator",
            FakeConfig(options={"multiarch_missing_emulator": "ignore"}),
            "Invalid value 'ignore' from --missing-emulator: use one of error, skip",
        ),
    ],
)
def test_bad_values_name_value_and_source(name: str, config: FakeConfig, message: str) -> None:
    with pytest.raises(pytest.UsageError) as raised:
        resolve(config, name)  # type: ignore[arg-type]
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "fast", ""])
def test_positive_number_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        positive_number(text)


def test_positive_number_and_bind_address_accept() -> None:
    assert positive_number("2.5") == 2.5
    assert bind_address("::1") == "::1"
    assert bind_address("0.0.0.0") == "0.0.0.0"  # noqa: S104 - validating, not binding
