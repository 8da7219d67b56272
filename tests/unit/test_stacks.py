"""Stacks' pure parts: image.toml's [services] tables, their validation across images (unknown
image, cycles), the start order of a stack, and the native platform of a service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_multiarch.core.errors import ConfigError
from pytest_multiarch.core.images import ImageSpec, ServiceSpec, parse_image_toml, survey_images
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.core.stack_graph import find_cycle
from pytest_multiarch.runtime.stacks import StackError, native_for, plan_stack


def _parse(tmp_path: Path, data: dict[str, Any]) -> ImageSpec:
    return parse_image_toml("app", tmp_path, data, tmp_path / "image.toml")


def test_a_service_table_is_parsed(tmp_path: Path) -> None:
    spec = _parse(
        tmp_path,
        {
            "services": {
                "db": {"image": "db", "platform": "same", "env": {"A": 1}, "command": ["x"]},
                "cache": {"ref": "busybox:latest"},
            }
        },
    )
    assert spec.services == (
        ServiceSpec("db", "db", "", "same", {"A": "1"}, ("x",)),
        ServiceSpec("cache", "", "busybox:latest", "native"),
    )


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"db": {"image": "db", "platfrom": "same"}}, "'services.db.platfrom': unknown key"),
        ({"db": {"image": "db", "platform": "nativ"}}, "(did you mean 'native'?)"),
        ({"db": {}}, "set one of 'image'"),
        ({"db": {"image": "db", "ref": "x:1"}}, "set one of 'image'"),
        ({"Bad_Alias": {"image": "db"}}, "'services.Bad_Alias': an alias is a host name"),
        ({"db": {"image": "db", "command": "run"}}, "'services.db.command': expected a list"),
        ({"db": {"image": "db", "env": {"A": [1]}}}, "'services.db.env.A': expected a string"),
        ({"db": "db"}, "'services.db': expected a table"),
    ],
)
def test_a_bad_service_table_names_the_key(
    tmp_path: Path, table: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(tmp_path, {"services": table})
    assert says in str(caught.value)
    assert str(tmp_path / "image.toml") in str(caught.value)


def test_find_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) == []
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"x": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}) == []


def _image(root: Path, name: str, toml: str = "") -> None:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "Dockerfile").write_text("FROM busybox:latest\n")
    if toml:
        (directory / "image.toml").write_text(toml)


def test_an_unknown_service_image_breaks_that_image_only(tmp_path: Path) -> None:
    _image(tmp_path, "web")
    _image(tmp_path, "app", '[services.db]\nimage = "wbe"\n')
    _image(tmp_path, "uses-app", '[services.app]\nimage = "app"\n')
    found, broken = survey_images(tmp_path)
    assert sorted(found) == ["web"]
    assert "key 'services.db.image': no image 'wbe'" in broken["app"]
    assert "(did you mean 'web'?)" in broken["app"]
    # An image whose service is broken is broken too, saying why.
    assert "image 'app' is not valid" in broken["uses-app"]


def test_a_cycle_breaks_every_image_in_it(tmp_path: Path) -> None:
    _image(tmp_path, "a", '[services.b]\nimage = "b"\n')
    _image(tmp_path, "b", '[services.a]\nimage = "a"\n')
    _image(tmp_path, "self", '[services.me]\nimage = "self"\n')
    _image(tmp_path, "fine", '[services.x]\nimage = "leaf"\n')
    _image(tmp_path, "leaf")
    found, broken = survey_images(tmp_path)
    assert sorted(found) == ["fine", "leaf"]
    assert "services form a cycle: a -> b -> a" in broken["a"]
    assert "services form a cycle: a -> b -> a" in broken["b"]
    assert "services form a cycle: self -> self" in broken["self"]


def _spec(name: str, *services: ServiceSpec, env: dict[str, str] | None = None) -> ImageSpec:
    return ImageSpec(name, Path("/images") / name, services=services, env=env or {})


def test_a_stack_starts_dependencies_first_and_same_follows_its_declarer() -> None:
    images = {
        "app": _spec(
            "app",
            ServiceSpec("api", "api", platform="same"),
            ServiceSpec("web", "web", env={"B": "2"}, command=("serve",)),
        ),
        "api": _spec("api", ServiceSpec("db", "db", platform="same")),
        "web": _spec("web", ServiceSpec("cache", "cache", platform="same"), env={"A": "1"}),
        "db": _spec("db"),
        "cache": _spec("cache"),
    }
    planned = plan_stack(images["app"], images)
    assert [(p.alias, p.native) for p in planned] == [
        ("db", False),  # same under same: the platform under test
        ("api", False),
        ("cache", True),  # same under a native service: native
        ("web", True),
    ]
    web = planned[-1]
    assert web.spec.env == {"A": "1", "B": "2"}
    assert web.spec.command == ("serve",)
    assert web.source is images["web"]


def test_a_ref_service_is_an_image_of_its_own() -> None:
    app = _spec("app", ServiceSpec("cache", ref="busybox:latest", platform="same"))
    (planned,) = plan_stack(app, {"app": app})
    assert planned.spec.ref == "busybox:latest"
    assert planned.spec.name == "app-service-cache"
    assert not planned.native


def test_two_services_with_one_alias_are_an_error() -> None:
    images = {
        "app": _spec("app", ServiceSpec("db", "one"), ServiceSpec("x", "two")),
        "one": _spec("one"),
        "two": _spec("two", ServiceSpec("db", "one")),
    }
    with pytest.raises(StackError, match="two services of its stack answer to 'db'"):
        plan_stack(images["app"], images)


def test_a_cycle_is_an_error_when_planning() -> None:
    images = {"a": _spec("a", ServiceSpec("b", "b")), "b": _spec("b", ServiceSpec("a", "a"))}
    with pytest.raises(StackError, match="services form a cycle: a -> b -> a"):
        plan_stack(images["a"], images)


def test_native_is_the_engine_machine_on_the_same_engine() -> None:
    arm64 = lookup("arm64")
    emulated = type(arm64)(**{**arm64.__dict__, "emulated": True, "engine": "ctx"})
    native = native_for(emulated, "x86_64")
    assert native.name == "linux/amd64"
    assert not native.emulated
    assert native.engine == "ctx"
    assert native_for(emulated, "amd64").name == "linux/amd64"  # Podman's words
    assert native_for(emulated, "aarch64").name == "linux/arm64"
    assert not native_for(emulated, "aarch64").emulated
    with pytest.raises(StackError, match="engine's own platform"):
        native_for(emulated, "vax")
