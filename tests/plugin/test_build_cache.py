"""--build-cache against the real engine and buildx: a run writes one cache per (image, platform),
a later run on an image store without the image builds its steps from that cache and says so,
and a cache directory that does not exist yet is a cold build, not an error."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.plugin.acceptance import Project, read_json

TESTS = """
    import pytest

    @pytest.mark.image("box")
    def test_built_for(run, platform):
        assert run(["cat", "/built-for"]).stdout.strip() == platform.name
"""


def cached_image(project: Project) -> None:
    # A step of its own (not a comment): no other test's build can have cached it.
    project.image(
        "box",
        f"""
        FROM busybox:latest
        ARG TARGETPLATFORM
        RUN echo "$TARGETPLATFORM" > /built-for && echo {uuid.uuid4().hex} > /nonce
        RUN cat /nonce /built-for > /both
        """,
    )
    project.tests(TESTS)


def remove_images(report: Path) -> None:
    """The image store as a fresh machine's: without the images the run made."""
    tags = [build["reference"] for build in read_json(report)["builds"]]
    subprocess.run(["docker", "image", "rm", *tags], capture_output=True, timeout=120, check=True)


def test_second_run_builds_from_the_cache_of_the_first(project: Project) -> None:
    cached_image(project)
    cache = project.path / "cache"
    first = project.path / "first.json"
    result = project.run(
        "--platforms",
        "amd64,arm64",
        "--build-cache",
        f"local:{cache}",
        "--multiarch-json",
        str(first),
    )
    result.assert_outcomes(passed=2)
    builds = {b["platform"]: b for b in read_json(first)["builds"]}
    for name, short in (("linux/amd64", "amd64"), ("linux/arm64", "arm64")):
        # One scope per platform; the two RUN steps ran (FROM is not counted).
        assert (cache / "box" / short / "index.json").is_file()
        assert builds[name]["build_cache"] == f"local:{cache / 'box' / short}"
        assert (builds[name]["steps_cached"], builds[name]["steps_run"]) == (0, 2)
        assert builds[name]["cache_warning"] == ""
    remove_images(first)

    second = project.path / "second.json"
    result = project.run(
        "--platforms",
        "amd64,arm64",
        "--build-cache",
        f"local:{cache}",
        "--multiarch-json",
        str(second),
    )
    result.assert_outcomes(passed=2)
    for build in read_json(second)["builds"]:
        assert build["cached"] is False  # buildx ran: the image was not in the store
        assert (build["steps_cached"], build["steps_run"]) == (2, 0), build
        assert build["cache_warning"] == ""
    result.stdout.fnmatch_lines(
        [
            f"*box*linux/amd64*built in*(2 of 2 steps cached from local:{cache}/box/amd64)*",
            f"*box*linux/arm64*built in*(2 of 2 steps cached from local:{cache}/box/arm64)*",
        ]
    )
    # The export replaced the scope's cache: no staged or old copies left beside it.
    assert sorted(p.name for p in (cache / "box").iterdir()) == ["amd64", "arm64"]
    assert "--cache-from" in " ".join(project.builds()[-1:])


def test_a_cache_directory_that_does_not_exist_is_a_cold_build(project: Project) -> None:
    cached_image(project)
    absent = project.path / "no" / "such" / "cache"
    report = project.path / "report.json"
    result = project.run(
        "--platforms", "amd64", "--build-cache", f"local:{absent}", "--multiarch-json", str(report)
    )
    result.assert_outcomes(passed=1)
    (build,) = read_json(report)["builds"]
    assert build["error"] == ""
    assert build["cache_warning"] == ""
    assert (build["steps_cached"], build["steps_run"]) == (0, 2)
    # Not read (there was nothing), written for the next run.
    (call,) = project.builds()
    assert "--cache-from" not in call
    assert f"--cache-to type=local,dest={absent}/box/" in call
    assert (absent / "box" / "amd64" / "index.json").is_file()
    remove_images(report)


def test_bad_spec_is_a_usage_error_naming_value_and_source(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.tests(TESTS)
    monkeypatch.setenv("MULTIARCH_BUILD_CACHE", "s3:bucket")
    result = project.run("--platforms", "amd64")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        [
            "*Invalid value 's3:bucket' from environment variable MULTIARCH_BUILD_CACHE: unknown "
            "cache kind 's3'*drop --build-cache*"
        ]
    )
    assert project.builds() == []
