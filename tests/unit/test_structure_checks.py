"""Evaluating structure-test checks against an in-memory image."""

from __future__ import annotations

import stat
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.structure.checks import (
    CheckOutcome,
    ExecResult,
    FileInfo,
    ImageAccess,
    ImageAccessError,
    evaluate,
    expand_vars,
    go_mode_string,
    platform_applies,
)
from pytest_multiarch.structure.config import (
    Check,
    ContainerRunOptions,
    StructureFile,
    parse_structure_file,
)

Runner = Callable[[Sequence[str], Mapping[str, str]], ExecResult]


def ok(stdout: str = "", stderr: str = "", exit_code: int = 0) -> ExecResult:
    return ExecResult(exit_code, stdout.encode(), stderr.encode())


@dataclass
class Call:
    steps: list[list[str]]
    env: dict[str, str]
    options: ContainerRunOptions
    timeout: float


@dataclass
class FakeImage:
    """An image held in dictionaries; ``runner`` answers each command step."""

    files: dict[str, FileInfo] = field(default_factory=dict)
    image_config: dict[str, Any] = field(default_factory=dict)
    runner: Runner = lambda argv, env: ok()
    calls: list[Call] = field(default_factory=list)

    def add(self, path: str, mode: int, content: bytes = b"", **extra: Any) -> None:
        self.files[path] = FileInfo(path, mode, read=lambda: content, size=len(content), **extra)

    def add_file(self, path: str, content: str = "", perms: int = 0o644, **extra: Any) -> None:
        self.add(path, stat.S_IFREG | perms, content.encode(), **extra)

    def add_dir(self, path: str, perms: int = 0o755) -> None:
        self.add(path, stat.S_IFDIR | perms)

    def add_link(self, path: str, target: str) -> None:
        self.add(path, stat.S_IFLNK | 0o777, link_target=target)

    def run_steps(
        self,
        steps: Sequence[Sequence[str]],
        *,
        env: Mapping[str, str],
        options: ContainerRunOptions,
        timeout: float,
    ) -> Sequence[ExecResult]:
        self.calls.append(Call([list(s) for s in steps], dict(env), options, timeout))
        return [self.runner(step, env) for step in steps]

    def file(self, path: str) -> FileInfo | None:
        return self.files.get(path)

    def list_dir(self, path: str) -> Sequence[str] | None:
        if path not in self.files or not self.files[path].is_dir:
            return None
        prefix = path.rstrip("/") + "/"
        return [
            p[len(prefix) :]
            for p in self.files
            if p.startswith(prefix) and "/" not in p[len(prefix) :]
        ]

    def config(self) -> Mapping[str, Any]:
        return self.image_config


def structure(text: str) -> StructureFile:
    return parse_structure_file('schemaVersion: "2.0.0"\n' + textwrap.dedent(text), Path("s.yaml"))


def run(text: str, image: ImageAccess, timeout: float = 30.0) -> CheckOutcome:
    parsed = structure(text)
    assert len(parsed.checks) == 1
    return evaluate(parsed, parsed.checks[0], image, timeout=timeout)


def the_check(text: str) -> Check:
    return structure(text).checks[0]


def test_fake_image_satisfies_the_protocol() -> None:
    image: ImageAccess = FakeImage()

    assert image.file("/nothing") is None


# --- command tests ------------------------------------------------------------------------

VERSION = """\
commandTests:
  - name: version
    command: cli
    args: [--version]
    expectedOutput: ['v[0-9]+']
"""


def test_command_passes_on_exit_code_and_output() -> None:
    image = FakeImage(runner=lambda argv, env: ok("cli v12\n"))

    outcome = run(VERSION, image, timeout=90)

    assert outcome == CheckOutcome(())
    assert outcome.passed
    assert image.calls == [Call([["cli", "--version"]], {}, ContainerRunOptions(), 90)]


def test_command_output_not_matching_says_regex_and_output() -> None:
    image = FakeImage(runner=lambda argv, env: ok("hello\n"))

    outcome = run(VERSION, image)

    assert not outcome.passed
    assert outcome.failures == (
        "expected output (stdout) to match regex 'v[0-9]+' but it was: 'hello\\n'",
    )


def test_command_exit_code_defaults_to_zero_and_is_always_checked() -> None:
    image = FakeImage(runner=lambda argv, env: ok("v1", stderr="boom\n", exit_code=2))

    outcome = run(VERSION, image)

    assert outcome.failures == ("expected exit code 0, got 2; stderr: 'boom\\n'",)


def test_command_expected_exit_code() -> None:
    check = "commandTests:\n  - {name: f, command: 'false', exitCode: 1}\n"

    assert run(check, FakeImage(runner=lambda argv, env: ok(exit_code=1))).passed
    assert run(check, FakeImage(runner=lambda argv, env: ok(exit_code=0))).failures == (
        "expected exit code 1, got 0",
    )


def test_excluded_output_and_error_regexes() -> None:
    check = """\
    commandTests:
      - name: quiet
        command: cli
        excludedOutput: ['[Ee]rror']
        expectedError: ['^warn']
        excludedError: ['panic: .*']
    """
    clean = FakeImage(runner=lambda argv, env: ok("all good", "warn: old"))
    dirty = FakeImage(runner=lambda argv, env: ok("an Error here", "oops\npanic: nil"))

    assert run(check, clean).passed
    assert run(check, dirty).failures == (
        "expected output (stdout) not to match regex '[Ee]rror' but it matched 'Error' "
        "in: 'an Error here'",
        "expected error output (stderr) to match regex '^warn' but it was: 'oops\\npanic: nil'",
        "expected error output (stderr) not to match regex 'panic: .*' but it matched "
        "'panic: nil' in: 'oops\\npanic: nil'",
    )


def test_regexes_use_re2_meaning_of_dollar() -> None:
    check = "commandTests:\n  - {name: exact, command: cli, expectedOutput: ['^ok$']}\n"

    assert run(check, FakeImage(runner=lambda argv, env: ok("ok"))).passed
    assert not run(check, FakeImage(runner=lambda argv, env: ok("ok\n"))).passed


def test_env_vars_global_then_check_with_expansion_from_the_image() -> None:
    check = """\
    globalEnvVars:
      - {key: PATH, value: "/env/bin:$PATH"}
      - {key: MODE, value: global}
      - {key: SEEN, value: "$MODE"}
    commandTests:
      - name: env
        command: sh
        args: ["-c", "echo $PATH $MODE $EXTRA ${UNSET}."]
        envVars:
          - {key: MODE, value: check}
          - {key: EXTRA, value: "${MODE}-x"}
    """
    image = FakeImage(image_config={"Env": ["PATH=/usr/bin", "MODE=image"]})

    assert run(check, image).passed
    [call] = image.calls
    # Each list is expanded against the environment before it, not against itself.
    assert call.env == {
        "PATH": "/env/bin:/usr/bin",
        "MODE": "check",
        "SEEN": "image",
        "EXTRA": "global-x",
    }
    # The tool itself expands $VAR in command and args, from the resulting environment.
    assert call.steps == [["sh", "-c", "echo /env/bin:/usr/bin check global-x ."]]


def test_setup_command_teardown_run_in_order_and_setup_is_not_expanded() -> None:
    check = """\
    commandTests:
      - name: flow
        setup: [["touch", "$HOME/a"], ["mkdir", "/b"]]
        command: ls
        args: ["$HOME"]
        teardown: [["rm", "/b"]]
        expectedOutput: [a]
    """
    image = FakeImage(
        image_config={"Env": ["HOME=/root"]},
        runner=lambda argv, env: ok("a\n" if argv[0] == "ls" else "", exit_code=0),
    )

    assert run(check, image).passed
    assert image.calls[0].steps == [
        ["touch", "$HOME/a"],
        ["mkdir", "/b"],
        ["ls", "/root"],
        ["rm", "/b"],
    ]


def test_failing_setup_or_teardown_does_not_decide_but_setup_is_reported() -> None:
    check = """\
    commandTests:
      - name: flow
        setup: [["prepare"]]
        command: cli
        teardown: [["cleanup"]]
        expectedOutput: [ready]
    """
    answers = {
        "prepare": ok(stderr="prepare: not found", exit_code=127),
        "cleanup": ok(exit_code=1),
    }

    def ready(argv: Sequence[str], env: Mapping[str, str]) -> ExecResult:
        return answers.get(argv[0], ok("ready"))

    def not_ready(argv: Sequence[str], env: Mapping[str, str]) -> ExecResult:
        return answers.get(argv[0], ok("waiting"))

    assert run(check, FakeImage(runner=ready)).passed
    assert run(check, FakeImage(runner=not_ready)).failures == (
        "expected output (stdout) to match regex 'ready' but it was: 'waiting'",
        "note: setup command 1 ['prepare'] exited 127: 'prepare: not found'",
    )


def test_run_options_are_passed_to_the_image() -> None:
    check = """\
    commandTests: [{name: a, command: id}]
    containerRunOptions: {user: root, capabilities: [NET_ADMIN], envVars: [TOKEN]}
    """
    image = FakeImage()

    run(check, image)

    assert image.calls[0].options == ContainerRunOptions(
        user="root", capabilities=("NET_ADMIN",), env_vars=("TOKEN",)
    )


def test_result_count_mismatch_is_an_image_access_error() -> None:
    class Short(FakeImage):
        def run_steps(
            self,
            steps: Sequence[Sequence[str]],
            *,
            env: Mapping[str, str],
            options: ContainerRunOptions,
            timeout: float,
        ) -> Sequence[ExecResult]:
            return []

    with pytest.raises(ImageAccessError, match="ran 1 commands but got 0 results"):
        run("commandTests: [{name: a, command: id}]\n", Short())


def test_invalid_utf8_output_is_matched_as_replacement_characters() -> None:
    image = FakeImage(runner=lambda argv, env: ExecResult(0, b"ok \xff\n"))

    check = "commandTests: [{name: a, command: x, expectedOutput: ['^ok \\x{FFFD}\\n\\z']}]\n"

    assert run(check, image).passed


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$A/${B}c", "1/2c"),
        ("$Ax", ""),
        ("${A}x", "1x"),
        ("$$", ""),
        ("a$", "a$"),
        ("$ a", "$ a"),
        ("$-x", "x"),
        ("${}x", "x"),
        ("${A", "A"),
        ("${1}$1", ""),
        ("$UNSET.", "."),
        ("%$/", "%$/"),
    ],
)
def test_expand_vars_follows_go_os_expand(text: str, expanded: str) -> None:
    assert expand_vars(text, {"A": "1", "B": "2"}) == expanded


# --- file existence -----------------------------------------------------------------------


def passwd_image(perms: int = 0o644, uid: int = 0, gid: int = 0) -> FakeImage:
    image = FakeImage()
    image.add_file("/etc/passwd", "root:x:0:0", perms=perms, uid=uid, gid=gid)
    return image


EXISTS = """\
fileExistenceTests:
  - name: passwd
    path: /etc/passwd
    permissions: '-rw-r--r--'
    uid: 0
    gid: 0
"""


def test_file_existence_passes() -> None:
    assert run(EXISTS, passwd_image()).passed


def test_file_existence_wrong_permissions_owner_group() -> None:
    outcome = run(EXISTS, passwd_image(perms=0o755, uid=1000, gid=50))

    assert outcome.failures == (
        "/etc/passwd: expected permissions -rw-r--r--, found -rwxr-xr-x",
        "/etc/passwd: expected owner uid 0, found 1000",
        "/etc/passwd: expected group gid 0, found 50",
    )


def test_missing_file_fails_once_and_absent_file_passes() -> None:
    missing = run("fileExistenceTests: [{name: a, path: /nope}]\n", FakeImage())
    absent = run("fileExistenceTests: [{name: a, path: /nope, shouldExist: false}]\n", FakeImage())

    assert missing.failures == ("/nope: expected to exist, but it does not",)
    assert absent.passed


def test_file_that_should_not_exist() -> None:
    image = FakeImage()
    image.add_dir("/tmp/cache")

    outcome = run("fileExistenceTests: [{name: a, path: /tmp/cache, shouldExist: false}]\n", image)

    assert outcome.failures == ("/tmp/cache: expected not to exist, but it does (a directory)",)


@pytest.mark.parametrize(
    ("who", "perms", "passes"),
    [
        ("owner", 0o744, True),
        ("owner", 0o655, False),
        ("group", 0o654, True),
        ("group", 0o745, False),
        ("other", 0o645, True),
        ("other", 0o754, False),
        ("any", 0o644 | 0o010, True),
        ("any", 0o644, False),
    ],
)
def test_is_executable_by(who: str, perms: int, passes: bool) -> None:
    check = f"fileExistenceTests: [{{name: a, path: /etc/passwd, isExecutableBy: {who}}}]\n"

    outcome = run(check, passwd_image(perms=perms))

    assert outcome.passed is passes
    if not passes:
        assert outcome.failures == (
            f"/etc/passwd: expected to be executable by {who}, "
            f"found permissions {stat.filemode(stat.S_IFREG | perms)}",
        )


def test_setuid_uses_gos_mode_string_and_shows_ls_form() -> None:
    image = FakeImage()
    image.add_file("/usr/bin/passwd", perms=0o4755)
    check = "fileExistenceTests: [{name: a, path: /usr/bin/passwd, permissions: '%s'}]\n"

    assert run(check % "urwxr-xr-x", image).passed
    assert run(check % "-rwxr-xr-x", image).failures == (
        "/usr/bin/passwd: expected permissions -rwxr-xr-x, found urwxr-xr-x "
        "(ls -l shows -rwsr-xr-x)",
    )


def test_existence_sees_the_symlink_itself() -> None:
    image = FakeImage()
    image.add_link("/bin", "usr/bin")
    image.add_dir("/usr/bin")

    assert run(
        "fileExistenceTests: [{name: a, path: /bin, permissions: Lrwxrwxrwx}]\n", image
    ).passed


def test_existence_path_expands_image_and_global_env() -> None:
    image = FakeImage(image_config={"Env": ["HOME=/home/app"]})
    image.add_file("/home/app/venv/bin/python")
    check = """\
    globalEnvVars: [{key: VENV, value: "$HOME/venv"}]
    fileExistenceTests: [{name: a, path: "$VENV/bin/python"}]
    """
    missing = """\
    fileExistenceTests: [{name: a, path: "$VENV/bin/python"}]
    """

    assert run(check, image).passed
    assert run(missing, image).failures == (
        "/bin/python (from '$VENV/bin/python'): expected to exist, but it does not",
    )


@pytest.mark.parametrize(
    ("mode", "text"),
    [
        (stat.S_IFREG | 0o644, "-rw-r--r--"),
        (stat.S_IFDIR | 0o755, "drwxr-xr-x"),
        (stat.S_IFDIR | 0o1777, "dtrwxrwxrwx"),
        (stat.S_IFLNK | 0o777, "Lrwxrwxrwx"),
        (stat.S_IFREG | 0o6755, "ugrwxr-xr-x"),
        (stat.S_IFCHR | 0o666, "Dcrw-rw-rw-"),
        (stat.S_IFBLK | 0o660, "Drw-rw----"),
        (stat.S_IFIFO | 0o600, "prw-------"),
        (stat.S_IFSOCK | 0o777, "Srwxrwxrwx"),
    ],
)
def test_go_mode_string(mode: int, text: str) -> None:
    assert go_mode_string(mode) == text


# --- file content -------------------------------------------------------------------------

CONTENT = """\
fileContentTests:
  - name: sources
    path: /etc/apt/sources.list
    expectedContents: ['deb\\.debian\\.org']
    excludedContents: ['^deb-src']
"""


def sources_image(content: str) -> FakeImage:
    image = FakeImage()
    image.add_file("/etc/apt/sources.list", content)
    return image


def test_file_content_passes() -> None:
    assert run(CONTENT, sources_image("deb http://deb.debian.org/debian bookworm main\n")).passed


def test_file_content_failures_say_regex_and_contents() -> None:
    outcome = run(CONTENT, sources_image("deb-src http://mirror/ bookworm main\n"))

    assert outcome.failures == (
        "/etc/apt/sources.list: contents expected to match regex 'deb\\.debian\\.org' but they "
        "were: 'deb-src http://mirror/ bookworm main\\n'",
        "/etc/apt/sources.list: contents expected not to match regex '^deb-src' but it matched "
        "'deb-src' in: 'deb-src http://mirror/ bookworm main\\n'",
    )


def test_file_content_of_missing_file_and_directory() -> None:
    image = FakeImage()
    image.add_dir("/etc")

    missing = run("fileContentTests: [{name: a, path: /etc/os-release}]\n", image)
    directory = run("fileContentTests: [{name: a, path: /etc}]\n", image)

    assert missing.failures == ("/etc/os-release: cannot read the file: it does not exist",)
    assert directory.failures == ("/etc: cannot read the file: it is a directory, not a file",)


def test_file_content_follows_relative_and_absolute_symlinks() -> None:
    image = FakeImage()
    image.add_link("/etc/os-release", "../usr/lib/os-release")
    image.add_link("/usr/lib/os-release", "/usr/share/os-release")
    image.add_file("/usr/share/os-release", 'ID="debian"\n')
    image.add_link("/etc/dangling", "gone")
    image.add_link("/loop", "/loop")

    check = "fileContentTests: [{name: a, path: %s, expectedContents: ['ID=.debian']}]\n"

    assert run(check % "/etc/os-release", image).passed
    assert run(check % "/etc/dangling", image).failures == (
        "/etc/dangling: cannot read the file: it leads (through symlinks) to /etc/gone, "
        "which does not exist",
    )
    assert run(check % "/loop", image).failures == (
        "/loop: cannot read the file: too many levels of symbolic links",
    )


# --- metadata -----------------------------------------------------------------------------

METADATA = """\
metadataTest:
  envVars:
    - {key: APP_ENV, value: prod}
    - {key: VERSION, value: '^\\d+\\.\\d+$', isRegex: true}
    - {key: EMPTY, value: ''}
  unboundEnvVars: [{key: SECRET}]
  labels:
    - {key: vendor, value: ACME}
    - {key: build-date, value: '^\\d{4}-', isRegex: true}
  entrypoint: ["/entry.sh"]
  cmd: []
  workdir: /app
  user: app
  exposedPorts: ["8080", "53/udp"]
  unexposedPorts: ["22"]
  volumes: [/data]
  unmountedVolumes: [/var/log]
"""

GOOD_CONFIG: dict[str, Any] = {
    "Env": ["APP_ENV=prod", "VERSION=1.22", "EMPTY="],
    "Labels": {"vendor": "ACME", "build-date": "2024-05-01"},
    "Entrypoint": ["/entry.sh"],
    "Cmd": None,
    "WorkingDir": "/app",
    "User": "app",
    "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
    "Volumes": {"/data": {}},
}


def test_metadata_passes() -> None:
    assert run(METADATA, FakeImage(image_config=GOOD_CONFIG)).passed


def test_metadata_failures_say_expected_and_found() -> None:
    bad = {
        "Env": ["APP_ENV=dev", "VERSION=1.22-rc1", "SECRET=hunter2"],
        "Labels": {"vendor": "Other"},
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["serve"],
        "WorkingDir": "/",
        "User": "",
        "ExposedPorts": {"80/tcp": {}, "22/tcp": {}, "53/tcp": {}},
        "Volumes": {"/var/log": {}},
    }

    outcome = run(METADATA, FakeImage(image_config=bad))

    assert outcome.failures == (
        "env var APP_ENV: expected 'prod', found 'dev'",
        "env var VERSION: expected a value matching regex '^\\d+\\.\\d+$', found '1.22-rc1'",
        "env var EMPTY: expected it to be set, but the image has none",
        "env var SECRET: expected it not to be set, found 'hunter2'",
        "label vendor: expected 'ACME', found 'Other'",
        "label build-date: expected it to be set, but the image has none",
        'expected Entrypoint ["/entry.sh"], found ["/bin/sh", "-c"]',
        'expected Cmd [], found ["serve"]',
        "expected WorkingDir '/app', found '/'",
        "expected User 'app', found ''",
        "expected port 8080 to be exposed; exposed ports: 22/tcp, 53/tcp, 80/tcp",
        "expected port 53/udp to be exposed; exposed ports: 22/tcp, 53/tcp, 80/tcp",
        "expected port 22 not to be exposed, but the image exposes 22/tcp",
        "expected volume /data; the image's volumes: /var/log",
        "expected no volume /var/log, but the image declares it",
    )


def test_unset_metadata_fields_are_not_checked() -> None:
    check = "metadataTest:\n  envVars: [{key: A, value: b}]\n"

    assert run(check, FakeImage(image_config={"Env": ["A=b"], "Cmd": ["x"], "User": "1"})).passed


def test_port_without_protocol_matches_any_protocol_as_in_the_tool() -> None:
    check = "metadataTest:\n  exposedPorts: ['53', '8080/tcp']\n"
    udp: dict[str, Any] = {"ExposedPorts": {"53/udp": {}, "8080": {}}}
    wrong_protocol: dict[str, Any] = {"ExposedPorts": {"53/udp": {}, "8080/udp": {}}}

    assert run(check, FakeImage(image_config=udp)).passed
    assert run(check, FakeImage(image_config=wrong_protocol)).failures == (
        "expected port 8080/tcp to be exposed; exposed ports: 53/udp, 8080/udp",
    )


# --- licenses -----------------------------------------------------------------------------


def debian_image() -> FakeImage:
    image = FakeImage()
    image.add_dir("/usr/share/doc")
    for package in ("bash", "coreutils"):
        image.add_dir(f"/usr/share/doc/{package}")
        image.add_file(f"/usr/share/doc/{package}/copyright", "License: GPL-3+\n")
    return image


def test_debian_license_passes() -> None:
    image = debian_image()
    image.add_link("/usr/share/doc/libfoo1", "libfoo-common")  # symlinked dirs are skipped
    image.add_dir("/usr/share/doc/libgnutls30")  # exempt in the tool
    image.add_file("/LICENSE", "MIT")

    assert run("licenseTests: [{debian: true, files: [/LICENSE]}]\n", image).passed


def test_debian_license_failures() -> None:
    image = debian_image()
    image.add_dir("/usr/share/doc/nocopy")
    image.add_dir("/usr/share/doc/server")
    image.add_file("/usr/share/doc/server/copyright", "License: agpl-3\n")

    outcome = run("licenseTests: [{debian: true, files: [/LICENSE]}]\n", image)

    assert outcome.failures == (
        "/usr/share/doc/nocopy/copyright: cannot read the license file: it does not exist",
        "/usr/share/doc/server/copyright: mentions AGPL, a license container-structure-test's "
        "license check rejects",
        "/LICENSE: cannot read the license file: it does not exist",
    )


def test_debian_license_on_an_image_without_doc_directory() -> None:
    outcome = run("licenseTests: [{debian: true}]\n", FakeImage())

    assert outcome.failures == (
        "/usr/share/doc: expected a directory of Debian copyright files, but there is none "
        "(is the image Debian-based?)",
    )


def test_license_without_debian_reads_only_files() -> None:
    image = FakeImage()
    image.add_file("/LICENSE", "WTFPL")

    assert run("licenseTests: [{debian: false}]\n", image).passed
    assert run("licenseTests: [{files: [/LICENSE]}]\n", image).failures == (
        "/LICENSE: mentions WTFPL, a license container-structure-test's license check rejects",
    )


# --- platforms ----------------------------------------------------------------------------


def test_platform_applies() -> None:
    limited = the_check("commandTests: [{name: a, command: x, platforms: [amd64, arm64]}]\n")
    skipping = the_check("commandTests: [{name: b, command: x, skipPlatforms: [s390x]}]\n")
    everywhere = the_check("commandTests: [{name: c, command: x}]\n")

    assert platform_applies(limited, lookup("arm64")) is None
    assert platform_applies(limited, lookup("s390x")) == (
        "command[a] runs only on amd64, arm64 (its 'platforms:' key), not on s390x"
    )
    assert platform_applies(skipping, lookup("amd64")) is None
    assert platform_applies(skipping, lookup("linux/s390x")) == (
        "command[b] is skipped on s390x (its 'skipPlatforms:' key)"
    )
    assert all(platform_applies(everywhere, lookup(p)) is None for p in ("amd64", "arm/v7"))
