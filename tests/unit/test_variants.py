"""The variants check's pure parts: normalisation, package lists, comparison, ignore entries
and the ``variants`` key of image.toml."""

from __future__ import annotations

import io
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.images import ImageSpec, parse_image_toml
from pytest_multiarch.core.platforms import Platform, lookup
from pytest_multiarch.runtime.variants import (
    Entry,
    Ignore,
    Variant,
    apk_owners,
    checks_variants,
    compare_variants,
    dpkg_list_owner,
    normalise_env,
    normalise_path,
    normalise_text,
    normalise_tree,
    parse_apk_installed,
    parse_dpkg_status,
    read_variant,
    shown_differences,
)

AMD64, ARM64, S390X = lookup("amd64"), lookup("arm64"), lookup("s390x")
ARM_V7, PPC64LE = lookup("arm/v7"), lookup("ppc64le")

FILE = Entry("file", 0o644, 0, 0)
DIR = Entry("dir", 0o755, 0, 0)


def variant(
    platform: Platform,
    files: dict[str, Entry] | None = None,
    *,
    config: dict[str, Any] | None = None,
    packages: dict[str, str] | None = None,
    owners: dict[str, str] | None = None,
) -> Variant:
    tree, shown = normalise_tree((files or {}).items(), platform)
    config = config or {}
    return Variant(
        platform,
        config,
        tree,
        shown,
        packages or {},
        normalise_env(config.get("Env"), platform),
        owners or {},
    )


# ---- normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "path"),
    [
        (AMD64, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        (ARM64, "/usr/lib/aarch64-linux-gnu/libc.so.6"),
        (S390X, "/usr/lib/s390x-linux-gnu/libc.so.6"),
        (ARM_V7, "/usr/lib/arm-linux-gnueabihf/libc.so.6"),
        (PPC64LE, "/usr/lib/powerpc64le-linux-gnu/libc.so.6"),
    ],
)
def test_the_platforms_own_triplet_directory_is_one_path(platform: Platform, path: str) -> None:
    assert normalise_path(path, platform) == "/usr/lib/<triplet>/libc.so.6"


def test_only_the_platforms_own_triplet_is_normalised() -> None:
    # i386 libraries on amd64 (dpkg --add-architecture i386) are a real difference.
    assert normalise_path("/usr/lib/i386-linux-gnu/libc.so.6", AMD64) == (
        "/usr/lib/i386-linux-gnu/libc.so.6"
    )
    assert normalise_path("/usr/lib/aarch64-linux-gnu/x", AMD64) == "/usr/lib/aarch64-linux-gnu/x"


def test_triplets_inside_a_name_are_normalised() -> None:
    assert normalise_path("/usr/bin/perl5.36-x86_64-linux-gnu", AMD64) == normalise_path(
        "/usr/bin/perl5.36-aarch64-linux-gnu", ARM64
    )


@pytest.mark.parametrize(
    ("platform", "path"),
    [
        (AMD64, "/usr/lib64/ld-linux-x86-64.so.2"),
        (AMD64, "/lib64/ld-linux-x86-64.so.2"),
        (ARM64, "/usr/lib/ld-linux-aarch64.so.1"),
        (ARM64, "/lib/ld-linux-aarch64.so.1"),
        (S390X, "/lib/ld64.so.1"),
        (S390X, "/usr/lib/ld64.so.1"),
        (ARM_V7, "/lib/ld-linux-armhf.so.3"),
        (PPC64LE, "/lib64/ld64.so.2"),
        (AMD64, "/lib/ld-musl-x86_64.so.1"),
        (ARM64, "/lib/ld-musl-aarch64.so.1"),
    ],
)
def test_dynamic_loaders_are_one_name_and_lib64_holds_them_as_lib(
    platform: Platform, path: str
) -> None:
    assert normalise_path(path, platform) in ("/lib/<ld.so>", "/usr/lib/<ld.so>")


def test_lib64_itself_differs_by_design() -> None:
    assert normalise_path("/lib64", AMD64) is None
    assert normalise_path("/usr/lib64", AMD64) is None
    # What else is in it is compared (RPM-based images have /usr/lib64 on every platform).
    assert normalise_path("/usr/lib64/libfoo.so", AMD64) == "/usr/lib64/libfoo.so"


def test_dpkg_info_files_of_the_platforms_architecture_are_one_path() -> None:
    assert normalise_path("/var/lib/dpkg/info/libc6:amd64.list", AMD64) == normalise_path(
        "/var/lib/dpkg/info/libc6:s390x.list", S390X
    )
    # Elsewhere ":amd64." is just a name.
    assert normalise_path("/opt/x:amd64.list", AMD64) == "/opt/x:amd64.list"


def test_apt_cache_and_index_files_of_the_platforms_architecture_are_one_path() -> None:
    deb = "/var/cache/apt/archives/python3_3.11.2-1+b1_{}.deb"
    assert normalise_path(deb.format("amd64"), AMD64) == normalise_path(
        deb.format("ppc64el"), PPC64LE
    )
    assert normalise_path(deb.format("i386"), AMD64) == deb.format("i386")
    lists = "/var/lib/apt/lists/x_dists_bookworm_main_binary-{}_Packages.lz4"
    assert normalise_path(lists.format("amd64"), AMD64) == normalise_path(
        lists.format("arm64"), ARM64
    )


def test_loader_links_compare_by_the_loader_they_name() -> None:
    amd64 = {
        "/usr/lib64/ld-linux-x86-64.so.2": Entry(
            "symlink", 0o777, 0, 0, "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        ),
        "/usr/bin/ld.so": Entry("symlink", 0o777, 0, 0, "/lib64/ld-linux-x86-64.so.2"),
        "/lib64": Entry("symlink", 0o777, 0, 0, "usr/lib64"),
    }
    arm64 = {
        "/usr/lib/ld-linux-aarch64.so.1": Entry(
            "symlink", 0o777, 0, 0, "aarch64-linux-gnu/ld-linux-aarch64.so.1"
        ),
        "/usr/bin/ld.so": Entry("symlink", 0o777, 0, 0, "/lib/ld-linux-aarch64.so.1"),
    }
    assert compare_variants([variant(AMD64, amd64), variant(ARM64, arm64)], Ignore()) == []


def test_setarch_aliases_named_after_an_architecture_differ_by_design() -> None:
    link = Entry("symlink", 0o777, 0, 0, "setarch")
    amd64 = {"/usr/bin/x86_64": link, "/usr/bin/i386": link, "/usr/bin/linux64": link}
    s390x = {"/usr/bin/s390x": link, "/usr/bin/s390": link, "/usr/bin/linux64": link}
    assert compare_variants([variant(AMD64, amd64), variant(S390X, s390x)], Ignore()) == []


def test_env_values_are_normalised_like_paths() -> None:
    assert normalise_env(["LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu", "A=b=c"], AMD64) == {
        "LD_LIBRARY_PATH": "/usr/lib/<triplet>",
        "A": "b=c",
    }
    assert normalise_text("/lib64/ld-linux-x86-64.so.2", AMD64) == "/lib/<ld.so>"


# ---- package lists --------------------------------------------------------------------------

STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u4
Description: GNU C Library
 a continuation line: with a colon

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9+deb12u4

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""


def test_dpkg_status_lists_installed_packages_without_their_own_architecture() -> None:
    assert parse_dpkg_status(STATUS, AMD64) == {
        "dpkg libc6": "2.36-9+deb12u4",
        "dpkg tzdata": "2024a-0+deb12u1",
        "dpkg libc6:i386": "2.36-9+deb12u4",  # a foreign architecture keeps it
    }
    arm64 = STATUS.replace("Architecture: amd64", "Architecture: arm64")
    assert parse_dpkg_status(arm64, ARM64)["dpkg libc6"] == "2.36-9+deb12u4"


APK = """\
C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
F:lib
R:ld-musl-x86_64.so.1
R:libc.musl-x86_64.so.1

P:busybox
V:1.36.1-r5
A:x86_64
F:bin
R:busybox
F:etc/busybox-paths.d
"""


def test_apk_database_lists_packages_and_their_files() -> None:
    assert parse_apk_installed(APK) == {"apk musl": "1.2.4-r2", "apk busybox": "1.36.1-r5"}
    owners = apk_owners(APK)
    assert owners["/lib/ld-musl-x86_64.so.1"] == "apk musl"
    assert owners["/bin/busybox"] == "apk busybox"
    assert owners["/etc/busybox-paths.d"] == "apk busybox"


def test_dpkg_list_files_name_their_package() -> None:
    assert dpkg_list_owner("/var/lib/dpkg/info/libc6:amd64.list", AMD64) == "dpkg libc6"
    assert dpkg_list_owner("/var/lib/dpkg/info/tzdata.list", AMD64) == "dpkg tzdata"
    assert dpkg_list_owner("/var/lib/dpkg/info/libc6:i386.list", AMD64) == "dpkg libc6:i386"
    assert dpkg_list_owner("/var/lib/dpkg/info/libc6:amd64.md5sums", AMD64) is None
    assert dpkg_list_owner("/var/lib/dpkg/status", AMD64) is None


# ---- comparison -----------------------------------------------------------------------------


def test_identical_variants_compare_clean() -> None:
    files = {"/opt": DIR, "/opt/app": FILE}
    config = {"Env": ["PATH=/usr/bin"], "Cmd": ["serve"], "Labels": {"a": "b"}}
    same = [variant(p, files, config=config) for p in (AMD64, ARM64, S390X)]
    assert compare_variants(same, Ignore()) == []
    assert compare_variants(same[:1], Ignore()) == []  # nothing to compare with


def test_a_file_on_one_platform_and_an_env_value_are_named() -> None:
    amd64 = variant(AMD64, {"/opt": DIR}, config={"Env": ["MODE=fast-amd64"]})
    arm64 = variant(
        ARM64, {"/opt": DIR, "/opt/extra-asset": FILE}, config={"Env": ["MODE=fast-arm64"]}
    )
    assert compare_variants([amd64, arm64], Ignore()) == [
        "Env MODE: fast-amd64 (amd64) vs fast-arm64 (arm64)",
        "only on linux/arm64: /opt/extra-asset",
    ]


def test_env_is_compared_per_variable_and_unset_is_named() -> None:
    amd64 = variant(AMD64, config={"Env": ["A=1", "B=2"]})
    arm64 = variant(ARM64, config={"Env": ["B=2", "A=1", "C=3"]})
    assert compare_variants([amd64, arm64], Ignore()) == ["Env C: unset (amd64) vs 3 (arm64)"]


def test_every_config_field_is_compared() -> None:
    base: dict[str, Any] = {
        "Entrypoint": ["/app"],
        "Cmd": ["serve"],
        "User": "app",
        "WorkingDir": "/srv",
        "ExposedPorts": {"80/tcp": {}},
        "Volumes": {"/data": {}},
        "Labels": {"org.example.arch": "amd64", "same": "x"},
        "StopSignal": "SIGTERM",
    }
    other: dict[str, Any] = {
        "Entrypoint": ["/app", "--arm"],
        "Cmd": None,
        "User": "root",
        "WorkingDir": "/",
        "ExposedPorts": {"80/tcp": {}, "81/tcp": {}},
        "Volumes": None,
        "Labels": {"org.example.arch": "arm64", "same": "x"},
        "StopSignal": "SIGQUIT",
    }
    found = compare_variants([variant(AMD64, config=base), variant(ARM64, config=other)], Ignore())
    assert found == [
        "Entrypoint: ['/app'] (amd64) vs ['/app', '--arm'] (arm64)",
        "Cmd: ['serve'] (amd64) vs unset (arm64)",
        "User: 'app' (amd64) vs 'root' (arm64)",
        "WorkingDir: '/srv' (amd64) vs '/' (arm64)",
        "ExposedPorts: 80/tcp (amd64) vs 80/tcp, 81/tcp (arm64)",
        "Volumes: /data (amd64) vs unset (arm64)",
        "StopSignal: 'SIGTERM' (amd64) vs 'SIGQUIT' (arm64)",
        "Label org.example.arch: amd64 (amd64) vs arm64 (arm64)",
    ]


def test_types_modes_owners_and_link_targets_are_compared() -> None:
    amd64 = {
        "/a": FILE,
        "/b": FILE,
        "/c": FILE,
        "/d": Entry("symlink", 0o777, 0, 0, "a"),
    }
    arm64 = {
        "/a": DIR,
        "/b": Entry("file", 0o4755, 0, 0),
        "/c": Entry("file", 0o644, 1000, 1000),
        "/d": Entry("symlink", 0o777, 0, 0, "b"),
    }
    assert compare_variants([variant(AMD64, amd64), variant(ARM64, arm64)], Ignore()) == [
        "/a: type file (amd64) vs dir (arm64)",
        "/b: mode 0644 (amd64) vs 4755 (arm64)",
        "/c: owner 0:0 (amd64) vs 1000:1000 (arm64)",
        "/d: link target a (amd64) vs b (arm64)",
    ]


def test_a_directory_on_one_platform_is_one_difference() -> None:
    arm64 = {"/opt": DIR, "/opt/x": FILE, "/opt/x/y": FILE, "/z": FILE}
    found = compare_variants([variant(AMD64, {}), variant(ARM64, arm64)], Ignore())
    assert found == [
        "only on linux/arm64: /opt (and 2 entries under it)",
        "only on linux/arm64: /z",
    ]


def test_with_three_platforms_a_file_missing_on_one_says_where_it_is_missing() -> None:
    files = {"/opt/asset": FILE}
    found = compare_variants(
        [variant(AMD64, files), variant(ARM64, files), variant(S390X, {})], Ignore()
    )
    assert found == ["missing on linux/s390x: /opt/asset"]


def test_packages_are_compared_by_name_and_version() -> None:
    amd64 = variant(AMD64, packages={"dpkg libc6": "2.36", "dpkg curl": "7.88"})
    arm64 = variant(ARM64, packages={"dpkg libc6": "2.37", "dpkg extra": "1.0"})
    assert compare_variants([amd64, arm64], Ignore()) == [
        "only on linux/amd64: package curl 7.88 (dpkg)",
        "only on linux/arm64: package extra 1.0 (dpkg)",
        "package libc6 (dpkg): 2.36 (amd64) vs 2.37 (arm64)",
    ]


def test_files_a_shared_package_installs_on_one_platform_differ_by_design() -> None:
    # glibc's libmvec exists on amd64 only; the libc6 package is on both.
    amd64 = variant(
        AMD64,
        {"/usr/lib/x86_64-linux-gnu/libmvec.so.1": FILE, "/opt/mine": FILE},
        packages={"dpkg libc6": "2.36"},
        owners={"/usr/lib/<triplet>/libmvec.so.1": "dpkg libc6"},
    )
    arm64 = variant(ARM64, {}, packages={"dpkg libc6": "2.36"})
    assert compare_variants([amd64, arm64], Ignore()) == ["only on linux/amd64: /opt/mine"]
    # A package on one platform only: its files and the package itself are differences.
    alone = variant(ARM64, {}, packages={})
    assert compare_variants([amd64, alone], Ignore()) == [
        "only on linux/amd64: /opt/mine",
        "only on linux/amd64: /usr/lib/x86_64-linux-gnu/libmvec.so.1",
        "only on linux/amd64: package libc6 2.36 (dpkg)",
    ]


def test_ignore_entries_allow_deliberate_differences() -> None:
    amd64 = variant(
        AMD64,
        {"/opt/plugins": DIR},
        config={"Env": ["MODE=a", "PY_X=1"], "Labels": {"arch": "amd64"}, "User": "a"},
        packages={"dpkg only-here": "1"},
    )
    arm64 = variant(
        ARM64,
        {"/opt/plugins": DIR, "/opt/plugins/arm/x.so": FILE, "/opt/plugins/y": FILE},
        config={"Env": ["MODE=b", "PY_X=2"], "Labels": {"arch": "arm64"}, "User": "b"},
    )
    assert len(compare_variants([amd64, arm64], Ignore())) == 7
    ignore = Ignore.parse(
        ["/opt/plugins/**", "env:MODE", "env:PY_*", "label:arch", "package:only-*", "config:User"]
    )
    assert compare_variants([amd64, arm64], ignore) == []


def test_ignore_globs_stay_within_a_component_with_one_star() -> None:
    arm64 = variant(ARM64, {"/opt/a/b": FILE, "/opt/c": FILE})
    found = compare_variants([variant(AMD64, {}), arm64], Ignore.parse(["/opt/*"]))
    assert found == ["only on linux/arm64: /opt/a/b"]


def test_a_long_list_of_differences_is_cut_with_a_count() -> None:
    shown = shown_differences([f"d{i}" for i in range(70)], limit=60)
    assert len(shown) == 61
    assert shown[-1] == "... and 10 more"


# ---- reading an export ----------------------------------------------------------------------


def _tar(entries: list[tuple[str, bytes | None, str]]) -> io.BytesIO:
    """(name, content or None for a directory, symlink target or "")."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content, target in entries:
            info = tarfile.TarInfo(name)
            if target:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
                archive.addfile(info)
            elif content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                archive.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return buffer


def test_read_variant_takes_the_tree_packages_and_owners_from_one_export() -> None:
    status = b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2\n"
    stream = _tar(
        [
            ("lib", None, "usr/lib"),
            ("usr/lib/x86_64-linux-gnu/libmvec.so.1", b"\x7fELF", ""),
            ("var/lib/dpkg/status", status, ""),
            ("var/lib/dpkg/info/libc6:amd64.list", b"/.\n/lib/x86_64-linux-gnu/libmvec.so.1\n", ""),
        ]
    )
    found = read_variant(stream, AMD64, {"Env": ["A=1"]}, source="test")
    assert found.packages == {"dpkg libc6": "2"}
    assert found.env == {"A": "1"}
    # Listed through merged /usr's /lib link, owned where the file really is.
    assert found.owners["/usr/lib/<triplet>/libmvec.so.1"] == "dpkg libc6"
    assert found.shown["/var/lib/dpkg/info/libc6:<arch>.list"] == (
        "/var/lib/dpkg/info/libc6:amd64.list"
    )


def test_read_variant_follows_a_package_database_behind_a_link() -> None:
    stream = _tar(
        [
            ("lib/apk/db", None, ""),
            ("lib/apk/db/installed", None, "../../../var/apk-installed"),
            ("var/apk-installed", b"P:musl\nV:1\n", ""),
        ]
    )
    assert read_variant(stream, AMD64, {}, source="test").packages == {"apk musl": "1"}


# ---- image.toml -----------------------------------------------------------------------------


def _parse(toml: str, tmp_path: Path) -> ImageSpec:
    import tomllib

    return parse_image_toml("app", tmp_path, tomllib.loads(textwrap.dedent(toml)), tmp_path / "t")


def test_variants_key_turns_the_check_off_or_lists_what_may_differ(tmp_path: Path) -> None:
    assert _parse("", tmp_path).variants
    assert not _parse("variants = false", tmp_path).variants
    spec = _parse('variants = { ignore = ["/opt/plugins/**", "env:MODE"] }', tmp_path)
    assert spec.variants
    assert spec.variants_ignore == ("/opt/plugins/**", "env:MODE")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("variants = 1", "key 'variants': expected false, true or a table like"),
        (
            "variants = { ignroe = [] }",
            "key 'variants.ignroe': unknown key (did you mean 'ignore'?)",
        ),
        ('variants = { ignore = "env:X" }', None),
        ("variants = { ignore = [1] }", "key 'variants.ignore': expected a list of strings"),
        (
            'variants = { ignore = ["evn:MODE"] }',
            "cannot ignore 'evn:MODE' (did you mean 'env'?)",
        ),
        ('variants = { ignore = ["opt/x"] }', "cannot ignore 'opt/x': expected an absolute path"),
        ('variants = { ignore = ["env:"] }', "'env:' names nothing after 'env:'"),
        (
            'variants = { ignore = ["config:user"] }',
            "'config:user': no config field 'user' (did you mean 'User'?)",
        ),
    ],
)
def test_bad_variants_values_name_the_file_key_and_value(
    tmp_path: Path, toml: str, message: str | None
) -> None:
    if message is None:  # a single string is a list of one, as elsewhere in image.toml
        assert _parse(toml, tmp_path).variants_ignore == ("env:X",)
        return
    with pytest.raises(ConfigError) as raised:
        _parse(toml, tmp_path)
    assert str(raised.value).startswith(f"{tmp_path / 't'}: ")
    assert message in str(raised.value)


def test_the_check_runs_for_images_tested_on_two_platforms_or_more(tmp_path: Path) -> None:
    spec = _parse("", tmp_path)
    assert checks_variants(spec, (AMD64, ARM64))
    assert not checks_variants(spec, (AMD64,))
    assert not checks_variants(_parse("variants = false", tmp_path), (AMD64, ARM64))
    only_amd64 = _parse('platforms = ["amd64"]', tmp_path)
    assert not checks_variants(only_amd64, (AMD64, ARM64))
