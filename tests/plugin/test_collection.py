"""Per-platform parametrization, selection and markers, seen through real inner sessions."""

from __future__ import annotations

import pytest
from acceptance import BUSYBOX_IMAGE, Project, assert_outcome
from pytest_multiarch.core.platforms import native_platform

PLATFORM_TESTS = """
    import pytest

    pytestmark = pytest.mark.image("box")

    def test_uname(run, platform):
        result = run(["uname", "-m"])
        assert result.exit_code == 0
        assert result.stdout.strip() == platform.uname

    def test_built_for(run, platform):
        result = run(["cat", "/built-for"])
        assert result.stdout.strip() == platform.name

    def test_byteorder_fixture_only(platform):
        assert platform.byteorder == "little"

    def test_no_platform():
        pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_each_platform_gets_its_own_case(project: Project, workers: list[str]) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(PLATFORM_TESTS)
    result = project.run("--platforms", "amd64,arm64", "-v", *workers)
    result.assert_outcomes(passed=7)
    for name in ("test_uname", "test_built_for", "test_byteorder_fixture_only"):
        for short in ("amd64", "arm64"):
            assert_outcome(result, f"{name}[{short}]", "PASSED")
    assert_outcome(result, "test_no_platform", "PASSED")


def test_k_selects_one_architecture(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(PLATFORM_TESTS)
    result = project.run("--platforms", "amd64,arm64", "-k", "arm64", "-v")
    result.assert_outcomes(passed=3, deselected=4)
    assert "[amd64]" not in result.stdout.str().replace("amd64,arm64", "")
    # Only the selected architecture was built.
    builds = project.builds()
    assert len(builds) == 1
    assert "--platform linux/arm64" in builds[0]


def test_markers_restrict_skip_and_xfail(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.image("box")

        @pytest.mark.platforms("arm64")
        def test_only_arm(platform):
            assert platform.short == "arm64"

        @pytest.mark.skip_platforms("linux/amd64", reason="no amd64 today")
        def test_not_amd(platform):
            assert platform.short == "arm64"

        @pytest.mark.xfail_platforms("aarch64", reason="known arm64 bug")
        def test_fails_on_arm(platform):
            assert platform.short == "amd64"
        """
    )
    result = project.run("--platforms", "amd64,arm64", "-rsx", "-v")
    result.assert_outcomes(passed=3, skipped=2, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED*test runs only on arm64 (@pytest.mark.platforms)",
            "SKIPPED*no amd64 today",
            "XFAIL*test_fails_on_arm?arm64?*known arm64 bug",
        ]
    )


def test_image_toml_platforms_are_reported_as_skips(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE, 'platforms = ["amd64"]\n')
    project.tests(
        """
        import pytest

        @pytest.mark.image("box")
        def test_it(run, platform):
            assert run(["true"]).exit_code == 0
        """
    )
    result = project.run("--platforms", "amd64,arm64", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*image 'box' is restricted to amd64 by *image.toml*"])
    assert all("linux/arm64" not in call for call in project.builds())


def test_default_is_native_only(project: Project) -> None:
    native = native_platform().short  # whatever this host is, not an assumed amd64
    project.tests(
        f"""
        def test_it(platform):
            assert not platform.emulated
            assert platform.short == {native!r}
        """
    )
    result = project.run("-v")
    result.assert_outcomes(passed=1)
    assert_outcome(result, f"test_it[{native}]", "PASSED")


def test_platforms_from_ini_and_environment(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.tests("def test_it(platform):\n    pass\n")
    project.pytester.makeini("[pytest]\nmultiarch_platforms = arm64\n")
    result = project.run("-v")
    assert_outcome(result, "test_it[arm64]", "PASSED")
    monkeypatch.setenv("MULTIARCH_PLATFORMS", "x86_64,aarch64")
    result = project.run("-v")
    result.assert_outcomes(passed=2)
    result = project.run("-v", "--platforms", "amd64")
    result.assert_outcomes(passed=1)


def test_one_images_bad_image_toml_fails_only_that_images_tests(project: Project) -> None:
    """A mistyped key in one image's image.toml is that image's error: `-k` can select the other
    images' tests and they run; its own tests fail with the file, the key and a suggestion."""
    project.image("box", BUSYBOX_IMAGE, unique=False)
    project.image("broken", BUSYBOX_IMAGE, 'plaforms = ["arm64"]\n', unique=False)
    project.tests(
        """
        import pytest

        @pytest.mark.image("box")
        def test_box(run, platform):
            assert run(["true"]).exit_code == 0

        @pytest.mark.image("broken")
        def test_broken(run, platform):
            pass
        """
    )
    selected = project.run("--platforms", "amd64", "-k", "test_box")
    selected.assert_outcomes(passed=1)
    every = project.run("--platforms", "amd64", "-n", "2")
    every.assert_outcomes(passed=1, errors=1)
    every.stdout.fnmatch_lines(
        [
            "*image 'broken' is not valid: *images/broken/image.toml: key 'plaforms': unknown key"
            " (did you mean 'platforms'?)*"
        ]
    )


def test_a_mistyped_image_name_gets_a_suggestion(project: Project) -> None:
    project.image("webserver", BUSYBOX_IMAGE, unique=False)
    project.tests(
        """
        import pytest

        @pytest.mark.image("webservre")
        def test_it(run, platform):
            pass
        """
    )
    result = project.run("--platforms", "amd64")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*mark.image('webservre') names no image under *(found: webserver) (did you mean 'web*"]
    )
    assert project.builds() == []
