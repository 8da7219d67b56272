"""The plugin on the classic image store (one platform per tag), against a second, real dockerd
started for this test with the containerd snapshotter off, beside the machine's own engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import PIPE

import pytest
from acceptance import Project, manifest, wait_until

# These tests change, or depend on, the machine's binfmt_misc handlers (see binfmt_lock).
pytestmark = pytest.mark.usefixtures("binfmt_lock")


BRIDGE = "mab-classic0"
BRIDGE_ADDRESS = "172.31.250.1/24"  # a private bridge on this host only; nothing is routed


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def classic_engine(
    tmp_path_factory: pytest.TempPathFactory, unavailable: Callable[[str], None]
) -> Iterator[str]:
    """DOCKER_HOST of a classic-store dockerd (own data root, socket and bridge)."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None or shutil.which("ip") is None:
        unavailable("needs root, dockerd and iproute2 (scripts/bootstrap)")
    # Short paths: a unix socket path must stay under 108 bytes.
    root = Path(f"/run/mab-{uuid.uuid4().hex[:8]}")
    data = tmp_path_factory.mktemp("classic-data")
    root.mkdir()
    socket_path = root / "docker.sock"
    config = root / "daemon.json"
    config.write_text(
        json.dumps(
            {
                "features": {"containerd-snapshotter": False},
                "registry-mirrors": ["http://127.0.0.1:5000"],
            }
        )
    )
    if _ip("link", "show", BRIDGE).returncode != 0:
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    log = (root / "dockerd.log").open("wb")
    daemon = subprocess.Popen(
        [
            "dockerd",
            "--config-file",
            str(config),
            "--data-root",
            str(data),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "docker.pid"),
            "--host",
            f"unix://{socket_path}",
            "--bridge",
            BRIDGE,
            "--iptables=false",
            "--ip6tables=false",
            "--containerd",
            "/run/containerd/containerd.sock",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    host = f"unix://{socket_path}"
    env = {**os.environ, "DOCKER_HOST": host}
    try:

        def answering() -> subprocess.CompletedProcess[str] | None:
            info = subprocess.run(
                ["docker", "info", "--format", "{{json .DriverStatus}}"],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if info.returncode != 0 and daemon.poll() is not None:
                pytest.fail(f"classic dockerd exited: {(root / 'dockerd.log').read_text()}")
            return info if info.returncode == 0 else None

        info = wait_until(
            answering,
            60,
            "the classic dockerd to answer",
            interval=0.5,
            context=(root / "dockerd.log").read_text,
        )
        assert "snapshotter" not in info.stdout, "expected the classic image store"
        yield host
    finally:
        subprocess.run(
            [
                "docker",
                "rm",
                "-f",
                "-v",
                *subprocess.run(
                    ["docker", "ps", "-aq"], capture_output=True, text=True, env=env, check=False
                ).stdout.split(),
            ],
            capture_output=True,
            env=env,
            check=False,
        )
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=30)
        log.close()
        _ip("link", "set", BRIDGE, "down")
        _ip("link", "delete", BRIDGE)
        shutil.rmtree(root, ignore_errors=True)


def test_classic_store_builds_runs_and_checks_each_platform(
    project: Project, classic_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", classic_engine)
    project.image(
        "box",
        """
        FROM busybox:latest
        ARG TARGETPLATFORM
        RUN echo "$TARGETPLATFORM" > /built-for
        CMD ["sh", "-c", "echo ready; exec httpd -f -p 8080 -h /"]
        """,
        'ports = [8080]\n[wait]\nhttp = "/built-for"\nport = 8080\n',
    )
    project.tests(
        """
        import urllib.request
        import pytest

        pytestmark = pytest.mark.image("box")

        def test_run(run, platform):
            assert run(["uname", "-m"]).stdout.strip() == platform.uname
            assert run(["cat", "/built-for"]).stdout.strip() == platform.name

        def test_container(container, platform):
            host = container.get_container_host_ip()
            port = container.get_exposed_port(8080)
            body = urllib.request.urlopen(f"http://{host}:{port}/built-for").read()
            assert body.decode().strip() == platform.name
        """
    )
    report = project.path / "report.json"
    result = project.run(
        "--platforms", "amd64,arm64,s390x", "-n", "3", "--multiarch-json", str(report)
    )
    result.assert_outcomes(passed=6)
    builds = json.loads(report.read_text())["builds"]
    # One tag per platform, so building arm64 after amd64 (or the reverse) overwrote nothing.
    assert len({b["reference"] for b in builds}) == 3
    assert len({b["image_id"] for b in builds}) == 3

    # The pitfall the per-platform tags avoid: one shared tag holds only the last build.
    env = {**os.environ, "DOCKER_HOST": classic_engine}
    shared = f"shared-tag:{uuid.uuid4().hex[:8]}"
    for plat in ("linux/arm64", "linux/amd64"):
        subprocess.run(
            ["docker", "buildx", "build", "--platform", plat, "--load", "-t", shared, "-"],
            input="FROM busybox:latest\n",
            text=True,
            env=env,
            capture_output=True,
            check=True,
        )
    arch = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Architecture}}", shared],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert arch.stdout.strip() == "amd64", "classic store kept more than one platform per tag?"
    # ...and the plugin refuses to test it as arm64.
    stale = project.path / "images" / "stale"
    stale.mkdir()
    (stale / "image.toml").write_text(f'ref = "{shared}"\n')
    project.tests(
        """
        import pytest

        @pytest.mark.image("stale")
        def test_it(run, platform):
            assert run(["true"]).exit_code == 0
        """,
        name="test_stale.py",
    )
    stale_result = project.run("--platforms", "arm64", "test_stale.py")
    stale_result.assert_outcomes(errors=1)
    output = stale_result.stdout.str()
    assert "wrong architecture" in output or "no match for platform" in output, output


def test_dead_owners_private_tags_are_swept_from_the_classic_store_and_a_live_ones_kept(
    project: Project, classic_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21 point 1 on the classic store: a private build tag whose owner (named in the tag)
    is dead goes with the next run's first use of the engine; a live owner's stays."""
    from pytest_multiarch.engine.cleanup import owner_id
    from pytest_multiarch.runtime.build import private_tag

    monkeypatch.setenv("DOCKER_HOST", classic_engine)
    subprocess.run(["docker", "pull", "--quiet", "busybox:latest"], capture_output=True, check=True)
    victim = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=PIPE)
    dead_owner = owner_id(victim.pid)
    victim.kill()
    victim.wait(timeout=30)
    shared = f"pytest-multiarch/leftover:{uuid.uuid4().hex[:16]}-amd64"
    dead, live = private_tag(shared, dead_owner), private_tag(shared, owner_id())
    for tag in (dead, live):
        subprocess.run(["docker", "tag", "busybox:latest", tag], check=True)
    project.image("box", "FROM busybox:latest\n")
    project.tests(
        """
        import pytest

        @pytest.mark.image("box")
        def test_quick(run, platform):
            assert run(["true"]).exit_code == 0
        """
    )
    project.run("--platforms", "amd64").assert_outcomes(passed=1)
    listed = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert dead not in listed, "a dead owner's private tag was left behind"
    assert live in listed, "a live owner's private tag was swept"
    assert "busybox:latest" in listed, "the image a swept tag named went with it"


def test_variants_check_on_the_classic_store(
    project: Project, classic_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One tag per platform: the variants check compares each platform's own image (its
    config and its export), not whichever platform a shared tag holds last."""
    monkeypatch.setenv("DOCKER_HOST", classic_engine)
    project.image(
        "drift",
        """
        FROM busybox:latest
        ARG TARGETARCH
        ENV MODE=fast-$TARGETARCH
        RUN mkdir -p /opt && if [ "$TARGETARCH" = arm64 ]; then echo x > /opt/extra-asset; fi
        """,
        variants=True,
    )
    result = project.run("images", "--platforms", "amd64,arm64", "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines_random(
        [
            "*images/drift/Dockerfile::variants?drift? FAILED*",
            "  Env MODE: fast-amd64 (amd64) vs fast-arm64 (arm64)",
            "  only on linux/arm64: /opt/extra-asset",
        ]
    )


def test_a_published_index_is_tested_by_child_digest_on_the_classic_store(
    project: Project,
    classic_engine: str,
    registry: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The classic store keeps one platform per tag (pulling an index by tag for a second
    platform overwrites the first, or fails with "cannot overwrite digest"): each platform's
    manifest is pulled by its own digest, and what the engine holds is that digest."""
    ref = f"{registry}/pub/app:1"
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        'FROM busybox:latest\nARG TARGETPLATFORM\nRUN echo "$TARGETPLATFORM" > /built-for\n'
    )
    subprocess.run(  # on the machine's engine: pushed with an attestation manifest per platform
        [
            "docker",
            "buildx",
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "--provenance=true",
            "--output",
            f"type=image,name={ref},push=true",
            str(context),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    found = manifest(registry, "pub/app", "1")
    assert found is not None
    children = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in found[1]["manifests"]
        if m["platform"]["os"] != "unknown"
    }
    assert len(children) == 2
    assert len(found[1]["manifests"]) == 4
    monkeypatch.setenv("DOCKER_HOST", classic_engine)
    directory = project.path / "images" / "pub"
    directory.mkdir(parents=True)
    # The variants check has a classic-store test of its own: not counted here.
    (directory / "image.toml").write_text(f'ref = "{ref}"\nvariants = false\n')
    project.tests(
        """
        import pytest

        @pytest.mark.image("pub")
        def test_it(run, platform):
            assert run(["uname", "-m"]).stdout.strip() == platform.uname
            assert run(["cat", "/built-for"]).stdout.strip() == platform.name
        """
    )
    report = project.path / "report.json"
    result = project.run("--platforms", "amd64,arm64", "--multiarch-json", str(report))
    result.assert_outcomes(passed=2)
    assert project.builds() == []
    env = {**os.environ, "DOCKER_HOST": classic_engine}
    for build in json.loads(report.read_text())["builds"]:
        assert build["published_index"] == found[0]
        assert build["published_digest"] == children[build["platform"]]
        held = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", build["reference"]],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert f"{registry}/pub/app@{children[build['platform']]}" in json.loads(held.stdout)
