"""The ``multiarch`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from harness.errors import MultiarchError, PlatformError
from harness.platforms import Platform, parse_platforms


def _platforms(value: str, source: str, *, host_can_run: bool = True) -> list[Platform]:
    from harness.emulation import check_emulator

    def can_run(platform: Platform) -> bool:
        return check_emulator(platform, ask_version=False).usable

    return parse_platforms(value, source=source, can_run=can_run if host_can_run else None)


def _default_platforms(fallback: str) -> tuple[str, str]:
    env = os.environ.get("MULTIARCH_PLATFORMS")
    if env:
        return env, "MULTIARCH_PLATFORMS"
    return fallback, "the default"


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness.doctor import doctor_ok, format_table, run_doctor, to_json

    spec, source = (
        (args.platforms, "--platforms") if args.platforms else _default_platforms("native")
    )
    platforms = _platforms(spec, source)
    checks = run_doctor(platforms, probe=not args.no_probe)
    print(to_json(checks) if args.json else format_table(checks))
    ok = doctor_ok(checks)
    if not args.json:
        names = ", ".join(p.short for p in platforms)
        print(f"\n{'OK' if ok else 'NOT READY'}: {names}")
    return 0 if ok else 1


def cmd_host_up(args: argparse.Namespace) -> int:
    from harness.provision.bases import seedable
    from harness.provision.host import HostSetup

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
    )
    report = setup.run()
    if report.ok:
        print(f"host ready for {', '.join(p.short for p in platforms)}")
        return 0
    print("host NOT ready: see the lines above", file=sys.stderr)
    return 1


def cmd_matrix(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from harness.run.matrix import matrix_entries, project_platforms

    names = project_platforms(Path(args.pyproject))
    if args.json:
        print(json.dumps(matrix_entries(names), separators=(",", ":")))
    else:
        print(",".join(names))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from harness.run.matrix import markdown_summary, merge_reports

    merged = merge_reports([Path(p) for p in args.reports])
    print(json.dumps(merged, indent=2) if args.json else markdown_summary(merged))
    failed = any(cell["failed"] or cell["error"] for cell in merged["matrix"])
    return 1 if failed else 0


def cmd_publish(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from harness.publish.push import format_publication_dicts, parse_destination, publish_report

    destination = parse_destination(args.to, args.tag, source="--to")
    path = Path(args.report)
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"multiarch: error: cannot read the report {path}: {exc}", file=sys.stderr)
        return 2
    if not report.get("images"):
        print(
            f"multiarch: error: {path} names no tested image (write it with "
            "pytest --multiarch-json PATH)",
            file=sys.stderr,
        )
        return 2
    publications = publish_report(report, destination, overwrite=args.overwrite, log=print)
    for line in format_publication_dicts([p.to_dict() for p in publications]):
        print(line)
    ok = all(p.status in ("published", "unchanged") for p in publications)
    return 0 if ok else 1


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
    doctor.set_defaults(func=cmd_doctor)

    host = sub.add_parser("host", help="prepare this machine")
    host_sub = host.add_subparsers(dest="host_command", required=True)
    up = host_sub.add_parser(
        "up",
        help="install and start engine, buildx, QEMU and (offline) a seeded registry mirror",
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
    up.set_defaults(func=cmd_host_up)

    matrix = sub.add_parser(
        "matrix", help="the project's platforms ([tool.multiarch] in pyproject.toml) for CI"
    )
    matrix.add_argument("--pyproject", default="pyproject.toml", help="path to pyproject.toml")
    matrix.add_argument("--json", action="store_true", help="a JSON list for fromJSON()")
    matrix.set_defaults(func=cmd_matrix)

    summary = sub.add_parser("summary", help="merge --multiarch-json reports into one matrix")
    summary.add_argument("reports", nargs="+", help="JSON reports of pytest --multiarch-json")
    summary.add_argument("--json", action="store_true", help="print the merged JSON")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
