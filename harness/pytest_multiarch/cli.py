"""The ``multiarch`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pytest_multiarch.core.errors import MultiarchError, PlatformError
from pytest_multiarch.core.platforms import Platform, parse_platforms

if TYPE_CHECKING:
    from pytest_multiarch.engine.endpoints import EngineRef
    from pytest_multiarch.runtime.builders import BuilderRef

Value = TypeVar("Value")


def _platforms(value: str, source: str, *, host_can_run: bool = True) -> list[Platform]:
    from pytest_multiarch.core.emulation import check_emulator

    def can_run(platform: Platform) -> bool:
        return check_emulator(platform, ask_version=False).usable

    return parse_platforms(value, source=source, can_run=can_run if host_can_run else None)


def _default_platforms(fallback: str) -> tuple[str, str]:
    env = os.environ.get("MULTIARCH_PLATFORMS")
    if env:
        return env, "MULTIARCH_PLATFORMS"
    return fallback, "the default"


def cmd_doctor(args: argparse.Namespace) -> int:
    from pytest_multiarch.doctor import doctor_ok, format_table, run_doctor, to_json

    spec, source = (
        (args.platforms, "--platforms") if args.platforms else _default_platforms("native")
    )
    platforms = _platforms(spec, source)
    checks = run_doctor(
        platforms,
        probe=not args.no_probe,
        engines=_engine_pools(args),
        builders=_builder_map(args),
        images_dir=args.images,
    )
    print(to_json(checks) if args.json else format_table(checks))
    ok = doctor_ok(checks)
    if not args.json:
        names = ", ".join(p.short for p in platforms)
        print(f"\n{'OK' if ok else 'NOT READY'}: {names}")
    return 0 if ok else 1


def _engine_pools(args: argparse.Namespace) -> dict[str, tuple[EngineRef, ...]]:
    """The platform -> engines map (a pool, usually of one) as the plugin reads it, without
    pytest: pyproject.toml's ``[tool.multiarch.engines]``, then ``MULTIARCH_ENGINES``, then
    ``--engine``."""
    from pytest_multiarch.engine.endpoints import parse_engine_pools, project_engine_pools

    return _layered_map(
        args, project_engine_pools, parse_engine_pools, "MULTIARCH_ENGINES", "engine"
    )


def _builder_map(args: argparse.Namespace) -> dict[str, BuilderRef]:
    """The platform -> builder map as the plugin reads it, without pytest: pyproject.toml's
    ``[tool.multiarch.builders]``, then ``MULTIARCH_BUILDERS``, then ``--builder``."""
    from pytest_multiarch.runtime.builders import parse_builder_map, project_builder_map

    return _layered_map(
        args, project_builder_map, parse_builder_map, "MULTIARCH_BUILDERS", "builder"
    )


def _layered_map(
    args: argparse.Namespace,
    from_project: Callable[[Path], dict[str, Value]],
    parse: Callable[[list[str], str], dict[str, Value]],
    variable: str,
    flag: str,
) -> dict[str, Value]:
    """pyproject.toml's table, then the environment variable, then the repeatable ``--flag``:
    each later layer overrides single platforms."""
    from pytest_multiarch.core.platform_map import merge_layers

    layers = [(from_project(Path(args.pyproject)), "pyproject.toml")]
    if os.environ.get(variable, "").strip():
        layers.append((parse([os.environ[variable]], variable), variable))
    layers.append((parse(getattr(args, flag) or [], f"--{flag}"), f"--{flag}"))
    return merge_layers(layers)[0]


def cmd_host_up(args: argparse.Namespace) -> int:
    from pytest_multiarch.provision.bases import seedable
    from pytest_multiarch.provision.host import HostSetup

    spec, source = (
        (args.platforms, "--platforms") if args.platforms else _default_platforms("amd64,arm64")
    )
    platforms = _platforms(spec, source, host_can_run=False)
    setup = HostSetup(
        platforms,
        seedable([b.strip() for b in args.bases.split(",") if b.strip()]),
        image_store=args.image_store,
        registry_port=args.registry_port,
        force_offline=args.offline,
        dry_run=args.dry_run,
    )
    report = setup.run()
    if args.podman:
        from pytest_multiarch.provision.podman import up_steps
        from pytest_multiarch.provision.steps import run_steps

        run_steps(
            up_steps(setup.registry),
            act=setup.is_root and not args.dry_run,
            root=setup.is_root,
            log=print,
            report=report,
        )
    if report.ok:
        podman = " (and Podman)" if args.podman else ""
        print(f"host ready for {', '.join(p.short for p in platforms)}{podman}")
        return 0
    command = "multiarch host up --podman" if args.podman else "multiarch host up"
    _unfinished("host NOT ready", report.pending, setup.is_root, command)
    return 1


def cmd_host_down(args: argparse.Namespace) -> int:
    from pytest_multiarch.provision.podman import down_steps
    from pytest_multiarch.provision.steps import run_steps

    if not args.podman:
        print(
            "multiarch host down stops only what `host up --podman` started (Podman's API "
            "service): pass --podman. The Docker engine is left running.",
            file=sys.stderr,
        )
        return 2
    is_root = os.geteuid() == 0
    report = run_steps(down_steps(), act=is_root and not args.dry_run, root=is_root, log=print)
    if report.ok:
        print("Podman's API service is down")
        return 0
    _unfinished("Podman NOT down", report.pending, is_root, "multiarch host down --podman")
    return 1


def _unfinished(what: str, pending: Sequence[object], is_root: bool, command: str) -> None:
    """Why a set-up command exits 1: a step failed, or (planning) steps are missing."""
    if not pending:
        print(f"{what}: see the lines above", file=sys.stderr)
    elif is_root:
        print(f"{what}: dry run, nothing changed; `{command}` does it", file=sys.stderr)
    else:
        print(
            f"{what}: nothing changed; run the commands above as root, or `{command}` as root",
            file=sys.stderr,
        )


def cmd_host_engine(args: argparse.Namespace) -> int:
    from pytest_multiarch.provision.host import registry_address
    from pytest_multiarch.provision.second_engines import down_steps, engine_layout, up_steps
    from pytest_multiarch.provision.steps import run_steps

    layout = engine_layout(args.name)
    is_root = os.geteuid() == 0
    act = is_root and not args.dry_run
    if args.engine_command == "up":
        steps = up_steps(layout, args.image_store, registry_address(args.registry_port))
    else:
        steps = down_steps(layout, purge=args.purge)
    report = run_steps(steps, act=act, root=is_root, log=print)
    name = f"engine {layout.name}"
    if not report.ok:
        command = f"multiarch host engine {args.engine_command} {layout.name}"
        state = "NOT ready" if args.engine_command == "up" else "NOT stopped"
        _unfinished(f"{name} {state}", report.pending, is_root, command)
        return 1
    if args.engine_command == "up":
        print(f"{name} ready; use it with:")
        print(f"  export DOCKER_HOST={layout.docker_host}")
    else:
        print(f"{name} stopped")
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    import json

    from pytest_multiarch.reports.matrix import matrix_entries, project_platforms

    names = project_platforms(Path(args.pyproject))
    if args.json:
        entries = matrix_entries(names, native_runners=not args.no_native_runners)
        print(json.dumps(entries, separators=(",", ":")))
    else:
        print(",".join(names))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    import json

    from pytest_multiarch.reports.matrix import merge_reports

    merged = merge_reports([Path(p) for p in args.reports])
    form = "json" if args.json else args.format
    if form == "json":
        print(json.dumps(merged.to_json(), indent=2))
    elif form == "html":
        from pytest_multiarch.reports.html import render_html

        print(render_html(merged), end="")
    elif form == "terminal":
        from pytest_multiarch.reports.summary import format_lines

        print("\n".join(format_lines(merged)))
    else:
        from pytest_multiarch.reports.summary import markdown

        print(markdown(merged))
    if merged.interrupted:
        print(
            "multiarch: a session of these reports was interrupted: its results are incomplete",
            file=sys.stderr,
        )
    elif not merged.tests:
        print("multiarch: no test ran in these reports", file=sys.stderr)
        return 1
    return 1 if merged.failed else 0


def cmd_publish(args: argparse.Namespace) -> int:
    from pytest_multiarch.model.records import RunReport
    from pytest_multiarch.publish.push import (
        parse_destination,
        publish_report,
        refuse_unfinished,
    )
    from pytest_multiarch.reports.summary import format_publications

    destination = parse_destination(args.to, args.tag, source="--to")
    path = Path(args.report)
    report = RunReport.read(path)
    refuse_unfinished(report, str(path))
    if not report.images:
        print(
            f"multiarch: error: {path} names no tested image (write it with "
            "pytest --multiarch-json PATH)",
            file=sys.stderr,
        )
        return 2
    publications = publish_report(report, destination, overwrite=args.overwrite, log=print)
    for line in format_publications(publications):
        print(line)
    ok = all(p.status in ("published", "unchanged") for p in publications)
    return 0 if ok else 1


def cmd_verify(args: argparse.Namespace) -> int:
    """The project's tests against the published image REF, pulled per platform by digest in
    place of a build: pytest with ``--verify-ref``; its exit code."""
    import subprocess

    from pytest_multiarch.core.errors import EngineUnavailable
    from pytest_multiarch.core.published import DOCKER_HUB, parse_reference
    from pytest_multiarch.engine.docker import engine_info
    from pytest_multiarch.runtime.published import read_published

    reference = parse_reference(args.ref, "multiarch verify")
    mirrors: tuple[str, ...] = ()
    if reference.registry == DOCKER_HUB:
        try:
            found = engine_info(timeout=15).registry_mirrors
        except EngineUnavailable:
            found = ()
        mirrors = tuple(m.split("://", 1)[-1].strip("/") for m in found)
    # Before any test: a REF no registry serves is the user's typo, not a test failure.
    published = read_published(reference, mirrors, timeout=120)
    kind = "index" if published.index else "manifest"
    print(
        f"multiarch verify: {args.ref} is a published {kind} {published.digest} for "
        f"{', '.join(sorted(published.platforms)) or 'no platform'}",
        flush=True,
    )
    override = f"{args.image}={args.ref}" if args.image else args.ref
    command = [sys.executable, "-m", "pytest", "--verify-ref", override]
    if args.platforms:
        command += ["--platforms", args.platforms]
    for mapping in args.engine or []:
        command += ["--engine", mapping]
    command += args.pytest_args
    return subprocess.run(command, check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multiarch",
        description="Multi-architecture container testing: host setup and diagnosis.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    doctor = sub.add_parser("doctor", help="check that each platform can be built and run here")
    doctor.add_argument("--platforms", help="platform list, as pytest --platforms takes it")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.add_argument(
        "--no-probe", action="store_true", help="skip the probe container of each platform"
    )
    doctor.add_argument(
        "--engine",
        action="append",
        metavar="PLATFORM=ENDPOINT",
        help="check PLATFORM on that engine (a Docker context or unix://, tcp://, ssh://); "
        "repeatable; over [tool.multiarch.engines] and MULTIARCH_ENGINES",
    )
    doctor.add_argument(
        "--builder",
        action="append",
        metavar="PLATFORM=BUILDER[@REGISTRY]",
        help="check the buildx builder named for PLATFORM (and the registry its images travel "
        "through); repeatable; over [tool.multiarch.builders] and MULTIARCH_BUILDERS",
    )
    doctor.add_argument(
        "--pyproject",
        default="pyproject.toml",
        help="where [tool.multiarch.engines] and [tool.multiarch.builders] are read",
    )
    doctor.add_argument(
        "--images",
        default="images",
        type=Path,
        help="the images directory whose image.toml files are checked (default: images)",
    )
    doctor.set_defaults(func=cmd_doctor)

    host = sub.add_parser("host", help="prepare this machine")
    host_sub = host.add_subparsers(dest="host_command", required=True)
    up = host_sub.add_parser(
        "up",
        help="install and start engine, buildx, QEMU and (offline) a seeded registry mirror",
        description="Make this machine ready, one idempotent step at a time: each step is "
        "checked first and reported done or skipped. As non-root, or with --dry-run, nothing "
        "changes: the exact commands of every missing step are printed and the exit status is "
        "1 when something is missing. Only this machine's engine is set up: with DOCKER_HOST "
        "or a docker context pointing at another engine it stops at once (exit 2).",
    )
    up.add_argument("--platforms", help="platforms to emulate and seed (default amd64,arm64)")
    up.add_argument(
        "--bases", default="debian,busybox", help="offline base images to seed (debian,busybox)"
    )
    up.add_argument(
        "--image-store",
        choices=("containerd", "classic"),
        default=os.environ.get("MULTIARCH_IMAGE_STORE", "containerd"),
        help="image store for a newly configured engine (an existing choice is kept)",
    )
    up.add_argument("--registry-port", type=int, default=None, help="local mirror port (5000)")
    up.add_argument("--offline", action="store_true", help="seed the local mirror even if online")
    up.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing: print the commands of every missing step (what non-root gets)",
    )
    up.add_argument(
        "--podman",
        action="store_true",
        help="also Podman beside Docker: the distribution's podman, containers.conf "
        "default_ulimits = [], the local mirror in registries.conf.d, and its API service at "
        "unix:///run/podman/podman.sock",
    )
    up.set_defaults(func=cmd_host_up)
    down = host_sub.add_parser(
        "down",
        help="stop Podman's API service that `host up --podman` started (--podman)",
    )
    down.add_argument("--podman", action="store_true", help="stop Podman's API service")
    down.add_argument("--dry-run", action="store_true", help="change nothing: print the commands")
    down.set_defaults(func=cmd_host_down)

    engine = host_sub.add_parser(
        "engine",
        help="a second, separate Docker engine on this machine (own socket and bridge)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Start or stop a second Docker engine NAME beside this machine's own. It stands in
for another machine's engine (point DOCKER_HOST at it) and is the safe engine to
kill or freeze in tests. Everything is its own:
  containerd   /run/pytest-multiarch/NAME/containerd.sock (own root and state,
               no CRI plugin)
  dockerd      unix:///run/pytest-multiarch/NAME/docker.sock, data root
               /var/lib/pytest-multiarch/engines/NAME/docker, exec root, pid
               file, daemon.json (the local registry mirror when it runs)
  network      bridge ma-NAME on a free /24 of 10.199.0.0/16, NAT rules marked
               pytest-multiarch-engine-NAME (dockerd runs with --iptables=false)
The default engine, docker0 and docker0's firewall rules are never touched.
Idempotent (a second `up` says skipped); root only: others, and --dry-run, get
the commands and no change.""",
        epilog="""\
example:
  multiarch host engine up arm-box
  DOCKER_HOST=unix:///run/pytest-multiarch/arm-box/docker.sock docker info
  multiarch host engine down arm-box --purge""",
    )
    engine_sub = engine.add_subparsers(dest="engine_command", required=True)
    engine_up = engine_sub.add_parser(
        "up", help="start engine NAME (skipped when it runs) and print its DOCKER_HOST"
    )
    engine_down = engine_sub.add_parser(
        "down",
        help="stop engine NAME (and what a killed one left running or mounted), remove its "
        "bridge and NAT rules; its images stay unless --purge",
    )
    for sub_parser in (engine_up, engine_down):
        sub_parser.add_argument(
            "name", metavar="NAME", help="1-12 characters: a-z, 0-9, '-' (e.g. arm-box)"
        )
        sub_parser.add_argument(
            "--dry-run", action="store_true", help="change nothing: print the commands"
        )
        sub_parser.set_defaults(func=cmd_host_engine)
    engine_up.add_argument(
        "--image-store",
        choices=("containerd", "classic"),
        default="containerd",
        help="image store of the new engine (default containerd)",
    )
    engine_up.add_argument(
        "--registry-port", type=int, default=None, help="local mirror port to use (5000)"
    )
    engine_down.add_argument(
        "--purge",
        action="store_true",
        help="also remove its images and build cache (/var/lib/pytest-multiarch/engines/NAME)",
    )

    matrix = sub.add_parser(
        "matrix", help="the project's platforms ([tool.multiarch] in pyproject.toml) for CI"
    )
    matrix.add_argument("--pyproject", default="pyproject.toml", help="path to pyproject.toml")
    matrix.add_argument("--json", action="store_true", help="a JSON list for fromJSON()")
    matrix.add_argument(
        "--no-native-runners",
        action="store_true",
        help="every platform on ubuntu-latest, emulated ones under QEMU (for a repository "
        "without GitHub's arm64 runners); by default arm64 runs on ubuntu-24.04-arm",
    )
    matrix.set_defaults(func=cmd_matrix)

    summary = sub.add_parser("summary", help="merge --multiarch-json reports into one matrix")
    summary.add_argument("reports", nargs="+", help="JSON reports of pytest --multiarch-json")
    summary.add_argument(
        "--format",
        choices=("markdown", "terminal", "html", "json"),
        default="markdown",
        help="markdown (default; for CI step summaries), terminal (plain text), html (one "
        "self-contained page), json (the merged report)",
    )
    summary.add_argument("--json", action="store_true", help="the same as --format json")
    summary.set_defaults(func=cmd_summary)

    publish = sub.add_parser(
        "publish", help="publish the images a finished session tested (from its JSON report)"
    )
    publish.add_argument("--report", required=True, help="pytest --multiarch-json output")
    publish.add_argument("--to", required=True, metavar="REGISTRY[/NAMESPACE]")
    publish.add_argument("--tag", default="latest", help="tag to publish (default: latest)")
    publish.add_argument(
        "--overwrite", action="store_true", help="replace a tag that exists with other content"
    )
    publish.set_defaults(func=cmd_publish)

    verify = sub.add_parser(
        "verify",
        help="run the project's tests against a published image, exactly as users pull it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Run this project's tests (pytest, in the current directory) against the published
image REF in place of building it: REF's manifest list is read from its registry
(attestation manifests left out), and each platform is pulled by its own digest
(repo@sha256:...) and tested, through the engine mapped to it. A platform REF
does not publish fails its tests with "the published index REF has no PLATFORM".
REF replaces the `ref` of the project's one image; with several, give --image.
The exit code is pytest's.""",
        epilog="""\
example (a release pipeline, after pushing):
  multiarch verify registry.example/app:1.2 --platforms amd64,arm64 \\
      -- --multiarch-json verify.json -n 2""",
    )
    verify.add_argument("ref", metavar="REF", help="the published tag or @sha256: digest")
    verify.add_argument("--platforms", help="platform list, as pytest --platforms takes it")
    verify.add_argument(
        "--image",
        metavar="NAME",
        help="the image (a directory under images/) REF replaces; needed with several images",
    )
    verify.add_argument(
        "--engine",
        action="append",
        metavar="PLATFORM=ENDPOINT",
        help="pull and test PLATFORM on that engine, as pytest --engine; repeatable",
    )
    verify.set_defaults(func=cmd_verify, pytest_args=[])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is pytest's (multiarch verify REF ... -- -k smoke -n 2).
    extra: list[str] = []
    if "--" in given:
        cut = given.index("--")
        given, extra = given[:cut], given[cut + 1 :]
    args = parser.parse_args(given)
    if extra:
        if args.command != "verify":
            parser.error(f"'-- {' '.join(extra)}': only multiarch verify takes pytest arguments")
        args.pytest_args = extra
    try:
        result: int = args.func(args)
    except PlatformError as exc:
        parser.error(str(exc))
    except MultiarchError as exc:
        print(f"multiarch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("multiarch: interrupted", file=sys.stderr)
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
