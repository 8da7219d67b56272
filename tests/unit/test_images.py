"""image.toml validation, load_image and discover_images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.images import (
    ImageSpec,
    WaitSpec,
    discover_images,
    load_image,
    parse_image_toml,
    survey_images,
)
from pytest_multiarch.core.platforms import lookup


def write_image(root: Path, name: str, toml: str | None = None, *, dockerfile: bool = True) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    if dockerfile:
        (directory / "Dockerfile").write_text("FROM busybox:latest\n")
    if toml is not None:
        (directory / "image.toml").write_text(toml)
    return directory


def parse(data: dict[str, Any], tmp_path: Path) -> ImageSpec:
    return parse_image_toml("img", tmp_path, data, tmp_path / "image.toml")


def config_error(data: dict[str, Any], tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data, tmp_path)
    return str(info.value)


# ---- parse_image_toml: accepted ------------------------------------------------------------------


def test_empty_table_gives_defaults(tmp_path: Path) -> None:
    spec = parse({}, tmp_path)
    assert spec == ImageSpec(name="img", directory=tmp_path)
    assert spec.platforms == ()
    assert dict(spec.build_args) == {}
    assert spec.target == ""
    assert spec.command == ()
    assert spec.ports == ()
    assert dict(spec.env) == {}
    assert spec.wait == WaitSpec()
    assert spec.wait.kind == "none"
    assert spec.wait.timeout == 30.0
    assert spec.ref == ""
    assert spec.repository == ""
    assert spec.dockerfile == tmp_path / "Dockerfile"


def test_every_key_accepted(tmp_path: Path) -> None:
    spec = parse(
        {
            "platforms": ["amd64", "linux/arm64", "armhf"],
            "build-args": {"VERSION": "1.2", "JOBS": 4, "RATIO": 0.5},
            "target": "runtime",
            "command": ["serve", "--port", "8080"],
            "ports": [8080, 9090],
            "env": {"MODE": "test", "LEVEL": 3},
            "wait": {"http": "/health", "port": 8080, "timeout": 12.5},
            "ref": "",
            "repository": "example/img",
        },
        tmp_path,
    )
    assert [p.name for p in spec.platforms] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    assert dict(spec.build_args) == {"VERSION": "1.2", "JOBS": "4", "RATIO": "0.5"}
    assert spec.target == "runtime"
    assert spec.command == ("serve", "--port", "8080")
    assert spec.ports == (8080, 9090)
    assert dict(spec.env) == {"MODE": "test", "LEVEL": "3"}
    assert spec.wait == WaitSpec(log="", http="/health", port=8080, timeout=12.5)
    assert spec.wait.kind == "http"
    assert spec.repository == "example/img"


def test_ref_image(tmp_path: Path) -> None:
    spec = parse({"ref": "busybox:latest"}, tmp_path)
    assert spec.ref == "busybox:latest"


def test_wait_log(tmp_path: Path) -> None:
    spec = parse({"wait": {"log": r"ready on port \d+", "timeout": 5}}, tmp_path)
    assert spec.wait.log == r"ready on port \d+"
    assert spec.wait.kind == "log"
    assert spec.wait.timeout == 5.0
    assert isinstance(spec.wait.timeout, float)


def test_wait_log_with_port_is_log_kind(tmp_path: Path) -> None:
    spec = parse({"wait": {"log": "ready", "port": 80}}, tmp_path)
    assert spec.wait.kind == "log"
    assert spec.ports == (80,)


def test_wait_port_only(tmp_path: Path) -> None:
    spec = parse({"wait": {"port": 5432}}, tmp_path)
    assert spec.wait.kind == "port"
    assert spec.ports == (5432,)


@pytest.mark.parametrize(
    ("ports", "wait_port", "expected"),
    [
        ([], 8080, (8080,)),
        ([80], 8080, (80, 8080)),
        ([8080, 80], 8080, (8080, 80)),
        ([80, 443], 443, (80, 443)),
    ],
)
def test_wait_port_added_to_ports(
    tmp_path: Path, ports: list[int], wait_port: int, expected: tuple[int, ...]
) -> None:
    spec = parse({"ports": ports, "wait": {"http": "/", "port": wait_port}}, tmp_path)
    assert spec.ports == expected


@pytest.mark.parametrize("port", [1, 80, 65535])
def test_port_bounds_accepted(tmp_path: Path, port: int) -> None:
    assert parse({"ports": [port]}, tmp_path).ports == (port,)


def test_single_string_platforms_is_accepted(tmp_path: Path) -> None:
    spec = parse({"platforms": "s390x"}, tmp_path)
    assert [p.name for p in spec.platforms] == ["linux/s390x"]


# ---- parse_image_toml: rejected ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"platforms": 5}, "platforms"),
        ({"platforms": ["amd64", 5]}, "platforms"),
        ({"platforms": ["bogus"]}, "platforms"),
        ({"build-args": ["A=1"]}, "build-args"),
        ({"build-args": "A=1"}, "build-args"),
        ({"build-args": {"A": True}}, "build-args.A"),
        ({"build-args": {"A": ["x"]}}, "build-args.A"),
        ({"build-args": {"A": {"nested": "x"}}}, "build-args.A"),
        ({"target": 3}, "target"),
        ({"target": ["a"]}, "target"),
        ({"command": "serve --port 80"}, "command"),
        ({"command": ["serve", 80]}, "command"),
        ({"command": 7}, "command"),
        ({"ports": 8080}, "ports"),
        ({"ports": "8080"}, "ports"),
        ({"ports": ["8080"]}, "ports"),
        ({"ports": [0]}, "ports"),
        ({"ports": [65536]}, "ports"),
        ({"ports": [-1]}, "ports"),
        ({"ports": [True]}, "ports"),
        ({"ports": [80.0]}, "ports"),
        ({"env": "A=1"}, "env"),
        ({"env": {"A": False}}, "env.A"),
        ({"env": {"A": [1]}}, "env.A"),
        ({"wait": "log"}, "wait"),
        ({"wait": ["port"]}, "wait"),
        ({"wait": {"log": 5}}, "wait.log"),
        ({"wait": {"log": "(unclosed"}}, "wait.log"),
        ({"wait": {"log": "[a-"}}, "wait.log"),
        ({"wait": {"http": 8080}}, "wait.http"),
        ({"wait": {"http": "health", "port": 80}}, "wait.http"),
        ({"wait": {"http": "/health"}}, "wait.http"),
        ({"wait": {"log": "ready", "http": "/health", "port": 80}}, "wait"),
        ({"wait": {"port": 0}}, "wait.port"),
        ({"wait": {"port": 70000}}, "wait.port"),
        ({"wait": {"port": True}}, "wait.port"),
        ({"wait": {"port": "80"}}, "wait.port"),
        ({"wait": {"http": "/", "port": False}}, "wait.port"),
        ({"wait": {"timeout": 0}}, "wait.timeout"),
        ({"wait": {"timeout": -1.5}}, "wait.timeout"),
        ({"wait": {"timeout": True}}, "wait.timeout"),
        ({"wait": {"timeout": "30"}}, "wait.timeout"),
        ({"wait": {"interval": 1}}, "wait.interval"),
        ({"wait": {"port": 80, "retries": 3}}, "wait.retries"),
        ({"ref": 1}, "ref"),
        ({"repository": ["a"]}, "repository"),
        ({"platform": ["amd64"]}, "platform"),
        ({"buildargs": {}}, "buildargs"),
        ({"Ports": [80]}, "Ports"),
    ],
)
def test_invalid_value_names_file_and_key(tmp_path: Path, data: dict[str, Any], key: str) -> None:
    message = config_error(data, tmp_path)
    assert str(tmp_path / "image.toml") in message
    assert repr(key) in message


@pytest.mark.parametrize("key", ["platform", "buildargs", "Ports", "healthcheck"])
def test_unknown_top_level_key_lists_known_keys(tmp_path: Path, key: str) -> None:
    message = config_error({key: 1}, tmp_path)
    assert "unknown key" in message
    for known in ("platforms", "build-args", "command", "ports", "wait", "ref", "repository"):
        assert known in message


def test_unknown_wait_key_lists_known_keys(tmp_path: Path) -> None:
    message = config_error({"wait": {"interval": 1}}, tmp_path)
    assert "'wait.interval'" in message
    assert "unknown key" in message
    for known in ("http", "log", "port", "timeout"):
        assert known in message


def test_command_string_message_says_exec_form(tmp_path: Path) -> None:
    message = config_error({"command": "serve"}, tmp_path)
    assert "list of strings" in message
    assert "got a string" in message


def test_bad_regex_message_shows_pattern(tmp_path: Path) -> None:
    message = config_error({"wait": {"log": "(unclosed"}}, tmp_path)
    assert "invalid regular expression" in message
    assert "'(unclosed'" in message


def test_http_without_port_message(tmp_path: Path) -> None:
    assert "needs 'port'" in config_error({"wait": {"http": "/health"}}, tmp_path)


def test_log_and_http_message(tmp_path: Path) -> None:
    message = config_error({"wait": {"log": "x", "http": "/", "port": 1}}, tmp_path)
    assert "not both" in message


@pytest.mark.parametrize("port", [0, 65536, True, False, "80", 80.0])
def test_port_value_in_message(tmp_path: Path, port: object) -> None:
    message = config_error({"ports": [port]}, tmp_path)
    assert "1-65535" in message
    assert repr(port) in message


# ---- ImageSpec.allows ----------------------------------------------------------------------------


def test_allows_everything_without_restriction(tmp_path: Path) -> None:
    spec = parse({}, tmp_path)
    assert all(spec.allows(lookup(name)) for name in ("amd64", "arm64", "s390x", "arm/v7"))


@pytest.mark.parametrize(
    ("plat_name", "allowed"),
    [("amd64", True), ("arm64", True), ("s390x", False), ("arm/v7", False), ("riscv64", False)],
)
def test_allows_restricted(tmp_path: Path, plat_name: str, allowed: bool) -> None:
    # (parameters are not called "platform": pytest-multiarch parametrizes that name itself)
    spec = parse({"platforms": ["x86_64", "aarch64"]}, tmp_path)
    assert spec.allows(lookup(plat_name)) is allowed


def test_allows_ignores_emulated_flag(tmp_path: Path) -> None:
    from pytest_multiarch.core.platforms import with_host

    spec = parse({"platforms": ["arm64"]}, tmp_path)
    assert spec.allows(with_host(lookup("arm64"), native=lookup("amd64")))
    assert spec.allows(with_host(lookup("arm64"), native=lookup("arm64")))


# ---- load_image ----------------------------------------------------------------------------------


def test_load_image_with_dockerfile_only(tmp_path: Path) -> None:
    directory = write_image(tmp_path, "plain")
    spec = load_image(directory)
    assert spec.name == "plain"
    assert spec.directory == directory
    assert spec.dockerfile == directory / "Dockerfile"


def test_load_image_reads_toml(tmp_path: Path) -> None:
    directory = write_image(
        tmp_path,
        "service",
        'ports = [8080]\ncommand = ["serve"]\n\n[wait]\nhttp = "/health"\nport = 8080\n'
        "timeout = 20\n",
    )
    spec = load_image(directory)
    assert spec.ports == (8080,)
    assert spec.command == ("serve",)
    assert spec.wait == WaitSpec(http="/health", port=8080, timeout=20.0)


def test_load_image_missing_dockerfile_without_ref(tmp_path: Path) -> None:
    directory = write_image(tmp_path, "nodocker", "ports = [80]\n", dockerfile=False)
    with pytest.raises(ConfigError) as info:
        load_image(directory)
    assert str(directory) in str(info.value)
    assert "no Dockerfile" in str(info.value)


def test_load_image_missing_dockerfile_with_ref_is_fine(tmp_path: Path) -> None:
    directory = write_image(tmp_path, "upstream", 'ref = "busybox:latest"\n', dockerfile=False)
    spec = load_image(directory)
    assert spec.ref == "busybox:latest"
    assert not spec.dockerfile.exists()


@pytest.mark.parametrize("name", ["MyImage", "Upper", "-dash-first", ".hidden", "has space", "é"])
def test_load_image_invalid_directory_name(tmp_path: Path, name: str) -> None:
    directory = write_image(tmp_path, name)
    with pytest.raises(ConfigError) as info:
        load_image(directory)
    assert repr(name) in str(info.value)
    assert "lowercase" in str(info.value)


@pytest.mark.parametrize("name", ["a", "web-1", "my_image", "v1.2", "0day"])
def test_load_image_valid_directory_names(tmp_path: Path, name: str) -> None:
    assert load_image(write_image(tmp_path, name)).name == name


@pytest.mark.parametrize(
    "text", ["ports = [8080", "command = ", "[wait\nport = 1", "a = 1\na = 2\n", "= 3"]
)
def test_load_image_invalid_toml_names_file(tmp_path: Path, text: str) -> None:
    directory = write_image(tmp_path, "broken", text)
    with pytest.raises(ConfigError) as info:
        load_image(directory)
    assert str(directory / "image.toml") in str(info.value)
    assert "invalid TOML" in str(info.value)


def test_load_image_invalid_value_names_file(tmp_path: Path) -> None:
    directory = write_image(tmp_path, "bad", 'command = "serve"\n')
    with pytest.raises(ConfigError) as info:
        load_image(directory)
    assert str(directory / "image.toml") in str(info.value)
    assert "'command'" in str(info.value)


# ---- discover_images -----------------------------------------------------------------------------


def test_discover_images(tmp_path: Path) -> None:
    root = tmp_path / "images"
    write_image(root, "zeta")
    write_image(root, "alpha", "ports = [80]\n")
    write_image(root, "mid", 'ref = "busybox:latest"\n', dockerfile=False)
    (root / "empty").mkdir()
    (root / "docs").mkdir()
    (root / "docs" / "README.md").write_text("not an image\n")
    (root / "README.md").write_text("a file, not a directory\n")
    (root / "Dockerfile").write_text("FROM scratch\n")  # a file at top level is not an image
    found = discover_images(root)
    assert list(found) == ["alpha", "mid", "zeta"]
    assert found["alpha"].ports == (80,)
    assert found["mid"].ref == "busybox:latest"
    assert all(spec.name == name for name, spec in found.items())


def test_discover_images_missing_root(tmp_path: Path) -> None:
    assert discover_images(tmp_path / "nope") == {}


def test_discover_images_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "images").write_text("")
    assert discover_images(tmp_path / "images") == {}


def test_discover_images_empty_root(tmp_path: Path) -> None:
    assert discover_images(tmp_path) == {}


def test_discover_images_propagates_errors(tmp_path: Path) -> None:
    write_image(tmp_path, "good")
    write_image(tmp_path, "Bad")
    with pytest.raises(ConfigError, match="'Bad'"):
        discover_images(tmp_path)


def test_discover_images_toml_without_dockerfile_or_ref_is_an_error(tmp_path: Path) -> None:
    write_image(tmp_path, "half", "ports = [80]\n", dockerfile=False)
    with pytest.raises(ConfigError, match="no Dockerfile"):
        discover_images(tmp_path)


# ---- regressions: bugs found and fixed, kept fixed ----------------------------------------------


@pytest.mark.parametrize("name", ["web-", "web.", "web_", "a..b", "a.-b", "a___b"])
def test_load_image_rejects_names_invalid_in_an_image_reference(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        load_image(write_image(tmp_path, name))


def test_wait_timeout_nan_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"wait\.timeout"):
        parse({"wait": {"timeout": float("nan")}}, tmp_path)


@pytest.mark.parametrize(
    ("data", "suggestion"),
    [
        ({"platform": ["arm64"]}, "key 'platform': unknown key (did you mean 'platforms'?)"),
        ({"buildargs": {}}, "key 'buildargs': unknown key (did you mean 'build-args'?)"),
        ({"wait": {"lgo": "x"}}, "key 'wait.lgo': unknown key (did you mean 'log'?)"),
        ({"healthcheck": 1}, "key 'healthcheck': unknown key; known keys are"),
    ],
)
def test_unknown_keys_get_a_suggestion(
    tmp_path: Path, data: dict[str, Any], suggestion: str
) -> None:
    assert suggestion in config_error(data, tmp_path)


def test_survey_keeps_the_valid_images_and_says_why_the_others_are_not(tmp_path: Path) -> None:
    write_image(tmp_path, "good", "ports = [80]\n")
    write_image(tmp_path, "bad", "ports = 80\n")
    write_image(tmp_path, "Bad-Name")
    found, broken = survey_images(tmp_path)
    assert list(found) == ["good"]
    assert sorted(broken) == ["Bad-Name", "bad"]
    assert "key 'ports'" in broken["bad"]
    assert "not valid in an image name" in broken["Bad-Name"]
    with pytest.raises(ConfigError):
        discover_images(tmp_path)
