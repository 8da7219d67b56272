"""The variants check through real inner sessions: images whose variants differ by one file and
one ENV value (fail, naming both; pass with ``variants.ignore``), ``variants = false``, and the
offline mirror's real Debian image, which must compare clean."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from acceptance import Project, assert_outcome, read_json
from pytest_multiarch.model.records import RunReport
from pytest_multiarch.publish.push import candidates, parse_destination

# Differs between amd64 and arm64 in one file and one ENV value, by TARGETARCH.
DRIFT = """
    FROM busybox:latest
    ARG TARGETARCH
    ENV MODE=fast-$TARGETARCH
    RUN mkdir -p /opt && if [ "$TARGETARCH" = arm64 ]; then echo x > /opt/extra-asset; fi
"""
# Debian as the mirror has it (amd64 and arm64), plus a file of our own on every platform.
DEBIAN = """
    FROM debian:bookworm-slim
    COPY marker /opt/marker
"""
SELF_TEST = """
    import pytest

    @pytest.mark.image("drift")
    def test_mode(run, platform):
        assert run(["sh", "-c", "echo $MODE"]).stdout.strip() == f"fast-{platform.arch}"
"""
ITEM = "images/{0}/Dockerfile::variants[{0}]"
# Never reached: the gate decides from the report alone.
DESTINATION = parse_destination("127.0.0.1:1", "v1")


def _images(project: Project) -> None:
    # Not unique: the tests here share their builds (tags follow the input digest).
    project.image("drift", DRIFT, unique=False, variants=True)
    project.image(
        "allowed",
        DRIFT,
        'variants = { ignore = ["/opt/extra-*", "env:MODE"] }\n',
        unique=False,
        variants=True,
    )
    project.image("off", DRIFT, "variants = false\n", unique=False, variants=True)
    debian = project.image("debian", DEBIAN, unique=False, variants=True)
    (debian / "marker").write_text("every platform\n")


def _junit(path: Path) -> dict[str, str]:
    """JUnit test case name -> "failure: text", "skipped", or "passed"."""
    found = {}
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314 - our inner run's own
        failure = case.find("failure")
        outcome = "passed"
        if failure is not None:
            outcome = f"failure: {failure.get('message', '')}\n{failure.text or ''}"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        found[str(case.get("name"))] = outcome
    return found


def test_variants_that_differ_fail_naming_each_difference_and_debian_compares_clean(
    project: Project,
) -> None:
    _images(project)
    project.tests(SELF_TEST)
    junit = project.path / "junit.xml"
    report = project.path / "report.json"
    result = project.run(
        "images",
        "test_images.py",
        "--platforms",
        "amd64,arm64",
        "-n",
        "2",
        "-v",
        "--junitxml",
        str(junit),
        "--multiarch-json",
        str(report),
    )
    # drift fails; allowed and debian pass; off has no item; test_mode passes twice.
    result.assert_outcomes(passed=4, failed=1)
    assert_outcome(result, ITEM.format("drift"), "FAILED")
    assert_outcome(result, ITEM.format("allowed"), "PASSED")
    assert_outcome(result, ITEM.format("debian"), "PASSED")
    output = result.stdout.str()
    assert "variants[off]" not in output
    assert "variants of image 'drift' (linux/amd64, linux/arm64) differ:" in output
    assert "  Env MODE: fast-amd64 (amd64) vs fast-arm64 (arm64)" in output
    assert "  only on linux/arm64: /opt/extra-asset" in output
    assert "Traceback" not in output

    tests = {t["nodeid"]: t for t in read_json(report)["tests"]}
    drift = tests[ITEM.format("drift")]
    assert (drift["image"], drift["platform"], drift["outcome"]) == ("drift", "all", "failed")
    assert drift["every_platform"] is True
    assert "only on linux/arm64: /opt/extra-asset" in drift["message"]
    assert tests[ITEM.format("debian")]["outcome"] == "passed"
    assert tests[ITEM.format("allowed")]["outcome"] == "passed"

    cases = _junit(junit)
    assert cases["variants[drift]"].startswith("failure")
    assert "Env MODE: fast-amd64 (amd64) vs fast-arm64 (arm64)" in cases["variants[drift]"]
    assert cases["variants[debian]"] == "passed"

    # The matrix's every-platform column holds them.
    result.stdout.fnmatch_lines(["*multiarch: results per platform*", "image*amd64*arm64*all*"])

    # The publish gate: an image whose variants differ is not published.
    gate = {c.image: c.refused for c in candidates(RunReport.read(report), DESTINATION)}
    assert f"{ITEM.format('drift')} (failed)" in gate["drift"]
    assert "variants" not in gate["debian"]


def test_k_variants_selects_only_the_variants_checks(project: Project) -> None:
    _images(project)
    project.tests(SELF_TEST)
    platforms = ("--platforms", "amd64,arm64")
    result = project.run("images", "test_images.py", *platforms, "-k", "variants", "-n", "2", "-v")
    result.assert_outcomes(passed=2, failed=1)
    ran = {line.split()[-1] for line in result.stdout.lines if "PASSED" in line or "FAILED" in line}
    assert {ITEM.format(name) for name in ("allowed", "debian", "drift")} <= ran
    assert "test_mode" not in result.stdout.str()
    # The image's name selects its variants check with its other tests.
    result = project.run(
        "images", "test_images.py", *platforms, "-k", "drift", "--collect-only", "-q"
    )
    collected = [line for line in result.stdout.lines if "::" in line]
    assert sorted(collected) == sorted(
        [
            ITEM.format("drift"),
            "test_images.py::test_mode[amd64]",
            "test_images.py::test_mode[arm64]",
        ]
    )


def test_one_platform_has_no_variants_check(project: Project) -> None:
    _images(project)
    result = project.run("images", "--platforms", "amd64", "--collect-only", "-q")
    assert not [line for line in result.stdout.lines if "variants" in line]


def test_a_bad_variants_value_is_an_error_naming_the_file_key_and_value(project: Project) -> None:
    project.image("typo", DRIFT, 'variants = { ignore = ["evn:MODE"] }\n', unique=False)
    project.tests(
        """
        import pytest

        @pytest.mark.image("typo")
        def test_it(image):
            pass
        """
    )
    result = project.run("test_images.py", "--platforms", "amd64,arm64")
    # The only image is not valid: a usage error, before anything runs.
    result.stderr.fnmatch_lines(
        ["*image.toml: key 'variants.ignore': cannot ignore 'evn:MODE' (did you mean 'env'?)*"]
    )


def test_without_two_usable_platforms_the_check_is_skipped_with_why(
    project: Project, ppc64le_disabled: Path
) -> None:
    project.image(
        "small",
        'FROM busybox:latest\nCMD ["true"]\n',
        'platforms = ["amd64", "ppc64le"]\n',
        variants=True,
    )
    result = project.run(
        "images", "--platforms", "amd64,ppc64le", "--missing-emulator=skip", "-v", "-rs"
    )
    result.assert_outcomes(skipped=1)
    assert_outcome(result, ITEM.format("small"), "SKIPPED")
    result.stdout.fnmatch_lines(
        [
            "SKIPPED*images/small/Dockerfile: the variants check of image 'small' needs two "
            "platforms that run here; left out: ppc64le (*qemu-ppc64le is disabled*"
        ]
    )
    assert project.builds() == []  # nothing to compare, so nothing built
