"""Publishing exactly what was tested, against a real registry (Debian's docker-registry on a
loopback port the registry picks itself), inspected with an independent client: its HTTP API."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from acceptance import BUSYBOX_IMAGE, Project, manifest, read_json

TESTS = """
    import pytest

    pytestmark = pytest.mark.image("box")

    def test_arch(run, platform):
        assert run(["uname", "-m"]).stdout.strip() == platform.uname
"""


def platforms_of(index: dict[str, Any]) -> dict[str, str]:
    return {
        "/".join(
            p
            for p in (
                m["platform"]["os"],
                m["platform"]["architecture"],
                m["platform"].get("variant"),
            )
            if p
        ): m["digest"]
        for m in index["manifests"]
    }


def ids_of_tested(report: dict[str, Any]) -> dict[str, str]:
    return {b["platform"]: b["image_id"] for b in report["builds"] if b["image"] == "box"}


def holds_tested(address: str, repository: str, digest: str, image_id: str) -> bool:
    found = manifest(address, repository, digest)
    assert found is not None
    return image_id in (digest, found[1]["config"]["digest"])


def test_publish_two_platforms_exactly_as_tested(project: Project, registry: str) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(TESTS)
    report_path = project.path / "report.json"
    result = project.run(
        "--platforms",
        "amd64,arm64",
        "-n",
        "2",
        "--multiarch-json",
        str(report_path),
        "--publish",
        f"{registry}/team",
        "--publish-tag",
        "v1",
    )
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*multiarch: publish*",
            f"box: PUBLISHED {registry}/team/box:v1",
            "  index digest sha256:*",
        ]
    )
    found = manifest(registry, "team/box", "v1")
    assert found is not None
    digest, index = found
    entries = platforms_of(index)
    assert set(entries) == {"linux/amd64", "linux/arm64"}
    report = read_json(report_path)
    for plat, image_id in ids_of_tested(report).items():
        assert holds_tested(registry, "team/box", entries[plat], image_id), plat
    published = report["publish"][0]
    assert published["status"] == "published"
    assert published["digest"] == digest
    assert published["platforms"] == entries
    assert published["verified"] == {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
    # An independent pull and run of each platform.
    for plat, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        ran = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--pull",
                "always",
                "--platform",
                plat,
                f"{registry}/team/box:v1",
                "uname",
                "-m",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        assert ran.stdout.strip() == machine
    subprocess.run(
        ["docker", "image", "rm", f"{registry}/team/box:v1"], capture_output=True, check=False
    )

    # Publishing the same tested images again changes nothing.
    again = project.run(
        "--platforms", "amd64,arm64", "--publish", f"{registry}/team", "--publish-tag", "v1"
    )
    again.stdout.fnmatch_lines([f"box: UNCHANGED {registry}/team/box:v1"])
    assert again.ret == 0
    assert manifest(registry, "team/box", "v1") == found

    # From the JSON report of a finished session, with the command.
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_multiarch.cli",
            "publish",
            "--report",
            str(report_path),
            "--to",
            f"{registry}/other",
            "--tag",
            "v2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert f"box: PUBLISHED {registry}/other/box:v2" in cli.stdout
    other = manifest(registry, "other/box", "v2")
    assert other is not None
    assert platforms_of(other[1]) == entries


def test_a_failing_platform_blocks_publishing(project: Project, registry: str) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.image("box")

        def test_arch(run, platform):
            assert platform.short != "arm64", "broken on arm64"
        """
    )
    result = project.run("--platforms", "amd64,arm64", "--publish", registry, "--publish-tag", "v1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"box: REFUSED {registry}/box:v1",
            "*1 test(s) did not pass: test_images.py::test_arch?arm64? (failed)*",
        ]
    )
    assert manifest(registry, "box", "v1") is None
    assert manifest(registry, "box", "v1-amd64") is None


def test_existing_tag_with_other_content_needs_overwrite(project: Project, registry: str) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(TESTS)
    first = project.run("--platforms", "amd64,arm64", "--publish", registry, "--publish-tag", "v1")
    assert first.ret == 0
    before = manifest(registry, "box", "v1")
    project.image("box", BUSYBOX_IMAGE + "\nRUN echo changed > /changed\n")
    refused = project.run(
        "--platforms", "amd64,arm64", "--publish", registry, "--publish-tag", "v1"
    )
    refused.assert_outcomes(passed=2)
    assert refused.ret == pytest.ExitCode.TESTS_FAILED
    refused.stdout.fnmatch_lines(
        ["box: REFUSED*", "*already exists with other content*--publish-overwrite*"]
    )
    assert manifest(registry, "box", "v1") == before
    replaced = project.run(
        "--platforms",
        "amd64,arm64",
        "--publish",
        registry,
        "--publish-tag",
        "v1",
        "--publish-overwrite",
    )
    assert replaced.ret == 0
    after = manifest(registry, "box", "v1")
    assert after is not None
    assert before is not None
    assert after[0] != before[0]


def test_unreachable_registry_is_a_clear_error(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(TESTS)
    # Port 1 on loopback: nothing listens there.
    result = project.run("--platforms", "amd64", "--publish", "127.0.0.1:1/team")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*registry 127.0.0.1:1 is not reachable*nothing was pushed*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--publish", "no_registry_here"], "*Invalid registry 'no_registry_here'*from --publish*"),
        (["--publish", "127.0.0.1:5000/Team"], "*Invalid namespace component 'Team'*"),
        (["--publish", "127.0.0.1:5000", "--publish-tag=-bad"], "*Invalid tag '-bad'*"),
    ],
)
def test_malformed_destination_is_a_usage_error(
    project: Project, args: list[str], message: str
) -> None:
    project.tests("def test_it():\n    pass\n")
    result = project.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
