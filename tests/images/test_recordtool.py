"""Behaviour of images/recordtool on every platform: a static C binary decoding a binary record.

The record layout is fixed little-endian and decoded byte by byte, so the decoded fields must
be the same everywhere, while word_bits, byte_order and machine describe the platform itself.
"""

from __future__ import annotations

import json

import docker
import pytest

pytestmark = pytest.mark.image("recordtool")

BINARY = "/usr/local/bin/recordtool"
SAMPLE = "/usr/share/recordtool/sample.bin"

# The sample record as images/recordtool/make-sample.sh writes it, and its decoded fields.
SAMPLE_BYTES = bytes.fromhex(
    "4352"  # u16 magic 0x5243
    "efbeadde"  # u32 id 0xdeadbeef
    "eb7e16820befddee"  # i64 value -1234567890123456789
    "00000000006035c0"  # f64 reading -21.375
    "70726f62652d3700"  # name "probe-7"
)
SAMPLE_FIELDS = {
    "magic": 0x5243,
    "id": 0xDEADBEEF,
    "value": -1234567890123456789,
    "reading": -21.375,
    "name": "probe-7",
}

# e_machine and ELF class (EI_CLASS: 1 = 32-bit, 2 = 64-bit) per OCI architecture.
ELF_MACHINE = {
    "amd64": (62, 2),  # EM_X86_64
    "arm64": (183, 2),  # EM_AARCH64
    "arm": (40, 1),  # EM_ARM
    "s390x": (22, 2),  # EM_S390
    "ppc64le": (21, 2),  # EM_PPC64
    "riscv64": (243, 2),  # EM_RISCV
}


def shell(run, script: str):
    """Run a busybox shell script in a fresh container of the image."""
    return run([script], entrypoint=["sh", "-c"])


def hex_bytes(od_output: str) -> bytes:
    """The bytes `od -v -An -tx1` printed."""
    return bytes.fromhex("".join(od_output.split()))


def decode(stdout: str) -> dict[str, object]:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one line of JSON, got {stdout!r}"
    return json.loads(lines[0])


def expected_word_bits(platform) -> int:
    return 32 if platform.arch == "arm" else 64


def test_binary_is_an_elf_for_the_platform(run, platform):
    result = shell(run, f"od -v -An -tx1 -N20 {BINARY}")
    assert result.exit_code == 0, result.stderr
    header = hex_bytes(result.stdout)
    assert len(header) == 20
    assert header[:4] == b"\x7fELF"
    ei_class, ei_data = header[4], header[5]
    machine, elf_class = ELF_MACHINE[platform.arch]
    assert ei_class == elf_class, "ELF class (1 = 32-bit, 2 = 64-bit)"
    assert ei_data == (2 if platform.byteorder == "big" else 1), "EI_DATA (1 = LSB, 2 = MSB)"
    order = "big" if ei_data == 2 else "little"
    assert int.from_bytes(header[18:20], order) == machine, "e_machine"


def test_binary_is_static(run):
    # A static binary has neither a program interpreter (PT_INTERP) nor a dynamic section
    # (PT_DYNAMIC). The program header table follows the ELF header, well within 4 KiB.
    result = shell(run, f"od -v -An -tx1 -N4096 {BINARY}")
    assert result.exit_code == 0, result.stderr
    data = hex_bytes(result.stdout)
    is64 = data[4] == 2
    order = "big" if data[5] == 2 else "little"

    def field(offset: int, size: int) -> int:
        return int.from_bytes(data[offset : offset + size], order)

    if is64:
        phoff, phentsize, phnum = field(32, 8), field(54, 2), field(56, 2)
    else:
        phoff, phentsize, phnum = field(28, 4), field(42, 2), field(44, 2)
    assert phnum > 0
    assert phoff + phnum * phentsize <= len(data), "program headers beyond the first 4 KiB"
    p_types = {field(phoff + i * phentsize, 4) for i in range(phnum)}
    assert 1 in p_types, "PT_LOAD"
    assert 3 not in p_types, "PT_INTERP: the binary needs a dynamic loader"
    assert 2 not in p_types, "PT_DYNAMIC: the binary is dynamically linked"


def test_sample_file_is_the_same_little_endian_record(run):
    result = shell(run, f"od -v -An -tx1 {SAMPLE}")
    assert result.exit_code == 0, result.stderr
    assert hex_bytes(result.stdout) == SAMPLE_BYTES


def test_decodes_the_sample_to_the_same_fields_everywhere(run, platform):
    result = run([SAMPLE])
    assert result.exit_code == 0, result.stderr
    record = decode(result.stdout)
    assert {key: record[key] for key in SAMPLE_FIELDS} == SAMPLE_FIELDS
    assert record["built_for"] == platform.name


def test_default_command_decodes_the_sample(run):
    result = run([])
    assert result.exit_code == 0, result.stderr
    assert decode(result.stdout)["id"] == SAMPLE_FIELDS["id"]


def test_reads_standard_input(run):
    result = shell(run, f"recordtool < {SAMPLE} && recordtool - < {SAMPLE}")
    assert result.exit_code == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert json.loads(first) == json.loads(second)
    assert json.loads(first)["name"] == SAMPLE_FIELDS["name"]


def test_short_record_on_stdin_exits_2(run):
    result = run(["-"], stdin="abc")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "short record: 3 of 30 bytes" in result.stderr


def test_reports_the_platform_it_runs_on(run, platform):
    result = run([SAMPLE])
    assert result.exit_code == 0, result.stderr
    record = decode(result.stdout)
    assert record["machine"] == platform.uname
    assert record["byte_order"] == platform.byteorder
    assert record["word_bits"] == expected_word_bits(platform)


def test_decodes_extreme_values_byte_by_byte(run):
    # magic 0x5243; id 0xffffffff; value INT64_MIN; reading -0.5; a full 8-byte name.
    record = (
        r"\103\122"
        r"\377\377\377\377"
        r"\000\000\000\000\000\000\000\200"
        r"\000\000\000\000\000\000\340\277"
        r"ABCDEFGH"
    )
    result = shell(run, f"printf '{record}' | recordtool")
    assert result.exit_code == 0, result.stderr
    decoded = decode(result.stdout)
    assert decoded["id"] == 0xFFFFFFFF
    assert decoded["value"] == -(2**63)
    assert decoded["reading"] == -0.5
    assert decoded["name"] == "ABCDEFGH"


def test_the_label_records_the_target_platform(image, platform):
    client = docker.from_env()
    try:
        labels = client.images.get(image.reference).labels
    finally:
        client.close()
    assert labels["multiarch-example.target-platform"] == platform.name


@pytest.mark.parametrize(
    ("script", "message"),
    [
        pytest.param("printf abc | recordtool", "short record", id="short-stdin"),
        pytest.param(": | recordtool", "short record", id="empty-stdin"),
        pytest.param(
            "head -c 30 /dev/zero > /tmp/zero.bin && recordtool /tmp/zero.bin",
            "bad magic",
            id="bad-magic",
        ),
        pytest.param(f"cat {SAMPLE} {SAMPLE} | recordtool", "trailing data", id="trailing-data"),
        pytest.param("recordtool /nonexistent.bin", "cannot open", id="missing-file"),
    ],
)
def test_bad_input_exits_2_with_a_message(run, script, message):
    result = shell(run, script)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert result.stderr.startswith("recordtool: ")


def test_unknown_option_is_a_usage_error(run):
    result = run(["--frobnicate"])
    assert result.exit_code == 64
    assert "unknown option" in result.stderr
    assert "usage: recordtool" in result.stderr


def test_help(run):
    result = run(["--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith("usage: recordtool")
