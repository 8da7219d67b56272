"""The line a failure is known by (issue 20.4): pytest's own text of it, without the worker line
xdist's controller puts first, and its crash message; and how a timeout of a scaled limit says
how the limit was scaled (issue 20.6)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pytest_multiarch.run.collector import failure_headline, failure_text
from pytest_multiarch.run.timeouts import LIMIT_KEY, explain_timeout

WORKER = {
    "id": "gw0",
    "sysplatform": "linux",
    "version_info": (3, 11, 7),
    "executable": "/usr/bin/python3",
}


def failed(longrepr: object, *, on_worker: bool = True) -> pytest.TestReport:
    report = pytest.TestReport(
        "t.py::test_a[amd64]", ("t.py", 1, "test_a"), {}, "failed", longrepr, "call"
    )
    if on_worker:  # what xdist's controller sets on a worker's report
        report.node = SimpleNamespace(workerinfo=WORKER)  # type: ignore[attr-defined]
    return report


def crash_report(message: str) -> pytest.TestReport:
    """A real failure's report, as pytest makes it (a traceback and a crash line)."""
    try:
        raise AssertionError(message)
    except AssertionError:
        info = pytest.ExceptionInfo.from_current()
    return failed(info.getrepr(style="short"))


def test_the_worker_line_is_not_the_failure() -> None:
    report = failed("plain failure line\nmore")
    assert report.longreprtext.startswith("[gw0] linux -- Python 3.11.7 /usr/bin/python3\n")
    assert failure_text(report) == "plain failure line\nmore"
    assert failure_headline(report, failure_text(report)) == "plain failure line"
    assert failure_text(failed("x", on_worker=False)) == "x"


def test_the_headline_is_the_crash_message() -> None:
    report = crash_report("wrong arch\nassert 'amd64' == 'sparc'")
    text = failure_text(report)
    assert not text.startswith("[gw")
    assert failure_headline(report, text) == "AssertionError: wrong arch"


def test_an_e_line_stands_in_without_a_crash_message() -> None:
    report = failed("def test():\n>   f()\nE   RuntimeError: boom\nt.py:2: RuntimeError")
    assert failure_headline(report, failure_text(report)) == "RuntimeError: boom"


def test_a_scaled_limit_says_how_it_was_scaled(pytester: pytest.Pytester) -> None:
    item = pytester.getitem("def test_func(): pass")
    item.stash[LIMIT_KEY] = "30 s = 3 s x emulation factor 10 on linux/arm64"
    try:
        pytest.fail("Timeout (>30.0s) from pytest-timeout.")
    except pytest.fail.Exception:
        info = pytest.ExceptionInfo.from_current()
    report = failed(info.getrepr(style="short"), on_worker=False)
    explain_timeout(report, item)
    assert failure_headline(report, failure_text(report)) == (
        "Failed: Timeout (>30.0s) from pytest-timeout. "
        "(limit 30 s = 3 s x emulation factor 10 on linux/arm64)"
    )
    assert "multiarch: time limit" in report.longreprtext
    # Another failure, or a limit the plugin did not set, is left as it is.
    other = crash_report("no timeout")
    explain_timeout(other, item)
    assert "time limit" not in other.longreprtext


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_a_wait_for_a_build_is_not_in_the_tests_limit(
    pytester: pytest.Pytester, method: str
) -> None:
    # The fixture stands for a build wait (run/items.built_image): 2 s, under a 1 s limit.
    pytester.makepyfile(
        f"""
        import time
        import pytest
        from pytest_multiarch.run.timeouts import timer_paused

        @pytest.fixture
        def built(request):
            with timer_paused(request.config):
                time.sleep(2)

        @pytest.mark.timeout(1, method="{method}")
        def test_waits_for_a_build(built):
            time.sleep(0.2)

        @pytest.mark.timeout(1, method="{method}")
        def test_too_slow_itself(built, request):
            time.sleep(0.6)
            with timer_paused(request.config):
                pass
            time.sleep(0.6)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.stdout.fnmatch_lines(["*test_waits_for_a_build PASSED*"])
    # Its own 1.2 s run out the limit, across a pause: the time before it still counts.
    assert "test_too_slow_itself PASSED" not in result.stdout.str()
    if method == "signal":
        result.stdout.fnmatch_lines(["*Failed: Timeout (>1.0s) from pytest-timeout*"])
