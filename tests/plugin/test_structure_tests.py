"""container-structure-test files as pytest items, on amd64 and two emulated platforms, seen
through real inner sessions over a tiny busybox image."""

from __future__ import annotations

import textwrap
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from acceptance import (
    BUSYBOX_IMAGE,
    EngineEvents,
    Project,
    assert_outcome,
    containers_of_run,
    read_json,
)

PLATFORMS = ("amd64", "arm64", "s390x")

# Everything the checks look at, built per platform; one RUN, so emulated builds stay short.
BOX = """
    FROM busybox:latest
    ARG TARGETPLATFORM
    ARG TARGETARCH
    LABEL org.example.title="box" org.example.arch="$TARGETARCH"
    ENV GREETING=hello APP_HOME=/opt/app
    RUN mkdir -p /opt/app /usr/share/doc/pkg \\
     && echo "$TARGETPLATFORM" > /built-for \\
     && printf 'name=box\\nmode=test\\n' > /opt/app/config \\
     && chown 1000:1000 /opt/app/config && chmod 0640 /opt/app/config \\
     && ln -s /opt/app/config /etc/app.conf \\
     && echo 'Permission is hereby granted, free of charge (MIT)' > /usr/share/doc/pkg/copyright \\
     && echo 'GNU AFFERO GENERAL PUBLIC LICENSE (AGPL) version 3' > /opt/app/LICENSE
    EXPOSE 8080/tcp
    VOLUME /data
    WORKDIR /opt/app
    ENTRYPOINT ["/bin/false"]
    CMD ["serve"]
"""

# Every check type, each expected to pass on every platform.
PASSING = """
    schemaVersion: 2.0.0
    globalEnvVars:
      - key: WHO
        value: world
    commandTests:
      - name: machine
        command: uname
        args: [-m]
        expectedOutput: ['^(x86_64|aarch64|s390x)\\n$']
        excludedOutput: [armv7l]
      - name: env and both streams
        command: sh
        args: [-c, 'echo "$GREETING $WHO $EXTRA"; echo warning >&2']
        envVars:
          - key: EXTRA
            value: from-$WHO
        expectedOutput: ['^hello world from-world\\n$']
        expectedError: ['^warning']
        excludedError: [fatal]
      - name: setup then teardown
        setup: [[sh, -c, 'echo made > /tmp/marker']]
        command: cat
        args: [/tmp/marker]
        expectedOutput: ['(?m)^made$']
        teardown: [[rm, /tmp/marker]]
      - name: exit code
        command: sh
        args: [-c, 'exit 3']
        exitCode: 3
      - name: missing program
        command: no-such-program
        exitCode: 127
        expectedError: ['no-such-program.*not found']
      - name: only on s390x
        platforms: [s390x]
        command: cat
        args: [/built-for]
        expectedOutput: ['^linux/s390x\\n$']
    fileExistenceTests:
      - name: config file
        path: /opt/app/config
        permissions: '-rw-r-----'
        uid: 1000
        gid: 1000
      - name: symlink itself
        path: /etc/app.conf
        permissions: 'Lrwxrwxrwx'
      - name: shell
        path: /bin/sh
        isExecutableBy: other
      - name: absent
        path: /nonexistent
        shouldExist: false
    fileContentTests:
      - name: through the symlink
        path: /etc/app.conf
        expectedContents: ['name=box', '(?m)^mode=test$']
        excludedContents: ['mode=prod']
    licenseTests:
      - debian: true
        files: [/usr/share/doc/pkg/copyright]
    metadataTest:
      envVars:
        - key: GREETING
          value: hello
        - key: APP_HOME
          value: ^/opt
          isRegex: true
      labels:
        - key: org.example.arch
          value: ^(amd64|arm64|s390x)$
          isRegex: true
      entrypoint: [/bin/false]
      cmd: [serve]
      workdir: /opt/app
      exposedPorts: ['8080']
      unexposedPorts: ['9090']
      volumes: [/data]
"""

# The same check types, each expected to fail; listed in image.toml as a second file.
FAILING = """
    schemaVersion: 2.0.0
    commandTests:
      - name: wrong output
        command: cat
        args: [/built-for]
        expectedOutput: ['^linux/ppc64le$']
      - name: wrong exit code
        command: sh
        args: [-c, 'echo boom >&2; exit 4']
        expectedError: ['^boom$']
      - name: excluded output
        command: echo
        args: [token=s3cret]
        excludedOutput: ['s3cr[e]t']
      - name: not on amd64
        skipPlatforms: [amd64]
        command: cat
        args: [/built-for]
        expectedOutput: ['^linux/amd64\\n$']
    fileExistenceTests:
      - name: wrong mode and owner
        path: /opt/app/config
        permissions: '-rwxr-xr-x'
        uid: 0
      - name: missing
        path: /opt/app/missing
    fileContentTests:
      - name: wrong contents
        path: /opt/app/config
        expectedContents: ['mode=prod']
    licenseTests:
      - files: [/opt/app/LICENSE]
    metadataTest:
      labels:
        - key: org.example.arch
          value: ^ppc64le$
          isRegex: true
      entrypoint: [/bin/true]
      exposedPorts: ['9090']
"""

PASSING_IDS = [
    "command[machine]",
    "command[env and both streams]",
    "command[setup then teardown]",
    "command[exit code]",
    "command[missing program]",
    "file-content[through the symlink]",
    "file-existence[config file]",
    "file-existence[symlink itself]",
    "file-existence[shell]",
    "file-existence[absent]",
    "license[0]",
    "metadata",
]
FAILING_IDS = [
    "command[wrong output]",
    "command[wrong exit code]",
    "command[excluded output]",
    "file-content[wrong contents]",
    "file-existence[wrong mode and owner]",
    "file-existence[missing]",
    "license[0]",
    "metadata",
]
PASSING_FILE = "images/box/structure-tests.yaml"
FAILING_FILE = "images/box/checks/failing.yaml"


def _box(project: Project) -> None:
    # Not unique: every test here shares the three builds (tags follow the input digest).
    directory = project.image(
        "box", BOX, 'structure-tests = ["checks/failing.yaml"]\n', unique=False
    )
    (directory / "structure-tests.yaml").write_text(textwrap.dedent(PASSING))
    (directory / "checks").mkdir()
    (directory / "checks" / "failing.yaml").write_text(textwrap.dedent(FAILING))


def _failures(junit: Path) -> dict[str, str]:
    """JUnit testcase name (``check[platform]``, with its file) -> failure text, or ""."""
    found = {}
    # Our own inner session's report, not untrusted input.
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314
        failure = case.find("failure")
        text = "" if failure is None else (failure.get("message", "") + (failure.text or ""))
        found[f"{case.get('classname')}::{case.get('name')}"] = text
    return found


def test_every_check_type_passes_and_fails_per_platform(project: Project) -> None:
    _box(project)
    junit = project.path / "junit.xml"
    report = project.path / "report.json"
    result = project.run(
        "images",
        "--platforms",
        ",".join(PLATFORMS),
        "-n",
        "2",
        "-v",
        "-rs",
        "--junitxml",
        str(junit),
        "--multiarch-json",
        str(report),
    )
    # Plus our extension keys: "only on s390x" passes there and skips twice; "not on amd64"
    # skips there and fails on the other two.
    result.assert_outcomes(
        passed=len(PASSING_IDS) * 3 + 1, failed=len(FAILING_IDS) * 3 + 2, skipped=3
    )
    for short in PLATFORMS:
        for check in PASSING_IDS:
            assert_outcome(result, f"{PASSING_FILE}::{check}[{short}]", "PASSED")
        for check in FAILING_IDS:
            assert_outcome(result, f"{FAILING_FILE}::{check}[{short}]", "FAILED")
    assert_outcome(result, f"{PASSING_FILE}::command[only on s390x][s390x]", "PASSED")
    assert_outcome(result, f"{PASSING_FILE}::command[only on s390x][arm64]", "SKIPPED")
    # Our extension: a check expected to fail off amd64 only, and skipped there.
    assert_outcome(result, f"{FAILING_FILE}::command[not on amd64][amd64]", "SKIPPED")
    assert_outcome(result, f"{FAILING_FILE}::command[not on amd64][arm64]", "FAILED")
    result.stdout.fnmatch_lines_random(
        [
            "*only on s390x] runs only on s390x (its 'platforms:' key), not on amd64*",
            "*not on amd64] is skipped on amd64 (its 'skipPlatforms:' key)*",
        ]
    )
    output = result.stdout.str()
    assert "Traceback" not in output
    assert (
        "harness/pytest_multiarch/structure" not in output
    )  # failures are the check's words, not our code

    failures = _failures(junit)
    assert len(failures) == (len(PASSING_IDS) + len(FAILING_IDS) + 2) * 3
    for short in PLATFORMS:
        wrong = failures[f"images.box.checks.failing.yaml::command[wrong output][{short}]"]
        # The regex and what the emulated (or native) platform really printed.
        assert (
            f"expected output (stdout) to match regex '^linux/ppc64le$' but it was: "
            f"'linux/{short}\\n'" in wrong
        )
        exit_code = failures[f"images.box.checks.failing.yaml::command[wrong exit code][{short}]"]
        assert "expected exit code 0, got 4; stderr: 'boom\\n'" in exit_code
        assert "regex '^boom$' but it was: 'boom\\n' (it matches without the trailing" in (
            exit_code
        )
        excluded = failures[f"images.box.checks.failing.yaml::command[excluded output][{short}]"]
        assert "not to match regex 's3cr[e]t' but it matched 's3cret'" in excluded
        mode = failures[
            f"images.box.checks.failing.yaml::file-existence[wrong mode and owner][{short}]"
        ]
        assert "expected permissions -rwxr-xr-x, found -rw-r-----" in mode
        assert "expected owner uid 0, found 1000" in mode
        missing = failures[f"images.box.checks.failing.yaml::file-existence[missing][{short}]"]
        assert "/opt/app/missing: expected to exist, but it does not" in missing
        contents = failures[
            f"images.box.checks.failing.yaml::file-content[wrong contents][{short}]"
        ]
        assert "expected to match regex 'mode=prod' but they were: 'name=box\\nmode=test\\n'" in (
            contents
        )
        license_text = failures[f"images.box.checks.failing.yaml::license[0][{short}]"]
        assert "/opt/app/LICENSE: mentions AGPL" in license_text
        metadata = failures[f"images.box.checks.failing.yaml::metadata[{short}]"]
        assert (
            f"label org.example.arch: expected a value matching regex '^ppc64le$', "
            f"found '{short}'" in metadata
        )
        assert 'expected Entrypoint ["/bin/true"], found ["/bin/false"]' in metadata
        assert "expected port 9090 to be exposed; exposed ports: 8080/tcp" in metadata
    for name, text in failures.items():
        if "structure-tests.yaml" in name:
            assert text == "", f"{name} failed:\n{text}"

    data = read_json(report)
    assert containers_of_run(data["run_id"]) == []  # every step's container is gone
    records = {t["nodeid"]: t for t in data["tests"]}
    machine = records[f"{PASSING_FILE}::command[machine][s390x]"]
    assert (machine["image"], machine["platform"], machine["outcome"]) == ("box", "s390x", "passed")
    cells = {
        m["platform"]: (m["passed"], m["failed"], m["skipped"])
        for m in data["summary"]["matrix"]
        if m["image"] == "box"
    }
    assert cells == {
        "amd64": (len(PASSING_IDS), len(FAILING_IDS), 2),
        "arm64": (len(PASSING_IDS), len(FAILING_IDS) + 1, 1),
        "s390x": (len(PASSING_IDS) + 1, len(FAILING_IDS) + 1, 0),
    }
    # One build per platform for both files and all their items.
    assert sorted(b["platform"] for b in data["builds"]) == [f"linux/{p}" for p in PLATFORMS]


def test_k_selects_checks_by_image_kind_and_platform(project: Project) -> None:
    _box(project)
    result = project.run(
        "images",
        "--platforms",
        ",".join(PLATFORMS),
        "-v",
        "-k",
        "box and arm64 and file and not failing",
    )
    selected = [i for i in PASSING_IDS if i.startswith("file")]
    result.assert_outcomes(passed=len(selected))
    for check in selected:
        assert_outcome(result, f"{PASSING_FILE}::{check}[arm64]", "PASSED")
    # File checks read the filesystem without running anything: only arm64 was built.
    builds = project.builds()
    assert len(builds) <= 1
    assert all("--platform linux/arm64" in build for build in builds)


MISTAKES = {
    "unknown-key": (
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: x\n    expectOutput: [y]\n",
        "images/unknown-key/structure-tests.yaml: commandTests[0] \"a\": key 'expectOutput': "
        "unknown key (did you mean 'expectedOutput'?)",
    ),
    "wrong-type": (
        "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: f\n    path: /x\n"
        "    shouldExist: maybe\n",
        "images/wrong-type/structure-tests.yaml: fileExistenceTests[0] \"f\": key 'shouldExist': "
        "expected true or false, got string 'maybe'",
    ),
    "bad-regex": (
        "schemaVersion: 2.0.0\nfileContentTests:\n  - name: c\n    path: /x\n"
        "    expectedContents: ['a(b']\n",
        'images/bad-regex/structure-tests.yaml: fileContentTests[0] "c": '
        "key 'expectedContents[0]': invalid regular expression 'a(b'",
    ),
    "old-schema": (
        "schemaVersion: 1.0.0\ncommandTests: []\n",
        "images/old-schema/structure-tests.yaml: key 'schemaVersion': unsupported schema "
        "version '1.0.0'",
    ),
    "missing-key": (
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    args: [x]\n",
        "images/missing-key/structure-tests.yaml: commandTests[0] \"a\": key 'command': "
        "missing required key",
    ),
    "bad-platform": (
        "schemaVersion: 2.0.0\nmetadataTest:\n  user: app\n  platforms: [mips]\n",
        "images/bad-platform/structure-tests.yaml: metadataTest: key 'platforms[0]': "
        "unknown platform 'mips'",
    ),
    "bad-yaml": (
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: [unclosed\n",
        "images/bad-yaml/structure-tests.yaml:4:1: invalid YAML: expected ',' or ']'",
    ),
}


def test_each_kind_of_mistake_is_a_collection_error(project: Project) -> None:
    for name, (text, _) in MISTAKES.items():
        directory = project.image(name, "FROM busybox:latest\n")
        (directory / "structure-tests.yaml").write_text(text)
    listed = project.image("listed", "FROM busybox:latest\n", 'structure-tests = ["nope.yaml"]\n')
    assert listed.is_dir()
    result = project.run("images", "--platforms", "amd64,arm64")
    result.assert_outcomes(errors=len(MISTAKES) + 1)
    output = result.stdout.str()
    for _, expected in MISTAKES.values():
        assert f"\n{expected}" in output  # each message on a line of its own, in full
    result.stdout.fnmatch_lines(
        [
            "*images/listed/image.toml: key 'structure-tests': no such file: "
            "*images/listed/nope.yaml*"
        ]
    )
    assert "Traceback" not in output
    assert "harness/pytest_multiarch/structure" not in output
    assert project.builds() == []


@pytest.mark.parametrize("path", ["images", "images/box/structure-tests.yaml"])
def test_collected_only_where_pytest_paths_reach(project: Project, path: str) -> None:
    _box(project)
    result = project.run("--platforms", "amd64", "--collect-only", "-q", path)
    ids = [line for line in result.stdout.lines if "::" in line]
    assert f"{PASSING_FILE}::command[machine][amd64]" in ids
    assert (f"{FAILING_FILE}::metadata[amd64]" in ids) == (path == "images")
    # tests/ only: nothing of images/ (testpaths decides, as for test modules).
    project.tests("def test_plain():\n    pass\n")
    result = project.run("--platforms", "amd64", "--collect-only", "-q", "test_images.py")
    assert not any("structure" in line for line in result.stdout.lines)


def test_image_toml_platforms_and_missing_emulators_skip_checks(
    project: Project, ppc64le_disabled: Path
) -> None:
    directory = project.image(
        "small",
        'FROM busybox:latest\nCMD ["true"]\n',
        'platforms = ["amd64", "ppc64le"]\n',
        unique=False,
    )
    (directory / "structure-tests.yaml").write_text(
        'schemaVersion: 2.0.0\nmetadataTest:\n  cmd: ["true"]\n'
    )
    result = project.run(
        "images", "--platforms", "amd64,arm64,ppc64le", "--missing-emulator=skip", "-v", "-rs"
    )
    result.assert_outcomes(passed=1, skipped=2)
    assert_outcome(result, "images/small/structure-tests.yaml::metadata[amd64]", "PASSED")
    for short in ("arm64", "ppc64le"):
        assert_outcome(result, f"images/small/structure-tests.yaml::metadata[{short}]", "SKIPPED")
    result.stdout.fnmatch_lines_random(
        [
            "SKIPPED*structure-tests.yaml: image 'small' is restricted to amd64, ppc64le by "
            "*image.toml",
            "SKIPPED*structure-tests.yaml: linux/ppc64le cannot run here*qemu-ppc64le is disabled*",
        ]
    )
    assert all("amd64" in call for call in project.builds())


# Files only: each reads the image's filesystem, the export that verification made.
FILE_CHECKS = """
    schemaVersion: 2.0.0
    fileExistenceTests:
      - name: built for
        path: /built-for
      - name: shell
        path: /bin/sh
        isExecutableBy: other
    fileContentTests:
      - name: platform
        path: /built-for
        expectedContents: ['^linux/']
"""


def test_one_export_per_image_and_platform_per_run(
    project: Project, engine_events: Callable[..., EngineEvents]
) -> None:
    # A fresh image: verified in this run (no cached verification), then its structure tests
    # read the same filesystem in two workers. Verification and the checks once exported it
    # each (and each worker could have); now the first reader's export serves the run.
    directory = project.image("once", BUSYBOX_IMAGE)
    (directory / "structure-tests.yaml").write_text(textwrap.dedent(FILE_CHECKS))
    run_id = uuid.uuid4().hex
    events = engine_events("export")
    result = project.run("images", "--platforms", "amd64,arm64", "-n", "2", "--testrunuid", run_id)
    result.assert_outcomes(passed=6)
    exports = events.of_run(run_id, "export")
    images = sorted(image for _, image in exports)
    assert len(images) == 2, exports
    assert len(set(images)) == 2, images  # one per platform's image
