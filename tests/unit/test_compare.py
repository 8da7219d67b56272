"""The cross-platform comparison's failure table and the platform lookups of ``images``."""

from __future__ import annotations

from typing import Any, cast

import pytest
from pytest_multiarch.runtime.compare import PlatformImages, difference_table
from pytest_multiarch.runtime.oneshot import RunResult

LITTLE = RunResult(0, b"      1\n", b"")
BIG = RunResult(0, b"    256\n", b"")


def test_table_shows_each_platform_and_only_the_fields_that_differ() -> None:
    results = {"amd64": LITTLE, "arm64": LITTLE, "s390x": BIG}
    text = difference_table(["od", "-An", "-td2"], results, ("exit_code", "stdout"))
    lines = text.splitlines()
    assert lines[0] == "['od', '-An', '-td2'] differs between platforms (stdout):"
    assert lines[1].split() == ["platform", "stdout"]
    assert lines[2].split() == ["amd64", "'", "1\\n'"]
    assert lines[4].split() == ["s390x", "'", "256\\n'"]
    assert lines[-1] == "platforms that agree: amd64, arm64 | s390x"


def test_table_shows_undecodable_output_as_bytes_and_cuts_long_output() -> None:
    results = {
        "amd64": RunResult(1, b"\xff\x00", b""),
        "arm64": RunResult(0, b"x" * 500, b""),
    }
    text = difference_table(["prog"], results, ("exit_code", "stdout"))
    assert "(exit_code, stdout)" in text.splitlines()[0]
    assert "b'\\xff\\x00'" in text
    assert "... (500 bytes)" in text
    assert max(len(line) for line in text.splitlines()) < 160


class FakeRunner:
    def __init__(self, result: RunResult) -> None:
        self.result = result
        self.calls: list[list[str]] = []

    def run(self, cmd: list[str], **_: Any) -> RunResult:
        self.calls.append(list(cmd))
        return self.result


def images_of(**results: RunResult) -> PlatformImages:
    runners = {short.replace("_", "-"): FakeRunner(r) for short, r in results.items()}
    return PlatformImages("box", cast(Any, runners))


def test_lookup_by_short_name_oci_name_and_alias() -> None:
    images = images_of(amd64=LITTLE, arm_v7=LITTLE, s390x=BIG)
    assert list(images) == ["amd64", "arm-v7", "s390x"]
    assert images["linux/s390x"] is images["s390x"]
    assert images["armhf"] is images["arm-v7"]
    assert images["x86_64"] is images["amd64"]
    assert "arm64" not in images
    assert "sparc" not in images
    with pytest.raises(KeyError, match=r"'arm64' is not a platform of image 'box'.*amd64"):
        images["arm64"]


def test_assert_same_passes_and_returns_the_common_result() -> None:
    images = images_of(amd64=LITTLE, s390x=RunResult(0, b"      1\n", b"noise"))
    assert images.assert_same_on_every_platform(["echo"]) == LITTLE  # stderr not compared
    with pytest.raises(pytest.fail.Exception, match="stderr"):
        images.assert_same_on_every_platform(["echo"], compare=["stderr"])


def test_assert_same_fails_with_the_table() -> None:
    images = images_of(amd64=LITTLE, s390x=BIG)
    with pytest.raises(pytest.fail.Exception) as info:
        images.assert_same_on_every_platform(["od"])
    assert "platforms that agree: amd64 | s390x" in str(info.value)


def test_assert_same_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="compare takes one or more of exit_code, stdout"):
        images_of(amd64=LITTLE).assert_same_on_every_platform(["x"], compare=["output"])  # type: ignore[list-item]
