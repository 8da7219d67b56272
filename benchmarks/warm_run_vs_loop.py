"""A warm pytest-multiarch run against the plain loop a user would write for the same checks.

The project: a BusyBox CLI image checked with ``run`` (4 checks) and a BusyBox HTTP service
checked with ``container`` (2 checks), on amd64, arm64 and s390x by default. Both sides start
warm (one untimed round first), then take turns for ``--runs`` rounds; the median of each and
their ratio are printed. A measurement to read, not a test: nothing asserts on time.

The loop does what a shell script would: per platform, ``docker buildx build --platform P
--load`` of each image (cached after the first round), one ``docker run --rm --platform P`` per
CLI check, and for the service one ``docker run -d -p 127.0.0.1::8080``, ``docker port``, polling
``/health`` every 0.1 s, the checks over HTTP, then ``docker rm -f`` (one service container per
platform, or per check with ``--service-container-per-check``); platforms one after the other.
The harness side is one ``pytest -n 2`` session (one container per test, as its ``container``
fixture does), in Python's default configuration: ``PYTHONDONTWRITEBYTECODE`` is dropped unless
``--keep-bytecode-variable`` is given.

Any checkout can be measured: pass its pytest (or its python) explicitly.

    python benchmarks/warm_run_vs_loop.py --pytest .venv/bin/pytest
    python benchmarks/warm_run_vs_loop.py --python /other/checkout/.venv/bin/python --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

UNAME = {
    "linux/amd64": "x86_64",
    "linux/arm64": "aarch64",
    "linux/s390x": "s390x",
    "linux/arm/v7": "armv7l",
    "linux/ppc64le": "ppc64le",
    "linux/riscv64": "riscv64",
}
SHORT_NAMES = {name.split("/", 1)[1]: name for name in UNAME} | {"arm-v7": "linux/arm/v7"}

CLI_SCRIPT = r"""#!/bin/sh
case "$1" in
  arch) uname -m ;;
  greet)
    [ -n "$2" ] || { echo "usage: cli greet NAME" >&2; exit 2; }
    echo "hello, $2" ;;
  sum)
    shift
    total=0
    for n in "$@"; do
      case "$n" in ''|*[!0-9]*) echo "not a number: $n" >&2; exit 2 ;; esac
      total=$((total + n))
    done
    echo "$total" ;;
  *) echo "unknown command: $1" >&2; exit 2 ;;
esac
"""

CLI_DOCKERFILE = """\
FROM busybox:latest
COPY cli.sh /usr/local/bin/cli
RUN chmod 0755 /usr/local/bin/cli
ENTRYPOINT ["/usr/local/bin/cli"]
"""

MACHINE_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
uname -m
"""

SERVICE_DOCKERFILE = """\
FROM busybox:latest
RUN mkdir -p /www/cgi-bin && echo ok > /www/health
COPY machine.sh /www/cgi-bin/machine
RUN chmod 0755 /www/cgi-bin/machine
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""

SERVICE_TOML = """\
ports = [8080]
[wait]
http = "/health"
port = 8080
timeout = 10
"""

TESTS = """\
import urllib.request

import pytest


@pytest.mark.image("cli")
class TestCli:
    def test_arch(self, run, platform):
        assert run(["arch"]).stdout.strip() == platform.uname

    def test_greet(self, run, platform):
        result = run(["greet", "world"])
        assert (result.exit_code, result.stdout) == (0, "hello, world\\n")

    def test_sum(self, run, platform):
        assert run(["sum", "2", "40"]).stdout.strip() == "42"

    def test_bad_input(self, run, platform):
        result = run(["sum", "2", "x"])
        assert result.exit_code == 2
        assert "not a number: x" in result.stderr


def get(container, path):
    port = container.get_exposed_port(8080)
    host = container.get_container_host_ip()
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as response:
        return response.read().decode()


@pytest.mark.image("service")
class TestService:
    def test_health(self, container, platform):
        assert get(container, "/health").strip() == "ok"

    def test_machine(self, container, platform):
        assert get(container, "/cgi-bin/machine").strip() == platform.uname
"""


def write_project(root: Path) -> None:
    cli = root / "images" / "cli"
    service = root / "images" / "service"
    cli.mkdir(parents=True)
    service.mkdir(parents=True)
    (cli / "Dockerfile").write_text(CLI_DOCKERFILE)
    (cli / "cli.sh").write_text(CLI_SCRIPT)
    (service / "Dockerfile").write_text(SERVICE_DOCKERFILE)
    (service / "machine.sh").write_text(MACHINE_CGI)
    (service / "image.toml").write_text(SERVICE_TOML)
    (root / "test_project.py").write_text(TESTS)


# Python's default is to keep compiled (and pytest's assertion-rewritten) modules between
# runs; with this variable (set in some sandboxes and CI images) every process compiles the
# plugin again, about a second of CPU each on this machine: not a user's warm run.
BYTECODE_VARIABLE = "PYTHONDONTWRITEBYTECODE"


def clean_env(*, keep_bytecode_variable: bool = False) -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MULTIARCH_", "PYTEST_XDIST"))
        and key != "PYTEST_ADDOPTS"
        and (keep_bytecode_variable or key != BYTECODE_VARIABLE)
    }


# ---- the harness side ---------------------------------------------------------------------------


def harness_run(
    pytest_command: list[str],
    root: Path,
    platforms: str,
    workers: str,
    env: dict[str, str],
    extra: list[str],
) -> float:
    command = [
        *pytest_command,
        *extra,
        "-q",
        "-p",
        "no:cacheprovider",
        "--platforms",
        platforms,
        "-n",
        workers,
    ]
    started = time.perf_counter()
    result = subprocess.run(
        command,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=3600,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"harness run failed ({result.returncode}):\n{result.stdout[-3000:]}")
    return seconds


# ---- the plain loop -----------------------------------------------------------------------------


def docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def expect(ok: bool, what: str) -> None:
    if not ok:
        sys.exit(f"loop check failed: {what}")


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http://127.0.0.1
            return str(response.read().decode())
    except (urllib.error.URLError, OSError):
        return None


def loop_platform(root: Path, platform: str, tag_prefix: str, per_check: bool) -> None:
    machine = UNAME[platform]
    short = platform.split("/", 1)[1].replace("/", "-")
    tags = {name: f"{tag_prefix}-{name}:{short}" for name in ("cli", "service")}
    for name, tag in tags.items():
        built = docker(
            "buildx", "build", "--platform", platform, "--load", "-t", tag,
            str(root / "images" / name),
        )  # fmt: skip
        expect(built.returncode == 0, f"build {name} {platform}: {built.stderr[-2000:]}")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return docker("run", "--rm", "--platform", platform, tags["cli"], *args)

    expect(cli("arch").stdout.strip() == machine, f"cli arch on {platform}")
    greet = cli("greet", "world")
    expect((greet.returncode, greet.stdout) == (0, "hello, world\n"), f"cli greet {platform}")
    expect(cli("sum", "2", "40").stdout.strip() == "42", f"cli sum on {platform}")
    bad = cli("sum", "2", "x")
    expect(bad.returncode == 2 and "not a number: x" in bad.stderr, f"cli bad input {platform}")

    checks = [("/health", "ok"), ("/cgi-bin/machine", machine)]
    # One service container for all checks (what a script does), or one per check (what the
    # harness's per-test ``container`` fixture does).
    groups = [[check] for check in checks] if per_check else [checks]
    for group in groups:
        service_checks(tags["service"], platform, group)


def service_checks(tag: str, platform: str, checks: list[tuple[str, str]]) -> None:
    started = docker("run", "-d", "--platform", platform, "-p", "127.0.0.1::8080", tag)
    expect(started.returncode == 0, f"service start {platform}: {started.stderr}")
    container = started.stdout.strip()
    try:
        port = docker("port", container, "8080/tcp").stdout.split()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 100
        while http_get(f"{base}/health") is None:
            expect(time.monotonic() < deadline, f"service on {platform} never answered")
            time.sleep(0.1)
        for path, wanted in checks:
            answer = (http_get(f"{base}{path}") or "").strip()
            expect(answer == wanted, f"{path} on {platform}: {answer!r}, wanted {wanted!r}")
    finally:
        docker("rm", "-f", container)


def loop_run(root: Path, platforms: list[str], tag_prefix: str, per_check: bool) -> float:
    started = time.perf_counter()
    for platform in platforms:
        loop_platform(root, platform, tag_prefix, per_check)
    return time.perf_counter() - started


# ---- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--pytest", help="the pytest executable of the checkout to measure")
    which.add_argument("--python", help="or its python (runs `python -m pytest`)")
    parser.add_argument("--platforms", default="amd64,arm64,s390x")
    parser.add_argument("-n", "--workers", default="2", help="pytest-xdist workers (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--keep", type=Path, help="put the project here and leave it")
    parser.add_argument(
        "--service-container-per-check",
        action="store_true",
        help="the loop starts one service container per HTTP check, as the harness does per test",
    )
    parser.add_argument(
        "--harness-arg",
        action="append",
        default=[],
        help="one more argument for the harness's pytest (repeatable): --harness-arg=--no-prestart",
    )
    parser.add_argument(
        "--keep-bytecode-variable",
        action="store_true",
        help=f"pass {BYTECODE_VARIABLE} on to pytest if it is set (by default it is dropped)",
    )
    args = parser.parse_args()
    env = clean_env(keep_bytecode_variable=args.keep_bytecode_variable)

    # Absolute: the runs happen in the project's directory.
    pytest_command = (
        [str(Path(args.pytest).absolute())]
        if args.pytest
        else [str(Path(args.python).absolute()), "-m", "pytest"]
    )
    names = [part.strip() for part in args.platforms.split(",") if part.strip()]
    try:
        platforms = [name if name.startswith("linux/") else SHORT_NAMES[name] for name in names]
    except KeyError as exc:
        sys.exit(f"unknown platform {exc.args[0]!r} in --platforms; known: {sorted(SHORT_NAMES)}")
    if shutil.which("docker") is None:
        sys.exit("docker CLI not found on PATH")

    root = args.keep or Path(tempfile.mkdtemp(prefix="warm-run-vs-loop-"))
    root.mkdir(parents=True, exist_ok=True)
    write_project(root)
    tag_prefix = f"bench-loop-{uuid.uuid4().hex[:8]}"
    print(f"project {root}; platforms {','.join(platforms)}; -n {args.workers}; {args.runs} runs")
    print(f"pytest: {' '.join([*pytest_command, *args.harness_arg])}")
    if BYTECODE_VARIABLE in os.environ:
        kept = "passed on" if BYTECODE_VARIABLE in env else "dropped for the harness runs"
        print(f"{BYTECODE_VARIABLE} is set here: {kept}")
    loop_kind = "per check" if args.service_container_per_check else "per platform"
    print(f"loop: one service container {loop_kind}")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    try:
        # Untimed: builds everything, pages in emulators and interpreters.
        harness_run(pytest_command, root, args.platforms, args.workers, env, args.harness_arg)
        loop_run(root, platforms, tag_prefix, args.service_container_per_check)
        harness_times: list[float] = []
        loop_times: list[float] = []
        for round_number in range(1, args.runs + 1):
            harness_times.append(
                harness_run(
                    pytest_command, root, args.platforms, args.workers, env, args.harness_arg
                )
            )
            loop_times.append(
                loop_run(root, platforms, tag_prefix, args.service_container_per_check)
            )
            print(
                f"round {round_number}: harness {harness_times[-1]:6.2f}s   "
                f"loop {loop_times[-1]:6.2f}s"
            )
    finally:
        for short in (p.split("/", 1)[1].replace("/", "-") for p in platforms):
            for name in ("cli", "service"):
                docker("image", "rm", "-f", f"{tag_prefix}-{name}:{short}")
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    harness_median = statistics.median(harness_times)
    loop_median = statistics.median(loop_times)
    print(f"median warm harness run (-n {args.workers}): {harness_median:6.2f}s")
    print(f"median plain loop:                  {loop_median:6.2f}s")
    print(f"ratio harness / loop:               {harness_median / loop_median:6.2f}x")
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
