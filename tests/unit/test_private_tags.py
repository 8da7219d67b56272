"""A build's private tag names its owner (issue 21 point 1): parsing it back, and deciding which
private tags on an engine belong to a dead owner (the next run removes those, never a live
run's, another host's, or one whose owner is not known)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from typing import Any

import pytest
from pytest_multiarch.core.commands import CommandResult
from pytest_multiarch.core.errors import CommandError, CommandTimeout
from pytest_multiarch.engine.cleanup import owner_alive, owner_id
from pytest_multiarch.runtime.build import (
    LISTING_ATTEMPTS,
    dead_private_tags,
    private_tag,
    private_tag_owner,
    sweep_dead_private_tags,
)

TAG = "pytest-multiarch/web:0123456789abcdef-arm64v8"
HOST = "builder-7.example"
# What the docker CLI accepts after the colon (distribution/reference's tag grammar).
DOCKER_TAG = re.compile(r"[\w][\w.-]{0,127}")


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait(timeout=10)
    return process.pid


def test_a_private_tag_names_its_owner_and_is_a_valid_docker_tag() -> None:
    owner = f"{HOST}:4194304:18446744073709551615"  # the largest pid and start time there are
    private = private_tag(TAG, owner)
    assert private.startswith(f"{TAG}-tmp-")
    assert DOCKER_TAG.fullmatch(private.rpartition(":")[2])
    assert private_tag_owner(private, HOST) == owner


def test_private_tags_of_one_tag_and_owner_differ() -> None:
    owner = owner_id()
    assert private_tag(TAG, owner) != private_tag(TAG, owner)


def test_an_owner_whose_start_time_is_unknown_is_kept_as_unknown() -> None:
    owner = f"{HOST}:42:?"
    assert private_tag_owner(private_tag(TAG, owner), HOST) == owner


def test_podman_lists_the_private_tag_under_localhost() -> None:
    owner = f"{HOST}:42:7"
    assert private_tag_owner("localhost/" + private_tag(TAG, owner), HOST) == owner


@pytest.mark.parametrize("owner", ["", "garbage", "HOST:", "HOST:abc:1", "HOST:-1:1"])
def test_a_malformed_owner_is_refused(owner: str) -> None:
    with pytest.raises(ValueError, match="not an owner id"):
        private_tag(TAG, owner)


@pytest.mark.parametrize(
    "reference",
    [
        TAG,  # the shared tag
        f"{TAG}-tmp-0123456789ab",  # a private tag of before owners were named: unknown owner
        "someone/web:0123456789abcdef-arm64v8-tmp-0123456789ab-00000000-42-7",  # not ours
        f"{TAG}-tmp-0123456789ab-zzzzzzzz-42-7",
        f"{TAG}-tmp-0123456789ab-HOSTKEY-0-7",
        f"{TAG}-tmp-0123456789ab-HOSTKEY-42-7-more",
        f"{TAG}-tmp-0123456789ab-HOSTKEY-42-",
        "<none>:<none>",
        "",
    ],
)
def test_no_owner_is_read_from_what_is_not_an_owned_private_tag_of_ours(reference: str) -> None:
    key = private_tag(TAG, f"{HOST}:42:7").split("-")[-3]
    assert private_tag_owner(reference.replace("HOSTKEY", key), HOST) is None


def test_a_private_tag_made_on_another_host_is_not_ours_to_judge() -> None:
    private = private_tag(TAG, f"{HOST}:42:7")
    assert private_tag_owner(private, HOST + "-elsewhere") is None
    assert dead_private_tags([private], HOST + "-elsewhere", lambda owner: False) == []


def test_only_the_private_tags_of_provably_dead_owners_are_doomed() -> None:
    verdicts: dict[str, bool | None] = {
        f"{HOST}:1:1": False,
        f"{HOST}:2:2": True,
        f"{HOST}:3:3": None,
    }
    tags = {owner: private_tag(TAG, owner) for owner in verdicts}
    listed = [TAG, f"{TAG}-tmp-0123456789ab", *tags.values()]
    assert dead_private_tags(listed, HOST, verdicts.__getitem__) == [tags[f"{HOST}:1:1"]]


def test_dead_and_recycled_owners_on_this_host_are_dead_a_live_one_is_not() -> None:
    host = socket.gethostname()
    ticks = owner_id().rsplit(":", 1)[1]
    live = private_tag(TAG, owner_id())
    dead = private_tag(TAG, owner_id(dead_pid()))
    recycled = private_tag(TAG, f"{host}:{os.getpid()}:{int(ticks) + 1}")
    assert dead_private_tags([live, dead, recycled], host, owner_alive) == [dead, recycled]


def test_the_sweep_removes_only_dead_owners_tags_and_tolerates_a_racing_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = socket.gethostname()
    live = private_tag(TAG, owner_id())
    dead = private_tag(TAG, owner_id(dead_pid()))
    gone = private_tag(TAG, owner_id(dead_pid()))
    podman = "localhost/" + private_tag(TAG, owner_id(dead_pid()))
    foreign = private_tag(TAG, f"{host}-elsewhere:1:1")
    calls: list[list[str]] = []

    def fake(command: list[str], *, check: bool = True, **_: Any) -> CommandResult:
        calls.append(command)
        if command[1:3] == ["image", "ls"]:
            listed = [live, dead, gone, podman, foreign, TAG, "<none>:<none>"]
            return CommandResult(command, 0, "\n".join(listed) + "\n", "")
        # Another run's sweep removed one of them meanwhile: docker rm exits 1 for it. Podman
        # names what it untagged with docker.io/ in front.
        untagged = f"Untagged: docker.io/{dead}\nUntagged: {podman}\nDeleted: sha256:0a1b\n"
        return CommandResult(command, 1, untagged, f"Error: No such image: {gone}\n")

    monkeypatch.setattr("pytest_multiarch.runtime.build.run_command", fake)
    assert sweep_dead_private_tags(None) == [dead, podman]
    listing, removal = calls
    assert "reference=pytest-multiarch/*:*-tmp-*" in listing
    assert "reference=localhost/pytest-multiarch/*:*-tmp-*" in listing
    assert removal[1:] == ["image", "rm", dead, gone, podman]


def test_the_sweep_asks_nothing_more_when_no_tag_is_doomed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def fake(command: list[str], **_: Any) -> CommandResult:
        calls.append(command)
        return CommandResult(command, 0, private_tag(TAG, owner_id()) + "\n", "")

    monkeypatch.setattr("pytest_multiarch.runtime.build.run_command", fake)
    assert sweep_dead_private_tags(None) == []
    assert len(calls) == 1


def test_a_removal_the_engine_does_not_finish_in_time_fails_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead = private_tag(TAG, owner_id(dead_pid()))

    def fake(command: list[str], *, timeout: float, **_: Any) -> CommandResult:
        if command[1:3] == ["image", "ls"]:
            return CommandResult(command, 0, dead + "\n", "")
        raise CommandTimeout(command, timeout, "", "")

    monkeypatch.setattr("pytest_multiarch.runtime.build.run_command", fake)
    assert sweep_dead_private_tags(None) == []


# What the engines said when another process removed an image while they listed theirs.
PODMAN_VANISHED = (
    'Error response from daemon: reading image "a3674c41c181": locating image with ID '
    '"a3674c41c181": image not known\n'
)
PODMAN_VANISHED_SIZE = (
    'Error response from daemon: reading data blob size "manifest-sha256:59c8c3b9a074" for '
    '"6a07a09c7ca7": size is not known\n'
)
DOCKER_VANISHED = (
    "Error response from daemon: content digest "
    "sha256:745e3085f8e9f5bc89fa0135feab2c1f1904b800e6bfde5e4466cf455c7dec41: not found\n"
)


@pytest.mark.parametrize(
    "said",
    [PODMAN_VANISHED, PODMAN_VANISHED_SIZE, DOCKER_VANISHED],
    ids=["podman-image", "podman-size", "docker"],
)
def test_a_listing_cut_by_an_image_removed_meanwhile_is_asked_again(
    monkeypatch: pytest.MonkeyPatch, said: str
) -> None:
    dead = private_tag(TAG, owner_id(dead_pid()))
    listings: list[list[str]] = []
    pauses: list[float] = []

    def fake(command: list[str], *, check: bool = True, **_: Any) -> CommandResult:
        if command[1:3] == ["image", "ls"]:
            listings.append(command)
            if len(listings) < 3:
                raise CommandError(command, 1, "", said)
            return CommandResult(command, 0, dead + "\n", "")
        return CommandResult(command, 0, f"Untagged: {dead}\n", "")

    monkeypatch.setattr("pytest_multiarch.runtime.build.run_command", fake)
    assert sweep_dead_private_tags(None, sleep=pauses.append) == [dead]
    assert len(listings) == 3
    assert pauses == [0.2, 0.4]


def test_an_engine_whose_images_keep_changing_is_swept_by_the_next_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listings: list[list[str]] = []

    def fake(command: list[str], **_: Any) -> CommandResult:
        listings.append(command)
        raise CommandError(command, 1, "", PODMAN_VANISHED)

    monkeypatch.setattr("pytest_multiarch.runtime.build.run_command", fake)
    assert sweep_dead_private_tags(None, sleep=lambda _: None) == []
    assert len(listings) == LISTING_ATTEMPTS


def test_an_engine_that_cannot_list_its_images_is_told_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listings: list[list[str]] = []
    refused = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"

    def fake(command: list[str], **_: Any) -> CommandResult:
        listings.append(command)
        raise CommandError(command, 1, "", refused)

    monkeypatch.setattr("pytest_multiarch.runtime.build.run_command", fake)
    with pytest.raises(CommandError, match="Cannot connect"):
        sweep_dead_private_tags(None, sleep=lambda _: None)
    assert len(listings) == 1
