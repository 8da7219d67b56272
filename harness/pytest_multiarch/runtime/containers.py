"""Whether a container or image runs the architecture that was asked for: image metadata and
``uname -m`` answers checked against the platform. (One-shot containers:
pytest_multiarch.runtime.oneshot; service containers: pytest_multiarch.runtime.services.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_multiarch.core.errors import MultiarchError
from pytest_multiarch.core.platforms import Platform
from pytest_multiarch.runtime.build import inspect_platform

# docker-py, requests and testcontainers are imported where they are used: a process that
# only reads settings or sweeps (the xdist controller) does not pay ~0.4 s to import them.
if TYPE_CHECKING:
    from docker import DockerClient


class WrongArchitecture(MultiarchError):
    """Something other than the requested platform ran."""


def image_platform(reference: str, client: DockerClient) -> tuple[str, str]:
    """(image id, recorded os/arch[/variant]) of ``reference``; MultiarchError when absent."""
    found = inspect_platform(reference, client)
    if found is None:
        raise MultiarchError(f"image {reference} is not in the engine's image store")
    return found


def metadata_problem(reference: str, recorded: str, platform: Platform) -> str:
    """Why an image whose metadata records ``recorded`` is not ``platform``'s; "" when it is."""
    if recorded == platform.name:
        return ""
    return (
        f"image {reference} is {recorded}, not {platform.name}: a test on it would run the "
        f"wrong architecture (a single-platform base, or a stage built with "
        f"--platform=$BUILDPLATFORM, ends up in the final image)"
    )


def check_image_platform(reference: str, platform: Platform, client: DockerClient) -> str:
    """The image id of ``reference``; raises WrongArchitecture when its metadata names another
    platform than ``platform``."""
    image_id, recorded = image_platform(reference, client)
    problem = metadata_problem(reference, recorded, platform)
    if problem:
        raise WrongArchitecture(problem)
    return image_id


def check_uname(answer: str, platform: Platform, what: str) -> None:
    problem = platform.machine_problem(answer, what)
    if problem:
        raise WrongArchitecture(problem)
