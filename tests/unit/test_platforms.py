"""parse_platforms, lookup, native_platform and the Platform table."""

from __future__ import annotations

import pytest
from pytest_multiarch.core.errors import PlatformError
from pytest_multiarch.core.platforms import (
    KNOWN_PLATFORMS,
    Platform,
    lookup,
    native_platform,
    parse_platforms,
    valid_names_text,
    with_host,
)

AMD64 = lookup("amd64")
ARM64 = lookup("arm64")
SOURCE = "--platforms (unit test)"


def names(platforms: list[Platform]) -> list[str]:
    return [p.name for p in platforms]


def assert_lists_valid_names(message: str) -> None:
    for known in KNOWN_PLATFORMS:
        assert known.name.removeprefix("linux/") in message
    assert "native" in message
    assert "all" in message


# ---- the table of known platforms ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "short", "uname", "byteorder", "debian_arch", "qemu_name"),
    [
        ("linux/amd64", "amd64", "x86_64", "little", "amd64", "x86_64"),
        ("linux/arm64", "arm64", "aarch64", "little", "arm64", "aarch64"),
        ("linux/arm/v7", "arm-v7", "armv7l", "little", "armhf", "arm"),
        ("linux/s390x", "s390x", "s390x", "big", "s390x", "s390x"),
        ("linux/ppc64le", "ppc64le", "ppc64le", "little", "ppc64el", "ppc64le"),
        ("linux/riscv64", "riscv64", "riscv64", "little", "riscv64", "riscv64"),
    ],
)
def test_known_platform_attributes(
    name: str, short: str, uname: str, byteorder: str, debian_arch: str, qemu_name: str
) -> None:
    found = lookup(name)
    assert found.name == name
    assert str(found) == name
    assert found.os == "linux"
    assert found.short == short
    assert found.uname == uname
    assert found.byteorder == byteorder
    assert found.debian_arch == debian_arch
    assert found.qemu_name == qemu_name
    assert found.emulated is False


def test_known_platforms_order_and_uniqueness() -> None:
    assert names(list(KNOWN_PLATFORMS)) == [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/s390x",
        "linux/ppc64le",
        "linux/riscv64",
    ]
    for attribute in ("short", "uname", "qemu_name", "debian_arch"):
        values = [getattr(p, attribute) for p in KNOWN_PLATFORMS]
        assert len(set(values)) == len(values), attribute


@pytest.mark.parametrize("known", KNOWN_PLATFORMS, ids=lambda p: p.short)
@pytest.mark.parametrize("attribute", ["name", "short", "uname", "debian_arch"])
def test_every_spelling_of_a_known_platform_looks_it_up(known: Platform, attribute: str) -> None:
    assert lookup(getattr(known, attribute)) == known


def test_name_has_no_trailing_slash_without_variant() -> None:
    assert Platform("linux", "amd64", "", "amd64", "x86_64", "little", "amd64", "x86_64").name == (
        "linux/amd64"
    )


# ---- lookup --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("amd64", "linux/amd64"),
        ("linux/amd64", "linux/amd64"),
        ("LINUX/AMD64", "linux/amd64"),
        ("  arm64 ", "linux/arm64"),
        ("x86_64", "linux/amd64"),
        ("x86-64", "linux/amd64"),
        ("x64", "linux/amd64"),
        ("aarch64", "linux/arm64"),
        ("arm64/v8", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("armv8", "linux/arm64"),
        ("armhf", "linux/arm/v7"),
        ("armv7", "linux/arm/v7"),
        ("armv7l", "linux/arm/v7"),
        ("arm", "linux/arm/v7"),
        ("arm-v7", "linux/arm/v7"),
        ("arm/v7", "linux/arm/v7"),
        ("ppc64el", "linux/ppc64le"),
        ("S390X", "linux/s390x"),
        ("riscv64", "linux/riscv64"),
    ],
)
def test_lookup(text: str, expected: str) -> None:
    assert lookup(text).name == expected


@pytest.mark.parametrize("text", ["", "mips", "windows/amd64", "arm/v6", "linux/", "amd64 arm64"])
def test_lookup_unknown(text: str) -> None:
    with pytest.raises(PlatformError, match="unknown platform"):
        lookup(text)


# ---- native_platform / with_host -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", "linux/amd64"),
        ("aarch64", "linux/arm64"),
        ("armv7l", "linux/arm/v7"),
        ("s390x", "linux/s390x"),
        ("ppc64le", "linux/ppc64le"),
        ("riscv64", "linux/riscv64"),
    ],
)
def test_native_platform(machine: str, expected: str) -> None:
    assert native_platform(machine).name == expected


def test_native_platform_unknown_machine() -> None:
    with pytest.raises(PlatformError) as info:
        native_platform("mips64")
    assert "'mips64'" in str(info.value)
    assert "x86_64" in str(info.value)
    assert "aarch64" in str(info.value)


def test_native_platform_defaults_to_this_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_multiarch.core.platforms.native_machine", lambda: "aarch64")
    assert native_platform().name == "linux/arm64"
    # parse_platforms uses it when native= is omitted
    assert [p.emulated for p in parse_platforms("arm64,amd64", source=SOURCE)] == [False, True]


def test_with_host() -> None:
    assert with_host(ARM64, native=AMD64).emulated is True
    assert with_host(AMD64, native=AMD64).emulated is False


# ---- parse_platforms: accepted input -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("amd64", ["linux/amd64"]),
        ("linux/arm64", ["linux/arm64"]),
        ("amd64,arm64", ["linux/amd64", "linux/arm64"]),
        ("arm64,amd64", ["linux/arm64", "linux/amd64"]),
        (
            "x86_64,aarch64,armhf,ppc64el",
            ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le"],
        ),
        ("arm64/v8", ["linux/arm64"]),
        ("linux/arm/v7", ["linux/arm/v7"]),
        ("AMD64, Linux/ARM64 ,  S390x", ["linux/amd64", "linux/arm64", "linux/s390x"]),
        (" amd64 ", ["linux/amd64"]),
        ("amd64,x86_64,linux/amd64", ["linux/amd64"]),
        ("arm64,amd64,aarch64,arm64/v8", ["linux/arm64", "linux/amd64"]),
        ("s390x,armhf,s390x,arm/v7", ["linux/s390x", "linux/arm/v7"]),
        (["amd64", "arm64,s390x"], ["linux/amd64", "linux/arm64", "linux/s390x"]),
        (("riscv64",), ["linux/riscv64"]),
    ],
)
def test_parse_platforms(spec: str | list[str], expected: list[str]) -> None:
    assert names(parse_platforms(spec, source=SOURCE, native=AMD64)) == expected


def test_parse_platforms_marks_emulated_relative_to_native() -> None:
    on_amd64 = parse_platforms("amd64,arm64,s390x", source=SOURCE, native=AMD64)
    assert [p.emulated for p in on_amd64] == [False, True, True]
    on_arm64 = parse_platforms("amd64,arm64,s390x", source=SOURCE, native=ARM64)
    assert [p.emulated for p in on_arm64] == [True, False, True]


def test_parse_platforms_accepts_an_emulated_native_argument() -> None:
    # The caller may hand over a platform that is itself marked emulated; only names matter.
    host = with_host(ARM64, native=AMD64)
    assert host.emulated
    found = parse_platforms("native,amd64", source=SOURCE, native=host)
    assert [(p.name, p.emulated) for p in found] == [("linux/arm64", False), ("linux/amd64", True)]


@pytest.mark.parametrize("spelling", ["native", "NATIVE", " native "])
@pytest.mark.parametrize("host", [AMD64, ARM64, lookup("s390x")], ids=lambda p: p.short)
def test_parse_platforms_native(spelling: str, host: Platform) -> None:
    found = parse_platforms(spelling, source=SOURCE, native=host)
    assert names(found) == [host.name]
    assert found[0].emulated is False


def test_parse_platforms_native_dedupes_with_explicit_name() -> None:
    found = parse_platforms("arm64,native,amd64,native", source=SOURCE, native=AMD64)
    assert names(found) == ["linux/arm64", "linux/amd64"]


def test_parse_platforms_all_without_can_run_is_every_known_platform() -> None:
    found = parse_platforms("all", source=SOURCE, native=AMD64)
    assert names(found) == [p.name for p in KNOWN_PLATFORMS]
    assert [p.emulated for p in found] == [p.name != "linux/amd64" for p in KNOWN_PLATFORMS]


def test_parse_platforms_all_uses_can_run_but_always_keeps_native() -> None:
    asked: list[str] = []

    def can_run(platform: Platform) -> bool:
        asked.append(platform.name)
        return platform.short in ("s390x", "amd64")

    found = parse_platforms("all", source=SOURCE, native=ARM64, can_run=can_run)
    assert names(found) == ["linux/amd64", "linux/arm64", "linux/s390x"]
    assert [p.emulated for p in found] == [True, False, True]
    assert "linux/arm64" not in asked  # the host is never asked about


def test_parse_platforms_all_with_nothing_runnable_is_only_native() -> None:
    found = parse_platforms("ALL", source=SOURCE, native=AMD64, can_run=lambda p: False)
    assert names(found) == ["linux/amd64"]


def test_parse_platforms_all_after_explicit_names_keeps_first_order() -> None:
    found = parse_platforms("s390x,all", source=SOURCE, native=AMD64, can_run=lambda p: True)
    assert names(found) == ["linux/s390x"] + [
        p.name for p in KNOWN_PLATFORMS if p.name != "linux/s390x"
    ]


def test_parse_platforms_explicit_names_ignore_can_run() -> None:
    found = parse_platforms("s390x", source=SOURCE, native=AMD64, can_run=lambda p: False)
    assert names(found) == ["linux/s390x"]


# ---- parse_platforms: errors ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["bogus", "mips64", "arm/v6", "linux/sparc", "amd65"])
def test_parse_platforms_unknown_name(bad: str) -> None:
    spec = f"amd64,{bad}"
    with pytest.raises(PlatformError) as info:
        parse_platforms(spec, source="the ini option multiarch_platforms", native=AMD64)
    message = str(info.value)
    assert repr(bad) in message
    assert "the ini option multiarch_platforms" in message
    assert_lists_valid_names(message)


@pytest.mark.parametrize(
    "bad", ["windows/amd64", "darwin/arm64", "Windows/AMD64", "freebsd/riscv64"]
)
def test_parse_platforms_non_linux_os(bad: str) -> None:
    with pytest.raises(PlatformError) as info:
        parse_platforms(bad, source="environment variable MULTIARCH_PLATFORMS", native=AMD64)
    message = str(info.value)
    assert repr(bad) in message
    assert "environment variable MULTIARCH_PLATFORMS" in message
    assert "linux" in message
    assert_lists_valid_names(message)


@pytest.mark.parametrize("spec", ["", "   ", ",", " , ", []])
def test_parse_platforms_nothing_given(spec: str | list[str]) -> None:
    with pytest.raises(PlatformError) as info:
        parse_platforms(spec, source="--platforms", native=AMD64)
    message = str(info.value)
    assert "no platform given" in message
    assert "--platforms" in message
    assert_lists_valid_names(message)


@pytest.mark.parametrize("spec", ["amd64,,arm64", "amd64,", ",arm64", "amd64, ,arm64"])
def test_parse_platforms_empty_item(spec: str) -> None:
    with pytest.raises(PlatformError) as info:
        parse_platforms(spec, source="--platforms", native=AMD64)
    message = str(info.value)
    assert "empty platform name" in message
    assert repr(spec) in message
    assert "--platforms" in message


def test_parse_platforms_empty_item_lists_valid_names() -> None:
    with pytest.raises(PlatformError) as info:
        parse_platforms("amd64,,arm64", source="--platforms", native=AMD64)
    assert_lists_valid_names(str(info.value))


def test_valid_names_text_mentions_aliases_and_prefix() -> None:
    text = valid_names_text()
    assert_lists_valid_names(text)
    for alias in ("x86_64", "aarch64", "armhf", "ppc64el", "arm64/v8"):
        assert alias in text
    assert "linux/" in text
