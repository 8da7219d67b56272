"""The controller's side of a run: every test report lands in one RunReport, and at the end
of the session the run is published (``--publish``), described, written (JSON, HTML, GitHub's
step summary) and swept from every engine it used. Registered by the plugin on the controller
only (never on an xdist worker), and imported only there."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.engine.cleanup import sweep
from pytest_multiarch.engine.resolve import platform_facts
from pytest_multiarch.model.codec import ReportFormatError, load
from pytest_multiarch.model.records import (
    EngineFacts,
    ImageTarget,
    PlatformFacts,
    RunReport,
    TestRecord,
)
from pytest_multiarch.run.options import resolve, resolve_path
from pytest_multiarch.run.state import (
    IMAGES_KEY,
    REPORT_ATTRIBUTE,
    RETRIED,
    RUNTIME_KEY,
    SETTINGS_KEY,
    ItemFacts,
)

if TYPE_CHECKING:
    from pytest_multiarch.core.platforms import Platform
    from pytest_multiarch.engine.docker import EngineInfo
    from pytest_multiarch.publish.push import Destination
    from pytest_multiarch.runtime.engine import Engine
    from pytest_multiarch.runtime.process import ProcessRuntime
    from pytest_multiarch.runtime.settings import Settings

# Of a failed test, kept for the run report: its message and container logs.
MESSAGE_KEPT = 4000
LOGS_KEPT = 8000


def publisher_for(config: pytest.Config) -> Publisher | None:
    """The publisher --publish asks for, or None."""
    target = resolve(config, "publish")
    if target.value is None:
        return None
    from pytest_multiarch.publish.push import PublishError, parse_destination

    try:
        destination = parse_destination(
            str(target.value), str(resolve(config, "publish-tag").value), source=target.source
        )
    except PublishError as exc:
        raise pytest.UsageError(str(exc)) from None
    return Publisher(destination, bool(resolve(config, "publish-overwrite").value))


class Publisher:
    """Controller-side: after the last test, publish what passed everywhere."""

    def __init__(self, destination: Destination, overwrite: bool) -> None:
        self.destination = destination
        self.overwrite = overwrite

    def publish(self, session: pytest.Session, report: RunReport) -> None:
        from pytest_multiarch.model.records import Publication
        from pytest_multiarch.publish.push import PublishError, publish_report

        if session.shouldstop or session.exitstatus == pytest.ExitCode.INTERRUPTED:
            report.publish.append(
                Publication("*", "", "refused", detail="the session was interrupted")
            )
            return
        try:
            publications = publish_report(
                report, self.destination, overwrite=self.overwrite, log=_quiet
            )
        except PublishError as exc:
            report.publish.append(Publication("*", "", "failed", detail=str(exc)))
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        report.publish.extend(publications)
        if any(p.status in ("failed", "refused") for p in publications) and (
            session.exitstatus == pytest.ExitCode.OK
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _quiet(_line: str) -> None:
    """Progress lines of publishing are not printed; the summary section says what happened."""


def _describe_images(config: pytest.Config, report: RunReport) -> None:
    """What the report says of each tested image: where it publishes, which platforms."""
    settings = config.stash[SETTINGS_KEY]
    images = config.stash[IMAGES_KEY]
    for name in sorted({t.image for t in report.tests if t.image}):
        spec = images.get(name)
        if spec is not None:
            report.images[name] = ImageTarget(
                spec.repository, [p.name for p in settings.platforms if spec.allows(p)]
            )


# The line xdist's controller puts first in a worker's report text (pytest's
# getworkerinfoline): "[gw0] linux -- Python 3.11.7 /usr/bin/python".
_WORKER_LINE = re.compile(r"\A\[[^\]\n]+\] [^\n]* -- Python [^\n]*\n?")


def failure_text(report: pytest.TestReport) -> str:
    """pytest's text of a failed phase, without the xdist worker line in front of it."""
    text = report.longreprtext
    if getattr(report, "node", None) is not None:
        text = _WORKER_LINE.sub("", text, count=1)
    return text.strip()


def failure_headline(report: pytest.TestReport, text: str) -> str:
    """The failure's own first line: pytest's crash message (the exception, ``Failed: ...``),
    else the first ``E`` line or the first line of ``text``."""
    crash = getattr(report.longrepr, "reprcrash", None)
    message = str(getattr(crash, "message", "") or "").strip()
    if message:
        return message.splitlines()[0].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("E "):
            return line[1:].strip()
    return lines[0] if lines else ""


def _note_failure(test: TestRecord, report: pytest.TestReport, facts: ItemFacts) -> None:
    """What the report of a failed phase tells: pytest's message, container logs, commands, and
    whether the emulator caused it. Reports are redacted before they get here."""
    message = failure_text(report)
    test.headline = test.headline or failure_headline(report, message)
    if len(message) > MESSAGE_KEPT:
        message = "...\n" + message[-MESSAGE_KEPT:]
    test.message = "\n\n".join(part for part in (test.message, message) if part)
    logs = "\n".join(
        f"--- {title}\n{text}" for title, text in report.sections if title.startswith("container")
    )
    test.logs = "\n".join(part for part in (test.logs, logs[-LOGS_KEPT:]) if part)
    test.commands += [c for c in facts.commands if c not in test.commands]
    if facts.fault:
        test.mark_emulator_fault(facts.fault)


def _default_engine_info() -> EngineInfo:
    """Over the API (two calls, where the CLI is two processes); on the controller, this also
    imports the docker SDK ahead of the end of the run, whose engine ping needs it."""
    from pytest_multiarch.engine.api import connect, engine_info_over_api
    from pytest_multiarch.engine.docker import endpoint

    client = connect()
    try:
        return engine_info_over_api(client, endpoint())
    finally:
        client.close()


def _in_background(work: Callable[[], EngineInfo]) -> Future[EngineInfo]:
    future: Future[EngineInfo] = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except MultiarchError as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="multiarch-engine-facts", daemon=True).start()
    return future


def _preflight(settings: Settings, platform: Platform) -> None:
    """Ping ``platform``'s engine once; no answer at all is recorded for every process."""
    from pytest_multiarch.runtime.engine import Engine
    from pytest_multiarch.runtime.process import progress_board, run_state_dir

    run_id = settings.run_id
    endpoint = settings.engine_endpoint(platform)
    engine = Engine(endpoint, settings, run_state_dir(run_id), progress_board(run_id))
    with contextlib.suppress(MultiarchError, OSError):
        engine.watch.preflight()


class ReportCollector:
    """Controller-side: every test report (local, or sent by an xdist worker) lands here."""

    def __init__(self, report: RunReport, publisher: Publisher | None) -> None:
        self.report = report
        self.publisher = publisher
        self.cleanup_problem = ""
        self.written: list[str] = []  # what the pages written at the end say (terminal lines)
        # The default engine's facts for the report, asked while the tests run (xdist: the
        # controller has no engine connection of its own, and is idle meanwhile).
        self._engine_facts: Future[EngineInfo] | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """An engine frozen before the run began is told while the workers start and the tests
        are collected, not by each process's first test: every test that needs it then fails
        at once, as for an engine that is down (pytest_multiarch.engine.health)."""
        settings = session.config.stash[SETTINGS_KEY]
        if not session.config.stash.get(IMAGES_KEY, {}):
            return
        on_default = [plat for plat in settings.platforms if not plat.engine]
        if not on_default:
            return  # mapped engines were asked when the run began (EngineEndpoint.problem)
        threading.Thread(
            target=_preflight,
            args=(settings, on_default[0]),
            name="multiarch-preflight",
            daemon=True,
        ).start()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTRIBUTE, None)
        if data is None:
            return
        try:
            facts = load(ItemFacts, data, f"{report.nodeid} report")
        except ReportFormatError:
            return  # a report from another plugin's attribute of the same name
        if self._engine_facts is None and facts.image:
            self._engine_facts = _in_background(_default_engine_info)
        self.report.builds.extend(facts.builds)
        if report.outcome == RETRIED:  # an emulator fault, run again (--emulator-fault-retries)
            retried = self.report.test(report.nodeid)
            if retried is not None:
                retried.retries += 1
            return
        test = self.report.record_phase(
            report.nodeid,
            facts.image,
            facts.platform,
            report.when or "",
            report.outcome,
            float(report.duration),
            hasattr(report, "wasxfail"),
            facts.every_platform,
        )
        if facts.engine:
            test.engine = facts.engine
        if facts.services:
            test.services.update(facts.services)
        if report.failed:
            _note_failure(test, report, facts)
        reason = getattr(report, "wasxfail", "")
        if reason and test.outcome in ("xfailed", "xpassed") and not test.message:
            test.message = test.headline = str(reason)
        self.report.record_span(
            facts.platform,
            float(getattr(report, "start", 0.0)) + facts.build_wait_seconds,
            float(getattr(report, "stop", 0.0)),
        )

    def _engine_info(self, runtime: ProcessRuntime | None, default: Engine) -> EngineInfo:
        """The default engine's facts: this process's, else those asked during the run."""
        if runtime is not None:
            return default.info
        if self._engine_facts is None:
            return _default_engine_info()
        return self._engine_facts.result()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(
        self, session: pytest.Session, exitstatus: int | pytest.ExitCode
    ) -> None:
        """Publishing, then the JSON report: here, so that ``-p no:terminal`` keeps both."""
        config = session.config
        settings = config.stash[SETTINGS_KEY]
        self.report.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
        _describe_images(config, self.report)
        if self.publisher is not None:
            self.publisher.publish(session, self.report)
        # As they are at the end.
        self.report.platforms = platform_facts(
            settings.platforms, settings.endpoints, settings.builders
        )
        runtime = config.stash.get(RUNTIME_KEY, None)
        engines = _engines_of_run(settings, runtime)
        pooled = {p.engine for pool in settings.pools.values() for p in pool}
        self.report.lost_engines = [
            engine.endpoint.describe()
            for engine in engines
            if engine.endpoint.spec in pooled and engine.watch.dead() is not None
        ]
        try:
            # The report's engine is the run's default engine (platforms record their own).
            default = next((e for e in engines if e.endpoint.ref.is_default), None)
            # A ping first (milliseconds): a dead or frozen engine costs no time limit here.
            if default is not None and default.watch.alive() is None:
                with contextlib.suppress(MultiarchError), default.watch.guard():
                    self.report.engine = self._engine_info(runtime, default).facts()
                    self.report.platforms = _on_default_engine(
                        self.report.platforms, self.report.engine
                    )
            if settings.json_path is not None:
                self.report.write(settings.json_path)
            problems = [_sweep_run(settings, engine) for engine in engines]
            self.cleanup_problem = "; ".join(problem for problem in problems if problem)
        finally:
            # Again, if this process closed them already: the sweeps restarted the watches.
            for engine in reversed(engines):
                engine.close()
        self.written = _write_pages(config, self.report)


def _on_default_engine(platforms: list[PlatformFacts], engine: EngineFacts) -> list[PlatformFacts]:
    """``platforms`` with the kind and version of the default engine on those that ran there."""
    return [
        fact
        if fact.engine
        else replace(fact, engine_kind=engine.kind, engine_version=engine.version)
        for fact in platforms
    ]


def _write_pages(config: pytest.Config, report: RunReport) -> list[str]:
    """The HTML page (--multiarch-html) and, on GitHub Actions, the Markdown matrix appended
    to the job's step summary. Returns the lines that tell where they went, or what failed."""
    lines = []
    html = resolve_path(config, "multiarch-html").value
    if html is not None:
        from pytest_multiarch.reports.html import write_html

        try:
            write_html(report, html)
            lines.append(f"multiarch: HTML report written to {html}")
        except OSError as exc:
            lines.append(f"multiarch: WARNING: could not write the HTML report {html}: {exc}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and (report.tests or report.builds):
        from pytest_multiarch.reports.summary import markdown

        try:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(markdown(report) + "\n")
        except OSError as exc:
            lines.append(f"multiarch: WARNING: could not append to GITHUB_STEP_SUMMARY: {exc}")
    return lines


def _engines_of_run(settings: Settings, runtime: ProcessRuntime | None) -> list[Engine]:
    """The engines of the run's platforms, each once, as this process has them; none when no
    process of the run touched an engine (the run has no state directory)."""
    from pytest_multiarch.runtime.process import ProcessRuntime, run_state_dir

    try:
        if runtime is None:
            if not run_state_dir(settings.run_id).exists():
                return []
            runtime = ProcessRuntime(settings)  # xdist's controller: it used no engine itself
        return runtime.engines()
    except MultiarchError:  # an unsafe state directory: said when the run began
        return []


def _sweep_run(settings: Settings, engine: Engine) -> str:
    """Remove the run's containers from ``engine``; what went wrong, or "" (the next run that
    uses that engine reaps leftovers). Never waits on an engine that stopped answering."""
    if settings.keep_containers or engine.endpoint.problem:
        return ""  # kept; or the engine never answered, so nothing of this run is there
    ref = engine.endpoint.ref
    try:
        lost = engine.watch.alive()
        if lost is not None:
            raise lost
        with engine.watch.guard():
            sweep(settings.run_id, engine=ref)
    except MultiarchError as exc:
        first = str(exc).splitlines()[0]
        cli = " ".join(["docker", *ref.cli_flags()])
        return (
            f"could not remove this run's containers ({first}); the next run that uses that "
            f"engine removes them, or: {cli} rm -f $({cli} ps -aq --filter "
            f"label=pytest-multiarch.run={settings.run_id})"
        )
    return ""
