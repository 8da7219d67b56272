"""Reading container-structure-test files: the model, every kind of mistake, RE2 regexes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.structure.config import (
    CommandCheck,
    ContainerRunOptions,
    FileContentCheck,
    FileExistenceCheck,
    LicenseCheck,
    MetadataCheck,
    StructureConfigError,
    StructureFile,
    load_structure_file,
    parse_structure_file,
    valid_mode_string,
)
from pytest_multiarch.structure.re2 import RegexSyntaxError, compile_re2, translate_re2

SOURCE = "images/cli/structure-tests.yaml"

FULL = """\
schemaVersion: "2.0.0"
globalEnvVars:
  - key: VIRTUAL_ENV
    value: /env
  - key: PATH
    value: "/env/bin:$PATH"
commandTests:
  - name: prints version
    setup: [["virtualenv", "/env"], ["pip", "install", "flask"]]
    teardown: [["rm", "-rf", "/env"]]
    command: cli
    args: ["--version", 3]
    envVars:
      - key: LANG
        value: C.UTF-8
    exitCode: 2
    expectedOutput: ['v[0-9]+']
    excludedOutput: ["error"]
    expectedError: ["warn"]
    excludedError: ["panic"]
    platforms: [amd64, aarch64]
fileExistenceTests:
  - name: passwd
    path: /etc/passwd
    permissions: "-rw-r--r--"
    uid: 0
    gid: 42
    isExecutableBy: other
    skipPlatforms: ["linux/s390x"]
  - name: no shadow backup
    path: /etc/shadow-
    shouldExist: false
fileContentTests:
  - name: sources
    path: /etc/apt/sources.list
    expectedContents: ['deb\\.debian\\.org']
    excludedContents: ['mirror']
metadataTest:
  envVars:
    - key: FOO
      value: bar
    - key: BUILD
      value: '^\\d+$'
      isRegex: true
  unboundEnvVars:
    - key: SECRET
  labels:
    - key: vendor
      value: ACME
  entrypoint: []
  cmd: ["/bin/sh"]
  workdir: /app
  user: nobody
  exposedPorts: ["8080", 2345, "53/udp"]
  unexposedPorts: ["22"]
  volumes: ["/data"]
  unmountedVolumes: ["/tmp"]
licenseTests:
  - debian: true
    files: ["/LICENSE"]
containerRunOptions:
  user: root
  privileged: true
  capabilities: [sys_admin]
"""


def parse(text: str) -> StructureFile:
    return parse_structure_file(textwrap.dedent(text), Path(SOURCE))


def error_for(text: str) -> str:
    with pytest.raises(StructureConfigError) as caught:
        parse(text)
    return str(caught.value)


def with_check(section: str, body: str) -> str:
    indented = textwrap.indent(textwrap.dedent(body), "    ").replace("    ", "  - ", 1)
    return f'schemaVersion: "2.0.0"\n{section}:\n{indented}'


# --- the model ----------------------------------------------------------------------------


def test_full_file_becomes_typed_checks_in_the_tools_run_order() -> None:
    parsed = parse(FULL)

    assert parsed.schema_version == "2.0.0"
    assert [c.id for c in parsed.checks] == [
        "command[prints version]",
        "file-content[sources]",
        "file-existence[passwd]",
        "file-existence[no shadow backup]",
        "license[0]",
        "metadata",
    ]
    assert [(v.key, v.value) for v in parsed.global_env_vars] == [
        ("VIRTUAL_ENV", "/env"),
        ("PATH", "/env/bin:$PATH"),
    ]
    assert parsed.run_options == ContainerRunOptions(
        user="root", privileged=True, capabilities=("sys_admin",)
    )


def test_command_check_fields() -> None:
    check = parse(FULL).checks[0]

    assert isinstance(check, CommandCheck)
    assert check.command == "cli"
    assert check.args == ("--version", "3")
    assert check.setup == (("virtualenv", "/env"), ("pip", "install", "flask"))
    assert check.teardown == (("rm", "-rf", "/env"),)
    assert [(v.key, v.value) for v in check.env_vars] == [("LANG", "C.UTF-8")]
    assert check.exit_code == 2
    assert [str(r) for r in check.expected_output] == ["v[0-9]+"]
    assert [str(r) for r in check.excluded_output] == ["error"]
    assert [str(r) for r in check.expected_error] == ["warn"]
    assert [str(r) for r in check.excluded_error] == ["panic"]
    assert check.platforms == ("linux/amd64", "linux/arm64")
    assert check.skip_platforms == ()


def test_file_checks_fields_and_defaults() -> None:
    checks = parse(FULL).checks
    content, passwd, shadow = checks[1], checks[2], checks[3]

    assert isinstance(content, FileContentCheck)
    assert content.path == "/etc/apt/sources.list"
    assert content.expected_contents[0].search("deb.debian.org main")
    assert not content.expected_contents[0].search("debXdebian.org")
    assert isinstance(passwd, FileExistenceCheck)
    assert passwd.should_exist is True
    assert (passwd.permissions, passwd.uid, passwd.gid) == ("-rw-r--r--", 0, 42)
    assert passwd.is_executable_by == "other"
    assert passwd.skip_platforms == ("linux/s390x",)
    assert isinstance(shadow, FileExistenceCheck)
    assert shadow.should_exist is False
    assert (shadow.permissions, shadow.uid, shadow.gid, shadow.is_executable_by) == (
        "",
        None,
        None,
        None,
    )


def test_metadata_and_license_fields() -> None:
    checks = parse(FULL).checks
    license_check, metadata = checks[4], checks[5]

    assert isinstance(license_check, LicenseCheck)
    assert (license_check.debian, license_check.files) == (True, ("/LICENSE",))
    assert isinstance(metadata, MetadataCheck)
    assert metadata.name == "metadata"
    foo, build = metadata.env_vars
    assert (foo.key, foo.value, foo.is_regex, foo.regex) == ("FOO", "bar", False, None)
    assert build.is_regex
    assert build.regex is not None
    assert build.regex.search("123")
    assert metadata.unbound_env_vars == ("SECRET",)
    assert [(label.key, label.value) for label in metadata.labels] == [("vendor", "ACME")]
    assert metadata.entrypoint == ()
    assert metadata.cmd == ("/bin/sh",)
    assert (metadata.workdir, metadata.user) == ("/app", "nobody")
    assert metadata.exposed_ports == ("8080", "2345", "53/udp")
    assert metadata.unexposed_ports == ("22",)
    assert (metadata.volumes, metadata.unmounted_volumes) == (("/data",), ("/tmp",))


def test_absent_entrypoint_is_unchecked_but_empty_list_is_checked() -> None:
    absent = parse('schemaVersion: "2.0.0"\nmetadataTest:\n  cmd: ["x"]\n').checks[0]
    empty = parse('schemaVersion: "2.0.0"\nmetadataTest:\n  entrypoint: []\n').checks[0]

    assert isinstance(absent, MetadataCheck)
    assert absent.entrypoint is None
    assert isinstance(empty, MetadataCheck)
    assert empty.entrypoint == ()


def test_metadata_test_that_checks_nothing_gives_no_check() -> None:
    parsed = parse('schemaVersion: "2.0.0"\nmetadataTest:\n  platforms: [arm64]\n')

    assert parsed.checks == ()


def test_uid_minus_one_means_unchecked_as_in_the_tool() -> None:
    check = parse(with_check("fileExistenceTests", "name: a\npath: /a\nuid: -1\n")).checks[0]

    assert isinstance(check, FileExistenceCheck)
    assert check.uid is None


def test_repeated_names_get_distinct_ids() -> None:
    parsed = parse(
        'schemaVersion: "2.0.0"\n'
        "commandTests:\n"
        "  - {name: same, command: a}\n"
        "  - {name: same, command: b}\n"
        "  - {name: 'same#2', command: c}\n"
    )

    assert [c.id for c in parsed.checks] == [
        "command[same]",
        "command[same#2]",
        "command[same#2#2]",
    ]


def test_minimal_file_and_json_text() -> None:
    parsed = parse('{"schemaVersion": "2.0.0", "commandTests": [{"name": "x", "command": "true"}]}')

    check = parsed.checks[0]
    assert isinstance(check, CommandCheck)
    assert (check.exit_code, check.args, check.setup) == (0, (), ())


def test_load_structure_file_reads_the_path(tmp_path: Path) -> None:
    path = tmp_path / "structure-tests.yaml"
    path.write_text(FULL)

    assert load_structure_file(path).path == path
    assert len(load_structure_file(path).checks) == 6


# --- mistakes -----------------------------------------------------------------------------


def test_unknown_key_names_file_check_key_and_the_known_keys() -> None:
    message = error_for(
        with_check("commandTests", "name: a\ncommand: a\n")
        + "  - name: b\n    command: b\n"
        + "  - name: prints version\n    command: cli\n    exitcode: 0\n"
    )

    assert message.startswith(
        f"{SOURCE}: commandTests[2] \"prints version\": key 'exitcode': unknown key "
        "(did you mean 'exitCode'?); known keys are name, setup, teardown, envVars, exitCode,"
    )
    assert message.endswith("platforms, skipPlatforms")


def test_unknown_top_level_and_nested_keys() -> None:
    top = error_for('schemaVersion: "2.0.0"\ncommandTest: []\n')
    nested = error_for(
        with_check("commandTests", "name: a\ncommand: a\nenvVars: [{key: A, vaule: b}]\n")
    )
    options = error_for('schemaVersion: "2.0.0"\ncontainerRunOptions: {tty: true}\n')

    assert top.startswith(
        f"{SOURCE}: key 'commandTest': unknown key (did you mean 'commandTests'?)"
    )
    assert nested.startswith(
        f"{SOURCE}: commandTests[0] \"a\": key 'envVars[0].vaule': unknown key "
        "(did you mean 'value'?); known keys are key, value, isRegex"
    )
    assert options.startswith(f"{SOURCE}: containerRunOptions: key 'tty': unknown key")


def test_metadata_and_license_checks_are_named_in_errors() -> None:
    metadata = error_for('schemaVersion: "2.0.0"\nmetadataTest:\n  workDir: /app\n')
    license_error = error_for(with_check("licenseTests", "name: x\n"))

    assert metadata.startswith(
        f"{SOURCE}: metadataTest: key 'workDir': unknown key (did you mean 'workdir'?)"
    )
    assert license_error.startswith(f"{SOURCE}: licenseTests[0]: key 'name': unknown key")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "name: a\ncommand: a\nexitCode: '0'\n",
            "key 'exitCode': expected an integer, got string '0'",
        ),
        (
            "name: a\ncommand: a\nexitCode: true\n",
            "key 'exitCode': expected an integer, got boolean",
        ),
        (
            "name: a\ncommand: a\nargs: --help\n",
            "key 'args': expected a list of strings, got string",
        ),
        ("name: a\ncommand: a\nargs: [[x]]\n", "key 'args[0]': expected a string, got list"),
        (
            "name: a\ncommand: [apt-get, help]\n",
            "key 'command': expected a string, got a list; in schemaVersion 2.0.0 'command' is "
            "the program and its arguments go in 'args'",
        ),
        (
            "name: a\ncommand: a\nexpectedOutput: 'v1'\n",
            "key 'expectedOutput': expected a list of regular expressions, got a string; "
            "write ['v1']",
        ),
        ("name: a\ncommand: a\nsetup: [ls]\n", "key 'setup[0]': expected a command as a list"),
        ("name: a\ncommand: a\nteardown: [[]]\n", "key 'teardown[0]': empty command"),
        ("name: a\ncommand: a\nexitCode: 256\n", "key 'exitCode': expected an exit code 0-255"),
        (
            "name: a\ncommand: a\nenvVars: {A: b}\n",
            "key 'envVars': expected a list of {key, value}",
        ),
        ("name: a\ncommand: a\nenvVars: [{key: A}]\n", "key 'envVars[0].value': must not be empty"),
        ("name: a\ncommand: a\nenvVars: [{value: b}]\n", "key 'envVars[0].key': missing required"),
        (
            "name: a\ncommand: a\nenvVars: [{key: A, value: yes}]\n",
            "got boolean True; put it in quotes",
        ),
        (
            "name: 5.5\ncommand: a\n",
            "key 'name': expected a string, got number 5.5; put it in quotes",
        ),
    ],
)
def test_command_check_type_errors(body: str, expected: str) -> None:
    message = error_for(with_check("commandTests", body))

    assert message.startswith(f"{SOURCE}: commandTests[0]")
    assert expected in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("name: a\npath: /a\nshouldExist: 'no'\n", "key 'shouldExist': expected true or false"),
        ("name: a\npath: /a\nuid: root\n", "key 'uid': expected an integer, got string 'root'"),
        ("name: a\npath: /a\ngid: -5\n", "key 'gid': expected a numeric id (0 or more), got -5"),
        (
            "name: a\npath: /a\nisExecutableBy: everyone\n",
            "key 'isExecutableBy': expected one of owner, group, other, any, got string 'everyone'",
        ),
        (
            "name: a\npath: /a\npermissions: '0644'\n",
            "key 'permissions': expected a mode string like '-rw-r--r--' or 'drwxr-xr-x', "
            "got '0644'",
        ),
        (
            "name: a\npath: /a\npermissions: '-rwsr-xr-x'\n",
            "leading letters u, g, t: 'urwxr-xr-x', not '-rwsr-xr-x'",
        ),
    ],
)
def test_file_existence_type_errors(body: str, expected: str) -> None:
    message = error_for(with_check("fileExistenceTests", body))

    assert message.startswith(f'{SOURCE}: fileExistenceTests[0] "a": ')
    assert expected in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("exposedPorts: [http]\n", "key 'exposedPorts[0]': expected a port like '8080' or"),
        ("unexposedPorts: ['80/icmp']\n", "key 'unexposedPorts[0]': expected a port like"),
        ("exposedPorts: [70000]\n", "key 'exposedPorts[0]': expected a port like"),
        ("cmd: /bin/sh\n", "key 'cmd': expected a list of strings (exec form), got a string"),
        ("labels: [{key: a, value: '(', isRegex: true}]\n", "key 'labels[0].value': invalid"),
        ("envVars: [{key: a, isRegex: 1}]\n", "key 'envVars[0].isRegex': expected true or false"),
        ("volumes: ['']\n", "key 'volumes[0]': must not be empty"),
        ("user: 1000\nworkdir: [a]\n", "key 'workdir': expected a string, got list"),
    ],
)
def test_metadata_type_errors(body: str, expected: str) -> None:
    message = error_for('schemaVersion: "2.0.0"\nmetadataTest:\n' + textwrap.indent(body, "  "))

    assert message.startswith(f"{SOURCE}: metadataTest: ")
    assert expected in message


def test_sections_and_checks_of_the_wrong_shape() -> None:
    not_list = error_for('schemaVersion: "2.0.0"\ncommandTests: {name: a}\n')
    not_mapping = error_for('schemaVersion: "2.0.0"\nfileContentTests: [just-a-string]\n')
    root = error_for("- schemaVersion: 2.0.0\n")

    assert not_list == (
        f"{SOURCE}: key 'commandTests': expected a list of checks, got mapping {{'name': 'a'}}"
    )
    assert not_mapping == (
        f"{SOURCE}: fileContentTests[0]: expected a mapping (one check), got string 'just-a-string'"
    )
    assert root.startswith(f"{SOURCE}: expected a mapping of schemaVersion, commandTests")


@pytest.mark.parametrize(
    ("section", "body", "key"),
    [
        ("commandTests", "command: a\n", "name"),
        ("commandTests", "name: a\n", "command"),
        ("fileExistenceTests", "name: a\n", "path"),
        ("fileContentTests", "path: /a\n", "name"),
        ("fileContentTests", "name: a\n", "path"),
    ],
)
def test_missing_required_keys(section: str, body: str, key: str) -> None:
    message = error_for(with_check(section, body))

    assert message.startswith(f"{SOURCE}: {section}[0]")
    assert message.endswith(f"key {key!r}: missing required key")


def test_empty_required_value_is_refused() -> None:
    message = error_for(with_check("commandTests", "name: ''\ncommand: a\n"))

    assert message == f"{SOURCE}: commandTests[0]: key 'name': must not be empty"


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("'1.0.0'", "key 'schemaVersion': unsupported schema version '1.0.0': only '2.0.0'"),
        ("2.0", "key 'schemaVersion': unsupported schema version 2.0: only '2.0.0'"),
    ],
)
def test_unsupported_schema_version(version: str, expected: str) -> None:
    message = error_for(f"schemaVersion: {version}\ncommandTests: []\n")

    assert message.startswith(f"{SOURCE}: {expected}")


def test_missing_schema_version() -> None:
    message = error_for("commandTests: []\n")

    assert message == (
        f"{SOURCE}: key 'schemaVersion': missing required key; write schemaVersion: '2.0.0'"
    )


def test_invalid_regex_names_the_regex_and_the_reason() -> None:
    message = error_for(
        with_check("commandTests", "name: v\ncommand: a\nexpectedOutput: ['ok', 'v(1']\n")
    )

    assert message == (
        f"{SOURCE}: commandTests[0] \"v\": key 'expectedOutput[1]': "
        "invalid regular expression 'v(1': missing closing ): `v(1`"
    )


def test_regex_python_accepts_but_re2_refuses_is_an_error() -> None:
    message = error_for(
        with_check("fileContentTests", "name: c\npath: /a\nexcludedContents: ['(a)\\1']\n")
    )

    assert "key 'excludedContents[0]': invalid regular expression '(a)\\1'" in message
    assert "backreferences" in message


@pytest.mark.parametrize("key", ["platforms", "skipPlatforms"])
def test_unknown_platform(key: str) -> None:
    message = error_for(with_check("commandTests", f"name: a\ncommand: a\n{key}: [amd64, sparc]\n"))

    assert message.startswith(
        f"{SOURCE}: commandTests[0] \"a\": key '{key}[1]': unknown platform 'sparc'; "
        "known platforms are amd64, arm64, arm/v7, s390x"
    )


def test_platforms_must_be_a_non_empty_list() -> None:
    empty = error_for(with_check("commandTests", "name: a\ncommand: a\nplatforms: []\n"))
    string = error_for(with_check("commandTests", "name: a\ncommand: a\nskipPlatforms: arm64\n"))

    assert empty.endswith("key 'platforms': empty list; leave the key out to run on every platform")
    assert "key 'skipPlatforms': expected a list of strings, got string 'arm64'" in string


def test_yaml_syntax_error_gives_file_and_line() -> None:
    message = error_for('schemaVersion: "2.0.0"\ncommandTests:\n  - name: a\n   command: b\n')

    assert message.startswith(f"{SOURCE}:4:")
    assert "invalid YAML" in message


def test_duplicate_key_is_an_error_with_its_line() -> None:
    message = error_for(with_check("commandTests", "name: a\ncommand: a\nname: b\n"))

    assert message == f"{SOURCE}:5:5: invalid YAML: key 'name' appears twice in one mapping"


def test_empty_file() -> None:
    assert error_for("") == (
        f"{SOURCE}: the file is empty; expected a mapping with schemaVersion: '2.0.0'"
    )


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(StructureConfigError) as caught:
        load_structure_file(tmp_path / "missing.yaml", display="images/x/missing.yaml")

    assert (
        str(caught.value)
        == "images/x/missing.yaml: cannot read the file: No such file or directory"
    )


def test_config_error_is_a_multiarch_error_with_parts() -> None:
    with pytest.raises(MultiarchError) as caught:
        parse(with_check("commandTests", "name: a\ncommand: a\nbogus: 1\n"))

    assert isinstance(caught.value, StructureConfigError)
    assert (caught.value.source, caught.value.check, caught.value.key) == (
        SOURCE,
        'commandTests[0] "a"',
        "bogus",
    )


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("-rw-r--r--", True),
        ("drwxr-xr-x", True),
        ("Lrwxrwxrwx", True),
        ("urwxr-xr-x", True),
        ("dtrwxrwxrwx", True),
        ("Dcrw-rw-rw-", True),
        ("-rwsr-xr-x", False),
        ("rw-r--r--", False),
        ("td-rwxrwxrwx", False),
        ("ddrwxrwxrwx", False),
        ("-rw-r--r-", False),
    ],
)
def test_valid_mode_string(text: str, valid: bool) -> None:
    assert valid_mode_string(text) is valid


# --- RE2 regexes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        # Without (?m), $ is the end of the text in RE2, not "before a final newline".
        ("^hello$", "hello\n", False),
        ("^hello$", "hello", True),
        ("(?m)^hello$", "x\nhello\ny", True),
        ("hello\\z", "hello\n", False),
        # \d, \w, \s and \b are ASCII-only in RE2.
        ("^\\d$", "\u0663", False),
        ("^\\w$", "\u00e9", False),
        ("^\\s$", "\u00a0", False),
        ("\\bx\\b", "\u00e9x\u00e9", True),
        ("^[[:alpha:]]+$", "abcXYZ", True),
        ("^[[:alpha:]]+$", "ab1", False),
        ("^[^[:digit:]a]$", "b", True),
        ("^[^[:digit:]a]$", "a", False),
        ("^[x\\D]$", "q", True),
        ("^[x\\D]$", "7", False),
        ("^[^a[:^digit:]]$", "5", True),
        ("^[^a[:^digit:]]$", "b", False),
        # (?i) lasts to the end of its group, across |, but not before it.
        ("a(?i)b|c", "aB", True),
        ("a(?i)b|c", "C", True),
        ("a(?i)b|c", "AB", False),
        ("ab(?i)c|d", "D", True),
        ("ab(?i)c|d", "aBc", False),
        ("(?i:a)b", "Ab", True),
        ("(?i:a)b", "AB", False),
        # A brace that is not a repetition is a literal brace (Python reads {,3} as {0,3}).
        ("^a{,3}$", "a{,3}", True),
        ("^a{,3}$", "aa", False),
        ("^a{2,3}$", "aaa", True),
        ("^\\Qa.b\\E$", "a.b", True),
        ("^\\Qa.b\\E$", "axb", False),
        ("^\\x{263a}\\x41\\101\\012$", "\u263aAA\n", True),
        ("^(?<ver>[0-9]+)$", "42", True),
        ("^[]a]+$", "]a]", True),
        ("^[a-]+$", "-a-", True),
        ("(?s)a.b", "a\nb", True),
        ("a.b", "a\nb", False),
    ],
)
def test_re2_semantics(pattern: str, text: str, matches: bool) -> None:
    assert (compile_re2(pattern).search(text) is not None) is matches


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "backreferences (`\\1`) are not supported"),
        ("(?P<x>a)(?P=x)", "backreferences ((?P=name)) are not supported"),
        ("a(?=b)", "lookahead and lookbehind (`(?=`) are not supported"),
        ("(?<!a)b", "lookahead and lookbehind (`(?<!`) are not supported"),
        ("a*+", "invalid nested repetition operator: `*+` (RE2 has no possessive quantifiers)"),
        ("a{2}{3}", "invalid nested repetition operator: `{2}{3}`"),
        ("*a", "missing argument to repetition operator: `*`"),
        ("a{1001}", "invalid repeat count: `{1001}` (RE2 allows up to 1000)"),
        ("a{3,2}", "invalid repeat count: `{3,2}`"),
        ("\\pL", "Unicode character classes (`\\p...`) are not supported"),
        ("[\\p{Greek}]", "Unicode character classes"),
        ("\\C", "`\\C` (any byte) is not supported"),
        ("(?U)a+", "the U (ungreedy) flag has no equivalent in Python's re"),
        ("(?x)a", "invalid or unsupported Perl syntax: `(?x)`"),
        ("\\Z", "invalid escape sequence: `\\Z`"),
        ("[\\b]", "invalid escape sequence: `\\b`"),
        ("\\8", "invalid escape sequence: `\\8`"),
        ("[z-a]", "invalid character class range: `z-a`"),
        ("[[:alfa:]]", "invalid character class range: `[:alfa:]`"),
        ("[abc", "missing closing ]: `[abc`"),
        ("(ab", "missing closing ): `(ab`"),
        ("ab)", "unexpected ): `ab)`"),
        ("ab\\", "trailing backslash at end of expression"),
        ("(?P<>a)", "invalid named capture"),
    ],
)
def test_re2_refusals(pattern: str, reason: str) -> None:
    with pytest.raises(RegexSyntaxError) as caught:
        compile_re2(pattern)

    assert str(caught.value).startswith(reason)


def test_translation_leaves_plain_patterns_alone() -> None:
    pattern = ".*(FOO|BAR)=keepit(secret|safe)!.*"

    assert translate_re2(pattern) == pattern
