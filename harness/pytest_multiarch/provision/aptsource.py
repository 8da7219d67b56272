"""Debian package sources: reuse the URI this machine is configured with, never a literal host.

Packages for another suite (trixie) or another architecture are fetched with a private apt
state directory, so the system's own package lists stay exactly as they were.
"""

from __future__ import annotations

import glob
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.paths import cache_dir
from pytest_multiarch.core.retry import retrying

SOURCES_DIR = Path("/etc/apt/sources.list.d")
SOURCES_LIST = Path("/etc/apt/sources.list")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]


@dataclass(frozen=True)
class ConfiguredSources:
    sources: tuple[AptSource, ...]

    def for_suite(self, suite: str) -> AptSource:
        """The source to use for ``suite``: the one that already serves the distribution."""
        for source in self.sources:
            serves = any(s == suite or s.startswith(suite + "-") for s in source.suites)
            if serves and not any(s.endswith("-security") for s in source.suites):
                return source
        for source in self.sources:
            if not any(s.endswith("-security") for s in source.suites):
                return AptSource(source.uri, (suite,))
        raise MultiarchError(
            "no Debian package source is configured in /etc/apt/sources.list{,.d}; "
            "pytest-multiarch reuses the configured source's URI to fetch packages"
        )

    def security_uri(self) -> str:
        for source in self.sources:
            if any(s.endswith("-security") for s in source.suites):
                return source.uri
        return ""


def parse_deb822(text: str) -> list[AptSource]:
    found: list[AptSource] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line.startswith((" ", "\t")):
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = tuple(fields.get("suites", "").split())
        for uri in fields.get("uris", "").split():
            found.append(AptSource(uri, suites))
    return found


def parse_one_line(text: str) -> list[AptSource]:
    found: list[AptSource] = []
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            found.append(AptSource(words[1], (words[2],)))
    return found


def configured_sources(
    sources_dir: Path = SOURCES_DIR, sources_list: Path = SOURCES_LIST
) -> ConfiguredSources:
    found: list[AptSource] = []
    for path in sorted(glob.glob(str(sources_dir / "*.sources"))):
        found.extend(parse_deb822(Path(path).read_text()))
    lists = [sources_list, *sorted(Path(p) for p in glob.glob(str(sources_dir / "*.list")))]
    for list_path in lists:
        if list_path.exists():
            found.extend(parse_one_line(list_path.read_text()))
    debian = [s for s in found if "debian" in s.uri]
    return ConfiguredSources(tuple(debian or found))


def private_apt_options(suite: str, arch: str, state: Path) -> list[str]:
    """apt-get options that use ``state`` for lists and caches, with ``suite`` as only source
    and ``arch`` as only architecture (fewer indexes: fewer chances to meet a mirror mid-sync)."""
    source = configured_sources().for_suite(suite)
    state.mkdir(parents=True, exist_ok=True)
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources_file = state / "sources.list"
    sources_file.write_text(f"deb [signed-by={KEYRING}] {source.uri} {suite} main\n")
    options = [
        "-o",
        f"Dir::Etc::SourceList={sources_file}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={state / 'lists'}",
        "-o",
        f"Dir::Cache::Archives={state / 'archives'}",
        "-o",
        "Dir::State::Status=/dev/null",
        "-o",
        "APT::Sandbox::User=root",
        "-o",
        f"APT::Architecture={arch}",
        "-o",
        f"APT::Architectures::={arch}",
    ]
    return options


def host_debian_arch() -> str:
    return run_command(["dpkg", "--print-architecture"], timeout=30).stdout.strip()


def apt_download(package: str, arch: str | None, suite: str, dest: Path) -> Path:
    """Download one .deb of ``package`` (for ``arch``) from ``suite`` into ``dest``."""
    deb_arch = arch or host_debian_arch()
    state = cache_dir() / "apt" / f"{suite}-{deb_arch}"
    options = private_apt_options(suite, deb_arch, state)
    stamp = state / "lists" / ".updated"
    if not stamp.exists() or time.time() - stamp.stat().st_mtime > 86400:
        command = ["apt-get", "-q", *options, "update", "--error-on=any"]
        retrying(
            lambda: run_command(
                command, timeout=600, hint="the Debian package mirror must be reachable"
            )
        )
        stamp.touch()
    name = f"{package}:{deb_arch}"
    dest.mkdir(parents=True, exist_ok=True)
    run_command(["apt-get", "-q", *options, "download", name], timeout=600, cwd=dest)
    prefix = package + "_"
    debs = sorted(p for p in dest.glob("*.deb") if p.name.startswith(prefix))
    matching = [p for p in debs if p.name.endswith((f"_{deb_arch}.deb", "_all.deb"))]
    if not matching:
        raise MultiarchError(f"apt-get download {name} from {suite} produced no .deb in {dest}")
    return matching[-1]
