"""container-structure-test files on a Podman engine: every kind of check, passing and failing,
per platform, with every platform on Podman (DOCKER_HOST) and with arm64 alone on Podman beside
Docker; the checks' containers and filesystem exports go through Podman's API, and nothing of
the run is left on it."""

from __future__ import annotations

import subprocess
import textwrap
import uuid

import pytest
from acceptance import Project, assert_outcome, docker_cli, read_json

RUN_LABEL = "pytest-multiarch.run"

BOX = """
    FROM busybox:latest
    ARG TARGETPLATFORM
    ARG TARGETARCH
    LABEL org.example.arch="$TARGETARCH"
    ENV GREETING=hello
    RUN mkdir -p /opt/app /usr/share/doc/pkg \\
     && echo "$TARGETPLATFORM" > /built-for \\
     && printf 'name=box\\nmode=test\\n' > /opt/app/config \\
     && chown 1000:1000 /opt/app/config && chmod 0640 /opt/app/config \\
     && ln -s /opt/app/config /etc/app.conf \\
     && echo 'Permission is hereby granted, free of charge (MIT)' > /usr/share/doc/pkg/copyright
    EXPOSE 8080/tcp
    WORKDIR /opt/app
    ENTRYPOINT ["/bin/false"]
    CMD ["serve"]
"""

CHECKS = """
    schemaVersion: 2.0.0
    commandTests:
      - name: machine
        command: uname
        args: [-m]
        expectedOutput: ['^(x86_64|aarch64)\\n$']
      - name: built for
        command: cat
        args: [/built-for]
        expectedOutput: ['^linux/(amd64|arm64)\\n$']
      - name: setup then teardown
        setup: [[sh, -c, 'echo made > /tmp/marker']]
        command: cat
        args: [/tmp/marker]
        expectedOutput: ['(?m)^made$']
        teardown: [[rm, /tmp/marker]]
      - name: exit code
        command: sh
        args: [-c, 'echo "$GREETING" >&2; exit 3']
        exitCode: 3
        expectedError: ['^hello']
      - name: wrong output
        command: cat
        args: [/built-for]
        expectedOutput: ['^linux/ppc64le$']
    fileExistenceTests:
      - name: config file
        path: /opt/app/config
        permissions: '-rw-r-----'
        uid: 1000
        gid: 1000
      - name: symlink itself
        path: /etc/app.conf
        permissions: 'Lrwxrwxrwx'
      - name: missing
        path: /opt/app/missing
    fileContentTests:
      - name: through the symlink
        path: /etc/app.conf
        expectedContents: ['(?m)^mode=test$']
    licenseTests:
      - debian: true
        files: [/usr/share/doc/pkg/copyright]
    metadataTest:
      envVars:
        - key: GREETING
          value: hello
      labels:
        - key: org.example.arch
          value: ^(amd64|arm64)$
          isRegex: true
      entrypoint: [/bin/false]
      cmd: [serve]
      workdir: /opt/app
      exposedPorts: ['8080']
"""
FILE = "images/box/structure-tests.yaml"
PASSING = [
    "command[machine]",
    "command[built for]",
    "command[setup then teardown]",
    "command[exit code]",
    "file-existence[config file]",
    "file-existence[symlink itself]",
    "file-content[through the symlink]",
    "license[0]",
    "metadata",
]
FAILING = ["command[wrong output]", "file-existence[missing]"]


def _podman_left(run_id: str) -> str:
    listed = subprocess.run(
        ["podman", "ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return listed.stdout.strip()


@pytest.mark.parametrize("setup", ["all-on-podman", "arm64-on-podman"])
def test_structure_checks_on_podman(
    project: Project, podman_engine: str, monkeypatch: pytest.MonkeyPatch, setup: str
) -> None:
    directory = project.image("box", BOX, unique=False)
    (directory / "structure-tests.yaml").write_text(textwrap.dedent(CHECKS))
    args = ["images", "--platforms", "amd64,arm64", "-v"]
    if setup == "all-on-podman":
        monkeypatch.setenv("DOCKER_HOST", podman_engine)
    else:
        args += ["--engine", f"arm64={podman_engine}"]
    run_id = "podman-structure-" + uuid.uuid4().hex
    report = project.path / "report.json"
    result = project.run(
        *args, "-n", "2", f"--testrunuid={run_id}", "--multiarch-json", str(report)
    )
    result.assert_outcomes(passed=len(PASSING) * 2, failed=len(FAILING) * 2)
    for short in ("amd64", "arm64"):
        for check in PASSING:
            assert_outcome(result, f"{FILE}::{check}[{short}]", "PASSED")
        for check in FAILING:
            assert_outcome(result, f"{FILE}::{check}[{short}]", "FAILED")
    output = result.stdout.str()
    # The checks' own words, with what the platform really printed.
    for short in ("amd64", "arm64"):
        assert (
            f"expected output (stdout) to match regex '^linux/ppc64le$' but it was: "
            f"'linux/{short}\\n'" in output
        )
    assert "/opt/app/missing: expected to exist, but it does not" in output
    assert "Traceback" not in output
    data = read_json(report)
    kinds = {p["short"]: p["engine_kind"] for p in data["platforms"]}
    assert kinds == (
        {"amd64": "podman", "arm64": "podman"}
        if setup == "all-on-podman"
        else {"amd64": "docker", "arm64": "podman"}
    )
    for build in data["builds"]:
        on = podman_engine if kinds[build["platform"].rsplit("/", 1)[1]] == "podman" else None
        found = docker_cli(
            on, "image", "inspect", "--format", "{{.Architecture}}", build["image_id"]
        )
        assert found.stdout.strip() == build["platform"].rsplit("/", 1)[1], build
    assert _podman_left(run_id) == ""
    assert not docker_cli(None, "ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").stdout
