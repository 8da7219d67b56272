"""Binary truth: an image whose ELF files are built for another machine fails its tests on the
platforms it does not belong to (whatever its metadata and its `uname` say), and each image id
is verified once, then read from the on-disk cache without starting any container."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
from acceptance import EngineEvents, Project, assert_outcome, read_json

# The host's statically linked busybox (Debian's busybox-static): an x86-64 binary on this
# project's machines, so it is foreign in every arm64 and s390x image.
HOST_BUSYBOX = Path("/bin/busybox")
FOREIGN = ("arm64", "s390x")
PLATFORMS = "amd64," + ",".join(FOREIGN)
NEEDS = {"arm64": "aarch64", "s390x": "s390x (64-bit big-endian)"}

SCRATCH_APP = """
    FROM scratch
    COPY busybox /bin/busybox
    ENTRYPOINT ["/bin/busybox"]
"""
# A base of the right architecture (busybox:latest is per platform: its uname tells the truth),
# with an application binary built for the build machine copied in.
FOREIGN_APP = """
    FROM busybox:latest
    COPY busybox /app
    CMD ["sh", "-c", "echo ready; exec sleep 600"]
"""
BUILD_PLATFORM_STAGE = """
    FROM --platform=$BUILDPLATFORM busybox:latest
    CMD ["sh", "-c", "echo ready; exec sleep 600"]
"""
ALLOWED = """
    FROM busybox:latest
    COPY busybox /opt/cross/bin/busybox
    CMD ["sh", "-c", "echo ready; exec sleep 600"]
"""
TESTS = """
    import pytest

    @pytest.mark.image("scratchapp")
    def test_scratchapp(run, platform):
        assert run(["echo", "hello"]).stdout == "hello\\n"

    @pytest.mark.image("foreignapp")
    def test_foreignapp(run, platform):
        assert run(["uname", "-m"]).stdout.strip() == platform.uname

    @pytest.mark.image("buildplatform")
    def test_buildplatform(run, platform):
        assert run(["true"]).exit_code == 0

    @pytest.mark.image("allowed")
    def test_allowed(run, platform):
        assert run(["uname", "-m"]).stdout.strip() == platform.uname
"""
# Resolving the images is all these tests do, so any container a run creates is verification.
IMAGE_ONLY_TESTS = """
    import pytest

    @pytest.mark.image("base")
    def test_base(image, platform):
        assert image.id.startswith("sha256:")

    @pytest.mark.image("scripts")
    def test_scripts(image, platform):
        assert image.id.startswith("sha256:")
"""


@pytest.fixture(autouse=True)
def host_busybox(unavailable: Callable[[str], NoReturn]) -> None:
    kind = subprocess.run(
        ["file", "-L", str(HOST_BUSYBOX)], capture_output=True, text=True, check=False
    ).stdout
    if "x86-64" not in kind or "statically linked" not in kind:
        unavailable(f"needs an x86-64 static busybox at {HOST_BUSYBOX} (busybox-static)")


@pytest.fixture
def cache(project: Project, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A verification cache of this test's own (so nothing is verified before it starts)."""
    root = project.path / "user-cache"
    monkeypatch.setenv("MULTIARCH_CACHE_DIR", str(root))
    return root / "verified"


def with_busybox(directory: Path) -> None:
    shutil.copy(HOST_BUSYBOX, directory / "busybox")


def setup_errors(output: str) -> dict[str, str]:
    """The text of each "ERROR at setup of <test id>" section of pytest's output."""
    sections = re.split(r"^_+ ERROR at setup of (\S+) _+$", output, flags=re.MULTILINE)
    return {
        test_id: text.split("\n=====")[0].strip()
        for test_id, text in zip(sections[1::2], sections[2::2], strict=True)
    }


@pytest.mark.parametrize("workers", ["0", "2"])
def test_foreign_binaries_fail_their_platforms(project: Project, cache: Path, workers: str) -> None:
    # Same inputs in every run of this test: built once, then verified afresh (own cache).
    with_busybox(project.image("scratchapp", SCRATCH_APP, unique=False))
    with_busybox(project.image("foreignapp", FOREIGN_APP, unique=False))
    project.image("buildplatform", BUILD_PLATFORM_STAGE, unique=False)
    allowed = project.image(
        "allowed", ALLOWED, 'foreign-binaries = ["/opt/cross/**"]\n', unique=False
    )
    with_busybox(allowed)
    project.tests(TESTS)
    report = project.path / "report.json"
    result = project.run(
        "--platforms", PLATFORMS, "-n", workers, "-v", "-rE", "--multiarch-json", str(report)
    )
    result.assert_outcomes(passed=6, errors=6)
    output = result.stdout.str()
    errors = setup_errors(output)
    for short in FOREIGN:
        platform = f"linux/{short}"
        expected = {
            "scratchapp": f"wrong architecture: /bin/busybox is x86-64, {platform} needs "
            f"{NEEDS[short]}",
            "foreignapp": f"wrong architecture: /app is x86-64, {platform} needs {NEEDS[short]}",
            # Every binary of the build machine's busybox: a path, both machines, a count.
            "buildplatform": rf"wrong architecture: /\S+ is x86-64, {platform} needs "
            rf"{re.escape(NEEDS[short])}",
        }
        for image, message in expected.items():
            test_id = f"test_{image}[{short}]"
            assert_outcome(result, test_id, "ERROR")
            pattern = message if image == "buildplatform" else re.escape(message)
            # (with xdist, a "[gw0] linux -- Python ..." line comes first)
            assert re.search(f"^{pattern}", errors[test_id], re.MULTILINE), (
                f"{test_id}: no error naming the path and both machines:\n{errors[test_id]}"
            )
        assert_outcome(result, f"test_allowed[{short}]", "PASSED")
    for image in ("scratchapp", "foreignapp", "buildplatform", "allowed"):
        assert_outcome(result, f"test_{image}[amd64]", "PASSED")
    verified = {(b["image"], b["platform"]): b for b in read_json(report)["builds"]}
    assert len(verified) == 12
    assert not any(build["verification_cached"] for build in verified.values())
    # A scratch image has no uname to ask: it says it was verified without, never silently.
    assert verified["scratchapp", "linux/amd64"]["verified"] == "metadata+elf"
    assert verified["allowed", "linux/arm64"]["verified"] == "metadata+elf+uname"
    assert verified["foreignapp", "linux/s390x"]["verified"] == "metadata+elf"
    assert "verified: metadata+elf+uname" in output
    assert len(list(cache.glob("*.json"))) == 12


def test_second_run_reads_every_verification_from_the_cache(
    project: Project, cache: Path, engine_events: Callable[..., EngineEvents]
) -> None:
    project.image(
        "base",
        """
        FROM busybox:latest
        ARG TARGETARCH
        RUN echo "$TARGETARCH" > /target-arch
        """,
    )
    project.image("scripts", 'FROM scratch\nCOPY run.sh /run.sh\nCMD ["/run.sh"]\n')
    (project.path / "images" / "scripts" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    project.tests(IMAGE_ONLY_TESTS)
    report = project.path / "report.json"
    args = ("--platforms", PLATFORMS, "-n", "2", "--multiarch-json", str(report))

    events = engine_events("create")
    project.run(*args).assert_outcomes(passed=6)
    first = read_json(report)
    created = events.of_run(first["run_id"], "create")
    # Each image read once without starting it; uname asked where there is an ELF to run it.
    assert len(created) == 6 + 3, created
    hows = {(b["image"], b["platform"]): b["verified"] for b in first["builds"]}
    assert set(hows.values()) == {"metadata+elf+uname", "metadata+scripts-only"}, hows
    assert not any(build["verification_cached"] for build in first["builds"])

    result = project.run(*args)
    result.assert_outcomes(passed=6)
    second = read_json(report)
    assert second["run_id"] != first["run_id"]
    assert events.of_run(second["run_id"], "create") == []
    assert len(second["builds"]) == 6
    assert all(build["verification_cached"] for build in second["builds"]), second["builds"]
    assert {(b["image"], b["platform"]): b["verified"] for b in second["builds"]} == hows
    assert "(cached)" in result.stdout.str()
    assert "VerificationCacheWarning" not in result.stdout.str()


def test_a_corrupted_cache_entry_is_ignored_with_a_warning(project: Project, cache: Path) -> None:
    with_busybox(project.image("foreignapp", FOREIGN_APP, unique=False))
    project.tests(
        """
        import pytest

        @pytest.mark.image("foreignapp")
        def test_it(image, platform):
            assert image.id
        """
    )
    report = project.path / "report.json"
    args = ("--platforms", "amd64,arm64", "-n", "2", "-rE", "--multiarch-json", str(report))
    project.run(*args).assert_outcomes(passed=1, errors=1)
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == 2
    platform_of = {json.loads(e.read_text())["key"]["platform"]: e for e in entries}
    # An entry that would let the wrong-architecture arm64 image pass, were it trusted.
    forged = json.loads(platform_of["linux/arm64"].read_text())
    forged["verification"].update(ok=True, problem="", foreign=[], elf_files="many")
    platform_of["linux/arm64"].write_text(json.dumps(forged))

    result = project.run(*args)
    result.assert_outcomes(passed=1, errors=1)
    output = result.stdout.str()
    assert "VerificationCacheWarning" in output
    assert "ignoring verification cache entry" in output
    expected = re.escape("wrong architecture: /app is x86-64, linux/arm64 needs aarch64")
    assert re.search(f"^{expected}", setup_errors(output)["test_it[arm64]"], re.MULTILINE)
    cached = {b["platform"]: b["verification_cached"] for b in read_json(report)["builds"]}
    assert cached == {"linux/amd64": True, "linux/arm64": False}
    # Verified afresh and stored again: the entry is whole and says what was found.
    stored = json.loads(platform_of["linux/arm64"].read_text())["verification"]
    assert stored["ok"] is False
    assert stored["foreign"][0]["path"] == "/app"
