"""``@pytest.mark.platform_timeout(arm64=..., s390x=...)``: pytest-timeout's limit of a test
on the platforms it names, as given; the other platforms keep the emulation-scaled limit."""

from __future__ import annotations

import uuid

import pytest
from acceptance import Project, assert_outcome, read_json

SLOW = """
    import time
    import pytest

    @pytest.mark.platform_timeout(arm64=1)
    def test_slow(platform):
        time.sleep(3)

    @pytest.mark.platform_timeout(amd64=1)
    def test_fast_enough_elsewhere(platform):
        time.sleep(2 if platform.short == "arm64" else 0)
"""


def test_platform_timeout_sets_the_limit_per_platform(project: Project) -> None:
    project.tests(SLOW)
    result = project.run("--platforms", "amd64,arm64", "--timeout", "0.5", "-v")
    # test_slow: 1 s on arm64 (named); amd64 keeps the configured 0.5 s. The second test:
    # arm64 keeps 0.5 s scaled by the emulation factor (10): 5 s, enough for its 2 s.
    assert_outcome(result, "test_slow[arm64]", "FAILED")
    assert_outcome(result, "test_slow[amd64]", "FAILED")
    assert_outcome(result, "test_fast_enough_elsewhere[amd64]", "PASSED")
    assert_outcome(result, "test_fast_enough_elsewhere[arm64]", "PASSED")
    result.stdout.fnmatch_lines(["*Failed: Timeout (>1.0s) from pytest-timeout*"])
    result.stdout.fnmatch_lines(["*Failed: Timeout (>0.5s) from pytest-timeout*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "platform_timeout(sparc=3)",
            "*unknown platform 'sparc' in @pytest.mark.platform_timeout*",
        ),
        ("platform_timeout(arm64=0)", "*platform_timeout(arm64=0): expected a positive number*"),
        ("platform_timeout(30)", "*takes platform=seconds keywords only*"),
    ],
)
def test_bad_platform_timeout_is_a_usage_error(project: Project, marker: str, message: str) -> None:
    project.tests(f"import pytest\n\n@pytest.mark.{marker}\ndef test_it(platform):\n    pass\n")
    result = project.run("--platforms", "amd64,arm64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


# The nonce in the step itself: a real build each time, never BuildKit's cached layer.
SLOW_BUILD = """
    FROM busybox:latest
    RUN echo {nonce} && sleep 12
"""

LIMITED = """
    import time
    import pytest

    pytestmark = pytest.mark.image("box")

    # Under the build's 12 s, and far over what one short run takes even on a busy machine
    # (a command that prints: a silent one is run twice).
    @pytest.mark.timeout(10)
    def test_after_a_long_build(run, platform):
        assert run(["echo", "ok"]).stdout == "ok\\n"

    @pytest.mark.timeout(1)
    def test_too_slow_when_emulated(run, platform):
        time.sleep(6 if platform.emulated else 0)
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_limit_is_the_tests_not_the_builds(project: Project, workers: str) -> None:
    """Issue 20.6: pytest-timeout's limit covers the test, not the wait for its image's build
    (8 s here, on a cold run) or verification; a limit scaled for emulation says how."""
    project.image("box", SLOW_BUILD.format(nonce=uuid.uuid4().hex))
    project.tests(LIMITED)
    report = project.path / "report.json"
    result = project.run(
        "--platforms",
        "amd64,arm64",
        "--emulation-timeout-factor",
        "3",
        "-n",
        workers,
        "-v",
        "--multiarch-json",
        str(report),
    )
    assert_outcome(result, "test_after_a_long_build[amd64]", "PASSED")
    assert_outcome(result, "test_after_a_long_build[arm64]", "PASSED")
    assert_outcome(result, "test_too_slow_when_emulated[amd64]", "PASSED")
    assert_outcome(result, "test_too_slow_when_emulated[arm64]", "FAILED")
    result.assert_outcomes(passed=3, failed=1)
    # The limit the test had: 1 s x 3, not what was left of it.
    result.stdout.fnmatch_lines(
        [
            "*Failed: Timeout (>3.0s) from pytest-timeout*",
            "*limit 3 s = 1 s x emulation factor 3 on linux/arm64*",
        ]
    )
    tests = {t["nodeid"]: t for t in read_json(report)["tests"]}
    assert tests["test_images.py::test_too_slow_when_emulated[arm64]"]["headline"] == (
        "Failed: Timeout (>3.0s) from pytest-timeout."
        " (limit 3 s = 1 s x emulation factor 3 on linux/arm64)"
    )
