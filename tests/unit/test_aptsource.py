"""Parsing apt sources (deb822 and one-line) and choosing the URI to reuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.provision.aptsource import (
    AptSource,
    ConfiguredSources,
    configured_sources,
    parse_deb822,
    parse_one_line,
)

MIRROR = "http://mirror.example/debian"
SECURITY = "http://mirror.example/debian-security"
OTHER = "http://other.example/debian"

DEBIAN_SOURCES = f"""\
# Modernized from /etc/apt/sources.list
Types: deb
URIs: {MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

# security updates
Types: deb
URIs: {SECURITY}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


# ---- parse_deb822 --------------------------------------------------------------------------------


def test_parse_deb822_debian_default() -> None:
    assert parse_deb822(DEBIAN_SOURCES) == [
        AptSource(MIRROR, ("bookworm", "bookworm-updates")),
        AptSource(SECURITY, ("bookworm-security",)),
    ]


def test_parse_deb822_several_uris_and_types() -> None:
    text = f"Types: deb deb-src\nURIs: {MIRROR} {OTHER}\nSuites: trixie\nComponents: main\n"
    assert parse_deb822(text) == [AptSource(MIRROR, ("trixie",)), AptSource(OTHER, ("trixie",))]


def test_parse_deb822_skips_deb_src_only() -> None:
    text = f"Types: deb-src\nURIs: {MIRROR}\nSuites: bookworm\nComponents: main\n"
    assert parse_deb822(text) == []


@pytest.mark.parametrize("value", ["no", "No", "NO", " no "])
def test_parse_deb822_skips_disabled(value: str) -> None:
    text = (
        f"Types: deb\nURIs: {OTHER}\nSuites: sid\nEnabled: {value}\n\n"
        f"Types: deb\nURIs: {MIRROR}\nSuites: bookworm\nEnabled: yes\n"
    )
    assert parse_deb822(text) == [AptSource(MIRROR, ("bookworm",))]


def test_parse_deb822_comments_and_case() -> None:
    text = (
        "# a comment: with a colon\n"
        "types: deb\n"
        "#URIs: http://commented.example/debian\n"
        f"uris: {MIRROR}\n"
        "SUITES: bookworm\n"
        "Components: main\n"
    )
    assert parse_deb822(text) == [AptSource(MIRROR, ("bookworm",))]


def test_parse_deb822_ignores_continuation_lines() -> None:
    text = (
        f"Types: deb\nURIs: {MIRROR}\nSuites: bookworm\nComponents: main\n"
        "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n Types: deb-src\n"
        " -----END PGP PUBLIC KEY BLOCK-----\n"
    )
    assert parse_deb822(text) == [AptSource(MIRROR, ("bookworm",))]


def test_parse_deb822_stanzas_separated_by_whitespace_only_lines() -> None:
    text = f"Types: deb\nURIs: {MIRROR}\nSuites: a\n   \nTypes: deb\nURIs: {OTHER}\nSuites: b\n"
    assert parse_deb822(text) == [AptSource(MIRROR, ("a",)), AptSource(OTHER, ("b",))]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "Types: deb\nSuites: x\n"])
def test_parse_deb822_nothing(text: str) -> None:
    assert parse_deb822(text) == []


# ---- parse_one_line ------------------------------------------------------------------------------


def test_parse_one_line() -> None:
    text = f"""\
# deb http://commented.example/debian bookworm main
deb {MIRROR} bookworm main contrib
deb-src {MIRROR} bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {SECURITY} bookworm-security main
deb [ arch=amd64,arm64 signed-by=/usr/share/keyrings/k.gpg ] {OTHER} trixie main # trailing

deb {MIRROR} bookworm-updates main
"""
    assert parse_one_line(text) == [
        AptSource(MIRROR, ("bookworm",)),
        AptSource(SECURITY, ("bookworm-security",)),
        AptSource(OTHER, ("trixie",)),
        AptSource(MIRROR, ("bookworm-updates",)),
    ]


@pytest.mark.parametrize(
    "line",
    [
        "",
        "# deb http://x.example/debian sid main",
        "deb",
        f"deb {MIRROR}",
        "rpm x y",
        "  #deb a b c",
    ],
)
def test_parse_one_line_ignores(line: str) -> None:
    assert parse_one_line(line) == []


def test_parse_one_line_leading_whitespace() -> None:
    assert parse_one_line(f"   deb {MIRROR} bookworm main\n") == [AptSource(MIRROR, ("bookworm",))]


# ---- ConfiguredSources ---------------------------------------------------------------------------


def sources(*items: AptSource) -> ConfiguredSources:
    return ConfiguredSources(tuple(items))


MAIN = AptSource(MIRROR, ("bookworm", "bookworm-updates"))
SEC = AptSource(SECURITY, ("bookworm-security",))


@pytest.mark.parametrize("order", [(MAIN, SEC), (SEC, MAIN)], ids=["main-first", "security-first"])
def test_for_suite_picks_the_non_security_source(order: tuple[AptSource, ...]) -> None:
    assert sources(*order).for_suite("bookworm") == MAIN


def test_for_suite_matches_suite_prefix() -> None:
    updates_only = AptSource(OTHER, ("bookworm-updates",))
    assert sources(SEC, updates_only).for_suite("bookworm") == updates_only


def test_for_suite_prefers_source_serving_the_suite() -> None:
    trixie = AptSource(OTHER, ("trixie",))
    assert sources(MAIN, SEC, trixie).for_suite("trixie") == trixie


@pytest.mark.parametrize("order", [(MAIN, SEC), (SEC, MAIN)], ids=["main-first", "security-first"])
def test_for_suite_falls_back_to_first_non_security_uri(order: tuple[AptSource, ...]) -> None:
    assert sources(*order).for_suite("trixie") == AptSource(MIRROR, ("trixie",))


def test_for_suite_does_not_match_a_different_suite_with_shared_prefix() -> None:
    # "bookworm" must not serve "book"; the fallback keeps only the URI.
    assert sources(MAIN).for_suite("book") == AptSource(MIRROR, ("book",))


@pytest.mark.parametrize("configured", [(), (SEC,)], ids=["none", "security-only"])
def test_for_suite_without_a_usable_source(configured: tuple[AptSource, ...]) -> None:
    with pytest.raises(MultiarchError, match="no Debian package source"):
        sources(*configured).for_suite("bookworm")


def test_security_uri() -> None:
    assert sources(MAIN, SEC).security_uri() == SECURITY
    assert sources(MAIN).security_uri() == ""
    assert sources().security_uri() == ""


def test_from_parsed_deb822() -> None:
    configured = ConfiguredSources(tuple(parse_deb822(DEBIAN_SOURCES)))
    assert configured.for_suite("bookworm").uri == MIRROR
    assert configured.for_suite("trixie") == AptSource(MIRROR, ("trixie",))
    assert configured.security_uri() == SECURITY


# ---- configured_sources (files in tmp_path) ------------------------------------------------------


def test_configured_sources_reads_both_formats(tmp_path: Path) -> None:
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(DEBIAN_SOURCES)
    (parts / "extra.list").write_text(f"deb {OTHER} trixie main\n")
    (parts / "ignored.txt").write_text(f"deb {OTHER} sid main\n")
    listing = tmp_path / "sources.list"
    listing.write_text("# nothing here\n")
    found = configured_sources(parts, listing)
    assert found.sources == (
        AptSource(MIRROR, ("bookworm", "bookworm-updates")),
        AptSource(SECURITY, ("bookworm-security",)),
        AptSource(OTHER, ("trixie",)),
    )


def test_configured_sources_prefers_debian_uris(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text(f"deb http://ppa.example/ubuntu noble main\ndeb {MIRROR} bookworm main\n")
    found = configured_sources(tmp_path / "missing.d", listing)
    assert found.sources == (AptSource(MIRROR, ("bookworm",)),)


def test_configured_sources_keeps_non_debian_when_nothing_else(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text("deb http://archive.example/ubuntu noble main\n")
    found = configured_sources(tmp_path / "missing.d", listing)
    assert found.sources == (AptSource("http://archive.example/ubuntu", ("noble",)),)


def test_configured_sources_nothing(tmp_path: Path) -> None:
    assert configured_sources(tmp_path / "d", tmp_path / "sources.list").sources == ()
