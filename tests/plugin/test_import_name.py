"""A new user's project that has its own ``harness/`` package (a common name for a test
harness) runs ``python -m pytest --platforms amd64,arm64``: the plugin loads through its
``pytest11`` entry point (``pytest_multiarch.plugin``), ``import harness`` is the user's own
package, and the public API is importable as ``pytest_multiarch`` (issue 19)."""

from __future__ import annotations

import uuid

import pytest
from acceptance import BUSYBOX_IMAGE, Project, assert_outcome, containers_of_run, read_json

USER_TESTS = """
import pathlib

import harness
import pytest
import pytest_multiarch
from pytest_multiarch import MultiarchError, Platform, RunResult, RunTimeout, WrongArchitecture

pytestmark = pytest.mark.image("box")


def test_the_users_harness_is_the_users(platform, request):
    assert harness.VALUE == 1
    # Loaded once, through its pytest11 entry point "multiarch".
    plugin = request.config.pluginmanager.get_plugin("multiarch")
    assert plugin is not None and plugin.__name__ == "pytest_multiarch.plugin"
    assert pathlib.Path(harness.__file__).parent == pathlib.Path(__file__).parent / "harness"


def test_the_public_api(run, platform, image):
    result = run(["cat", "/built-for"])
    assert isinstance(result, RunResult)
    assert isinstance(result, pytest_multiarch.RunResult)
    assert result.stdout.strip() == platform.name
    assert isinstance(platform, Platform)
    assert issubclass(RunTimeout, BaseException)
    assert issubclass(WrongArchitecture, BaseException)
    assert issubclass(MultiarchError, Exception)
    assert isinstance(image, pytest_multiarch.BuiltImage)
    assert isinstance(pytest_multiarch.__version__, str)
    for name in pytest_multiarch.__all__:
        assert getattr(pytest_multiarch, name) is not None, name
    with pytest.raises(AttributeError, match="pytest_multiarch.*no_such_name"):
        pytest_multiarch.no_such_name
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_a_project_with_its_own_harness_package_runs_with_the_plugin(
    project: Project, workers: list[str]
) -> None:
    package = project.path / "harness"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 1\n")
    project.image("box", BUSYBOX_IMAGE, '[wait]\nlog = "ready"\n')
    project.tests(USER_TESTS)
    project.watch_sdk()  # and the check that the SDK log sees every process's requests
    run_id = uuid.uuid4().hex
    report = project.path / "report.json"
    result = project.run(
        "--platforms",
        "amd64,arm64",
        *workers,
        f"--testrunuid={run_id}",
        "--multiarch-json",
        str(report),
        "-v",
    )
    # Before the import name was pytest_multiarch: `Error while loading plugin "pytest11"`.
    assert "Error while loading plugin" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=4)
    for test in ("test_the_users_harness_is_the_users", "test_the_public_api"):
        for short in ("amd64", "arm64"):
            assert_outcome(result, f"test_images.py::{test}[{short}]", "PASSED")
    data = read_json(report)
    assert data["run_id"] == run_id
    assert containers_of_run(run_id) == []
    requests = project.sdk_requests()
    assert any("/containers/create" in request for request in requests), requests
