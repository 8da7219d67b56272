"""Builds: once per (image, platform) per run whatever -n is, cached across runs, and a build
that fails on one platform errors only that platform's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import pytest
from acceptance import BUSYBOX_IMAGE, Project, manifest, read_json

MANY_TESTS = """
    import pytest

    pytestmark = pytest.mark.image("box")

    @pytest.mark.parametrize("n", range(6))
    def test_many(run, platform, n):
        assert run(["cat", "/target-arch"]).stdout.strip() == platform.arch
"""


@pytest.mark.parametrize("workers", ["0", "3"])
def test_each_image_platform_is_built_once(project: Project, workers: str) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.image("other", BUSYBOX_IMAGE)
    project.tests(MANY_TESTS)
    report = project.path / "report.json"
    result = project.run(
        "--platforms", "amd64,arm64", "-n", workers, "--multiarch-json", str(report)
    )
    result.assert_outcomes(passed=12)
    builds = project.builds()
    # Exactly one buildx call per platform of the image the tests use; none for "other".
    assert sorted(call.split("--platform ")[1].split()[0] for call in builds) == [
        "linux/amd64",
        "linux/arm64",
    ], builds
    assert all("images/box" in call for call in builds)
    records = read_json(report)["builds"]
    assert [(r["image"], r["platform"], r["cached"]) for r in records] == [
        ("box", "linux/amd64", False),
        ("box", "linux/arm64", False),
    ]
    assert all(r["image_id"].startswith("sha256:") and r["seconds"] > 0 for r in records)

    # Unchanged inputs: the next run finds the images without calling buildx at all.
    again = project.run(
        "--platforms", "amd64,arm64", "-n", workers, "--multiarch-json", str(report)
    )
    again.assert_outcomes(passed=12)
    assert project.builds() == builds
    assert [r["cached"] for r in read_json(report)["builds"]] == [True, True]


def test_changed_input_rebuilds_only_that_image(project: Project) -> None:
    box = project.image("box", BUSYBOX_IMAGE)
    project.tests(MANY_TESTS)
    project.run("--platforms", "amd64").assert_outcomes(passed=6)
    assert len(project.builds()) == 1
    (box / "extra.txt").write_text("changed\n")
    project.run("--platforms", "amd64").assert_outcomes(passed=6)
    assert len(project.builds()) == 2
    project.run("--platforms", "amd64", "--build=always").assert_outcomes(passed=6)
    assert len(project.builds()) == 3


def test_build_never_without_an_image_errors_clearly(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(MANY_TESTS)
    result = project.run("--platforms", "amd64", "--build=never")
    result.assert_outcomes(errors=6)
    result.stdout.fnmatch_lines(["*is not built and --build=never was given*"])
    assert project.builds() == []


def test_a_failing_build_errors_only_its_platform(project: Project) -> None:
    project.image(
        "box",
        """
        FROM busybox:latest
        ARG TARGETARCH
        RUN if [ "$TARGETARCH" = "arm64" ]; then echo "boom: no arm64 support" >&2; exit 3; fi
        RUN echo "$TARGETARCH" > /target-arch
        """,
    )
    project.tests(MANY_TESTS)
    report = project.path / "report.json"
    result = project.run("--platforms", "amd64,arm64", "-n", "2", "--multiarch-json", str(report))
    result.assert_outcomes(passed=6, errors=6)
    result.stdout.fnmatch_lines(
        [
            "*build of image 'box' for linux/arm64 failed (exit 1)*",
            "*boom: no arm64 support*",
        ]
    )
    # The failed build ran once, not once per test.
    assert sum("linux/arm64" in call for call in project.builds()) == 1
    failed = [b for b in read_json(report)["builds"] if b["error"]]
    assert [b["platform"] for b in failed] == ["linux/arm64"]
    result.stdout.fnmatch_lines(["*box*linux/arm64*FAILED*"])


def test_ref_image_is_pulled_per_platform(project: Project) -> None:
    directory = project.path / "images" / "upstream"
    directory.mkdir(parents=True)
    (directory / "image.toml").write_text('variants = false\nref = "busybox:latest"\n')
    project.tests(
        """
        import pytest

        @pytest.mark.image("upstream")
        def test_it(run, platform):
            assert run(["uname", "-m"]).stdout.strip() == platform.uname
        """
    )
    report = project.path / "report.json"
    result = project.run("--platforms", "amd64,arm64", "--multiarch-json", str(report))
    result.assert_outcomes(passed=2)
    # Resolved in the engine's registry mirror and pulled by each platform's digest, through
    # the name the user gave (so the engine's mirror serves it): not rebuilt FROM busybox.
    assert project.builds() == []
    mirrored = manifest("127.0.0.1:5000", "library/busybox", "latest")
    assert mirrored is not None
    children = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in mirrored[1]["manifests"]
        if not m["platform"].get("variant")
    }
    builds = read_json(report)["builds"]
    assert {b["platform"] for b in builds} == {"linux/amd64", "linux/arm64"}
    for build in builds:
        assert build["published_index"] == mirrored[0]
        assert build["published_digest"] == children[build["platform"]]
        assert build["image_id"] == build["published_digest"]  # the containerd store's name
    # Pulled (unless an earlier run did) by digest, through the name the user gave.
    for call in project.docker_calls():
        if call.startswith("pull"):
            assert call.startswith("pull --quiet --platform linux/"), call
            assert " busybox@sha256:" in call, call


OFFLINE_TESTS = """
    import pytest

    @pytest.mark.image("pybase")
    def test_pybase(run, platform):
        pass

    @pytest.mark.image("far")
    def test_far(run, platform):
        pass
"""


def test_an_unreachable_registry_is_named_with_what_the_mirror_holds(project: Project) -> None:
    """Offline, a base the mirror lacks (FROM) and a ref on a registry that cannot be reached
    fail with the image, the reference and "cannot be reached", and list what the engine's
    registry mirror holds instead (issue 20.8), not with BuildKit's raw DNS error alone."""
    project.image("pybase", "FROM python:3.12-slim\n")
    project.image("far", "", 'ref = "nosuch.invalid/x:1"\n')
    (project.path / "images" / "far" / "Dockerfile").unlink()
    project.tests(OFFLINE_TESTS)
    result = project.run("--platforms", "amd64")
    result.assert_outcomes(errors=2)
    output = result.stdout.str()
    for line in (
        "image 'pybase' for linux/amd64: its base image *python:3.12-slim (FROM) cannot be had: "
        "its registry cannot be reached (no such host; offline?); the engine's registry mirror "
        "* holds: *busybox:latest (also *debian:bookworm-slim (also *",
        "image 'far' for linux/amd64: its ref nosuch.invalid/x:1 cannot be had: its registry "
        "cannot be reached (no such host; offline?)*busybox:latest*",
    ):
        result.stdout.fnmatch_lines([line])
    assert "build of image 'pybase'" not in output, output


def test_a_ref_without_the_platform_says_its_index_has_none(
    project: Project, unavailable: Callable[[str], NoReturn]
) -> None:
    """A ref whose published index lacks a requested platform says so, not "build failed" with a
    hint to seed the mirror (issue 20.8)."""
    from pytest_multiarch.publish.registry import listed_platforms

    ref = "127.0.0.1:5000/library/debian:bookworm-slim"
    listed = listed_platforms(ref, timeout=60)
    if listed is None:
        unavailable(f"the local registry mirror serves no {ref} (scripts/bootstrap seeds it)")
    lacking = [p for p in ("s390x", "ppc64le", "arm/v7") if f"linux/{p}" not in listed]
    if not lacking:
        unavailable(f"{ref} is published for every emulated platform here")
    platform = lacking[0]
    project.image("refd", "", f'ref = "{ref}"\n')
    (project.path / "images" / "refd" / "Dockerfile").unlink()
    project.tests(
        """
        import pytest

        @pytest.mark.image("refd")
        def test_it(run, platform):
            pass
        """
    )
    result = project.run("--platforms", platform)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"image 'refd' for linux/{platform}: the published index {ref} has no "
            f"linux/{platform} (it has: *linux/amd64*). Take a ref published for *"
        ]
    )
    assert "seed the local mirror" not in result.stdout.str()
