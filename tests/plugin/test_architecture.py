"""A test can never pass on the wrong architecture, and a missing emulator is named up front."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from acceptance import BUSYBOX_IMAGE, Project

# These tests change, or depend on, the machine's binfmt_misc handlers (see binfmt_lock).
pytestmark = pytest.mark.usefixtures("binfmt_lock")


BINFMT = Path("/proc/sys/fs/binfmt_misc")


def test_build_stage_of_the_build_platform_is_caught(project: Project) -> None:
    # The classic mistake: the final stage runs on $BUILDPLATFORM, so the "arm64" image holds
    # amd64 binaries and would run natively.
    project.image(
        "sneaky",
        """
        FROM --platform=$BUILDPLATFORM busybox:latest
        CMD ["sh", "-c", "echo ready; exec sleep 600"]
        """,
    )
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.image("sneaky")

        def test_run(run, platform):
            assert run(["true"]).exit_code == 0

        def test_container(container, platform):
            assert container.get_wrapped_container().status == "running"
        """
    )
    result = project.run("--platforms", "amd64,arm64", "-rE")
    result.assert_outcomes(passed=2, errors=2)
    output = result.stdout.str()
    # Found in the image's files before anything runs: the path and both machines.
    assert "wrong architecture: /bin/busybox is x86-64, linux/arm64 needs aarch64" in output


def test_single_arch_ref_is_not_run_natively(project: Project) -> None:
    # An image that exists only for amd64, asked for as arm64: never a silent native run.
    tag = f"multiarch-test-amd64-only:{os.getpid()}"
    subprocess.run(
        ["docker", "buildx", "build", "--platform", "linux/amd64", "--load", "-t", tag, "-"],
        input="FROM busybox:latest\nRUN touch /amd64-only\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=600,
    )
    try:
        directory = project.path / "images" / "single"
        directory.mkdir(parents=True)
        (directory / "image.toml").write_text(f'variants = false\nref = "{tag}"\n')
        project.tests(
            """
            import pytest

            @pytest.mark.image("single")
            def test_it(run, platform):
                assert run(["true"]).exit_code == 0
            """
        )
        result = project.run("--platforms", "amd64,arm64", "-rE")
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(["*single*arm64*"])
        output = result.stdout.str()
        # containerd store: BuildKit finds no arm64 variant; classic store: the metadata check.
        assert "no match for platform" in output or "wrong architecture" in output
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)


def test_missing_emulator_stops_the_session(project: Project, ppc64le_disabled: Path) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        @pytest.mark.image("box")
        def test_it(run, platform):
            pass
        """
    )
    started = time.monotonic()
    result = project.run("--platforms", "amd64,ppc64le")
    assert time.monotonic() - started < 60
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*cannot run these platforms here*",
            "*linux/ppc64le: binfmt_misc handler qemu-ppc64le is disabled*remedy*echo 1*",
            "*--missing-emulator=skip*",
        ]
    )
    assert project.builds() == []
    assert "exec format error" not in result.stdout.str() + result.stderr.str()


def test_missing_emulator_skip_mode(project: Project, ppc64le_disabled: Path) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        @pytest.mark.image("box")
        def test_it(run, platform):
            assert run(["uname", "-m"]).stdout.strip() == platform.uname
        """
    )
    result = project.run("--platforms", "amd64,ppc64le", "--missing-emulator=skip", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*linux/ppc64le cannot run here*qemu-ppc64le is disabled*"])
    assert all("ppc64le" not in call for call in project.builds())
