"""A published image tested exactly as users pull it (issue 24 A): an index with BuildKit's
attestation manifests in a real registry of the test's own (Debian's docker-registry on a
loopback port it picks itself), read back with an independent client (its HTTP API), each
platform pulled and tested by its own digest; an index without a platform, a single manifest
of the wrong platform, and `multiarch verify` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from acceptance import Project, manifest, read_json
from pytest_multiarch.core.errors import CommandError
from pytest_multiarch.core.retry import retrying
from pytest_multiarch.provision.second_engines import EngineLayout

DOCKERFILE = """\
FROM busybox:latest
ARG TARGETPLATFORM
RUN echo "$TARGETPLATFORM" > /built-for
"""

TESTS = """
    import pytest

    pytestmark = pytest.mark.image("app")

    def test_it(run, platform):
        assert run(["uname", "-m"]).stdout.strip() == platform.uname
        assert run(["cat", "/built-for"]).stdout.strip() == platform.name
"""


@pytest.fixture(autouse=True)
def _forget_pulled(project: Project, registry: str) -> Iterator[None]:
    """After the test: the names its runs gave the pulled images (the digest pulled and the
    run's tag), in each engine that got them, and the names the pushes left in the machine's
    engine. The registry is the test's own, gone after it."""
    yield
    listed = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    pushed = [name for name in listed.stdout.split() if name.startswith(f"{registry}/")]
    if pushed:
        subprocess.run(
            ["docker", "image", "rm", *pushed], capture_output=True, check=False, timeout=120
        )
    for call in project.docker_calls():
        words = call.split()
        if "tag" not in words or "pull" in words:
            continue
        at = words.index("tag")
        subprocess.run(
            ["docker", *words[:at], "image", "rm", *words[at + 1 : at + 3]],
            capture_output=True,
            check=False,
            timeout=120,
        )


def push(
    tmp_path: Path, reference: str, platforms: str, *, provenance: bool = True, env: Any = None
) -> None:
    """Build ``platforms`` and push them to ``reference`` as one index (with an attestation
    manifest per platform when ``provenance``), or one manifest for a single platform."""
    context = tmp_path / f"ctx-{reference.rsplit('/', 1)[-1].replace(':', '-')}"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    command = [
        "docker",
        "buildx",
        "build",
        "--platform",
        platforms,
        f"--provenance={'true' if provenance else 'false'}",
        "--output",
        f"type=image,name={reference},push=true",
        str(context),
    ]

    def build_and_push() -> None:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=600, env=env
        )
        if done.returncode:
            raise CommandError(command, done.returncode, done.stdout, done.stderr)

    # A fresh registry can refuse a first push (HTTP 500, as publishing knows: it retries too);
    # the last failure keeps buildx's own words.
    retrying(build_and_push)


def published_image(project: Project, ref: str) -> None:
    directory = project.path / "images" / "app"
    directory.mkdir(parents=True)
    # The variants check has tests of its own (test_variants.py): not counted here.
    (directory / "image.toml").write_text(f'ref = "{ref}"\nvariants = false\n')
    project.tests(TESTS)


def children(address: str, repository: str, tag: str) -> tuple[str, dict[str, str]]:
    """The index digest and platform -> digest, attestation manifests left out, as the
    registry's own HTTP API says."""
    found = manifest(address, repository, tag)
    assert found is not None
    digest, index = found
    entries = {}
    for entry in index["manifests"]:
        plat = entry["platform"]
        if plat["os"] == "unknown":
            continue
        entries[f"{plat['os']}/{plat['architecture']}"] = entry["digest"]
    return digest, entries


def test_an_index_with_attestations_is_tested_by_child_digest(
    project: Project, registry: str, tmp_path: Path
) -> None:
    ref = f"{registry}/team/app:1.0"
    push(tmp_path, ref, "linux/amd64,linux/arm64")
    index_digest, platforms = children(registry, "team/app", "1.0")
    raw = manifest(registry, "team/app", "1.0")
    assert raw is not None
    assert len(raw[1]["manifests"]) == 4  # two platforms, two attestation manifests
    published_image(project, ref)
    report = project.path / "report.json"
    page = project.path / "report.html"
    result = project.run(
        "--platforms",
        "amd64,arm64",
        "--multiarch-json",
        str(report),
        "--multiarch-html",
        str(page),
    )
    result.assert_outcomes(passed=2)
    assert project.builds() == []  # nothing rebuilt
    pulls = [call for call in project.docker_calls() if call.startswith("pull")]
    assert sorted(pulls) == sorted(
        f"pull --quiet --platform {plat} {registry}/team/app@{digest}"
        for plat, digest in platforms.items()
    )
    builds = {b["platform"]: b for b in read_json(report)["builds"]}
    assert set(builds) == {"linux/amd64", "linux/arm64"}
    for plat, build in builds.items():
        assert build["published_ref"] == ref
        assert build["published_index"] == index_digest
        assert build["published_digest"] == platforms[plat]
        # The containerd store names an image by its manifest: the tested bytes are the child.
        assert build["image_id"] == platforms[plat]
        assert build["verified"].startswith("metadata"), build
    output = result.stdout.str()
    for digest in platforms.values():
        assert f"published {ref} (index {index_digest}), tested {digest}" in output
    html = page.read_text()
    assert "Published images tested" in html
    assert all(d in html for d in (index_digest, *platforms.values()))
    summary = subprocess.run(
        [sys.executable, "-m", "pytest_multiarch.cli", "summary", str(report)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert summary.returncode == 0, summary.stderr
    for plat, digest in platforms.items():
        assert f"| app | {plat} | `{ref}` | `{index_digest}` | `{digest}` |" in summary.stdout


def test_an_index_lacking_a_platform_fails_that_platform_only(
    project: Project, registry: str, tmp_path: Path
) -> None:
    ref = f"{registry}/app:2"
    push(tmp_path, ref, "linux/amd64,linux/arm64")
    published_image(project, ref)
    result = project.run("--platforms", "amd64,s390x", "-rE")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*image 'app' for linux/s390x: the published index {ref} has no linux/s390x "
            "(it has: linux/amd64, linux/arm64). Take a ref published for linux/s390x*"
        ]
    )
    output = result.stdout.str()
    assert "build of image" not in output
    assert "seed the local mirror" not in output
    pulled = [call for call in project.docker_calls() if call.startswith("pull")]
    assert len(pulled) == 1
    assert "--platform linux/amd64" in pulled[0]


def test_a_single_manifest_of_another_platform_fails_likewise(
    project: Project, registry: str, tmp_path: Path
) -> None:
    ref = f"{registry}/single:1"
    push(tmp_path, ref, "linux/amd64", provenance=False)
    found = manifest(registry, "single", "1")
    assert found is not None
    assert "manifests" not in found[1]  # one platform's manifest, no index
    published_image(project, ref)
    report = project.path / "report.json"
    result = project.run("--platforms", "amd64,arm64", "-rE", "--multiarch-json", str(report))
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*image 'app' for linux/arm64: the published manifest {ref} has no linux/arm64 "
            "(it has: linux/amd64)*"
        ]
    )
    amd = next(b for b in read_json(report)["builds"] if b["platform"] == "linux/amd64")
    assert (amd["published_index"], amd["published_digest"]) == ("", found[0])


def _verify(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_multiarch.cli", "verify", *args],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTEST_ADDOPTS": "-p no:cacheprovider"},
    )


def test_multiarch_verify_end_to_end(project: Project, registry: str, tmp_path: Path) -> None:
    """`multiarch verify REF` in place of a build: exit 0 when the tests pass, pytest's 1 when
    one fails, 2 with a clear error for a REF that no registry serves or that is not one; with
    several images, --image says which one REF is."""
    ref = f"{registry}/rel/app:1.2"
    push(tmp_path, ref, "linux/amd64,linux/arm64")
    index_digest, platforms = children(registry, "rel/app", "1.2")
    # A Dockerfile the run must not build: what is tested is REF.
    project.image("app", "FROM busybox:latest\nRUN false\n")
    project.tests(TESTS)
    report = project.path / "verify.json"
    passed = _verify(
        project, ref, "--platforms", "amd64,arm64", "--", "--multiarch-json", str(report)
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"{ref} is a published index {index_digest}" in passed.stdout
    assert "2 passed" in passed.stdout
    assert project.builds() == []
    tested = {b["platform"]: b["published_digest"] for b in read_json(report)["builds"]}
    assert tested == platforms

    failing = _verify(project, ref, "--platforms", "amd64,s390x")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert f"the published index {ref} has no linux/s390x" in failing.stdout

    missing = _verify(project, f"{registry}/rel/nosuch:1", "--platforms", "amd64")
    assert missing.returncode == 2
    assert missing.stderr.startswith(
        f"multiarch: error: no registry serves {registry}/rel/nosuch:1: "
    ), missing.stderr
    assert "test session starts" not in missing.stdout
    bad = _verify(project, "Not/A:Ref!", "--platforms", "amd64")
    assert bad.returncode == 2
    assert "'Not/A:Ref!' from multiarch verify is not an image reference" in bad.stderr

    # Two images: REF needs --image.
    project.image("db", "FROM busybox:latest\n")
    ambiguous = _verify(project, ref, "--platforms", "amd64")
    assert ambiguous.returncode == pytest.ExitCode.USAGE_ERROR
    assert "the project has 2 images (app, db): name the one REF replaces" in ambiguous.stderr
    named = _verify(project, ref, "--image", "app", "--platforms", "amd64", "--", "-q")
    assert named.returncode == 0, named.stdout + named.stderr


def _repo_digests(host: str | None, reference: str) -> list[str]:
    env = {**os.environ, "DOCKER_HOST": host} if host else None
    found = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", reference],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return json.loads(found.stdout) if found.returncode == 0 else []


def test_each_platform_is_pulled_by_the_engine_that_runs_it(
    project: Project, registry: str, tmp_path: Path, second_engine: EngineLayout
) -> None:
    """--engine arm64=E12: arm64's manifest is pulled into E12 (by its digest) and tested there;
    amd64's into the default engine; neither engine gets the other's."""
    e12 = second_engine.docker_host
    ref = f"{registry}/mapped/app:1"
    push(tmp_path, ref, "linux/amd64,linux/arm64")
    _, platforms = children(registry, "mapped/app", "1")
    published_image(project, ref)
    report = project.path / "report.json"
    result = project.run(
        "--platforms", "amd64,arm64", "--engine", f"arm64={e12}", "--multiarch-json", str(report)
    )
    result.assert_outcomes(passed=2)
    built = {b["platform"]: b for b in read_json(report)["builds"]}
    arm, amd = built["linux/arm64"], built["linux/amd64"]
    assert arm["published_digest"] == platforms["linux/arm64"]
    assert f"{registry}/mapped/app@{platforms['linux/arm64']}" in _repo_digests(
        e12, arm["reference"]
    )
    assert _repo_digests(None, arm["reference"]) == []
    assert f"{registry}/mapped/app@{platforms['linux/amd64']}" in _repo_digests(
        None, amd["reference"]
    )
    assert _repo_digests(e12, amd["reference"]) == []
