"""Bad input gets a clear error; unused, the plugin makes no Docker call; results are reported
as a per-platform matrix and as JSON."""

from __future__ import annotations

import pytest
from acceptance import BUSYBOX_IMAGE, Project, read_json
from pytest_multiarch.model.records import RunReport


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--platforms", "amd64,sparc"],
            "*Invalid platform 'sparc' from --platforms: valid names*",
        ),
        (["--platforms", "amd64,,arm64"], "*empty platform name*from --platforms*"),
        (["--platforms", "windows/amd64"], "*'windows/amd64' from --platforms*only linux*"),
        (["--build", "sometimes"], "*Invalid value 'sometimes' from --build: use one of auto*"),
        (["--missing-emulator", "ignore"], "*Invalid value 'ignore' from --missing-emulator*"),
        (
            ["--emulation-timeout-factor", "0"],
            "*Invalid value '0' from --emulation-timeout-factor: expected a positive*",
        ),
        (
            ["--emulation-timeout-factor", "fast"],
            "*Invalid value 'fast' from --emulation-timeout-factor*",
        ),
        (["--images", "nowhere"], "*Invalid images directory *nowhere from --images*"),
    ],
)
def test_bad_options_are_usage_errors(project: Project, args: list[str], message: str) -> None:
    project.tests("def test_it():\n    pass\n")
    project.watch_sdk()
    result = project.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()
    assert project.engine_calls() == []


def test_bad_value_from_environment_names_the_variable(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.tests("def test_it():\n    pass\n")
    monkeypatch.setenv("MULTIARCH_PLATFORMS", "arm64,mips")
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'mips' from environment variable MULTIARCH_PLATFORMS*"])


def test_bad_image_toml_names_file_and_key(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE, "ports = [8080]\ntimeout = 5\n")
    project.tests("def test_it():\n    pass\n")
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*images/box/image.toml: key 'timeout': unknown key*"])


def test_unknown_image_marker_is_a_collection_error(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        @pytest.mark.image("nope")
        def test_it(run, platform):
            pass
        """
    )
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*mark.image('nope') names no image under *images (found: box)*"])
    assert project.builds() == []


def test_unused_plugin_makes_no_docker_call(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.tests(
        """
        def test_plain():
            assert 1 + 1 == 2
        """
    )
    # Point the engine client nowhere: any Docker call would fail or show in the shim's log.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    project.watch_sdk()
    result = project.run("--platforms", "amd64,arm64", "-n", "2")
    result.assert_outcomes(passed=1)
    assert project.engine_calls() == []


def test_json_report_and_terminal_matrix(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.image("box")

        def test_ok(run, platform):
            assert run(["uname", "-m"]).stdout.strip() == platform.uname

        def test_fails_on_arm(platform):
            assert platform.short != "arm64"

        @pytest.mark.skip_platforms("amd64", reason="not here")
        def test_skip(platform):
            pass
        """
    )
    report = project.path / "out" / "report.json"
    result = project.run("--platforms", "amd64,arm64", "-n", "2", "--multiarch-json", str(report))
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*multiarch: results per platform*",
            "image*amd64*arm64*",
            "box*2 passed, 1 skipped*2 passed, 1 failed*",
            "time*s*s*",
            "builds:",
            "*box*linux/amd64*built in*",
            "*box*linux/arm64*built in*",
        ]
    )
    data = read_json(report)
    assert [p["short"] for p in data["platforms"]] == ["amd64", "arm64"]
    assert [p["native"] for p in data["platforms"]] == [True, False]
    assert data["engine"]["image_store"] in ("containerd", "classic")
    assert data["engine"]["version"]
    assert len(data["run_id"]) == 32
    outcomes = {t["nodeid"]: (t["platform"], t["outcome"]) for t in data["tests"]}
    assert outcomes == {
        "test_images.py::test_ok[amd64]": ("amd64", "passed"),
        "test_images.py::test_ok[arm64]": ("arm64", "passed"),
        "test_images.py::test_fails_on_arm[amd64]": ("amd64", "passed"),
        "test_images.py::test_fails_on_arm[arm64]": ("arm64", "failed"),
        "test_images.py::test_skip[amd64]": ("amd64", "skipped"),
        "test_images.py::test_skip[arm64]": ("arm64", "passed"),
    }
    assert all(t["seconds"] >= 0 for t in data["tests"])
    assert {(b["image"], b["platform"]) for b in data["builds"]} == {
        ("box", "linux/amd64"),
        ("box", "linux/arm64"),
    }
    cells = {
        (m["image"], m["platform"]): (m["passed"], m["failed"], m["skipped"])
        for m in data["summary"]["matrix"]
    }
    assert cells == {("box", "amd64"): (2, 0, 1), ("box", "arm64"): (2, 1, 0)}


def test_failure_lines_and_xfail_reasons_under_xdist(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under -n, pytest's text of a failure begins with the worker's line ("[gw0] linux --
    Python ..."): what the report keeps, and shows as the one line of a failure, is the
    failure's own (issue 20.4). An xfail's reason is kept (issue 20.5)."""
    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.image("box")

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture exploded")

        def test_assert(run, platform):
            assert run(["cat", "/target-arch"]).stdout.strip() == "sparc", "wrong arch"

        def test_fail(platform):
            pytest.fail("plain failure line", pytrace=False)

        def test_setup_error(broken, platform):
            pass

        @pytest.mark.xfail(reason="known: bug 42")
        def test_xfail(platform):
            assert platform.short == "sparc"

        @pytest.mark.xfail(reason="maybe fixed")
        def test_xpass(platform):
            pass
        """
    )
    summary = project.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report, page = project.path / "report.json", project.path / "results.html"
    result = project.run(
        "--platforms",
        "amd64",
        "-n",
        "2",
        "--multiarch-json",
        str(report),
        "--multiarch-html",
        str(page),
    )
    result.assert_outcomes(failed=2, errors=1, xfailed=1, xpassed=1)
    tests = {t["nodeid"].split("::")[1].split("[")[0]: t for t in read_json(report)["tests"]}
    expected = {
        "test_assert": "AssertionError: wrong arch",
        "test_fail": "Failed: plain failure line",
        "test_setup_error": "RuntimeError: fixture exploded",
        "test_xfail": "known: bug 42",
        "test_xpass": "maybe fixed",
    }
    firsts = {name: t["message"].splitlines()[0] for name, t in tests.items() if t["message"]}
    assert not [line for line in firsts.values() if line.startswith("[gw")], firsts
    assert firsts["test_fail"] == "plain failure line"
    assert tests["test_xfail"]["message"] == "known: bug 42"
    markdown, html = summary.read_text(), page.read_text()
    for shown in (markdown, html):
        assert "[gw" not in shown
    assert {name: t.get("headline") for name, t in tests.items()} == expected
    assert "**failed**: AssertionError: wrong arch" in markdown
    assert "**failed**: Failed: plain failure line" in markdown
    assert "**error**: RuntimeError: fixture exploded" in markdown
    assert "**xpassed**: maybe fixed" in markdown
    assert "failed</strong>: Failed: plain failure line</summary>" in html


def test_wait_timeout_is_scaled_and_explained(project: Project) -> None:
    project.image(
        "never",
        """
        FROM busybox:latest
        CMD ["sh", "-c", "echo booting; exec sleep 600"]
        """,
        '[wait]\nlog = "this never appears"\ntimeout = 0.5\n',
    )
    project.tests(
        """
        import pytest

        @pytest.mark.image("never")
        def test_it(container, platform):
            pass
        """
    )
    result = project.run("--platforms", "amd64,arm64", "--emulation-timeout-factor", "4", "-n", "2")
    result.assert_outcomes(errors=2)
    output = result.stdout.str()
    assert "container not ready after 0.5s" in output  # amd64: native timeout
    assert "container not ready after 2s" in output  # arm64: 0.5 s x factor 4
    assert "booting" in output
    assert "hint: emulated platforms are slower" in output


def test_exited_container_fails_fast_with_its_logs(project: Project) -> None:
    project.image(
        "crash",
        """
        FROM busybox:latest
        CMD ["sh", "-c", "echo 'fatal: config missing' >&2; exit 7"]
        """,
        '[wait]\nlog = "ready"\ntimeout = 120\n',
    )
    project.tests(
        """
        import pytest

        @pytest.mark.image("crash")
        def test_it(container, platform):
            pass
        """
    )
    result = project.run("--platforms", "amd64", "--durations=0")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*container exited with code 7 before it was ready*", "*fatal: config missing*"]
    )
    assert "after 120s" not in result.stdout.str()


def test_port_wait_waits_for_a_listening_backend(project: Project) -> None:
    # The engine's proxy accepts connections before the process listens; the wait must not
    # take that for readiness. The server starts listening only after a delay.
    project.image(
        "late",
        """
        FROM busybox:latest
        RUN mkdir -p /www && echo late > /www/index.html
        CMD ["sh", "-c", "sleep 2; exec httpd -f -p 8080 -h /www"]
        """,
        "ports = [8080]\n[wait]\nport = 8080\ntimeout = 30\n",
    )
    project.tests(
        """
        import urllib.request
        import pytest

        @pytest.mark.image("late")
        def test_it(container, platform):
            host = container.get_container_host_ip()
            port = container.get_exposed_port(8080)
            with urllib.request.urlopen(f"http://{host}:{port}/index.html", timeout=5) as r:
                assert r.read() == b"late\\n"
        """
    )
    result = project.run("--platforms", "amd64,arm64", "-n", "2")
    result.assert_outcomes(passed=2)


def test_json_report_is_written_without_the_terminal_plugin(project: Project) -> None:
    """The report is written at session end, not by the terminal summary."""
    project.tests("def test_it(platform):\n    assert platform.short\n")
    report = project.path / "report.json"
    result = project.run(
        "--platforms", "amd64,arm64", "-p", "no:terminal", "--multiarch-json", str(report)
    )
    assert result.ret == 0
    loaded = RunReport.read(report)
    assert sorted(t.outcome for t in loaded.tests) == ["passed", "passed"]
    assert [p.short for p in loaded.platforms] == ["amd64", "arm64"]
