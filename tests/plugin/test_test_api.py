"""The test API under real suites (issue 15), on amd64 and two foreign platforms, one of them
big-endian: platform markers on parameters, classes and modules; strict xfail from the ini file;
bytes in and out of ``run``; comparing platforms in one test; emulation-scaled time limits;
build time kept out of test durations; one container shared by a module's tests."""

from __future__ import annotations

import importlib.util
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from acceptance import BUSYBOX_IMAGE, Project, assert_outcome, containers_of_run, read_json

PLATFORMS = ("--platforms", "amd64,arm64,s390x")


def test_platform_markers_on_parameters_classes_and_modules(project: Project) -> None:
    project.tests(
        """
        import pytest

        @pytest.mark.parametrize(
            "n",
            [
                1,
                pytest.param(2, marks=pytest.mark.xfail_platforms("s390x", reason="param xfail")),
                pytest.param(3, marks=pytest.mark.skip_platforms("arm64", reason="param skip")),
                pytest.param(4, marks=pytest.mark.platforms("amd64")),
            ],
        )
        def test_param(platform, n):
            if n == 2:
                assert platform.byteorder == "little"

        @pytest.mark.xfail_platforms("arm64", reason="class xfail")
        class TestClass:
            def test_a(self, platform):
                assert platform.short != "arm64"

            @pytest.mark.platforms("s390x")
            def test_b(self, platform):
                assert platform.short == "s390x"
        """,
        "test_params.py",
    )
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.xfail_platforms("s390x", reason="module xfail")

        def test_module(platform):
            assert platform.byteorder == "little"
        """,
        "test_module.py",
    )
    result = project.run(*PLATFORMS, "-v", "-rsx")
    result.assert_outcomes(passed=13, skipped=5, xfailed=3)
    for test_id, outcome in [
        ("test_param[amd64-2]", "PASSED"),
        ("test_param[s390x-2]", "XFAIL"),
        ("test_param[arm64-3]", "SKIPPED"),
        ("test_param[s390x-3]", "PASSED"),
        ("test_param[amd64-4]", "PASSED"),
        ("test_param[s390x-4]", "SKIPPED"),
        ("TestClass::test_a[arm64]", "XFAIL"),
        ("TestClass::test_a[s390x]", "PASSED"),
        ("TestClass::test_b[s390x]", "PASSED"),
        ("TestClass::test_b[amd64]", "SKIPPED"),
        ("test_module[s390x]", "XFAIL"),
        ("test_module[arm64]", "PASSED"),
    ]:
        assert_outcome(result, test_id, outcome)
    result.stdout.fnmatch_lines_random(
        [
            "XFAIL*test_param?s390x-2?*param xfail",
            "XFAIL*test_a?arm64?*class xfail",
            "XFAIL*test_module?s390x?*module xfail",
            "SKIPPED*param skip",
            "SKIPPED*test runs only on amd64 (@pytest.mark.platforms)",
            "SKIPPED*test runs only on s390x (@pytest.mark.platforms)",
        ]
    )


XPASSING = """
    import pytest

    @pytest.mark.xfail_platforms("arm64", reason="thought broken")
    def test_default(platform):
        pass

    @pytest.mark.xfail_platforms("arm64", reason="thought broken", strict=False)
    def test_explicitly_lenient(platform):
        pass
"""


def test_xfail_platforms_follows_xfail_strict_from_the_ini_file(project: Project) -> None:
    project.tests(XPASSING)
    lenient = project.run(*PLATFORMS, "-v")
    lenient.assert_outcomes(passed=4, xpassed=2)

    project.pytester.makeini("[pytest]\nxfail_strict = true\n")
    strict = project.run(*PLATFORMS, "-v")
    strict.assert_outcomes(passed=4, failed=1, xpassed=1)
    assert_outcome(strict, "test_default[arm64]", "FAILED")
    strict.stdout.fnmatch_lines(["*?XPASS(strict)? thought broken*"])
    assert_outcome(strict, "test_explicitly_lenient[arm64]", "XPASS")


BINARY_TESTS = r"""
    import pytest

    pytestmark = pytest.mark.image("box")

    def test_invalid_utf8_out(run):
        result = run(["printf", "\\377\\000\\201"])
        assert result.exit_code == 0
        assert result.stdout_bytes == b"\xff\x00\x81"
        assert result.stdout == "\ufffd\x00\ufffd"  # decoded leniently, never raises

    def test_binary_stderr_and_exit_code(run):
        result = run(["sh", "-c", "printf '\\376\\n' >&2; exit 3"])
        assert (result.exit_code, result.stderr_bytes, result.stderr) == (3, b"\xfe\n", "\ufffd\n")

    def test_every_byte_through_stdin(run):
        data = bytes(range(256)) * 64
        result = run(["cat"], stdin=data)
        assert result.stdout_bytes == data

    def test_text_stdin(run):
        assert run(["cat"], stdin="h\u00e9llo\n").stdout == "h\u00e9llo\n"
"""


def test_run_takes_and_gives_bytes(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(BINARY_TESTS)
    result = project.run(*PLATFORMS, "-n", "2")
    result.assert_outcomes(passed=12)


COMPARE_TESTS = r"""
    import pytest

    pytestmark = pytest.mark.image("box")
    PAYLOAD = b"written on one platform, read on the others\n" * 50

    def test_identical_output(images):
        assert list(images) == ["amd64", "arm64", "s390x"]
        assert images["linux/s390x"].platform.byteorder == "big"
        assert images["aarch64"].image.platform.name == "linux/arm64"
        assert [r.platform.timeout_factor for r in images.values()] == [1.0, 10.0, 10.0]
        assert images.assert_same_on_every_platform(["echo", "hi"]).stdout == "hi\n"

    def test_native_byte_order(images):
        images.assert_same_on_every_platform(["sh", "-c", "printf '\\1\\0' | od -An -td2"])

    def test_each_platform_reads_what_this_one_wrote(images, platform):
        archive = images[platform.short].run(["gzip", "-c"], stdin=PAYLOAD).stdout_bytes
        assert archive[:2] == b"\x1f\x8b"
        for other, runner in images.items():
            result = runner.run(["gunzip", "-c"], stdin=archive)
            assert result.stdout_bytes == PAYLOAD, f"written on {platform.short}, read on {other}"

    def test_each_platform_runs_its_own_architecture(images):
        machines = {short: r.run(["uname", "-m"]).stdout.strip() for short, r in images.items()}
        assert machines == {"amd64": "x86_64", "arm64": "aarch64", "s390x": "s390x"}
"""


def test_compare_platforms_in_one_test(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(COMPARE_TESTS)
    run_id = uuid.uuid4().hex
    report = project.path / "report.json"
    result = project.run(
        *PLATFORMS,
        "-n",
        "2",
        "-v",
        f"--testrunuid={run_id}",
        "--multiarch-json",
        str(report),
    )
    result.assert_outcomes(passed=5, failed=1)
    assert_outcome(result, "test_native_byte_order", "FAILED")
    # The failure is a per-platform table of what really differs: native byte order.
    result.stdout.fnmatch_lines(
        [
            "*differs between platforms (stdout):",
            "*platform  stdout",
            "*amd64     '      1\\n'",
            "*arm64     '      1\\n'",
            "*s390x     '    256\\n'",
            "*platforms that agree: amd64, arm64 | s390x",
        ]
    )
    # Built once per platform for the whole run (two workers, tests on every platform).
    assert sorted(c.split("--platform ")[1].split()[0] for c in project.builds()) == [
        "linux/amd64",
        "linux/arm64",
        "linux/s390x",
    ]
    data = read_json(report)
    assert sorted((b["platform"], b["error"]) for b in data["builds"]) == [
        ("linux/amd64", ""),
        ("linux/arm64", ""),
        ("linux/s390x", ""),
    ]
    assert all("uname" in b["verified"] for b in data["builds"])
    # Tests that reach every platform at once have a column of their own in the matrix.
    columns = {t["nodeid"].split("::")[-1]: t["platform"] for t in data["tests"]}
    assert columns["test_native_byte_order"] == "all"
    assert columns["test_each_platform_reads_what_this_one_wrote[s390x]"] == "s390x"
    result.stdout.fnmatch_lines(["image*amd64*arm64*s390x*all", "box*1 passed*2 passed, 1 failed"])
    assert containers_of_run(run_id) == []


TIMEOUT_TESTS = """
    import pytest
    import pytest_multiarch

    pytestmark = pytest.mark.image("box")

    def test_factor(platform):
        expected = 10.0 if platform.emulated else 1.0
        assert platform.timeout_factor == expected
        assert platform.scaled(2.5) == 2.5 * expected

    def test_run_limit_scales(run, platform):
        # One native second: too short for `sleep 2` natively, ten seconds under emulation.
        if platform.emulated:
            assert run(["sleep", "2"], timeout=1).exit_code == 0
        else:
            with pytest.raises(pytest_multiarch.RunTimeout, match="did not finish within 1s"):
                run(["sleep", "2"], timeout=1)

    def test_in_container_limit_scaled_by_hand(run, platform):
        # A program's own time limit inside the container, passed on scaled. (Not as PID 1,
        # which ignores the signal that ends it.)
        limit = int(platform.scaled(1))
        result = run(["sh", "-c", f"timeout {limit} sleep 2 && echo finished"])
        assert ("finished" in result.stdout) == platform.emulated
"""


def test_time_limits_scale_with_the_platform(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(TIMEOUT_TESTS)
    result = project.run(*PLATFORMS, "-n", "2")
    result.assert_outcomes(passed=9)


PER_TEST_LIMITS = """
    import time
    import pytest

    @pytest.mark.timeout(1)
    def test_marker(platform):
        time.sleep(1.5)

    def test_configured(platform):
        time.sleep(1.5)

    @pytest.mark.timeout(0)
    def test_disabled(platform):
        time.sleep(1.5)
"""


def test_pytest_timeout_limits_are_native_seconds(
    project: Project, unavailable: Callable[[str], NoReturn]
) -> None:
    if importlib.util.find_spec("pytest_timeout") is None:
        unavailable("needs pytest-timeout (a dev dependency: pip install -e '.[dev]')")
    project.tests(PER_TEST_LIMITS)
    result = project.run(*PLATFORMS, "--timeout", "1", "-n", "2", "-v")
    # 1 native second: too short natively, ten seconds under emulation; 0 stays "no limit".
    result.assert_outcomes(passed=7, failed=2)
    assert_outcome(result, "test_marker[amd64]", "FAILED")
    assert_outcome(result, "test_configured[amd64]", "FAILED")
    for short in ("arm64", "s390x"):
        assert_outcome(result, f"test_marker[{short}]", "PASSED")
        assert_outcome(result, f"test_configured[{short}]", "PASSED")
    result.stdout.fnmatch_lines(["*Timeout (>1.0s) from pytest-timeout*"])


# Long enough that a test charged with its build cannot pass for one that was not, even on a
# loaded machine (an uncharged test here takes 0.2-3 s).
BUILD_SECONDS = 8
SLOW_BUILD = """
    FROM busybox:latest
    RUN sleep 8 && echo {nonce} > /nonce
    CMD ["sh", "-c", "echo ready; exec sleep 600"]
"""


def test_build_time_is_reported_apart_from_test_time(project: Project) -> None:
    # A step that really runs (BuildKit's layer cache would skip a step seen before).
    project.image("slow", SLOW_BUILD.format(nonce=uuid.uuid4().hex))
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.image("slow")

        def test_first(run):
            assert run(["echo", "first"]).stdout == "first\\n"

        def test_second(run):
            assert run(["echo", "second"]).stdout == "second\\n"
        """
    )
    report = project.path / "report.json"
    junit = project.path / "junit.xml"
    result = project.run(
        *PLATFORMS,
        "--durations=0",
        "--multiarch-json",
        str(report),
        "--junitxml",
        str(junit),
    )
    result.assert_outcomes(passed=6)
    data = read_json(report)
    builds = {b["platform"]: b["seconds"] for b in data["builds"]}
    assert len(builds) == 3
    assert all(seconds >= BUILD_SECONDS for seconds in builds.values()), builds
    # No test is charged for the build it waited for.
    assert all(t["seconds"] < BUILD_SECONDS for t in data["tests"]), data["tests"]
    durations = [
        float(m.group(1))
        for line in result.stdout.lines
        if (m := re.match(r"(\d+\.\d+)s (setup|call|teardown) ", line))
    ]
    assert durations, result.stdout.str()
    assert max(durations) < BUILD_SECONDS
    junit_root = ET.parse(junit).getroot()  # noqa: S314 - written by the inner session
    for case in junit_root.iter("testcase"):
        assert float(case.get("time", "0")) < BUILD_SECONDS
    properties = [(p.get("name"), p.get("value") or "") for p in junit_root.iter("property")]
    waits = [float(value) for name, value in properties if name == "build_seconds"]
    assert len(waits) == 3, properties  # the first test of each platform waited for its build
    assert min(waits) >= BUILD_SECONDS
    assert sorted(v for name, v in properties if name == "timeout_factor") == ["1"] * 2 + ["10"] * 4
    # The matrix shows build time on a row of its own, and the slowdown against native.
    summary = data["summary"]
    assert set(summary["slowdown"]) == {"arm64", "s390x"}
    assert all(v > 0 for v in summary["slowdown"].values())
    assert summary["build_seconds"]["s390x"] >= BUILD_SECONDS
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.lines if line.strip()}
    assert all(float(v.rstrip("s")) >= BUILD_SECONDS for v in rows["build"]), rows["build"]
    assert all(float(v.rstrip("s")) < BUILD_SECONDS for v in rows["time"]), rows["time"]
    assert rows["slowdown"][0] == "-"
    assert all(re.fullmatch(r"\d+\.\dx", v) for v in rows["slowdown"][1:]), rows["slowdown"]


SHARED_TESTS = """
    import pytest
    from pathlib import Path

    pytestmark = pytest.mark.image("box")
    SEEN = Path(__file__).parent / "shared-ids.txt"

    def test_first(shared_container, platform):
        wrapped = shared_container.get_wrapped_container()
        assert wrapped.labels["pytest-multiarch.run"]
        assert shared_container.exec(["touch", "/tmp/first-was-here"]).exit_code == 0
        with SEEN.open("a") as seen:
            seen.write(f"{platform.short} {wrapped.id}\\n")

    def test_second(shared_container, platform):
        wrapped = shared_container.get_wrapped_container()
        ids = dict(line.split() for line in SEEN.read_text().splitlines())
        assert wrapped.id == ids[platform.short]
        assert shared_container.exec(["ls", "/tmp/first-was-here"]).exit_code == 0
        arch = shared_container.exec(["uname", "-m"]).output.decode().strip()
        assert arch == platform.uname

    def test_per_test_container_is_another(container, shared_container):
        assert container.get_wrapped_container().id != shared_container.get_wrapped_container().id
"""

AFTER_THE_MODULE = """
    import subprocess
    import time
    from pathlib import Path

    def exists(container_id):
        found = subprocess.run(
            ["docker", "ps", "-aq", "--no-trunc", "--filter", f"id={container_id}"],
            capture_output=True, text=True, check=True,
        )
        return found.stdout.strip() != ""

    def test_shared_containers_are_removed_after_the_module():
        seen = (Path(__file__).parent / "shared-ids.txt").read_text().split()[1::2]
        assert len(seen) == 3
        # Removal runs off the tests' critical path: give it a moment, not the end of the run.
        deadline = time.monotonic() + 60
        while any(exists(c) for c in seen) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [c for c in seen if exists(c)] == []
"""


def test_module_scoped_container_is_shared_and_removed(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.tests(SHARED_TESTS, "test_shared.py")
    project.tests(AFTER_THE_MODULE, "test_zz_after.py")
    run_id = uuid.uuid4().hex
    result = project.run(*PLATFORMS, "-v", f"--testrunuid={run_id}")
    result.assert_outcomes(passed=10)
    seen = (project.path / "shared-ids.txt").read_text().split()
    assert seen[0::2] == ["amd64", "arm64", "s390x"]  # one container per platform
    assert len(set(seen[1::2])) == 3
    assert containers_of_run(run_id) == []


def test_readme_examples_behave_as_documented(project: Project) -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text()

    def block(language: str, after: str) -> str:
        found = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(text, text.index(after))
        assert found is not None, f"no ```{language} block after {after!r} in README.md"
        return found.group(1)

    hello = project.path / "images" / "hello"
    hello.mkdir(parents=True)
    (hello / "Dockerfile").write_text(block("dockerfile", "`images/hello/Dockerfile`"))
    (hello / "image.toml").write_text(block("toml", "`images/hello/image.toml`"))
    project.tests(block("python", "**Every platform in one test: `images`.**"), "test_every.py")
    project.tests(block("python", "**One container for a module: `shared_container`.**"))
    result = project.run(*PLATFORMS, "-v")
    # ... and images/hello's variants check (amd64, arm64 and s390x compare clean).
    result.assert_outcomes(passed=11, failed=1)
    assert_outcome(result, "test_native_byte_order", "FAILED")
    start = text.index("$ pytest --platforms amd64,arm64,s390x")
    documented = text[start : text.index("```", start)].splitlines()[2:]
    assert len(documented) == 6
    result.stdout.fnmatch_lines([line.replace("[", "?").replace("]", "?") for line in documented])


QUICK_IMAGE = """
    FROM busybox:latest
    CMD ["echo", "quick-said-this"]
"""


def test_a_one_shot_image_used_as_container_fails_plainly(project: Project) -> None:
    """Issue 20 point 7: an image without [wait] whose command exits at once, used as
    ``container``. A test that uses it after its command ended (each test waits for that
    first, through the engine, so that the outcome never depends on timing) fails with a plain
    sentence naming the image, its exit code and its output, not the engine's ``409 Conflict
    ... is not running``; the first test's container is started in its own setup, the
    second's ahead of it (prestart)."""
    project.image("quick", QUICK_IMAGE)
    project.tests(
        """
        import pytest

        @pytest.mark.image("quick")
        @pytest.mark.parametrize("n", range(2))
        def test_uses_it(container, n):
            container.get_wrapped_container().wait()
            container.exec(["true"])
        """
    )
    result = project.run("--platforms", "amd64", "-v")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert output.count("container of 'quick' exited (code 0) before the test used it") >= 2
    assert "quick-said-this" in output
    assert "409" not in output
    assert "is not running" not in output
