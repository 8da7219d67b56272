"""Stacks: an image's services (``[services.<alias>]`` in image.toml) started beside it for one
test on one platform. Each stack has a network of its own, where every service answers to its
alias and the test's ``run`` and ``container`` join it; a service runs on the engine's own
architecture (``native``: no emulation) or on the platform under test (``same``), is built and
verified like any image (pytest_multiarch.runtime.verification), started and waited for like
``container`` (pytest_multiarch.runtime.services), labelled with the run's labels, and removed
with the network after the test. What survives a Ctrl-C, a SIGTERM or a lost engine carries the
labels, and the end-of-run and dead-run sweeps remove it (pytest_multiarch.engine.cleanup).

Imports testcontainers (through services): import it lazily, like services."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from docker.errors import DockerException
from requests.exceptions import RequestException

from pytest_multiarch.core.errors import MultiarchError, PlatformError
from pytest_multiarch.core.images import ImageSpec, ServiceSpec
from pytest_multiarch.core.platforms import Platform, lookup, native_platform
from pytest_multiarch.core.stack_graph import find_cycle
from pytest_multiarch.engine.health import EngineStoppedAnswering
from pytest_multiarch.runtime.containers import WrongArchitecture
from pytest_multiarch.runtime.services import (
    MultiarchContainer,
    ServiceImage,
    ServiceRuntime,
    start_verified,
    stop_container,
)

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

    from pytest_multiarch.runtime.process import ProcessRuntime

# What the engine raises when it is gone or refuses: a stack's removal is best effort then.
_ENGINE_ERRORS = (DockerException, RequestException, OSError, EngineStoppedAnswering)


class StackError(MultiarchError):
    """A stack could not be planned or started: the message names the service and why."""


@dataclass(frozen=True)
class PlannedService:
    """One service of a stack, in start order: ``spec`` is the image it runs (its env and
    command as the declaring image set them), ``native`` whether it runs on the engine's own
    architecture (else on the platform under test), ``declared_by`` the image that declared it,
    ``source`` the image ``spec`` is resolved from (without the declaring image's changes)."""

    alias: str
    spec: ImageSpec
    source: ImageSpec
    native: bool
    declared_by: str

    @property
    def platform_kind(self) -> str:
        return "native" if self.native else "same"


def plan_stack(spec: ImageSpec, images: Mapping[str, ImageSpec]) -> tuple[PlannedService, ...]:
    """The services of ``spec``'s stack, each after the services it depends on (a service
    image's own services are part of the stack). A ``same`` service runs on the platform of the
    image that declares it: under a ``native`` service, natively too. StackError for an unknown
    image, a cycle, or two services of the stack with one alias."""
    cycle = find_cycle({n: [s.image for s in i.services if s.image] for n, i in images.items()})
    if cycle and spec.name in cycle:
        raise StackError(f"image {spec.name!r}: services form a cycle: {' -> '.join(cycle)}")
    planned: list[PlannedService] = []
    seen: dict[str, str] = {}

    def visit(declaring: ImageSpec, native: bool, depth: int) -> None:
        if depth > len(images) + 1:  # only a cycle goes this deep
            raise StackError(f"image {spec.name!r}: services form a cycle through {declaring.name}")
        for service in declaring.services:
            runs_native = native or service.platform == "native"
            source = _source(service, declaring, images)
            if service.image:
                visit(source, runs_native, depth + 1)
            if service.alias in seen:
                raise StackError(
                    f"image {spec.name!r}: two services of its stack answer to "
                    f"{service.alias!r} (declared by {seen[service.alias]!r} and "
                    f"{declaring.name!r}); give one another alias"
                )
            seen[service.alias] = declaring.name
            planned.append(
                PlannedService(
                    service.alias,
                    _as_declared(service, source),
                    source,
                    runs_native,
                    declaring.name,
                )
            )

    visit(spec, False, 0)
    return tuple(planned)


def _source(
    service: ServiceSpec, declaring: ImageSpec, images: Mapping[str, ImageSpec]
) -> ImageSpec:
    if service.ref:
        # Resolved (pulled for the platform, verified) through the build machinery as any
        # image with a ref is; named for where it was declared.
        return ImageSpec(
            name=f"{declaring.name}-service-{service.alias}",
            directory=declaring.directory,
            ref=service.ref,
        )
    found = images.get(service.image)
    if found is None:
        raise StackError(
            f"image {declaring.name!r}: service {service.alias!r} names no image "
            f"{service.image!r} (found: {', '.join(sorted(images)) or 'none'})"
        )
    return found


def _as_declared(service: ServiceSpec, source: ImageSpec) -> ImageSpec:
    return replace(
        source,
        env={**source.env, **service.env},
        command=service.command or source.command,
    )


def native_for(platform: Platform, machine: str) -> Platform:
    """The engine's own platform, given what its machine says of itself (``uname -m``, as
    ``docker info`` reports it), on the same engine as ``platform``."""
    if machine == platform.uname and not platform.emulated:
        return platform
    try:
        found = native_platform(machine)
    except PlatformError:
        try:  # an engine that names its architecture in OCI words (Podman: amd64)
            found = lookup(machine)
        except PlatformError as exc:
            raise StackError(f"a native service needs the engine's own platform: {exc}") from None
    if found == platform:
        return replace(platform, emulated=False, timeout_factor=1.0)
    return replace(found, emulated=False, timeout_factor=1.0, engine=platform.engine)


@dataclass(frozen=True)
class Service:
    """A started service of a test's stack: its ``container`` (testcontainers' API: ``exec``,
    ``get_logs``, ``get_exposed_port`` on the run's bind address, 127.0.0.1 by default) and
    the ``platform`` it runs on; ``native`` when that is the engine's own architecture."""

    alias: str
    image: str
    platform: Platform
    native: bool
    container: MultiarchContainer


@dataclass(frozen=True)
class _Resolved:
    """A service's image as start_verified takes it: the verified reference and id of the
    source image, with the declaring image's env and command."""

    name: str
    reference: str
    id: str
    spec: ImageSpec


# Resolves (builds or pulls, verifies) an image for a platform: the runtime's image(), with
# the test's build bookkeeping; raises MultiarchError with why it cannot.
Resolver = Callable[[ImageSpec, Platform], ServiceImage]
# A stack's services, each with the platform it runs on, in start order.
Placed = tuple[tuple[PlannedService, Platform], ...]


class Stack(Mapping[str, Service]):
    """The started services of one test on one platform, by alias (the ``services`` fixture),
    and ``network``, the engine network they and the test's containers share."""

    def __init__(self, network: str, runtime: ServiceRuntime, platform: Platform) -> None:
        self.network = network
        self._runtime = runtime
        self._platform = platform
        self._services: dict[str, Service] = {}
        self._closed = False
        # The test's container, started ahead on this stack (prestart_stack), until it takes it.
        self.prestarted: MultiarchContainer | None = None

    def __getitem__(self, alias: str) -> Service:
        try:
            return self._services[alias]
        except KeyError:
            known = ", ".join(self._services) or "none"
            raise KeyError(f"no service {alias!r} in this stack (services: {known})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._services)

    def __len__(self) -> int:
        return len(self._services)

    def platforms(self) -> dict[str, str]:
        """Alias -> the OCI platform each service ran on (for the reports)."""
        return {alias: s.platform.name for alias, s in self._services.items()}

    def log_sources(self) -> list[tuple[str, MultiarchContainer]]:
        """(title, container) of each service, for a failed test's report."""
        return [
            (f"service {alias} on {s.platform.short}", s.container)
            for alias, s in self._services.items()
        ]

    def take_prestarted(self) -> MultiarchContainer | None:
        """The test's container started ahead on this stack (once), or None."""
        found, self.prestarted = self.prestarted, None
        return found

    def add(self, service: Service) -> None:
        self._services[service.alias] = service

    def close(self) -> None:
        """Remove the services, then the network. Not when kept (--keep-containers) or when the
        engine stopped answering: the labels let the sweeps take them then."""
        if not self.network or self._closed:
            return  # an image without services: nothing was made; or closed already
        self._closed = True
        engine = self._runtime.engine_for(self._platform)
        if self._runtime.settings.keep_containers or engine.watch.dead() is not None:
            return
        # Handed to the engine's background removal (a prestarted container its test never
        # took included); then every container still on the network is disconnected from it,
        # so that the network goes now.
        leftover = self.take_prestarted()
        if leftover is not None:
            stop_container(leftover)
        for service in reversed(list(self._services.values())):
            stop_container(service.container)
        with contextlib.suppress(*_ENGINE_ERRORS):
            network = engine.api.client.networks.get(self.network)
            for attached in network.attrs.get("Containers") or {}:
                with contextlib.suppress(DockerException):  # gone meanwhile
                    network.disconnect(attached, force=True)
            network.remove()


def place_stack(
    spec: ImageSpec,
    platform: Platform,
    runtime: ServiceRuntime,
    images: Mapping[str, ImageSpec],
) -> Placed:
    """Each service of ``spec``'s stack (:func:`plan_stack`) with the platform it runs on for a
    test on ``platform``: the platform under test, or the engine's own (asked of the engine
    once, when a service is native)."""
    planned = plan_stack(spec, images)
    native: Platform | None = None
    if any(p.native for p in planned):
        engine = runtime.engine_for(platform)
        try:
            machine = engine.endpoint.architecture or engine.info.architecture
        except (DockerException, RequestException) as exc:
            lost = engine.watch.translate(exc)
            raise lost or StackError(
                f"image {spec.name!r} has native services, but the engine did not say what its "
                f"own platform is: {exc}"
            ) from None
        native = native_for(platform, machine)
    return tuple((s, native if s.native and native is not None else platform) for s in planned)


def open_stack(
    name: str,
    platform: Platform,
    runtime: ServiceRuntime,
    placed: Placed,
    resolve: Resolver,
    cancelled: threading.Event | None = None,
) -> Stack:
    """The started stack of image ``name`` for a test on ``platform`` (``placed``: its services
    and their platforms, :func:`place_stack`): a network of its own, every service built (or
    pulled) and verified for its platform (``resolve``), started on that network under its
    alias and ready. On any failure, what was started is removed and StackError says which
    service failed and why (a service that never became ready: with its logs). ``cancelled``
    set: nobody wants it any more (a prestart, pytest_multiarch.runtime.prestart)."""
    if not placed:
        return Stack("", runtime, platform)
    engine = runtime.engine_for(platform)
    network = f"multiarch-{runtime.settings.run_id[:12]}-{uuid.uuid4().hex[:12]}"
    try:
        engine.api.client.networks.create(
            network, driver="bridge", labels=runtime.labels.as_dict(), check_duplicate=True
        )
    except (DockerException, RequestException) as exc:
        lost = engine.watch.translate(exc)
        raise lost or StackError(
            f"could not create the network of {name!r}'s stack: {exc}"
        ) from None
    stack = Stack(network, runtime, platform)
    try:
        for service, on in placed:
            what = (
                f"service {service.alias!r} of image {name!r} "
                f"({_shown(service)}, platform {service.platform_kind}: {on.name})"
            )
            _check_runs(service, on, runtime.settings.unusable, what)
            try:
                built = resolve(service.source, on)
            except MultiarchError as exc:
                raise StackError(f"{what}: {exc}") from None
            image = _Resolved(built.name, built.reference, built.id, service.spec)
            try:
                container = start_verified(
                    image, on, runtime, cancelled, network=network, aliases=(service.alias,)
                )
            except (EngineStoppedAnswering, WrongArchitecture):
                raise
            except MultiarchError as exc:
                raise StackError(f"{what} never became ready: {exc}") from None
            stack.add(Service(service.alias, service.spec.name, on, service.native, container))
    except BaseException:
        stack.close()
        raise
    return stack


def prestart_stack(
    image: ServiceImage,
    platform: Platform,
    runtime: ProcessRuntime,
    images: Mapping[str, ImageSpec],
    resolve: Resolver,
) -> Callable[[threading.Event], MultiarchContainer] | None:
    """What starts the next test's stack and its ``container`` on it in the background
    (pytest_multiarch.runtime.prestart), or None when a service image is not ready at once
    (work done ahead never builds or verifies). The service images are resolved here, on the
    caller's thread; the container returned carries its stack (:func:`adopt`)."""
    placed = place_stack(image.spec, platform, runtime, images)
    resolved: dict[tuple[str, str], ServiceImage] = {}
    for service, on in placed:
        key = (service.source.name, on.name)
        if key in resolved:
            continue
        if not service.source.allows(on) or not runtime.resolvable_at_once(service.source, on):
            return None
        resolved[key] = resolve(service.source, on)

    def start(cancelled: threading.Event) -> MultiarchContainer:
        stack = open_stack(
            image.spec.name,
            platform,
            runtime,
            placed,
            lambda source, on: resolved[(source.name, on.name)],
            cancelled,
        )
        try:
            container = start_verified(image, platform, runtime, cancelled, network=stack.network)
        except BaseException:
            stack.close()
            raise
        container.stack = stack
        return container

    return start


def adopt(container: DockerContainer) -> Stack:
    """The stack a prestarted ``container`` was started on, now its test's (closed by the
    ``services`` fixture); the container is the stack's :attr:`Stack.prestarted`."""
    stack = container.stack if isinstance(container, MultiarchContainer) else None
    if not isinstance(container, MultiarchContainer) or not isinstance(stack, Stack):
        raise StackError(f"the container of {container.image!r} was started without its stack")
    container.stack = None
    stack.prestarted = container
    return stack


def _shown(service: PlannedService) -> str:
    return f"ref {service.source.ref}" if service.source.ref else f"image {service.source.name}"


def _check_runs(
    service: PlannedService, on: Platform, unusable: Mapping[str, str], what: str
) -> None:
    """A ``same`` service on a platform its image does not allow, or that nothing on this
    engine can run, fails before anything is built."""
    if not service.source.allows(on):
        allowed = ", ".join(p.name for p in service.source.platforms)
        raise StackError(
            f"{what}: image {service.source.name!r} is not built for {on.name} (its image.toml "
            f'allows {allowed}); add {on.name} there, or make the service platform = "native"'
        )
    if on.name in unusable:
        raise StackError(
            f"{what}: this engine cannot run {on.name}: {unusable[on.name]}; or make the "
            'service platform = "native"'
        )


__all__ = [
    "Service",
    "Stack",
    "StackError",
    "adopt",
    "open_stack",
    "place_stack",
    "plan_stack",
    "prestart_stack",
]
