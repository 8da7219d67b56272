"""An engine's kind (Docker or Podman) comes from its own ``/version`` answer."""

from __future__ import annotations

from pytest_multiarch.engine.docker import engine_facts_of, engine_kind

# As Podman 4.3.1's API service answers /version (trimmed) and /info (trimmed).
PODMAN_VERSION = {
    "Components": [
        {"Name": "Podman Engine", "Version": "4.3.1", "Details": {"APIVersion": "4.3.1"}},
        {"Name": "Conmon", "Version": "conmon version 2.1.6"},
    ],
    "Version": "4.3.1",
    "ApiVersion": "1.41",
}
DOCKER_VERSION = {
    "Components": [
        {"Name": "Engine", "Version": "26.1.5+dfsg1"},
        {"Name": "containerd", "Version": "1.6.24"},
    ],
    "Version": "26.1.5+dfsg1",
    "ApiVersion": "1.45",
}


def podman_info(random_id: str) -> dict[str, object]:
    return {
        "ID": random_id,
        "Name": "vm",
        "DockerRootDir": "/var/lib/containers/storage",
        "Driver": "overlay",
        "Architecture": "amd64",
        "OSType": "linux",
    }


def test_podman_is_named_by_its_component() -> None:
    assert engine_kind(PODMAN_VERSION) == ("podman", "4.3.1")


def test_docker_has_no_podman_component() -> None:
    assert engine_kind(DOCKER_VERSION) == ("docker", "26.1.5+dfsg1")
    assert engine_kind({}) == ("docker", "?")


def test_the_socket_path_is_not_a_clue() -> None:
    # A Docker engine behind a socket named like Podman's is Docker.
    info = engine_facts_of(DOCKER_VERSION, {"ID": "d1"}, "unix:///run/podman/podman.sock")
    assert info.kind == "docker"
    assert info.name == "Docker 26.1.5+dfsg1"


def test_podman_facts_keep_kind_and_version() -> None:
    info = engine_facts_of(PODMAN_VERSION, podman_info("a"), "unix:///run/podman/podman.sock")
    assert (info.kind, info.version, info.api_version) == ("podman", "4.3.1", "1.41")
    assert info.name == "Podman 4.3.1"
    assert info.facts().kind == "podman"
    assert info.facts().version == "4.3.1"


def test_podman_id_is_stable_across_calls() -> None:
    # Podman answers a new random ID on every /info; the engine's ID must not change with it.
    first = engine_facts_of(PODMAN_VERSION, podman_info("random-1"), "unix:///a.sock")
    second = engine_facts_of(PODMAN_VERSION, podman_info("random-2"), "unix:///b.sock")
    assert first.id == second.id
    assert first.id.startswith("podman-")
    other_store = {**podman_info("random-3"), "DockerRootDir": "/home/u/.local/share/containers"}
    assert engine_facts_of(PODMAN_VERSION, other_store, "unix:///a.sock").id != first.id


def test_podman_architecture_in_uname_words() -> None:
    # Podman says amd64 where Docker says x86_64; native-or-emulated compares with uname -m.
    info = engine_facts_of(PODMAN_VERSION, podman_info("a"), "unix:///a.sock")
    assert info.architecture == "x86_64"
    arm = engine_facts_of(PODMAN_VERSION, {**podman_info("a"), "Architecture": "arm64"}, "x")
    assert arm.architecture == "aarch64"
