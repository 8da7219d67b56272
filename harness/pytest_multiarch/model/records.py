"""The typed model of one run: platforms, engine, builds and their verification, tests, images
and publications. The plugin produces it; the JSON report is this model serialized once (with a
``schema_version``); publishing, the CI matrix summary and every later reader load it back
through the same types (``RunReport.read``) instead of reading string keys.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pytest_multiarch.model.codec import (
    INTERNAL,
    ReportFormatError,
    dump,
    json_schema,
    load,
    schema_of,
)

# 2: every test records its phases and headline, and the report whether the session was
# interrupted; a version-1 report cannot say whether a test's call ever ran. 3: each test
# records the engine it ran on and its services' platforms, the report the engines a pool lost.
SCHEMA_VERSION = 3
# Native seconds below which a platform's slowdown is not worth a figure.
SLOWDOWN_MIN_SECONDS = 0.1

# "emulator_fault": failed, and the emulator said it failed (pytest_multiarch.runtime.faults), not
# the test. "interrupted": set up, and then its call (or teardown) never reported: the session was
# stopped (Ctrl-C, SIGTERM) while it ran. Never a pass: only a call that reported passing is one.
Outcome = Literal[
    "passed",
    "failed",
    "skipped",
    "error",
    "xfailed",
    "xpassed",
    "emulator_fault",
    "interrupted",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
PublicationStatus = Literal["published", "unchanged", "refused", "failed"]
Phase = Literal["setup", "call", "teardown"]
PHASES: tuple[Phase, ...] = get_args(Phase)


@dataclass(frozen=True)
class BuildRecord:
    """One (image, platform) as the run found or built it, and how it was verified."""

    image: str
    platform: str  # OCI name, linux/arm64
    reference: str
    image_id: str
    seconds: float
    cached: bool
    error: str = ""
    # How the architecture was established, e.g. "metadata+uname"; "" when not verified.
    verified: str = ""
    verification_cached: bool = False
    # The Dockerfile's steps when this run built it (not FROM, not buildx's own): taken from
    # BuildKit's cache (``CACHED``), and run.
    steps_cached: int = 0
    steps_run: int = 0
    # --build-cache: where this (image, platform)'s cache lives ("local:DIR/app/arm64"); "" when
    # no cache was given.
    build_cache: str = ""
    # Why the given cache was not used (it could not be read: built without it); "" otherwise.
    cache_warning: str = ""
    # A published image (a ``ref``, or multiarch verify's REF), pulled and tested by digest: the
    # ref as given, the digest of the manifest list it names ("" when it names one platform's
    # manifest) and the digest of this platform's manifest, the bytes tested. All "" for a build.
    published_ref: str = ""
    published_index: str = ""
    published_digest: str = ""

    @property
    def cache_use(self) -> str:
        """``5 of 7 steps cached``; "" when no build ran in this run."""
        steps = self.steps_cached + self.steps_run
        if not steps:
            return ""
        return f"{self.steps_cached} of {steps} steps cached"

    @property
    def state(self) -> str:
        if self.error:
            return "FAILED"
        if self.cached:
            return "cached"
        if self.published_ref:  # nothing was built: its digest was pulled
            return f"pulled in {self.seconds:.1f}s"
        return f"built in {self.seconds:.1f}s"


@dataclass
class TestRecord:
    """One test item: its platform, its image and how it ended."""

    nodeid: str
    image: str
    platform: str  # short name, arm64
    # Until a phase says otherwise, a test that began did not finish: "passed" comes only from
    # a call that reported passing (see add_phase and RunReport.finish).
    outcome: Outcome = "interrupted"
    seconds: float = 0.0
    # It ran commands on every platform (the images fixture): its time is not its platform's.
    every_platform: bool = False
    # The endpoint of the engine it ran on (unix:///..., tcp://...): with a pool of engines per
    # platform (--engine amd64=a,b), which one; "" when it never reached its setup.
    engine: str = ""
    # Filled when it did not pass: what pytest reported (truncated, secrets redacted), the logs
    # of its containers, and the commands it ran (``run``) with how each ended. An xfailed or
    # xpassed test's message is its xfail reason.
    message: str = ""
    # The failure's own first line (its exception, or pytest.fail's message), for one-line
    # summaries; "" when pytest gave none (then the message's first ``E`` line stands in).
    headline: str = ""
    logs: str = ""
    commands: list[str] = field(default_factory=list)
    # The emulator's own words when outcome is "emulator_fault", with the emulator's version.
    fault: str = ""
    # How many times it was run again after an emulator fault (--emulator-fault-retries).
    retries: int = 0
    # The phases that reported, in order (each once): a pass without "call" is no pass.
    phases: list[Phase] = field(default_factory=list)
    # Its image's services ([services.<alias>] in image.toml): alias -> the OCI platform each
    # ran on (the engine's own for a native service, the test's for a same one).
    services: dict[str, str] = field(default_factory=dict)

    @property
    def called(self) -> bool:
        """Whether its call phase reported."""
        return "call" in self.phases

    def mark_emulator_fault(self, evidence: str) -> None:
        """A failure that the emulator caused (pytest_multiarch.runtime.faults), not the test."""
        if self.outcome in ("failed", "error"):
            self.outcome = "emulator_fault"
            self.fault = evidence

    def add_phase(self, when: str, outcome: str, seconds: float, wasxfail: bool) -> None:
        """Fold one report phase (setup, call, teardown) into the item's outcome. A passing setup
        or teardown makes nothing pass: only the call does."""
        self.seconds += seconds
        if when in PHASES and when not in self.phases:
            self.phases.append(when)
        if outcome == "passed" and when == "call":
            self.outcome = "xpassed" if wasxfail else "passed"
        elif outcome == "skipped" and wasxfail:
            self.outcome = "xfailed"
        elif outcome == "skipped" and self.outcome in ("passed", "interrupted"):
            self.outcome = "skipped"
        elif outcome == "failed":
            if when == "call":
                self.outcome = "failed"
            elif self.outcome not in ("failed", "emulator_fault"):
                self.outcome = "error"


@dataclass(frozen=True)
class EngineFacts:
    """The engine the run used (Docker, or Podman's Docker-compatible API service)."""

    endpoint: str
    version: str
    api_version: str
    image_store: Literal["containerd", "classic"]
    os: str
    architecture: str
    kind: Literal["docker", "podman"] = "docker"


# How a platform's image gets from its buildx builder ([tool.multiarch.builders]) into the
# engine that runs the platform: "load" (the builder is that engine's own), "transfer" (built
# on another engine, then `docker save | docker load`), "registry" (pushed, then pulled).
Delivery = Literal["load", "transfer", "registry"]
DELIVERIES: tuple[Delivery, ...] = get_args(Delivery)


@dataclass(frozen=True)
class BuilderFacts:
    """The buildx builder that builds a platform, and how its images reach the running engine.

    As the controller found it at the start (``docker buildx inspect``)."""

    name: str
    driver: str  # docker, docker-container, remote, kubernetes
    delivery: Delivery
    registry: str = ""  # HOST[:PORT][/PATH] the images travel through ("registry")
    # The Docker context the build runs on (driver docker: its node's endpoint); "" otherwise.
    context: str = ""
    platforms: tuple[str, ...] = ()  # what the builder's nodes list
    source: str = ""  # where the mapping came from
    # Why it cannot build (its engine did not answer at the start); "" when it can. Only the
    # builds it is needed for fail, with this.
    problem: str = ""

    def describe(self) -> str:
        """``e12-ctx (docker driver, moved by docker save | docker load)``."""
        if self.problem:
            return f"{self.name} (not answering: {self.problem})"
        how = {
            "load": "loaded into the engine that runs it",
            "transfer": f"built on context {self.context}, moved by docker save | docker load",
            "registry": f"pushed to {self.registry}, pulled by the engine that runs it",
        }[self.delivery]
        return f"{self.name} ({self.driver} driver, {how})"


@dataclass(frozen=True)
class PlatformFacts:
    """A platform of the run: native or emulated here, and by which emulator."""

    name: str
    short: str
    native: bool
    emulator: str  # "native", or "qemu-aarch64 enabled, flags PF, QEMU 7.2.22", or the problem
    qemu_version: str = ""
    # The engine that built and ran it, as the user named it (a Docker context or an endpoint);
    # "" for the default engine. ``native`` is measured on that engine.
    engine: str = ""
    # The buildx builder named for it ([tool.multiarch.builders]); None: its engine's own.
    builder: BuilderFacts | None = None
    # What that engine is ("docker" or "podman", from its own /version) and its version;
    # "" when it did not answer.
    engine_kind: str = ""
    engine_version: str = ""


@dataclass(frozen=True)
class ImageTarget:
    """An image the run tested: where it publishes, and the platforms it is tested for."""

    repository: str
    platforms: list[str]  # OCI names


@dataclass
class Publication:
    """What publishing did with one image."""

    image: str
    reference: str
    status: PublicationStatus
    digest: str = ""
    platforms: dict[str, str] = field(default_factory=dict)  # platform -> manifest digest
    verified: dict[str, str] = field(default_factory=dict)  # platform -> uname -m seen
    detail: str = ""
    path: str = ""


@dataclass(frozen=True)
class MatrixCell:
    """How many tests of one image on one platform ended in each outcome."""

    image: str
    platform: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    error: int = 0
    xfailed: int = 0
    xpassed: int = 0
    emulator_fault: int = 0
    interrupted: int = 0

    def count(self, outcome: Outcome) -> int:
        value: int = getattr(self, outcome)
        return value

    @property
    def bad(self) -> bool:
        return bool(
            self.failed or self.error or self.xpassed or self.emulator_fault or self.interrupted
        )


@dataclass(frozen=True)
class RunSummary:
    """Figures derived from the records, written beside them for readers other than ours."""

    matrix: list[MatrixCell]
    platform_seconds: dict[str, float]  # summed test durations per platform
    platform_wall_seconds: dict[str, float]  # first test start to last test stop
    build_seconds: dict[str, float]  # summed build durations per platform
    # emulated platform -> its time over the native platform's, on the tests that ran on both
    slowdown: dict[str, float] = field(default_factory=dict)


@dataclass
class RunReport:
    """Everything a run found out. Written once, at the end of the session."""

    run_id: str = ""
    schema_version: int = SCHEMA_VERSION
    platforms: list[PlatformFacts] = field(default_factory=list)
    engine: EngineFacts | None = None
    builds: list[BuildRecord] = field(default_factory=list)
    tests: list[TestRecord] = field(default_factory=list)
    # platform short name -> (first phase start, last phase stop), epoch seconds
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    images: dict[str, ImageTarget] = field(default_factory=dict)
    publish: list[Publication] = field(default_factory=list)
    # The session was stopped before it ended (Ctrl-C, SIGTERM): what it did not run is not in
    # it, and it is never a publish candidate.
    interrupted: bool = False
    # Engines of a pool that stopped answering during the run (described: name and endpoint):
    # the tests in flight there failed, their platform's others ran on the pool's other engines.
    lost_engines: list[str] = field(default_factory=list)
    _by_nodeid: dict[str, TestRecord] = field(
        default_factory=dict, repr=False, compare=False, metadata=INTERNAL
    )

    # ---- recording ----------------------------------------------------------------------

    def record_phase(
        self,
        nodeid: str,
        image: str,
        platform: str,
        when: str,
        outcome: str,
        seconds: float,
        wasxfail: bool,
        every_platform: bool = False,
    ) -> TestRecord:
        test = self.test(nodeid)
        if test is None:
            test = TestRecord(nodeid, image, platform, every_platform=every_platform)
            self.tests.append(test)
            self._by_nodeid[nodeid] = test
        test.add_phase(when, outcome, seconds, wasxfail)
        return test

    def finish(self, *, interrupted: bool) -> None:
        """At the end of the session: a test whose teardown never reported was cut off, whatever
        its call said."""
        self.interrupted = self.interrupted or interrupted
        for test in self.tests:
            if test.outcome in ("passed", "xpassed") and "teardown" not in test.phases:
                test.outcome = "interrupted"
            if test.outcome == "interrupted" and not test.headline:
                if test.called:
                    test.headline = "the session stopped during its teardown: it did not finish"
                elif "teardown" in test.phases:  # --setup-only
                    test.headline = "its call never ran"
                else:
                    test.headline = "the session stopped during its call: it did not finish"

    def test(self, nodeid: str) -> TestRecord | None:
        if len(self._by_nodeid) != len(self.tests):
            self._by_nodeid = {t.nodeid: t for t in self.tests}
        return self._by_nodeid.get(nodeid)

    def record_span(self, platform: str, start: float, stop: float) -> None:
        """Widen ``platform``'s wall-clock span to cover one test phase (epoch seconds)."""
        if start <= 0 or stop < start:
            return
        first, last = self.spans.get(platform, (start, stop))
        self.spans[platform] = (min(first, start), max(last, stop))

    # ---- derived figures ----------------------------------------------------------------

    @property
    def platform_names(self) -> list[str]:
        return [p.short for p in self.platforms]

    def matrix(self) -> list[MatrixCell]:
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for test in self.tests:
            cell = counts.setdefault((test.image, test.platform), dict.fromkeys(OUTCOMES, 0))
            cell[test.outcome] += 1
        return [MatrixCell(image, plat, **cell) for (image, plat), cell in sorted(counts.items())]

    def platform_seconds(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for test in self.tests:
            totals[test.platform] = totals.get(test.platform, 0.0) + test.seconds
        return totals

    def platform_wall_seconds(self) -> dict[str, float]:
        return {plat: last - first for plat, (first, last) in self.spans.items()}

    def build_seconds(self) -> dict[str, float]:
        shorts = {p.name: p.short for p in self.platforms}
        totals: dict[str, float] = {}
        for build in self.builds:
            key = shorts.get(build.platform, build.platform)
            totals[key] = totals.get(key, 0.0) + build.seconds
        return totals

    def slowdown(self) -> dict[str, float]:
        """For each emulated platform, how many times longer its tests took than the same tests
        on the native platform: sums over the test cases that passed on both, matched by node id
        with the platform's id taken out. A failed, errored or interrupted run stopped at some
        point of its own, so its time compares with nothing; a case that took under
        SLOWDOWN_MIN_SECONDS natively is left out too (a ratio of milliseconds is noise), and a
        platform with no case left has no figure. Builds are not in it, nor tests that ran on
        every platform."""
        native = next((p.short for p in self.platforms if p.native), None)
        if native is None:
            return {}
        ran = [t for t in self.tests if t.outcome == "passed" and not t.every_platform]
        native_seconds = {
            case_id(t.nodeid, t.platform): t.seconds
            for t in ran
            if t.platform == native and t.seconds >= SLOWDOWN_MIN_SECONDS
        }
        sums: dict[str, tuple[float, float]] = {}  # platform -> (its seconds, native seconds)
        for test in ran:
            base = native_seconds.get(case_id(test.nodeid, test.platform))
            if test.platform == native or base is None:
                continue
            own, of_native = sums.get(test.platform, (0.0, 0.0))
            sums[test.platform] = (own + test.seconds, of_native + base)
        return {
            plat: own / base for plat, (own, base) in sums.items() if base >= SLOWDOWN_MIN_SECONDS
        }

    def summary(self) -> RunSummary:
        return RunSummary(
            self.matrix(),
            self.platform_seconds(),
            self.platform_wall_seconds(),
            self.build_seconds(),
            self.slowdown(),
        )

    @property
    def failed(self) -> bool:
        """Whether anything in it is not a pass: a bad cell, or the session was interrupted."""
        return self.interrupted or any(cell.bad for cell in self.matrix())

    # ---- serialization ------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dump(self)
        data["builds"] = dump(sorted(self.builds, key=lambda b: (b.image, b.platform)))
        data["tests"] = dump(sorted(self.tests, key=lambda t: t.nodeid))
        data["summary"] = dump(self.summary())
        return data

    @classmethod
    def from_json(cls, data: object, where: str = "$") -> RunReport:
        """A report as ``to_json`` writes it: every part of it must be there (ReportFormatError
        names the path of the first one that is not), since a part that defaulted would say
        something the run never said: an empty list of tests reads as a clean run."""
        if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
            found = data.get("schema_version")
            older = isinstance(found, int) and 0 < found < SCHEMA_VERSION
            raise ReportFormatError(
                f"{where}: schema_version {found!r} is not {SCHEMA_VERSION}, the version this "
                "pytest-multiarch reads"
                + ("; an older pytest-multiarch wrote it: run the tests again" if older else "")
            )
        report = load(cls, data, where, complete=True)
        if isinstance(data, dict):  # else load raised
            if "summary" not in data:
                raise ReportFormatError(f"{where}: missing key 'summary'")
            load(RunSummary, data["summary"], f"{where}.summary", complete=True)
        return report

    def write(self, path: Path) -> None:
        """Write the report atomically: a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(partial, path)

    @classmethod
    def read(cls, path: Path) -> RunReport:
        """Load a report; ReportFormatError names the file and the first bad value."""
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ReportFormatError(
                f"{path}: not a pytest-multiarch JSON report ({exc}); write one with "
                "pytest --multiarch-json PATH"
            ) from None
        return cls.from_json(data, str(path))


def merge(reports: Iterable[RunReport]) -> RunReport:
    """One report over several (one CI job per platform): platforms, builds, tests and images
    of each, in order; interrupted when any of them was. Engines differ per job, so the merged
    report names none."""
    merged = RunReport(run_id="merged")
    seen: set[str] = set()
    for report in reports:
        for plat in report.platforms:
            if plat.name not in seen:
                seen.add(plat.name)
                merged.platforms.append(plat)
        merged.builds.extend(report.builds)
        merged.tests.extend(report.tests)
        merged.spans.update(report.spans)
        for name, target in report.images.items():
            known = merged.images.get(name)
            platforms = [*known.platforms, *target.platforms] if known else target.platforms
            merged.images[name] = ImageTarget(target.repository, list(dict.fromkeys(platforms)))
        merged.publish.extend(report.publish)
        merged.interrupted = merged.interrupted or report.interrupted
    return merged


def case_id(nodeid: str, platform: str) -> str:
    """``nodeid`` with the id of ``platform`` (a short name) replaced by ``*``: the same test
    case on every platform. ``t.py::test_x[arm-v7-2]`` -> ``t.py::test_x[*-2]``."""
    head, bracket, ids = nodeid.partition("[")
    if not bracket or not platform:
        return nodeid
    token = rf"(?:^|(?<=-)){re.escape(platform)}(?=-|\]$)"
    return head + bracket + re.sub(token, "*", ids, count=1)


def report_schema() -> dict[str, Any]:
    """The JSON Schema of ``--multiarch-json`` reports (shipped as report.schema.json)."""
    schema = json_schema(RunReport, complete=True)
    schema["title"] = "pytest-multiarch run report"
    schema["properties"]["summary"] = schema_of(RunSummary, schema["$defs"], complete=True)
    schema["properties"]["schema_version"] = {"const": SCHEMA_VERSION}
    schema["required"] = sorted({*schema["required"], "schema_version", "summary"})
    return schema
