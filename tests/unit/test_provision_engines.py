"""The second engine's layout, daemon command lines and bridge subnet (nothing is started)."""

from __future__ import annotations

import ipaddress
import tomllib

import pytest
from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.provision.second_engines import (
    SUBNET_POOL,
    EngineNameError,
    containerd_config,
    daemon_settings,
    dockerd_command,
    engine_layout,
    free_subnet,
    parse_ipv4_networks,
)

IP_ADDR = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever
5: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\       valid_lft
9: ma-first    inet 10.199.0.1/24 scope global ma-first\\       valid_lft forever
"""
IP_ROUTE = """\
default via 192.0.2.1 dev eth0
10.199.1.0/24 dev mab-classic0 proto kernel scope link src 10.199.1.1 linkdown
172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown
local 172.17.0.1 dev docker0 table local proto kernel scope host src 172.17.0.1
"""


def test_layout_keeps_everything_apart() -> None:
    layout = engine_layout("arm-box")
    assert layout.docker_host == "unix:///run/pytest-multiarch/arm-box/docker.sock"
    assert layout.bridge == "ma-arm-box"
    owned = [
        layout.docker_socket,
        layout.docker_pidfile,
        layout.exec_root,
        layout.daemon_json,
        layout.containerd_socket,
        layout.containerd_config,
        layout.containerd_pidfile,
        layout.containerd_state,
    ]
    assert all(path.is_relative_to(layout.run_dir) for path in owned)
    assert layout.data_root.is_relative_to(layout.data_dir)
    assert layout.containerd_root.is_relative_to(layout.data_dir)
    assert len(str(layout.containerd_socket) + ".ttrpc") < 108  # unix socket path limit


@pytest.mark.parametrize("name", ["a", "arm-box", "second", "x1234567890b"])
def test_usable_names(name: str) -> None:
    assert len(engine_layout(name).bridge) <= 15


@pytest.mark.parametrize(
    "name", ["", "Arm", "1st", "-x", "arm_box", "a/b", "../etc", "x1234567890bc", "with space"]
)
def test_unusable_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(EngineNameError, match="1-12 characters"):
        engine_layout(name)


def test_dockerd_has_its_own_everything_and_never_bridge_none() -> None:
    layout = engine_layout("second")
    command = dockerd_command(layout)

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert value("--host") == layout.docker_host
    assert value("--data-root") == str(layout.data_root)
    assert value("--exec-root") == str(layout.exec_root)
    assert value("--pidfile") == str(layout.docker_pidfile)
    assert value("--containerd") == str(layout.containerd_socket)
    assert value("--config-file") == str(layout.daemon_json)
    assert value("--bridge") == "ma-second"
    assert "none" not in command
    assert "--iptables=false" in command
    assert "--ip6tables=false" in command


def test_containerd_config_is_its_own_and_without_cri() -> None:
    layout = engine_layout("second")
    config = tomllib.loads(containerd_config(layout))
    assert config["version"] == 2
    assert config["root"] == str(layout.containerd_root)
    assert config["state"] == str(layout.containerd_state)
    assert config["grpc"]["address"] == str(layout.containerd_socket)
    assert config["ttrpc"]["address"] == f"{layout.containerd_socket}.ttrpc"
    assert config["disabled_plugins"] == ["io.containerd.grpc.v1.cri"]
    assert "/run/containerd/" not in containerd_config(layout)


def test_daemon_settings() -> None:
    assert daemon_settings("containerd", "http://127.0.0.1:5000") == {
        "features": {"containerd-snapshotter": True},
        "registry-mirrors": ["http://127.0.0.1:5000"],
    }
    assert daemon_settings("classic", None) == {"features": {"containerd-snapshotter": False}}


def test_parse_networks_from_ip_output() -> None:
    found = {str(net) for net in parse_ipv4_networks(IP_ADDR + IP_ROUTE)}
    assert {"10.199.0.0/24", "10.199.1.0/24", "172.17.0.0/16", "192.0.2.0/24"} <= found
    assert "0.0.0.0/0" not in found


def test_free_subnet_skips_every_taken_one() -> None:
    taken = parse_ipv4_networks(IP_ADDR + IP_ROUTE)
    assert str(free_subnet(taken)) == "10.199.2.0/24"
    assert str(free_subnet([])) == "10.199.0.0/24"


def test_free_subnet_is_outside_dockers_default_pools() -> None:
    for pool in ("172.16.0.0/12", "192.168.0.0/16"):
        assert not SUBNET_POOL.overlaps(ipaddress.IPv4Network(pool))


def test_no_free_subnet_says_what_to_do() -> None:
    with pytest.raises(MultiarchError, match="engine down"):
        free_subnet([ipaddress.IPv4Network("10.0.0.0/8")])
