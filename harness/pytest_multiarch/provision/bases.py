"""Offline base images: Debian and BusyBox root filesystems made from Debian packages, built
per platform and pushed to the local registry mirror as multi-platform images.

With the engine using that registry as a mirror, an unchanged ``FROM debian:bookworm-slim``
resolves offline, for every seeded platform. Root filesystem tarballs are cached on disk, so a
second seeding only rebuilds and pushes tiny images.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_multiarch.core.commands import Log, run_command
from pytest_multiarch.core.errors import CommandError, MultiarchError
from pytest_multiarch.core.paths import cache_dir
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.core.retry import RetryHook, retrying
from pytest_multiarch.engine.docker import docker
from pytest_multiarch.provision.aptsource import apt_download, configured_sources
from pytest_multiarch.publish.registry import listed_platforms

SEED_NAMESPACE = "multiarch-seed"


@dataclass(frozen=True)
class BaseImage:
    """An image the mirror serves: ``library/<name>`` under several tags."""

    key: str
    repository: str
    tags: tuple[str, ...]
    default_command: str

    def supports(self, platform: Platform) -> str:
        """Empty when this base can be made for ``platform``, else why not."""
        if self.key == "debian" and platform.debian_arch == "riscv64":
            return "Debian bookworm has no riscv64 release (the upstream image has none either)"
        return ""


BASE_IMAGES: dict[str, BaseImage] = {
    "debian": BaseImage(
        "debian", "library/debian", ("bookworm-slim", "bookworm", "12-slim", "12"), "bash"
    ),
    "busybox": BaseImage("busybox", "library/busybox", ("latest", "1.35", "stable"), "sh"),
}


def suite_for(platform: Platform) -> str:
    # riscv64 became a Debian release architecture with trixie.
    return "trixie" if platform.debian_arch == "riscv64" else "bookworm"


def rootfs_tarball(base: BaseImage, platform: Platform, log: Log) -> Path:
    """The cached root filesystem tarball of ``base`` for ``platform``, made when missing."""
    target = cache_dir() / "rootfs" / f"{base.key}-{suite_for(platform)}-{platform.debian_arch}.tar"
    if target.exists() and target.stat().st_size > 0:
        log(f"  cached rootfs {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    if base.key == "debian":
        _debian_rootfs(platform, partial, log)
    else:
        _busybox_rootfs(platform, partial, log)
    partial.replace(target)
    return target


def _debian_rootfs(platform: Platform, out: Path, log: Log) -> None:
    suite = suite_for(platform)
    sources = configured_sources()
    main = sources.for_suite(suite)
    lines = [f"deb {main.uri} {suite} main", f"deb {main.uri} {suite}-updates main"]
    security = sources.security_uri()
    log(f"  mmdebstrap --variant=minbase --arch={platform.debian_arch} {suite} (a minute or two)")
    if security and suite == "bookworm":
        with_security = [*lines, f"deb {security} {suite}-security main"]
        try:
            retrying(
                lambda: _mmdebstrap(platform, suite, out, with_security),
                attempts=2,
                on_retry=logged_retry(log),
            )
            return
        except CommandError as exc:
            # Seen here: a security index for one architecture stuck with a size mismatch for
            # hours. A base without the security suite still serves offline tests.
            log(
                f"  {suite}-security is unusable for {platform.debian_arch} "
                f"({_last_error(exc)}); building without security updates"
            )
    retrying(lambda: _mmdebstrap(platform, suite, out, lines), on_retry=logged_retry(log))


def _last_error(exc: CommandError) -> str:
    errors = [line.strip() for line in exc.stderr.splitlines() if line.strip().startswith("E:")]
    return errors[0][:160] if errors else f"exit {exc.returncode}"


def _mmdebstrap(platform: Platform, suite: str, out: Path, sources: Sequence[str]) -> None:
    run_command(
        [
            "mmdebstrap",
            "--variant=minbase",
            f"--arch={platform.debian_arch}",
            "--format=tar",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--customize-hook=rm -rf $1/var/cache/apt/*.bin $1/var/lib/apt/lists/*",
            suite,
            str(out),
            *sources,
        ],
        timeout=1800,
        hint="mmdebstrap needs the Debian package mirror and, for a foreign platform, its "
        "QEMU handler (`multiarch doctor`)",
    )


def logged_retry(log: Log) -> RetryHook:
    """A retry hook that says which attempt failed, why (first line) and how long it waits."""

    def report(attempt: int, error: BaseException, pause: float) -> None:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        log(f"  attempt {attempt} failed ({first[:120]}); retrying in {pause:g}s")

    return report


def _busybox_rootfs(platform: Platform, out: Path, log: Log) -> None:
    suite = suite_for(platform)
    log(f"  busybox-static:{platform.debian_arch} from {suite}")
    with tempfile.TemporaryDirectory(prefix="multiarch-busybox-") as tmp:
        deb = apt_download("busybox-static", platform.debian_arch, suite, Path(tmp))
        unpacked = Path(tmp) / "root"
        run_command(["dpkg-deb", "-x", str(deb), str(unpacked)], timeout=120)
        binary = unpacked / "bin" / "busybox"
        if not binary.exists():
            raise MultiarchError(f"{deb.name} has no bin/busybox")
        applets = _busybox_applets()
        _write_busybox_tar(binary.read_bytes(), applets, out)


def _busybox_applets() -> list[str]:
    # The applet list is the same for every architecture of one busybox-static version, so the
    # host's native copy answers for all of them without emulation.
    host = shutil.which("busybox") or "/bin/busybox"
    result = run_command([host, "--list-full"], timeout=30, hint="apt-get install busybox-static")
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _write_busybox_tar(binary: bytes, applets: Sequence[str], out: Path) -> None:
    def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        tar.addfile(info)

    def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(out, "w") as tar:
        for directory in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "var"):
            add_dir(tar, directory)
        add_dir(tar, "home")
        add_dir(tar, "tmp", 0o1777)
        add_dir(tar, "var/tmp", 0o1777)
        add_file(tar, "bin/busybox", binary, 0o755)
        add_file(
            tar,
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        seen = {"bin/busybox"}
        for applet in applets:
            path = applet.lstrip("/")
            if path in seen or "/" not in path:
                continue
            seen.add(path)
            link = tarfile.TarInfo(path)
            link.type = tarfile.SYMTYPE
            link.linkname = "/bin/busybox"
            tar.addfile(link)


@dataclass(frozen=True)
class SeedResult:
    image: str
    built: tuple[str, ...]
    reused: tuple[str, ...]
    unsupported: tuple[str, ...]


def index_platforms(reference: str) -> set[str]:
    """The platforms of the manifest list at ``reference`` (empty when there is none)."""
    return listed_platforms(reference) or set()


@dataclass(frozen=True)
class SeedState:
    """What the registry serves of ``base`` now, found without changing anything."""

    image: str
    wanted: tuple[Platform, ...]
    missing: tuple[Platform, ...]  # wanted, but absent from the index of some tag
    unsupported: tuple[str, ...]
    present: frozenset[str]  # platform names in the index of the first tag

    @property
    def complete(self) -> bool:
        return bool(self.wanted) and not self.missing


def seed_state(base: BaseImage, platforms: Sequence[Platform], registry: str) -> SeedState:
    wanted = tuple(p for p in platforms if not base.supports(p))
    unsupported = tuple(f"{p.short}: {base.supports(p)}" for p in platforms if base.supports(p))
    main_ref = f"{registry}/{base.repository}:{base.tags[0]}"
    present = index_platforms(main_ref)
    in_every_tag = set(present)
    for tag in base.tags[1:]:
        if not {p.name for p in wanted} & in_every_tag:
            break  # already incomplete: asking the other tags changes nothing
        in_every_tag &= index_platforms(f"{registry}/{base.repository}:{tag}")
    missing = tuple(p for p in wanted if p.name not in in_every_tag)
    return SeedState(main_ref, wanted, missing, unsupported, frozenset(present))


def seed_base(
    base: BaseImage,
    platforms: Sequence[Platform],
    registry: str,
    log: Log,
    state: SeedState | None = None,
) -> SeedResult:
    """Make ``registry/<base.repository>:<tags>`` a manifest list covering ``platforms``.
    ``state`` is what :func:`seed_state` found just before, when the caller asked already."""
    state = state or seed_state(base, platforms, registry)
    wanted, unsupported, main_ref = state.wanted, state.unsupported, state.image
    present = state.present
    if state.complete:
        return SeedResult(main_ref, (), tuple(p.short for p in wanted), unsupported)
    built: list[str] = []
    reused: list[str] = []
    sources: list[str] = []
    seed_repo = f"{registry}/{SEED_NAMESPACE}/{base.key}"
    for plat in wanted:
        per_platform = f"{seed_repo}:{base.tags[0]}-{plat.short}"
        if run_command(
            docker("buildx", "imagetools", "inspect", per_platform), timeout=60, check=False
        ).ok:
            reused.append(plat.short)
        else:
            tarball = rootfs_tarball(base, plat, log)
            _build_and_push(base, plat, tarball, per_platform, log)
            built.append(plat.short)
        sources.append(per_platform)
    # Keep platforms seeded earlier that this call did not ask for.
    for name in sorted(present - {p.name for p in wanted}):
        short = name.removeprefix("linux/").replace("/", "-")
        sources.append(f"{seed_repo}:{base.tags[0]}-{short}")
    # One tag at a time: docker-registry's filesystem store answered 500 when imagetools
    # pushed several tags of a new repository at once (seen on a fresh machine).
    for index, tag in enumerate(base.tags):
        command = docker(
            "buildx",
            "imagetools",
            "create",
            "-t",
            f"{registry}/{base.repository}:{tag}",
            *(sources if index == 0 else [main_ref]),
        )
        retrying(functools.partial(_create_index, command, registry), on_retry=logged_retry(log))
    refresh_local_copies(base)
    return SeedResult(main_ref, tuple(built), tuple(reused), unsupported)


def _create_index(command: list[str], registry: str) -> None:
    run_command(
        command,
        timeout=120,
        hint=f"is the local registry at {registry} running? (`multiarch host up`)",
    )


def refresh_local_copies(base: BaseImage) -> None:
    """Pull again every tag of ``base`` the engine already holds: BuildKit resolves ``FROM``
    against that local copy of the manifest list, which would still lack the new platforms."""
    name = base.repository.removeprefix("library/")
    for tag in base.tags:
        reference = f"{name}:{tag}"
        if run_command(docker("image", "inspect", reference), timeout=60, check=False).ok:
            run_command(docker("pull", "--quiet", reference), timeout=600, check=False)


def _build_and_push(
    base: BaseImage, platform: Platform, tarball: Path, reference: str, log: Log
) -> None:
    log(f"  building {reference} ({platform.name})")
    with tempfile.TemporaryDirectory(prefix="multiarch-seed-") as tmp:
        context = Path(tmp)
        if tarball.stat().st_dev == context.stat().st_dev:
            os.link(tarball, context / "rootfs.tar")
        else:
            shutil.copy(tarball, context / "rootfs.tar")
        (context / "Dockerfile").write_text(
            f'FROM scratch\nADD rootfs.tar /\nCMD ["{base.default_command}"]\n'
        )
        run_command(
            docker(
                "buildx",
                "build",
                "--platform",
                platform.name,
                "--provenance=false",
                "--load",
                "-t",
                reference,
                str(context),
            ),
            timeout=600,
        )
    run_command(docker("push", "--quiet", reference), timeout=600)
    # The registry holds it now; the engine's copy would only clutter `docker image ls`.
    run_command(docker("image", "rm", reference), timeout=120, check=False)


def seedable(names: Sequence[str]) -> list[BaseImage]:
    unknown = [n for n in names if n not in BASE_IMAGES]
    if unknown:
        raise MultiarchError(
            f"unknown base image(s) {', '.join(unknown)}: known are {', '.join(BASE_IMAGES)}"
        )
    return [BASE_IMAGES[n] for n in names]
