"""The variants check: one image's variants (one per platform) compared with each other.

What a user means by "the same image on every platform": the same config (Env per variable,
Entrypoint, Cmd, User, WorkingDir, ExposedPorts, Volumes, Labels, StopSignal), the same file tree
(paths, types, modes, owners, link targets; never contents: ELF files differ by design) and the
same installed packages (dpkg, apk: name and version, never the architecture field).

Paths that differ by design are normalised per platform before they are compared: Debian's
multiarch triplet (``/usr/lib/x86_64-linux-gnu`` and ``/usr/lib/aarch64-linux-gnu`` are one
path), the dynamic loader's name (``ld-linux-x86-64.so.2``, ``ld-linux-aarch64.so.1``,
``ld64.so.1``, musl's ``ld-musl-<arch>.so.1``), ``/lib64`` and ``/usr/lib64`` themselves, dpkg's
``<package>:<arch>.*`` info files, apt's ``*_<arch>.deb`` and ``binary-<arch>`` index files, and
util-linux's setarch aliases named after an architecture
(``/usr/bin/x86_64 -> setarch``). Only the platform's own names are normalised: an amd64 variant
that also holds i386 libraries differs from an arm64 one that does not.

Everything here is pure (a tar stream in, differences out), apart from reading the tar.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.images import VARIANT_CONFIG_FIELDS, ImageSpec
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.runtime.elf import compile_foreign_globs, image_path

# Where each package manager keeps its list of installed packages.
DPKG_STATUS = "/var/lib/dpkg/status"
APK_INSTALLED = "/lib/apk/db/installed"
PACKAGE_DATABASES = (DPKG_STATUS, APK_INSTALLED)
# A failure lists this many differences, then says how many more there are.
SHOWN_DIFFERENCES = 60


@dataclass(frozen=True)
class ArchNames:
    """The names an architecture gives things that every other architecture names its own way."""

    triplet: str  # Debian's multiarch tuple, /usr/lib/<triplet>
    loaders: tuple[str, ...]  # glibc's and musl's dynamic loaders (and musl's libc link)


_ARCH_NAMES: dict[str, ArchNames] = {
    "linux/amd64": ArchNames(
        "x86_64-linux-gnu",
        ("ld-linux-x86-64.so.2", "ld-musl-x86_64.so.1", "libc.musl-x86_64.so.1"),
    ),
    "linux/arm64": ArchNames(
        "aarch64-linux-gnu",
        ("ld-linux-aarch64.so.1", "ld-musl-aarch64.so.1", "libc.musl-aarch64.so.1"),
    ),
    "linux/arm/v7": ArchNames(
        "arm-linux-gnueabihf",
        ("ld-linux-armhf.so.3", "ld-musl-armhf.so.1", "libc.musl-armv7.so.1"),
    ),
    "linux/s390x": ArchNames(
        "s390x-linux-gnu", ("ld64.so.1", "ld-musl-s390x.so.1", "libc.musl-s390x.so.1")
    ),
    "linux/ppc64le": ArchNames(
        "powerpc64le-linux-gnu",
        ("ld64.so.2", "ld-musl-powerpc64le.so.1", "libc.musl-ppc64le.so.1"),
    ),
    "linux/riscv64": ArchNames(
        "riscv64-linux-gnu",
        ("ld-linux-riscv64-lp64d.so.1", "ld-musl-riscv64.so.1", "libc.musl-riscv64.so.1"),
    ),
}
TRIPLET = "<triplet>"
LOADER = "<ld.so>"
DPKG_INFO = "/var/lib/dpkg/info/"
APT_LISTS = "/var/lib/apt/lists/"
# util-linux links these names to setarch on the architectures they name (x86_64 and i386 on
# amd64, s390 and s390x on s390x, ...): one set per architecture by design.
SETARCH_ALIASES = frozenset(
    {
        "i386",
        "x86_64",
        "s390",
        "s390x",
        "ppc",
        "ppc32",
        "ppc64",
        "ppc64le",
        "arm",
        "armv7l",
        "armv8l",
        "aarch64",
        "riscv64",
        "parisc",
        "parisc32",
        "parisc64",
        "sparc",
        "sparc32",
        "sparc64",
        "mips",
        "mips32",
        "mips64",
        "alpha",
        "ia64",
    }
)
_LIB64 = ("/lib64", "/usr/lib64")


class VariantsError(MultiarchError):
    """An image variant could not be read for the comparison."""


@dataclass(frozen=True)
class Entry:
    """One file tree entry as the comparison sees it."""

    kind: str  # file, dir, symlink, hardlink, char, block, fifo
    mode: int  # permission bits (with setuid, setgid, sticky)
    uid: int
    gid: int
    target: str = ""  # of a symlink or hard link, normalised


@dataclass(frozen=True)
class Variant:
    """One platform's variant of an image, normalised: ready to compare."""

    platform: Platform
    config: Mapping[str, Any]
    files: Mapping[str, Entry]  # normalised path -> entry
    shown: Mapping[str, str]  # normalised path -> the path as this variant has it
    packages: Mapping[str, str]  # "<manager> <name>" -> version
    env: Mapping[str, str] = field(default_factory=dict)  # normalised values
    # Normalised path -> the package (a key of ``packages``) that installed it.
    owners: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Ignore:
    """What ``variants = { ignore = [...] }`` allows to differ."""

    paths: re.Pattern[str] | None = None
    # Names or fnmatch patterns (``env:PYTHON_*``) of each kind.
    env: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    config: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Ignore:
        """From validated image.toml entries: ``/path/glob``, ``env:NAME``, ``label:NAME``,
        ``package:NAME``, ``config:Field`` (core/images.py checks them)."""
        globs: list[str] = []
        kinds: dict[str, set[str]] = {
            "env": set(),
            "label": set(),
            "package": set(),
            "config": set(),
        }
        for entry in entries:
            if entry.startswith("/"):
                globs.append(entry)
                continue
            kind, _, name = entry.partition(":")
            kinds[kind].add(name)
        return cls(
            compile_foreign_globs(globs, source="variants.ignore") if globs else None,
            tuple(sorted(kinds["env"])),
            tuple(sorted(kinds["label"])),
            tuple(sorted(kinds["package"])),
            frozenset(kinds["config"]),
        )

    def path(self, path: str) -> bool:
        return self.paths is not None and self.paths.fullmatch(path) is not None

    def env_name(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.env)

    def label(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.labels)

    def package(self, name: str) -> bool:
        """``name`` (``libfoo`` or ``libfoo:i386``) matched without and with its arch."""
        bare = name.partition(":")[0]
        return any(fnmatch.fnmatchcase(n, p) for p in self.packages for n in (name, bare))


def variant_platforms(spec: ImageSpec, platforms: Sequence[Platform]) -> tuple[Platform, ...]:
    """The platforms of a run (``platforms``, in order) that ``spec`` is tested on."""
    return tuple(platform for platform in platforms if spec.allows(platform))


def checks_variants(spec: ImageSpec, platforms: Sequence[Platform]) -> bool:
    """Whether a run of ``platforms`` has a variants check of ``spec``: it is on (not
    ``variants = false``) and the image is tested on two platforms or more."""
    return spec.variants and len(variant_platforms(spec, platforms)) >= 2


# ---- normalisation ----------------------------------------------------------------------------


def names_of(platform: Platform) -> ArchNames | None:
    """The architecture-specific names of ``platform``; None for one the harness has no table of
    (nothing of it is normalised then)."""
    return _ARCH_NAMES.get(platform.name)


def normalise_text(text: str, platform: Platform) -> str:
    """``text`` (a path, a link target, an Env value) with the platform's multiarch triplet and
    dynamic loader names replaced by placeholders; ``/lib64/`` and ``/usr/lib64/`` before a
    loader become ``/lib/`` and ``/usr/lib/`` (where amd64 and ppc64le keep their loader)."""
    names = names_of(platform)
    if names is None:
        return text
    text = text.replace(names.triplet, TRIPLET)
    for loader in names.loaders:
        text = text.replace(loader, LOADER)
    for lib64 in _LIB64:
        text = text.replace(f"{lib64}/{LOADER}", f"{lib64.removesuffix('64')}/{LOADER}")
    return text


def normalise_path(path: str, platform: Platform) -> str | None:
    """The path ``path`` of ``platform``'s variant stands for in the comparison; None for one
    whose presence differs by design (``/lib64``, ``/usr/lib64``)."""
    if path in _LIB64:
        return None
    normal = normalise_text(path, platform)
    arch = platform.debian_arch
    if not arch:
        return normal
    if normal.startswith(DPKG_INFO):
        # dpkg's per-package files of Multi-Arch: same packages: libc6:amd64.list
        normal = normal.replace(f":{arch}.", ":<arch>.")
    elif normal.endswith(f"_{arch}.deb"):
        # A package kept in apt's cache: python3_3.11.2-1+b1_amd64.deb
        normal = normal.removesuffix(f"_{arch}.deb") + "_<arch>.deb"
    elif normal.startswith(APT_LISTS):
        # apt's package indexes: ..._dists_bookworm_main_binary-amd64_Packages.lz4
        normal = normal.replace(f"_binary-{arch}_", "_binary-<arch>_")
    return normal


def _is_setarch_alias(path: str, entry: Entry) -> bool:
    return (
        entry.kind == "symlink"
        and posixpath.basename(entry.target) == "setarch"
        and posixpath.basename(path) in SETARCH_ALIASES
    )


def normalise_tree(
    entries: Iterable[tuple[str, Entry]], platform: Platform
) -> tuple[dict[str, Entry], dict[str, str]]:
    """A variant's tree (absolute path, entry) normalised: (normalised path -> entry with its
    link target normalised, normalised path -> the path as the variant has it)."""
    files: dict[str, Entry] = {}
    shown: dict[str, str] = {}
    for path, entry in entries:
        if _is_setarch_alias(path, entry):
            continue
        normal = normalise_path(path, platform)
        if normal is None:
            continue
        target = normalise_text(entry.target, platform) if entry.target else ""
        if entry.kind == "symlink" and posixpath.basename(normal) == LOADER:
            # The loader's own link points at the triplet directory the way each architecture
            # lays it out (../lib/<triplet>/ or <triplet>/): the loader it names is what counts.
            target = posixpath.basename(target)
        if entry.kind == "hardlink":
            target = normalise_path(target, platform) or target
        files[normal] = Entry(entry.kind, entry.mode, entry.uid, entry.gid, target)
        shown[normal] = path
    return files, shown


def normalise_env(env: Sequence[str] | None, platform: Platform) -> dict[str, str]:
    """An image's Env (``NAME=value`` strings) by name, values normalised like paths
    (``LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu`` is one value on every platform)."""
    found: dict[str, str] = {}
    for item in env or ():
        name, _, value = str(item).partition("=")
        found[name] = normalise_text(value, platform)
    return found


# ---- package databases -----------------------------------------------------------------------


def _stanzas(text: str) -> Iterable[dict[str, str]]:
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if not line or line[0] in " \t":
                continue  # a continuation line of a multi-line field
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if fields:
            yield fields


def parse_dpkg_status(text: str, platform: Platform) -> dict[str, str]:
    """Installed packages of a dpkg status file: ``dpkg <name>`` -> version. The Architecture
    field is not compared, but a package of another architecture than the variant's own (a
    foreign architecture added with ``dpkg --add-architecture``) keeps it in its name."""
    found: dict[str, str] = {}
    for fields in _stanzas(text):
        name = fields.get("Package", "")
        status = fields.get("Status", "").split()
        if not name or status[-1:] != ["installed"]:
            continue  # removed with its configuration kept, or half-installed
        arch = fields.get("Architecture", "")
        if arch and arch not in ("all", platform.debian_arch):
            name = f"{name}:{arch}"
        found[f"dpkg {name}"] = fields.get("Version", "")
    return found


def parse_apk_installed(text: str) -> dict[str, str]:
    """Installed packages of apk's database: ``apk <name>`` -> version (the A: field, the
    architecture, is not compared)."""
    found: dict[str, str] = {}
    for fields in _stanzas(text):
        name = fields.get("P", "")
        if name:
            found[f"apk {name}"] = fields.get("V", "")
    return found


def apk_owners(text: str) -> dict[str, str]:
    """The files apk's database says each package installed: absolute path -> ``apk <name>``
    (``F:`` names a directory, the ``R:`` lines after it its files)."""
    found: dict[str, str] = {}
    package = directory = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if not line.strip():
            package = directory = ""
        elif key == "P":
            package = f"apk {value.strip()}"
        elif key == "F" and package:
            directory = "/" + value.strip().strip("/")
            found[directory] = package
        elif key == "R" and package:
            found[posixpath.join(directory or "/", value.strip())] = package
    return found


def dpkg_list_owner(path: str, platform: Platform) -> str | None:
    """The package (``dpkg <name>``, as :func:`parse_dpkg_status` keys it) whose file list is
    ``path`` (``/var/lib/dpkg/info/libc6:amd64.list``); None for any other path."""
    if not path.startswith(DPKG_INFO) or not path.endswith(".list"):
        return None
    name = path[len(DPKG_INFO) : -len(".list")]
    if "/" in name or not name:
        return None
    bare, _, arch = name.partition(":")
    if arch in ("", "all", platform.debian_arch):
        return f"dpkg {bare}"
    return f"dpkg {bare}:{arch}"


def _root_links(entries: Iterable[tuple[str, Entry]]) -> dict[str, str]:
    """Top-level directories that are symlinks (merged /usr: ``/lib`` -> ``/usr/lib``)."""
    found: dict[str, str] = {}
    for path, entry in entries:
        if entry.kind == "symlink" and path.count("/") == 1:
            found[path] = posixpath.normpath(posixpath.join("/", entry.target))
    return found


def _through(path: str, links: Mapping[str, str]) -> str:
    top, sep, rest = path[1:].partition("/")
    target = links.get("/" + top)
    return f"{target}{sep}{rest}" if target is not None and sep else path


# ---- reading a variant from its exported filesystem ------------------------------------------

_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


def read_variant(
    stream: IO[bytes], platform: Platform, config: Mapping[str, Any], *, source: str
) -> Variant:
    """The variant of ``platform`` from its exported filesystem (a tar ``stream``, read once
    from start to end) and its image ``config``; ``source`` names the export in errors."""
    entries: list[tuple[str, Entry]] = []
    databases: dict[str, bytes] = {}
    links: dict[str, str] = {}
    lists: dict[str, bytes] = {}  # dpkg's file lists, by package
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                path = image_path(member.name)
                if path == "/":
                    continue
                kind = _KINDS.get(member.type, "file")
                target = ""
                if member.issym():
                    target = member.linkname
                elif member.islnk():
                    target = image_path(member.linkname)
                entries.append(
                    (path, Entry(kind, member.mode & 0o7777, member.uid, member.gid, target))
                )
                owner = dpkg_list_owner(path, platform) if member.isreg() else None
                if owner is not None:
                    content = archive.extractfile(member)
                    lists[owner] = content.read() if content is not None else b""
                if path in PACKAGE_DATABASES:
                    if member.isreg():
                        content = archive.extractfile(member)
                        databases[path] = content.read() if content is not None else b""
                    elif target:
                        links[path] = target
    except (tarfile.TarError, OSError) as exc:
        raise VariantsError(f"cannot read the exported filesystem {source}: {exc}") from None
    if links:  # a database behind a link: rare enough to read the tar again for it
        databases.update(_read_linked(stream, links, source))
    files, shown = normalise_tree(entries, platform)
    packages: dict[str, str] = {}
    owned: dict[str, str] = {}
    for path, data in databases.items():
        text = data.decode("utf-8", errors="replace")
        if path == DPKG_STATUS:
            packages.update(parse_dpkg_status(text, platform))
        else:
            packages.update(parse_apk_installed(text))
            owned.update(apk_owners(text))
    for owner, data in lists.items():
        for line in data.decode("utf-8", errors="replace").splitlines():
            if line.startswith("/"):
                owned[line] = owner
    root_links = _root_links(entries)
    owners: dict[str, str] = {}
    for path, owner in owned.items():
        normal = normalise_path(_through(path, root_links), platform)
        if normal is not None:
            owners[normal] = owner
    env = config.get("Env")
    return Variant(
        platform,
        config,
        files,
        shown,
        packages,
        normalise_env(env if isinstance(env, list) else None, platform),
        owners,
    )


def _read_linked(stream: IO[bytes], links: Mapping[str, str], source: str) -> dict[str, bytes]:
    wanted = {
        posixpath.normpath(posixpath.join(posixpath.dirname(path), target)): path
        for path, target in links.items()
    }
    found: dict[str, bytes] = {}
    try:
        stream.seek(0)
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                owner = wanted.get(image_path(member.name))
                if owner is not None and member.isreg():
                    content = archive.extractfile(member)
                    found[owner] = content.read() if content is not None else b""
    except (tarfile.TarError, OSError) as exc:
        raise VariantsError(f"cannot read the exported filesystem {source}: {exc}") from None
    return found


# ---- comparison -----------------------------------------------------------------------------


def _grouped(values: Mapping[str, str]) -> str:
    """``a (amd64) vs b (arm64, s390x)``: each value once, with the platforms that have it."""
    by_value: dict[str, list[str]] = {}
    for short, value in values.items():
        by_value.setdefault(value, []).append(short)
    return " vs ".join(f"{value} ({', '.join(shorts)})" for value, shorts in by_value.items())


def _config_value(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "unset"
    if isinstance(value, dict):
        return ", ".join(sorted(str(key) for key in value)) or "unset"
    if isinstance(value, list):
        return "[" + ", ".join(repr(str(part)) for part in value) + "]"
    return repr(str(value)) if value != "" else "unset"


def _compare_config(variants: Sequence[Variant], ignore: Ignore) -> list[str]:
    found: list[str] = []
    names = sorted({name for v in variants for name in v.env})
    for name in names:
        if ignore.env_name(name):
            continue
        own = {v.platform.short: v.env.get(name) for v in variants}
        if len(set(own.values())) > 1:
            shown = {short: "unset" if value is None else value for short, value in own.items()}
            found.append(f"Env {name}: {_grouped(shown)}")
    for field_name in VARIANT_CONFIG_FIELDS:
        if field_name in ("Env", "Labels") or field_name in ignore.config:
            continue
        values = {v.platform.short: _config_value(v.config.get(field_name)) for v in variants}
        if len(set(values.values())) > 1:
            found.append(f"{field_name}: {_grouped(values)}")
    if "Labels" not in ignore.config:
        labels = [v.config.get("Labels") or {} for v in variants]
        for label in sorted({str(key) for found_labels in labels for key in found_labels}):
            if ignore.label(label):
                continue
            values = {
                v.platform.short: str(own[label]) if label in own else "unset"
                for v, own in zip(variants, labels, strict=True)
            }
            if len(set(values.values())) > 1:
                found.append(f"Label {label}: {_grouped(values)}")
    return found


def _only_on(present: Sequence[Variant], every: Sequence[Variant]) -> str:
    if len(present) * 2 > len(every) and len(every) > 2:
        missing = [v.platform.name for v in every if v not in present]
        return f"missing on {', '.join(missing)}"
    return f"only on {', '.join(v.platform.name for v in present)}"


def _compare_files(variants: Sequence[Variant], ignore: Ignore) -> list[str]:
    found: list[str] = []
    # A directory on some platforms only is one difference, not one per entry under it.
    absent_dirs: dict[str, tuple[str, ...]] = {}
    line_of: dict[str, int] = {}
    hidden: dict[str, int] = {}
    for path in sorted({path for v in variants for path in v.files}):
        present = [v for v in variants if path in v.files]
        shown = present[0].shown[path]
        if ignore.path(shown) or ignore.path(path):
            continue
        if len(present) < len(variants):
            if _packaged_everywhere(path, present, variants):
                continue
            where = tuple(v.platform.name for v in present)
            parent = _covering(path, absent_dirs, where)
            if parent is not None:
                hidden[parent] = hidden.get(parent, 0) + 1
                continue
            if {v.files[path].kind for v in present} == {"dir"}:
                absent_dirs[path] = where
                line_of[path] = len(found)
            found.append(f"{_only_on(present, variants)}: {shown}")
            continue
        entries = {v.platform.short: v.files[path] for v in variants}
        for label, attribute in _ATTRIBUTES:
            values = {short: attribute(entry) for short, entry in entries.items()}
            if len(set(values.values())) > 1:
                found.append(f"{shown}: {label} {_grouped(values)}")
                if label == "type":
                    break  # a file and a directory differ in everything else too
    for directory, count in hidden.items():
        found[line_of[directory]] += f" (and {count} entries under it)"
    return found


_ATTRIBUTES: tuple[tuple[str, Callable[[Entry], str]], ...] = (
    ("type", lambda e: e.kind),
    ("mode", lambda e: f"{e.mode:04o}"),
    ("owner", lambda e: f"{e.uid}:{e.gid}"),
    ("link target", lambda e: e.target or "none"),
)


def _packaged_everywhere(path: str, present: Sequence[Variant], every: Sequence[Variant]) -> bool:
    """Whether ``path`` was installed by a package that every variant has: which files a
    package installs is its own per-architecture business (glibc's libmvec on amd64 only,
    perl's headers); the package lists are compared on their own."""
    for variant in present:
        owner = variant.owners.get(path)
        if owner is None or any(owner not in other.packages for other in every):
            return False
    return True


def _covering(
    path: str, absent_dirs: Mapping[str, tuple[str, ...]], where: tuple[str, ...]
) -> str | None:
    parent = posixpath.dirname(path)
    while parent not in ("/", ""):
        if absent_dirs.get(parent) == where:
            return parent
        parent = posixpath.dirname(parent)
    return None


def _compare_packages(variants: Sequence[Variant], ignore: Ignore) -> list[str]:
    found: list[str] = []
    for key in sorted({key for v in variants for key in v.packages}):
        manager, _, name = key.partition(" ")
        if ignore.package(name):
            continue
        present = [v for v in variants if key in v.packages]
        if len(present) < len(variants):
            versions = sorted({v.packages[key] for v in present})
            found.append(
                f"{_only_on(present, variants)}: package {name} {', '.join(versions)} ({manager})"
            )
            continue
        values = {v.platform.short: v.packages[key] for v in variants}
        if len(set(values.values())) > 1:
            found.append(f"package {name} ({manager}): {_grouped(values)}")
    return found


def compare_variants(variants: Sequence[Variant], ignore: Ignore) -> list[str]:
    """Every difference between ``variants`` not allowed by ``ignore``, one line each: config
    first, then files, then packages. Empty when they compare clean."""
    if len(variants) < 2:
        return []
    return [
        *_compare_config(variants, ignore),
        *_compare_files(variants, ignore),
        *_compare_packages(variants, ignore),
    ]


def shown_differences(differences: Sequence[str], limit: int = SHOWN_DIFFERENCES) -> list[str]:
    """At most ``limit`` differences, then a line saying how many more there are."""
    if len(differences) <= limit:
        return list(differences)
    return [*differences[:limit], f"... and {len(differences) - limit} more"]


__all__ = [
    "APK_INSTALLED",
    "DPKG_STATUS",
    "Entry",
    "Ignore",
    "Variant",
    "VariantsError",
    "checks_variants",
    "compare_variants",
    "normalise_env",
    "normalise_path",
    "normalise_text",
    "normalise_tree",
    "parse_apk_installed",
    "parse_dpkg_status",
    "read_variant",
    "shown_differences",
    "variant_platforms",
]
