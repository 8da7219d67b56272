"""``multiarch doctor``: can each requested platform be built and run here, and if not, why."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pytest_multiarch.core.commands import run_command
from pytest_multiarch.core.emulation import check_emulator
from pytest_multiarch.core.errors import (
    CommandError,
    ConfigError,
    EngineUnavailable,
    MultiarchError,
)
from pytest_multiarch.core.images import IMAGE_TOML, survey_images
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.engine.buildx import buildx_info, inspect_builder
from pytest_multiarch.engine.docker import EngineInfo, docker, engine_info
from pytest_multiarch.engine.endpoints import EngineRef, endpoint_hostname
from pytest_multiarch.engine.podman import (
    INSTALL_HINT,
    MINIMUM_VERSION,
    podman,
    podman_binary,
    podman_url,
    too_old,
)
from pytest_multiarch.engine.probe import cli_run, probe_uname
from pytest_multiarch.engine.resolve import resolve_engine
from pytest_multiarch.publish.registry import listed_platforms

if TYPE_CHECKING:
    from pytest_multiarch.runtime.builders import BuilderRef

CheckStatus = Literal["ok", "fail", "warn"]
PROBE_IMAGE = os.environ.get("MULTIARCH_PROBE_IMAGE", "busybox:latest")
BASE_REFERENCES = ("debian:bookworm-slim", "busybox:latest")
PROBE_LABEL = "pytest-multiarch.probe"


@dataclass(frozen=True)
class Check:
    name: str
    platform: str  # "" for host-wide checks
    status: CheckStatus
    detail: str
    remedy: str = ""


def _engine_checks() -> tuple[list[Check], EngineInfo | None]:
    try:
        info = engine_info(timeout=10)
    except EngineUnavailable as exc:
        return [Check("engine", "", "fail", str(exc), "multiarch host up")], None
    checks = [
        Check(
            "engine",
            "",
            "ok",
            f"{info.name} (API {info.api_version}), {info.image_store} image store"
            + (f", mirrors {', '.join(info.registry_mirrors)}" if info.registry_mirrors else ""),
        )
    ]
    if info.kind == "podman":
        return checks + podman_checks(info, "", None), info
    checks.append(
        _buildx_check("", None, "", "multiarch host up (installs Debian's docker-buildx)")
    )
    return checks, info


def _buildx_check(names: str, ref: EngineRef | None, which: str, remedy: str) -> Check:
    """buildx and the builder it uses for engine ``ref`` (None: the default engine)."""
    try:
        bx = buildx_info(timeout=20, engine=ref)
    except CommandError as exc:
        return Check(
            "buildx",
            names,
            "fail",
            f"docker buildx unusable{which} (exit {exc.returncode})",
            remedy,
        )
    described = f"buildx {bx.version}, builder {bx.builder.name} ({bx.builder.driver})"
    return Check("buildx", names, "ok", described)


def podman_checks(info: EngineInfo, names: str, ref: EngineRef | None) -> list[Check]:
    """A Podman engine: its version, rootless or not, the podman client that builds on it
    (buildx cannot: Podman has no BuildKit), and its API (a container-less call)."""
    where = ref.spec if ref is not None else "the default engine"
    if too_old(info.version):
        wanted = ".".join(str(part) for part in MINIMUM_VERSION)
        return [
            Check(
                "podman",
                names,
                "fail",
                f"Podman {info.version} at {where} is older than {wanted}, which builds for a "
                "platform need",
                INSTALL_HINT,
            )
        ]
    mode = "rootless" if info.rootless else "rootful (root's service)"
    checks = [Check("podman", names, "ok", f"Podman {info.version}, {mode}, at {where}")]
    client = podman_binary()
    if client is None:
        checks.append(
            Check(
                "build",
                names,
                "fail",
                "the podman client is not installed: builds on Podman go through `podman build`",
                INSTALL_HINT,
            )
        )
        return checks
    try:
        url = podman_url(ref)
        answered = run_command(
            podman("version", "--format", "{{.Server.Version}}", url=url), timeout=20
        )
    except (CommandError, ConfigError) as exc:
        checks.append(
            Check(
                "build",
                names,
                "fail",
                f"`podman --url` does not reach {where}: {str(exc).splitlines()[0]}",
                "check that the API service runs (`multiarch host up --podman`)",
            )
        )
        return checks
    checks.append(
        Check(
            "build",
            names,
            "ok",
            f"podman build (client {client}, server {answered.stdout.strip()}); buildx is not "
            "used on Podman",
        )
    )
    return checks


def _base_sources(info: EngineInfo) -> dict[str, tuple[str, set[str]]]:
    """For each base reference: where it comes from and which platforms it has."""
    available: dict[str, tuple[str, set[str]]] = {}
    for reference in BASE_REFERENCES:
        public = listed_platforms(reference, timeout=30)
        if public is not None:
            available[reference] = ("registry", public)
            continue
        for mirror in info.registry_mirrors:
            host = mirror.split("://", 1)[-1].rstrip("/")
            name, _, tag = reference.partition(":")
            mirrored = listed_platforms(f"{host}/library/{name}:{tag}", timeout=30)
            if mirrored is not None:
                available[reference] = (f"mirror {host}", mirrored)
                break
    return available


def _probe(platform: Platform, engine: EngineRef | None = None, *, podman: bool = False) -> Check:
    # Podman runs a local image of the reference's name whatever its architecture, the one of
    # the last pull (containers/podman#12682): on Podman the probe pulls for its platform.
    run = cli_run(
        PROBE_IMAGE,
        platform,
        timeout=90,
        engine=engine,
        labels={PROBE_LABEL: "1"},
        pull="always" if podman else "missing",
    )
    failed = f"`docker run --platform {platform.name} {PROBE_IMAGE} uname -m` failed"
    try:
        found = probe_uname(run, f"{PROBE_IMAGE} ({platform.name})")
    except CommandError as exc:  # no docker CLI, or it did not finish
        return Check("probe", platform.short, "fail", str(exc).splitlines()[0], "multiarch host up")
    except MultiarchError as exc:
        return Check(
            "probe",
            platform.short,
            "fail",
            f"{failed}: {str(exc).splitlines()[-1]}",
            f"multiarch host up --platforms {platform.short}",
        )
    if found is None:
        return Check(
            "probe",
            platform.short,
            "fail",
            f"{failed}: {PROBE_IMAGE} has no uname to ask",
            "set MULTIARCH_PROBE_IMAGE to an image with uname (busybox:latest has one)",
        )
    answer = found.strip()
    problem = platform.machine_problem(answer, f"{PROBE_IMAGE} for {platform.name}")
    if not problem:
        return Check("probe", platform.short, "ok", f"{PROBE_IMAGE} answered uname -m = {answer}")
    return Check(
        "probe",
        platform.short,
        "fail",
        problem,
        f"check that {PROBE_IMAGE} has a {platform.name} variant",
    )


def _reaper_check() -> Check:
    try:
        from testcontainers.core.config import testcontainers_config
    except ImportError:
        return Check("reaper", "", "warn", "testcontainers is not installed")
    image = str(testcontainers_config.ryuk_image)
    present = run_command(docker("image", "inspect", image), timeout=20, check=False).ok
    if present:
        return Check("reaper", "", "ok", f"{image} is available locally")
    return Check(
        "reaper",
        "",
        "warn",
        f"{image} is not available (it cannot be pulled offline); the plugin runs without Ryuk "
        "and removes its containers by label itself",
    )


def run_doctor(
    platforms: Sequence[Platform],
    *,
    probe: bool = True,
    engines: Mapping[str, Sequence[EngineRef]] | None = None,
    builders: Mapping[str, BuilderRef] | None = None,
    images_dir: Path | None = None,
) -> list[Check]:
    """The checks of the default engine and of ``platforms`` on it, then of every engine that
    ``engines`` (platform name -> its pool of engines, usually one) maps a platform to, and of
    those platforms there: every engine of a pool, since any of them may run its tests. Then
    of the buildx builder that ``builders`` (platform name -> builder) names for each; first,
    the ``image.toml`` of every image under ``images_dir``."""
    pools = {name: tuple(pool) for name, pool in (engines or {}).items() if pool}
    # The platforms that run (also) on the default engine, and each one's other engines.
    on_default = [
        p for p in platforms if p.name not in pools or any(r.is_default for r in pools[p.name])
    ]
    mapped = [
        (plat, ref) for plat in platforms for ref in pools.get(plat.name, ()) if not ref.is_default
    ]
    image_checks = image_toml_checks(images_dir) if images_dir is not None else []
    checks, info = _engine_checks()
    checks = image_checks + checks + _mirror_checks(info)
    bases = _base_sources(info) if info is not None else {}
    for plat in on_default:
        status = check_emulator(plat)
        if status.native:
            checks.append(Check("emulator", plat.short, "ok", "native"))
        elif status.usable:
            checks.append(Check("emulator", plat.short, "ok", status.summary))
        else:
            checks.append(Check("emulator", plat.short, "fail", status.problem, status.remedy))
        if info is None:
            checks.append(
                Check(
                    "probe",
                    plat.short,
                    "fail",
                    "skipped: the engine is not reachable",
                    "multiarch host up",
                )
            )
        elif probe and status.usable:
            checks.append(_probe(plat, podman=info.kind == "podman"))
        for reference in BASE_REFERENCES:
            if info is None:
                continue
            source = bases.get(reference)
            if source is None:
                checks.append(
                    Check(
                        "base",
                        plat.short,
                        "warn",
                        f"{reference} cannot be pulled",
                        "offline: multiarch host up (seeds the local mirror)",
                    )
                )
            elif source[1] and plat.name not in source[1]:
                checks.append(
                    Check(
                        "base",
                        plat.short,
                        "warn",
                        f"{reference} from {source[0]} has no {plat.name} variant",
                        f"multiarch host up --platforms {plat.short}",
                    )
                )
            else:
                checks.append(Check("base", plat.short, "ok", f"{reference} from {source[0]}"))
    checks += _mapped_engine_checks(mapped, probe)
    named = {name: ref for name, ref in (builders or {}).items() if ref.name}
    for plat in [p for p in platforms if p.name in named]:
        # A builder's platform has one engine (a pool with a builder is a usage error).
        first = pools.get(plat.name, (None,))[0]
        there = replace(plat, engine=first.spec) if first and not first.is_default else plat
        checks += _builder_checks(there, named[plat.name])
    if info is not None:
        checks.append(_reaper_check())
    return checks


def _mirror_checks(info: EngineInfo | None) -> list[Check]:
    """What each registry mirror of the engine holds: offline, the only base images there are."""
    from pytest_multiarch.runtime.offline import mirror_holdings

    checks = []
    for mirror in info.registry_mirrors if info is not None else ():
        holdings = mirror_holdings(mirror)
        listed = not holdings.startswith("cannot")
        checks.append(
            Check(
                "mirror",
                "",
                "ok" if listed else "warn",
                f"{mirror.rstrip('/')} {holdings}",
                "" if listed else "offline: multiarch host up (starts and seeds the mirror)",
            )
        )
    return checks


def image_toml_checks(root: Path) -> list[Check]:
    """One check per image directory under ``root``: its ``image.toml`` (and name) valid, or
    why not. Nothing when there is no such directory."""
    found, broken = survey_images(root)
    checks = []
    for name in sorted({*found, *broken}):
        if name in broken:
            remedy = f"fix {root / name / IMAGE_TOML}; until then the image's tests fail"
            checks.append(Check("image", "", "fail", broken[name], remedy))
        else:
            checks.append(Check("image", "", "ok", f"{name}: {found[name].directory} is valid"))
    return checks


def _mapped_engine_checks(mapped: Sequence[tuple[Platform, EngineRef]], probe: bool) -> list[Check]:
    """Each mapped engine once (reachable, version, image store, architecture, buildx), then its
    platforms on it (``mapped``: a platform and one engine of its pool, per pair): native or
    emulated there, and a probe container there. Of a remote machine, only what its engine
    tells can be checked from here: its binfmt_misc handlers and registry settings cannot be
    read, so the probe is what shows that a platform runs there."""
    checks: list[Check] = []
    by_engine: dict[str, list[Platform]] = {}
    for plat, engine in mapped:
        by_engine.setdefault(engine.spec, []).append(plat)
    for spec, plats in by_engine.items():
        ref = EngineRef(spec)
        names = ",".join(p.short for p in plats)
        try:
            found = resolve_engine(ref, "the engine map", os.environ, timeout=10)
        except ConfigError as exc:
            remedy = f"docker context create {spec} --docker host=ssh://USER@MACHINE"
            checks.append(Check("engine", names, "fail", str(exc), remedy))
            continue
        if found.problem:
            remedy = (
                f"start the engine on that machine, or fix the mapping; check with "
                f"`docker {' '.join(ref.cli_flags())} info`"
            )
            checks.append(
                Check("engine", names, "fail", f"{found.describe()}: {found.problem}", remedy)
            )
            continue
        machine = "this machine" if found.is_local else endpoint_hostname(found.host)
        kind = "Podman" if found.kind == "podman" else "Docker"
        checks.append(
            Check(
                "engine",
                names,
                "ok",
                f"{found.describe()}: {kind} {found.version}, {found.image_store} image store, "
                f"{found.architecture} on {machine}",
            )
        )
        if found.kind == "podman":
            try:
                info = engine_info(timeout=10, engine=ref)
            except EngineUnavailable as exc:
                checks.append(Check("podman", names, "fail", str(exc), INSTALL_HINT))
                continue
            checks += podman_checks(info, names, ref)
            for plat in plats:
                there = replace(plat, engine=spec, emulated=found.architecture != plat.uname)
                checks.append(
                    _mapped_emulator_check(there, found.architecture, found.is_local, ref)
                )
                if probe:
                    checks.append(_probe(there, ref, podman=True))
            continue
        checks.append(
            _buildx_check(
                names,
                ref,
                f" for engine {spec}",
                "install the buildx plugin here (Debian package docker-buildx)",
            )
        )
        for plat in plats:
            there = replace(plat, engine=spec, emulated=found.architecture != plat.uname)
            checks.append(_mapped_emulator_check(there, found.architecture, found.is_local, ref))
            if probe:
                checks.append(_probe(there, ref))
    return checks


def _mapped_emulator_check(plat: Platform, architecture: str, local: bool, ref: EngineRef) -> Check:
    if not plat.emulated:
        return Check("emulator", plat.short, "ok", f"native on {ref.label} ({architecture})")
    if local:  # an engine on this machine runs this machine's emulators
        status = check_emulator(plat)
        if status.usable:
            return Check("emulator", plat.short, "ok", f"{status.summary} (engine {ref.label})")
        return Check("emulator", plat.short, "fail", status.problem, status.remedy)
    return Check(
        "emulator",
        plat.short,
        "warn",
        f"emulated on {ref.label} ({architecture}): that machine's binfmt_misc cannot be read "
        "from here; the probe shows whether the platform runs there",
        f"on that machine: `multiarch host up --platforms {plat.short}` (or install "
        "qemu-user-static and binfmt-support)",
    )


def _builder_checks(plat: Platform, ref: BuilderRef) -> list[Check]:
    """The builder named for ``plat``: it exists, its driver can get the images into the engine
    that runs ``plat`` (or they travel through a registry that answers), and whether ``plat``
    is among the platforms its nodes list (natively or emulated)."""
    from pytest_multiarch.engine.endpoints import engine_of
    from pytest_multiarch.runtime.builders import plan_builder

    where = "the builder map"
    try:
        info = inspect_builder(ref.name, engine_of(plat))
    except CommandError as exc:
        lines = (exc.stderr.strip() or exc.stdout.strip() or str(exc)).splitlines()
        return [
            Check(
                "builder",
                plat.short,
                "fail",
                f"no buildx builder {ref.name!r}: {lines[-1] if lines else exc}",
                f"`docker buildx ls` lists the builders; a Docker context is one (`docker "
                f"context create {ref.name} --docker host=...`), others come from `docker "
                f"buildx create --name {ref.name} ...`",
            )
        ]

    start_it = f"start the builder's engine (`docker --context {ref.name} info`)"
    if info.error:
        return [Check("builder", plat.short, "fail", f"{ref.name}: {info.error}", start_it)]

    def running_engine_id() -> str:
        try:
            return engine_info(timeout=10, engine=engine_of(plat)).id
        except EngineUnavailable:
            return ""

    try:
        facts = plan_builder(ref, info, plat, where, running_engine_id=running_engine_id)
    except ConfigError as exc:
        remedy = (
            f'give the builder a registry: {plat.short} = {{ builder = "{ref.name}", registry '
            '= "127.0.0.1:5000/multiarch-transfer" }'
            if info.driver != "docker"
            else start_it
        )
        return [Check("builder", plat.short, "fail", str(exc), remedy)]
    if facts.problem:
        return [Check("builder", plat.short, "fail", facts.problem, start_it)]
    checks = [Check("builder", plat.short, "ok", facts.describe())]
    if facts.delivery == "registry":
        checks.append(_registry_check(plat, facts.registry))
    if not info.platforms:
        status = ", ".join(f"{node.name} {node.status}" for node in info.nodes) or "no nodes"
        checks.append(
            Check(
                "builder-platform",
                plat.short,
                "warn",
                f"builder {ref.name!r} lists no platforms yet ({status}): it has not been started",
                f"`docker buildx inspect --bootstrap {ref.name}` starts it and lists them",
            )
        )
    else:
        checks.append(_builder_platform_check(plat, info.platforms, facts.context))
    return checks


def _registry_check(plat: Platform, registry: str) -> Check:
    """The registry a builder's images travel through answers its API (``/v2/``)."""
    import urllib.error
    import urllib.request

    from pytest_multiarch.runtime.builders import is_loopback

    host = registry.split("/", 1)[0]
    url = f"{'http' if is_loopback(registry) else 'https'}://{host}/v2/"
    try:
        with urllib.request.urlopen(url, timeout=10):  # noqa: S310 - a registry's own URL
            pass
    except urllib.error.HTTPError as exc:
        if exc.code != 401:  # 401: it answers, and wants a login (docker login {host})
            return Check(
                "registry",
                plat.short,
                "fail",
                f"{url} answered {exc.code}",
                f"check the registry address {registry}",
            )
    except (urllib.error.URLError, OSError) as exc:
        return Check(
            "registry",
            plat.short,
            "fail",
            f"{url} did not answer: {exc}",
            f"start the registry at {host}, or name another in [tool.multiarch.builders]",
        )
    return Check("registry", plat.short, "ok", f"{registry} answers ({url})")


def _builder_platform_check(plat: Platform, listed: Sequence[str], context: str) -> Check:
    if plat.name not in listed:
        return Check(
            "builder-platform",
            plat.short,
            "warn",
            f"{plat.name} is not among the builder's platforms ({', '.join(listed) or 'none'}): "
            "its RUN steps need an emulator on the builder's machine",
            f"on the builder's machine: `multiarch host up --platforms {plat.short}` (QEMU), or "
            "add a node of that platform (`docker buildx create --append ...`)",
        )
    how = "listed"
    if context:  # a docker-driver builder: its engine tells its machine
        try:
            machine = engine_info(timeout=10, engine=EngineRef(context)).architecture
            how = "native" if machine == plat.uname else f"emulated on {machine}"
        except EngineUnavailable:
            pass
    return Check("builder-platform", plat.short, "ok", f"{plat.name} {how}")


def doctor_ok(checks: Sequence[Check]) -> bool:
    return all(check.status != "fail" for check in checks)


def format_table(checks: Sequence[Check]) -> str:
    rows = [("CHECK", "PLATFORM", "STATUS", "DETAIL")]
    rows += [(c.name, c.platform or "-", c.status.upper(), c.detail) for c in checks]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row, check in zip(rows, [None, *checks], strict=True):
        lines.append(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        )
        if check is not None and check.remedy and check.status != "ok":
            lines.append(" " * (sum(widths) + 6) + f"remedy: {check.remedy}")
    return "\n".join(lines)


def to_json(checks: Sequence[Check]) -> str:
    return json.dumps(
        {"ok": doctor_ok(checks), "checks": [asdict(check) for check in checks]}, indent=2
    )
