"""Behaviour of images/service on every platform: a stdlib Python HTTP service.

Requests go from the host through the published port, so they exercise the emulated
platform's Python and network stack end to end.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.image("service")

# Generous: an emulated (QEMU) Python answers far more slowly than a native one.
HTTP_TIMEOUT = 60.0

# Every byte value, then text with multi-byte UTF-8: the digest must not depend on the platform.
PAYLOAD = bytes(range(256)) * 64 + "grüße, 世界, \u00e9\n".encode()


def base_url(container) -> str:
    host = container.get_container_host_ip()
    port = container.get_exposed_port(8080)
    return f"http://{host}:{port}"


def request(container, path: str, data: bytes | None = None) -> tuple[int, dict[str, object]]:
    """(status, decoded JSON body) of a GET, or a POST when ``data`` is given."""
    req = urllib.request.Request(base_url(container) + path, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as response:
            assert response.headers.get_content_type() == "application/json"
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_health(container):
    assert request(container, "/health") == (200, {"status": "ok"})


def test_logs_that_it_listens(container):
    stdout, _stderr = container.get_logs()
    assert b"listening on 8080" in stdout


def test_platform_describes_the_platform(container, platform):
    status, info = request(container, "/platform")
    assert status == 200
    assert info["machine"] == platform.uname
    assert info["byte_order"] == platform.byteorder
    assert info["word_bits"] == (32 if platform.arch == "arm" else 64)
    assert info["built_for"] == platform.name


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(PAYLOAD, id="binary-and-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b"hello", id="hello"),
    ],
)
def test_checksum_matches_the_host(container, payload):
    status, answer = request(container, "/checksum", data=payload)
    assert status == 200
    assert answer == {"sha256": hashlib.sha256(payload).hexdigest(), "length": len(payload)}


def test_checksum_of_a_known_value(container):
    # A fixed digest, not one computed here, so a wrong host-side hash cannot hide a bug.
    status, answer = request(container, "/checksum", data=b"hello")
    assert status == 200
    assert answer["sha256"] == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def test_unknown_path_is_404(container):
    status, answer = request(container, "/no-such-endpoint")
    assert status == 404
    assert "error" in answer


def test_checksum_needs_post(container):
    status, _answer = request(container, "/checksum")
    assert status == 405


def test_runs_as_an_unprivileged_user(run):
    result = run(["id", "-u"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() != "0"


# Debian's architecture names, by OCI architecture.
DEBIAN_ARCH = {
    "amd64": "amd64",
    "arm64": "arm64",
    "arm": "armhf",
    "s390x": "s390x",
    "ppc64le": "ppc64el",
    "riscv64": "riscv64",
}


def test_python_is_debians_for_the_target(run, platform):
    script = "dpkg --print-architecture && python3 -c 'import sys; print(sys.version_info[0])'"
    result = run(["sh", "-c", script])
    assert result.exit_code == 0, result.stderr
    arch, major = result.stdout.split()
    assert arch == DEBIAN_ARCH[platform.arch]
    assert major == "3"
