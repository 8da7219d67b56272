"""Publishing exactly what was tested: each per-platform image pushed by the id that the tests
ran, one manifest list over their digests, then verified from the registry and by pulling and
running every platform.

Path taken on both image stores: per-platform push plus ``buildx imagetools create``; no image
is rebuilt between test and push. A platform tested on a Podman engine is pushed by Podman itself
(``podman --url ... push``, by image id), and pulled back for its check by Podman too: the docker
CLI's push and pull through Podman's API service cannot reach a plain-HTTP (loopback) registry.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_multiarch.core.commands import Log, run_command
from pytest_multiarch.core.errors import CommandError, MultiarchError
from pytest_multiarch.core.images import NAME_COMPONENT
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.engine.docker import EngineKind, docker, engine_kind
from pytest_multiarch.engine.endpoints import EngineRef
from pytest_multiarch.engine.podman import INSTALL_HINT, podman, podman_binary, podman_url
from pytest_multiarch.engine.probe import cli_run, probe_uname
from pytest_multiarch.model.records import Publication, RunReport, TestRecord
from pytest_multiarch.publish.registry import RegistryReadError, fetch_manifest, platform_digests

_HOST = re.compile(
    r"^(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)"
    r"(?::[0-9]{1,5})?$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
PUBLISH_TIMEOUT = 600.0
PLATFORM_TAG_SEPARATOR = "-"
PUBLISH_PATH = "per-platform push of the tested image ids + buildx imagetools create"
PODMAN_PUBLISH_PATH = (
    "per-platform push of the tested image ids (podman push from Podman) + buildx imagetools create"
)


class PublishError(MultiarchError):
    """Publishing was refused or failed; nothing new is referenced by the tag."""


@dataclass(frozen=True)
class Destination:
    registry: str
    namespace: str
    tag: str

    def repository(self, image: str, override: str = "") -> str:
        if override:
            return override
        parts = [self.registry, self.namespace, image] if self.namespace else [self.registry, image]
        return "/".join(parts)


def registry_scheme(registry: str) -> str:
    """Docker talks plain HTTP to loopback registries and HTTPS to every other one."""
    host = registry.rsplit(":", 1)[0] if ":" in registry else registry
    return "http" if host in ("localhost", "::1") or host.startswith("127.") else "https"


def parse_destination(target: str, tag: str, *, source: str = "--publish") -> Destination:
    """``REGISTRY[/NAMESPACE]`` and a tag, validated with errors naming the bad part."""
    registry, _, namespace = target.strip().partition("/")
    if (
        not registry
        or not _HOST.match(registry)
        or ("." not in registry and ":" not in registry and registry != "localhost")
    ):
        raise PublishError(
            f"Invalid registry {registry!r} in {target!r} from {source}: expected a host name "
            "with a dot or a port, or localhost (e.g. 127.0.0.1:5000 or registry.example/team)"
        )
    for component in namespace.split("/") if namespace else []:
        if not NAME_COMPONENT.match(component):
            raise PublishError(
                f"Invalid namespace component {component!r} in {target!r} from {source}: use "
                "lowercase letters and digits joined by '.', '_', '__' or '-'"
            )
    if not _TAG.match(tag):
        raise PublishError(
            f"Invalid tag {tag!r} from --publish-tag: up to 128 letters, digits, '_', '.', '-', "
            "not starting with '.' or '-'"
        )
    return Destination(registry, namespace, tag)


def validate_repository(value: str, where: str) -> None:
    host, _, path = value.partition("/")
    if (
        not path
        or not _HOST.match(host)
        or not all(NAME_COMPONENT.match(c) for c in path.split("/"))
    ):
        raise PublishError(
            f"Invalid repository {value!r} in {where}: expected REGISTRY/PATH, e.g. "
            "127.0.0.1:5000/team/web"
        )


# ---- what may be published -------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One image of a finished session, with the tested image of each platform."""

    image: str
    repository: str
    tested: Mapping[str, str]  # platform name -> tested image id
    refused: str = ""
    # Platform name -> the engine that holds its tested image ("" or absent: the default one).
    engines: Mapping[str, str] = field(default_factory=dict)


def candidates(report: RunReport, destination: Destination) -> list[Candidate]:
    """From a finished run: the images whose every selected test passed on every platform, and
    why each other one is refused."""
    builds = {(b.image, b.platform): b for b in report.builds}
    found: list[Candidate] = []
    for name in sorted(report.images):
        target = report.images[name]
        repository = destination.repository(name, target.repository)
        tests = [t for t in report.tests if t.image == name]
        bad = [t for t in tests if t.outcome in ("failed", "error", "xpassed", "interrupted")]
        # "passed" is a claim of the record; its call phase having reported is the evidence.
        bad += [t for t in tests if t.outcome == "passed" and not t.called]
        reasons = []
        if not tests:
            reasons.append("no test ran against it")
        if bad:
            listed = ", ".join(f"{t.nodeid} ({_what(t)})" for t in bad[:5])
            reasons.append(f"{len(bad)} test(s) did not pass: {listed}")
        tested: dict[str, str] = {}
        for plat in (lookup(p) for p in target.platforms):
            passed = [t for t in tests if t.platform == plat.short and _passed(t)]
            build = builds.get((name, plat.name))
            if not passed:
                reasons.append(f"no test passed on {plat.short}")
            elif build is None or build.error or not build.image_id:
                reasons.append(f"no tested image of {plat.name} is recorded")
            else:
                tested[plat.name] = build.image_id
        engines = {p.name: p.engine for p in report.platforms if p.engine}
        found.append(Candidate(name, repository, tested, "; ".join(reasons), engines))
    return found


def _passed(test: TestRecord) -> bool:
    return test.outcome == "passed" and test.called


def _what(test: TestRecord) -> str:
    if test.outcome == "passed":
        return "passed without a call phase"
    return test.outcome


def refuse_unfinished(report: RunReport, source: str) -> None:
    """PublishError when ``report`` is of a session that did not finish, or says a test passed
    that never ran its call: nothing it holds is a publish candidate."""
    if report.interrupted:
        raise PublishError(
            f"{source} is the report of an interrupted session (Ctrl-C or SIGTERM): what it "
            "tested is not known to pass, so nothing was published; run the tests to the end"
        )
    uncalled = [t.nodeid for t in report.tests if t.outcome == "passed" and not t.called]
    if uncalled:
        listed = ", ".join(uncalled[:5]) + (" ..." if len(uncalled) > 5 else "")
        raise PublishError(
            f"{source} says {len(uncalled)} test(s) passed without a call phase ({listed}): "
            "such a record is not the run's evidence of a pass, so nothing was published; "
            "write the report with pytest --multiarch-json PATH"
        )


# ---- registry access ---------------------------------------------------------------------------


def _raw_manifest(reference: str) -> tuple[str, dict[str, Any]] | None:
    """(digest, manifest) of ``reference`` in its registry, None when it does not exist."""
    try:
        return fetch_manifest(reference, timeout=120)
    except RegistryReadError as exc:
        raise PublishError(str(exc)) from None


def check_reachable(destination: Destination) -> None:
    url = f"{registry_scheme(destination.registry)}://{destination.registry}/v2/"
    try:
        with urllib.request.urlopen(url, timeout=10):  # noqa: S310 - a registry URL we built
            return
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return  # needs credentials: docker push uses those of `docker login`
        raise PublishError(
            f"registry {destination.registry} answered {exc.code} at {url}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PublishError(
            f"registry {destination.registry} is not reachable at {url}: {reason}; "
            "nothing was pushed"
        ) from None


# ---- publishing one image ------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The engine that holds a platform's tested image: as the user named it ("" for the
    default one), what it is (from its own ``/version``) and its version."""

    spec: str = ""
    kind: EngineKind = "docker"
    version: str = ""

    @property
    def ref(self) -> EngineRef | None:
        return _engine(self.spec)

    def podman_url(self) -> str:
        """Where ``podman --url`` reaches this (Podman) engine. PublishError when the podman
        client is not installed: Podman's API service alone cannot push to every registry."""
        where = self.spec or "the default engine"
        if podman_binary() is None:
            raise PublishError(
                f"publishing from Podman {self.version} ({where}) needs the podman client on "
                f"this machine, which is not installed; {INSTALL_HINT}"
            )
        return podman_url(self.ref)


def engine_source(spec: str) -> Source:
    """What the engine ``spec`` ("" the default one) is, asked of the engine itself (one
    ``/version`` call). PublishError when it does not answer."""
    result = run_command(
        docker("version", "--format", "{{json .Server}}", engine=_engine(spec)),
        timeout=60,
        check=False,
    )
    try:
        server = json.loads(result.stdout) if result.ok else None
    except ValueError:
        server = None
    if not isinstance(server, dict):
        detail = (result.stderr.strip() or result.stdout.strip())[-300:]
        raise PublishError(
            f"the engine holding the tested images ({spec or 'the default engine'}) did not "
            f"answer: {detail}; start it (`multiarch host up`, or `--podman` for Podman)"
        )
    kind, version = engine_kind(server)
    return Source(spec, kind, version)


def _tls_flags(reference: str) -> list[str]:
    """Podman's ``--tls-verify`` for ``reference``'s registry: off for a loopback registry,
    which Docker too talks to in plain HTTP (Podman has no such rule of its own)."""
    registry = reference.split("/", 1)[0]
    return ["--tls-verify=false"] if registry_scheme(registry) == "http" else []


def _push_platform(
    repository: str,
    tag: str,
    platform_name: str,
    image_id: str,
    log: Log,
    source: Source | None = None,
) -> str:
    """Push the tested image ``image_id`` as ``repository:tag-<short>``, from ``source`` (the
    engine that built and tested it; None for the default Docker one); its manifest digest."""
    short = lookup(platform_name).short
    reference = f"{repository}:{tag}{PLATFORM_TAG_SEPARATOR}{short}"
    source = source or Source()
    log(f"  pushing {platform_name} image {image_id[:19]} as {reference}")
    if source.kind == "podman":
        # By id, without a tag of its own: Podman pushes the tested image as it is stored.
        pushed = run_command(
            podman(
                "push",
                "--quiet",
                *_tls_flags(reference),
                image_id,
                f"docker://{reference}",
                url=source.podman_url(),
            ),
            timeout=PUBLISH_TIMEOUT,
            check=False,
        )
        if not pushed.ok:
            raise PublishError(
                f"Podman {source.version} ({source.spec or 'the default engine'}) could not push "
                f"{image_id[:19]} as {reference}: {pushed.stderr.strip()[-400:]}"
            )
    else:
        on = source.ref
        run_command(docker("tag", image_id, reference, engine=on), timeout=60)
        try:
            run_command(docker("push", "--quiet", reference, engine=on), timeout=PUBLISH_TIMEOUT)
        finally:
            run_command(docker("image", "rm", reference, engine=on), timeout=60, check=False)
    found = _raw_manifest(reference)
    if found is None:
        raise PublishError(f"{reference} is not in the registry after the push")
    digest, manifest = found
    entries = platform_digests(manifest)
    if entries:  # the engine pushed an index: take this platform's manifest from it
        if platform_name not in entries:
            raise PublishError(f"{reference} holds no {platform_name} manifest")
        digest = entries[platform_name]
        found_manifest = _raw_manifest(f"{repository}@{digest}")
        manifest = found_manifest[1] if found_manifest else {}
    config_digest = str((manifest.get("config") or {}).get("digest", ""))
    if image_id not in (digest, config_digest):
        raise PublishError(
            f"pushed {reference} is {digest} (config {config_digest}), which is not the tested "
            f"image {image_id}"
        )
    return digest


def _holds_tested(repository: str, index: Mapping[str, Any], tested: Mapping[str, str]) -> bool:
    """Whether ``index`` lists exactly the tested platforms, each entry being the tested image
    (its manifest digest on the containerd store, its config digest on the classic store)."""
    entries = platform_digests(index)
    if set(entries) != set(tested):
        return False
    for platform_name, digest in entries.items():
        if digest == tested[platform_name]:
            continue
        found = _raw_manifest(f"{repository}@{digest}")
        config = str(((found[1] if found else {}).get("config") or {}).get("digest", ""))
        if config != tested[platform_name]:
            return False
    return True


def _verify_index(reference: str, expected: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    found = _raw_manifest(reference)
    if found is None:
        raise PublishError(f"{reference} is missing right after it was created")
    digest, manifest = found
    entries = platform_digests(manifest)
    if entries != dict(expected):
        raise PublishError(
            f"{reference} lists {entries}, expected exactly the tested {dict(expected)}"
        )
    return digest, entries


def _podman_pull(reference: str, platform_name: str, source: Source) -> str:
    """Pull ``reference`` for ``platform_name`` with Podman (``source``); the pulled image's id.
    Podman keeps one architecture per tag (containers/podman#12682): what runs is the id."""
    pulled = run_command(
        podman(
            "pull",
            "--quiet",
            "--platform",
            platform_name,
            *_tls_flags(reference),
            reference,
            url=source.podman_url(),
        ),
        timeout=PUBLISH_TIMEOUT,
        check=False,
    )
    lines = pulled.stdout.split()
    if not pulled.ok or not lines:
        raise PublishError(
            f"Podman {source.version} ({source.spec or 'the default engine'}) could not pull "
            f"{reference} for {platform_name}: {pulled.stderr.strip()[-400:]}"
        )
    return lines[-1]


def _run_each_platform(
    reference: str, platforms: Sequence[str], sources: Mapping[str, Source] | None = None
) -> dict[str, str]:
    """Pull ``reference`` for each platform and run it, on the engine that tested that platform
    (``sources``: platform name -> engine), so a native machine checks its own platform."""
    seen: dict[str, str] = {}
    used: set[str] = set()
    for name in platforms:
        plat = lookup(name)
        source = (sources or {}).get(name) or Source()
        engine = source.spec
        used.add(engine)
        if source.kind == "podman":
            pulled = _podman_pull(reference, name, source)
            run = cli_run(pulled, plat, timeout=PUBLISH_TIMEOUT, engine=source.ref, pull="never")
        else:
            pulled = reference
            run = cli_run(
                reference, plat, timeout=PUBLISH_TIMEOUT, engine=_engine(engine), pull="always"
            )
        try:
            answer = probe_uname(run, f"{reference} pulled for {name}")
            failure = "no uname in the image"
        except CommandError:
            raise
        except MultiarchError as exc:
            answer, failure = None, str(exc)
        if answer is not None:
            problem = plat.machine_problem(answer, f"{reference} pulled for {name}")
            if problem:
                raise PublishError(problem)
            seen[name] = answer.strip()
            continue
        # No uname in the image: check what the pull brought instead.
        arch = run_command(
            docker(
                "image",
                "inspect",
                "--format",
                "{{.Os}}/{{.Architecture}}",
                pulled,
                engine=_engine(engine),
            ),
            timeout=60,
            check=False,
        ).stdout.strip()
        if arch != f"{plat.os}/{plat.arch}":
            raise PublishError(
                f"pulling {reference} for {name} gave {arch or 'nothing'}: {failure[-300:]}"
            )
        seen[name] = f"{arch} (no uname in the image)"
    # The pulls were for checking only; leave the engines' image lists as they were.
    for engine in sorted(used):
        run_command(
            docker("image", "rm", reference, engine=_engine(engine)), timeout=60, check=False
        )
    return seen


def _engine(spec: str) -> EngineRef | None:
    return EngineRef(spec) if spec else None


def _restore(reference: str, previous: str | None, repository: str, log: Log) -> str:
    """Point ``reference`` back at ``previous`` (or drop the new manifest when there was none)."""
    if previous is not None:
        result = run_command(
            docker("buildx", "imagetools", "create", "-t", reference, f"{repository}@{previous}"),
            timeout=PUBLISH_TIMEOUT,
            check=False,
        )
        return (
            "restored the previous index" if result.ok else "could NOT restore the previous index"
        )
    found = _raw_manifest(reference)
    if found is None:
        return "the tag was not created"
    registry, _, path = repository.partition("/")
    request = urllib.request.Request(  # noqa: S310 - a registry URL we built
        f"{registry_scheme(registry)}://{registry}/v2/{path}/manifests/{found[0]}", method="DELETE"
    )
    try:
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            log(f"  deleted {reference} ({found[0]})")
            return "deleted the new index"
    except (urllib.error.URLError, OSError) as exc:
        return f"could NOT delete the new index {found[0]}: {exc}"


def publish_candidate(
    candidate: Candidate,
    destination: Destination,
    *,
    overwrite: bool,
    log: Log,
    sources: Mapping[str, Source] | None = None,
) -> Publication:
    """Publish one image; ``sources``: platform name -> the engine that holds its tested image
    (None: asked of each engine the candidate names)."""
    reference = f"{candidate.repository}:{destination.tag}"
    if candidate.refused:
        return Publication(candidate.image, reference, "refused", detail=candidate.refused)
    try:
        if sources is None:
            sources = engine_sources([candidate])
        validate_repository(candidate.repository, f"image {candidate.image!r}")
        previous = _raw_manifest(reference)
        if previous is not None:
            # Decide before pushing anything, so a refusal changes nothing in the registry.
            if _holds_tested(candidate.repository, previous[1], candidate.tested):
                return Publication(
                    candidate.image,
                    reference,
                    "unchanged",
                    previous[0],
                    platform_digests(previous[1]),
                    detail="the tag already points at exactly these tested images",
                )
            if not overwrite:
                return Publication(
                    candidate.image,
                    reference,
                    "refused",
                    detail=f"{reference} already exists with other content ({previous[0]}); "
                    "pass --publish-overwrite to replace it",
                )
        digests: dict[str, str] = {}
        for platform_name, image_id in candidate.tested.items():
            digests[platform_name] = _push_platform(
                candidate.repository,
                destination.tag,
                platform_name,
                image_id,
                log,
                sources.get(platform_name),
            )
    except (PublishError, CommandError) as exc:
        return Publication(candidate.image, reference, "failed", detail=str(exc))
    children = [f"{candidate.repository}@{d}" for d in digests.values()]
    try:
        run_command(
            docker("buildx", "imagetools", "create", "-t", reference, *children),
            timeout=PUBLISH_TIMEOUT,
        )
    except CommandError as exc:
        return Publication(candidate.image, reference, "failed", platforms=digests, detail=str(exc))
    try:
        digest, entries = _verify_index(reference, digests)
        verified = _run_each_platform(reference, list(digests), sources)
    except (PublishError, CommandError) as exc:
        undo = _restore(reference, previous[0] if previous else None, candidate.repository, log)
        return Publication(
            candidate.image,
            reference,
            "failed",
            platforms=digests,
            detail=f"verification failed: {exc}; {undo}",
        )
    on_podman = any(sources[p].kind == "podman" for p in digests if p in sources)
    path = PODMAN_PUBLISH_PATH if on_podman else PUBLISH_PATH
    return Publication(
        candidate.image, reference, "published", digest, entries, verified, path=path
    )


def engine_sources(found: Sequence[Candidate]) -> dict[str, Source]:
    """Platform name -> the engine holding its tested image, for every platform ``found``
    publishes (each engine asked once what it is). PublishError when one does not answer."""
    specs = {
        platform_name: candidate.engines.get(platform_name, "")
        for candidate in found
        if not candidate.refused
        for platform_name in candidate.tested
    }
    asked = {spec: engine_source(spec) for spec in sorted(set(specs.values()))}
    return {platform_name: asked[spec] for platform_name, spec in specs.items()}


def publish_report(
    report: RunReport, destination: Destination, *, overwrite: bool, log: Log
) -> list[Publication]:
    """Publish every image of a finished run (PublishError for a run that did not finish)."""
    refuse_unfinished(report, f"run {report.run_id}")
    found = candidates(report, destination)
    sources: dict[str, Source] = {}
    if any(not c.refused for c in found):
        check_reachable(destination)
        sources = engine_sources(found)
    started = time.monotonic()
    results = [
        publish_candidate(c, destination, overwrite=overwrite, log=log, sources=sources)
        for c in found
    ]
    log(f"  publishing took {time.monotonic() - started:.1f}s")
    return results
