"""The project's platform list (``[tool.multiarch] platforms`` in pyproject.toml) as a CI
matrix, and the per-job JSON reports merged back into one run."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

from pytest_multiarch.core.errors import ConfigError, PlatformError
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.model.codec import ReportFormatError
from pytest_multiarch.model.records import RunReport, merge

# GitHub's hosted runners by the machine they are: a platform with a runner of its own machine
# runs natively there (no QEMU); the others run under QEMU on the x86-64 runner.
NATIVE_RUNNERS = {"linux/amd64": "ubuntu-latest", "linux/arm64": "ubuntu-24.04-arm"}
EMULATING_RUNNER = "ubuntu-latest"


def project_platforms(pyproject: Path) -> list[str]:
    """The platform names listed in ``[tool.multiarch] platforms``, validated."""
    try:
        data = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read it: {exc}") from None
    names = data.get("tool", {}).get("multiarch", {}).get("platforms")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"{pyproject}: key 'tool.multiarch.platforms': expected a non-empty list of "
            f"platform names, got {names!r}"
        )
    for name in names:
        try:
            lookup(name)
        except PlatformError:
            raise ConfigError(
                f"{pyproject}: key 'tool.multiarch.platforms': unknown platform {name!r}"
            ) from None
    return list(names)


def matrix_entries(names: Sequence[str], *, native_runners: bool = True) -> list[dict[str, str]]:
    """One entry per platform: what a CI job needs to name, emulate and test it: the runner
    it runs on (``runs-on``) and the QEMU platform to set up there ("" where it runs natively).
    Without ``native_runners``, every platform runs on the x86-64 runner (QEMU for the rest)."""
    entries = []
    for name in names:
        plat = lookup(name)
        native = plat.name in NATIVE_RUNNERS if native_runners else plat.name == "linux/amd64"
        entries.append(
            {
                "name": plat.name,
                "short": plat.short,
                "tox_env": plat.short,
                "runner": NATIVE_RUNNERS[plat.name] if native else EMULATING_RUNNER,
                "qemu": "" if native else plat.arch,
            }
        )
    return entries


def merge_reports(paths: Sequence[Path]) -> RunReport:
    """One report over the ``--multiarch-json`` reports of several jobs. A test id in two of
    them is an error (the same report given twice, or two jobs that ran the same tests): its
    counts would be added twice. The one exception is a test that ran on every platform of its
    job (the ``images`` fixture) in two different runs: each job has one of its own."""
    reports = [RunReport.read(path) for path in paths]
    first: dict[str, tuple[Path, RunReport]] = {}
    for path, report in zip(paths, reports, strict=True):
        for test in report.tests:
            seen = first.get(test.nodeid)
            if seen is None:
                first[test.nodeid] = (path, report)
                continue
            other_path, other = seen
            if test.every_platform and other.run_id != report.run_id:
                continue
            raise ReportFormatError(
                f"test {test.nodeid!r} is in both {other_path} and {path}"
                + (f" (both of run {report.run_id})" if other.run_id == report.run_id else "")
                + ": merged, it would be counted twice; give each job's report once"
            )
    return merge(reports)
