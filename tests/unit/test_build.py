"""build_command, input_digest and image_tag: pure functions of an ImageSpec and a Platform."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.images import ImageSpec
from pytest_multiarch.core.platforms import KNOWN_PLATFORMS, Platform, lookup
from pytest_multiarch.runtime.build import IMAGE_LABEL, build_command, image_tag, input_digest

AMD64 = lookup("amd64")
ARM64 = lookup("arm64")
ARMV7 = lookup("arm/v7")


@pytest.fixture(autouse=True)
def plain_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    # MULTIARCH_DOCKER may point the module constant elsewhere; these tests expect "docker".
    monkeypatch.setattr("pytest_multiarch.engine.docker.DOCKER", "docker")


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "web"
    directory.mkdir()
    (directory / "Dockerfile").write_text("FROM busybox:latest\nCOPY app.sh /app.sh\n")
    (directory / "app.sh").write_text("#!/bin/sh\necho hello\n")
    (directory / "app.sh").chmod(0o644)
    (directory / "image.toml").write_text("ports = [80]\n")
    return directory


def spec_for(directory: Path, **changes: Any) -> ImageSpec:
    return replace(ImageSpec(name=directory.name, directory=directory), **changes)


# ---- build_command -------------------------------------------------------------------------------


def test_build_command_minimal(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    command = build_command(spec, ARM64, "pytest-multiarch/web:abc-arm64")
    assert command == [
        "docker",
        "buildx",
        "build",
        "--platform",
        "linux/arm64",
        "--load",
        "--provenance=false",
        "--progress=plain",
        "--tag",
        "pytest-multiarch/web:abc-arm64",
        "--label",
        f"{IMAGE_LABEL}=web",
        "--file",
        str(image_dir / "Dockerfile"),
        str(image_dir),
    ]


def test_build_command_target_and_sorted_build_args(image_dir: Path) -> None:
    spec = spec_for(image_dir, target="runtime", build_args={"ZED": "1", "ALPHA": "a b", "MID": ""})
    command = build_command(spec, ARMV7, "t")
    assert command[:4] == ["docker", "buildx", "build", "--platform"]
    assert command[command.index("--platform") + 1] == "linux/arm/v7"
    assert command[command.index("--target") + 1] == "runtime"
    args = [command[i + 1] for i, part in enumerate(command) if part == "--build-arg"]
    assert args == ["ALPHA=a b", "MID=", "ZED=1"]
    assert command[-3:] == ["--file", str(image_dir / "Dockerfile"), str(image_dir)]
    # options come before the context, which is last
    assert command.index("--target") < command.index("--file")
    assert max(i for i, part in enumerate(command) if part == "--build-arg") < command.index(
        "--file"
    )


def test_build_command_without_target_has_no_target_flag(image_dir: Path) -> None:
    command = build_command(spec_for(image_dir), AMD64, "t")
    assert "--target" not in command
    assert "--build-arg" not in command


def test_build_command_ref_reads_dockerfile_from_stdin(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, ref="busybox:latest", build_args={"A": "1"})
    command = build_command(spec, ARM64, "t")
    assert command[-1] == "-"
    assert "--file" not in command
    assert str(tmp_path) not in command
    assert command[-3:] == ["--build-arg", "A=1", "-"]


@pytest.mark.parametrize("known", KNOWN_PLATFORMS, ids=lambda p: p.short)
def test_build_command_platform_is_oci_name(image_dir: Path, known: Platform) -> None:
    command = build_command(spec_for(image_dir), known, "t")
    assert command[command.index("--platform") + 1] == known.name


def test_build_command_uses_engine_docker_constant(
    image_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pytest_multiarch.engine.docker.DOCKER", "/opt/bin/docker")
    assert build_command(spec_for(image_dir), AMD64, "t")[0] == "/opt/bin/docker"


def test_build_command_is_pure(image_dir: Path) -> None:
    """The command follows from its arguments alone: another call in between changes nothing,
    and the spec is left as it was (its build args unsorted)."""
    spec = spec_for(image_dir, build_args={"B": "2", "A": "1"})
    first = build_command(spec, AMD64, "t")
    build_command(spec_for(image_dir, target="other"), ARM64, "u", no_cache=True)
    again = build_command(spec, AMD64, "t")
    assert (
        first
        == again
        == [
            "docker",
            "buildx",
            "build",
            "--platform",
            "linux/amd64",
            "--load",
            "--provenance=false",
            "--progress=plain",
            "--tag",
            "t",
            "--label",
            f"{IMAGE_LABEL}=web",
            "--build-arg",
            "A=1",
            "--build-arg",
            "B=2",
            "--file",
            str(image_dir / "Dockerfile"),
            str(image_dir),
        ]
    )
    assert list(spec.build_args) == ["B", "A"]


# ---- input_digest --------------------------------------------------------------------------------


def test_digest_is_16_hex_and_stable(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    first = input_digest(spec, AMD64)
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert input_digest(spec, AMD64) == first
    assert input_digest(spec_for(image_dir), AMD64) == first


def test_digest_does_not_depend_on_location_or_name(image_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "other"
    shutil.copytree(image_dir, copy)
    assert input_digest(spec_for(copy), AMD64) == input_digest(spec_for(image_dir), AMD64)


def test_digest_changes_with_file_content(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    before = input_digest(spec, AMD64)
    (image_dir / "app.sh").write_text("#!/bin/sh\necho bye\n")
    assert input_digest(spec, AMD64) != before


def test_digest_changes_with_dockerfile(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    before = input_digest(spec, AMD64)
    (image_dir / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    assert input_digest(spec, AMD64) != before


def test_digest_changes_when_file_added(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    before = input_digest(spec, AMD64)
    (image_dir / "extra.txt").write_text("")
    assert input_digest(spec, AMD64) != before


def test_digest_changes_when_file_added_in_subdirectory(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    before = input_digest(spec, AMD64)
    (image_dir / "sub").mkdir()
    assert input_digest(spec, AMD64) == before  # an empty directory adds nothing
    (image_dir / "sub" / "data.bin").write_bytes(b"\x00\x01")
    assert input_digest(spec, AMD64) != before


def test_digest_changes_when_file_removed_or_renamed(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    before = input_digest(spec, AMD64)
    (image_dir / "app.sh").rename(image_dir / "main.sh")
    renamed = input_digest(spec, AMD64)
    assert renamed != before
    (image_dir / "main.sh").unlink()
    assert input_digest(spec, AMD64) not in (before, renamed)


def test_digest_changes_with_exec_bit(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    before = input_digest(spec, AMD64)
    (image_dir / "app.sh").chmod(0o755)
    executable = input_digest(spec, AMD64)
    assert executable != before
    (image_dir / "app.sh").chmod(0o644)
    assert input_digest(spec, AMD64) == before


def test_digest_ignores_non_exec_mode_bits(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    before = input_digest(spec, AMD64)
    (image_dir / "app.sh").chmod(0o600)
    assert input_digest(spec, AMD64) == before


def test_digest_ignores_image_toml(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    before = input_digest(spec, AMD64)
    (image_dir / "image.toml").write_text("ports = [80, 443]\n")
    assert input_digest(spec, AMD64) == before
    (image_dir / "image.toml").unlink()
    assert input_digest(spec, AMD64) == before


def test_digest_ignores_pycache(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    before = input_digest(spec, AMD64)
    (image_dir / "__pycache__").mkdir()
    (image_dir / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    assert input_digest(spec, AMD64) == before


def test_digest_does_not_ignore_nested_image_toml(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    before = input_digest(spec, AMD64)
    (image_dir / "conf").mkdir()
    (image_dir / "conf" / "image.toml").write_text("x = 1\n")  # part of the build context
    assert input_digest(spec, AMD64) != before


@pytest.mark.parametrize(
    "changes",
    [
        {"build_args": {"A": "1"}},
        {"build_args": {"A": "2"}},
        {"build_args": {"B": "1"}},
        {"target": "runtime"},
        {"target": "debug"},
        {"ref": "busybox:latest"},
    ],
    ids=["arg-a1", "arg-a2", "arg-b1", "target-runtime", "target-debug", "ref"],
)
def test_digest_changes_with_build_inputs(image_dir: Path, changes: dict[str, Any]) -> None:
    assert input_digest(spec_for(image_dir, **changes), AMD64) != input_digest(
        spec_for(image_dir), AMD64
    )


def test_digest_distinguishes_every_build_input_variant(image_dir: Path) -> None:
    variants = [
        {},
        {"build_args": {"A": "1"}},
        {"build_args": {"A": "2"}},
        {"build_args": {"B": "1"}},
        {"build_args": {"A": "1", "B": "1"}},
        {"target": "runtime"},
        {"target": "debug"},
    ]
    digests = {input_digest(spec_for(image_dir, **v), AMD64) for v in variants}
    assert len(digests) == len(variants)


def test_digest_build_arg_order_does_not_matter(image_dir: Path) -> None:
    one = spec_for(image_dir, build_args={"A": "1", "B": "2"})
    other = spec_for(image_dir, build_args={"B": "2", "A": "1"})
    assert input_digest(one, AMD64) == input_digest(other, AMD64)


def test_digest_differs_per_platform(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    digests = {input_digest(spec, known) for known in KNOWN_PLATFORMS}
    assert len(digests) == len(KNOWN_PLATFORMS)


def test_digest_ignores_emulated_flag(image_dir: Path) -> None:
    from pytest_multiarch.core.platforms import with_host

    spec = spec_for(image_dir)
    assert input_digest(spec, with_host(ARM64, native=AMD64)) == input_digest(
        spec, with_host(ARM64, native=ARM64)
    )


def test_digest_ignores_runtime_settings(image_dir: Path) -> None:
    spec = spec_for(image_dir)
    runtime = spec_for(image_dir, command=("x",), ports=(80,), env={"A": "1"}, repository="r")
    assert input_digest(runtime, AMD64) == input_digest(spec, AMD64)


def test_digest_of_ref_image_ignores_directory(tmp_path: Path) -> None:
    directory = tmp_path / "upstream"
    directory.mkdir()
    spec = spec_for(directory, ref="busybox:latest")
    before = input_digest(spec, AMD64)
    (directory / "notes.txt").write_text("anything\n")
    assert input_digest(spec, AMD64) == before
    assert input_digest(spec_for(directory, ref="busybox:1.36"), AMD64) != before


# ---- image_tag -----------------------------------------------------------------------------------


@pytest.mark.parametrize("known", KNOWN_PLATFORMS, ids=lambda p: p.short)
def test_image_tag_format(image_dir: Path, known: Platform) -> None:
    spec = spec_for(image_dir)
    tag = image_tag(spec, known)
    short = known.short
    assert re.fullmatch(rf"pytest-multiarch/web:[0-9a-f]{{16}}-{re.escape(short)}", tag)
    assert tag == f"pytest-multiarch/web:{input_digest(spec, known)}-{short}"


def test_image_tag_arm_v7(image_dir: Path) -> None:
    assert image_tag(spec_for(image_dir), ARMV7).endswith("-arm-v7")
    assert "/" not in image_tag(spec_for(image_dir), ARMV7).split(":", 1)[1]


def test_image_tag_uses_spec_name(image_dir: Path) -> None:
    spec = replace(spec_for(image_dir), name="renamed")
    assert image_tag(spec, AMD64).startswith("pytest-multiarch/renamed:")


def test_failed_build_hints_at_a_missing_base_variant() -> None:
    from pytest_multiarch.core.platforms import lookup
    from pytest_multiarch.runtime.build import _hint

    s390x = lookup("s390x")
    hint = _hint("#2 ERROR: no match for platform in manifest: not found", s390x)
    assert "has no linux/s390x variant" in hint
    assert "multiarch host up --platforms s390x" in hint
    assert _hint("#5 ERROR: process did not complete successfully", s390x) == ""
