"""Does ``run()`` ever lose a command's output under load? (issue 20 point 2)

``--processes`` processes in parallel each call ``run_once(IMAGE, platform, ["cat",
"/target-arch"])`` sequentially, alternating amd64 and arm64 (arm64 emulated by QEMU), while
``--busy`` ``yes > /dev/null`` processes keep cores busy for the whole run. Each call must print
its platform's name: a call that exits 0 with no output at all is *lost*, any other output or
exit is *wrong*. Prints ``calls``, ``lost``, ``wrong`` and ``seconds``, then ``reruns`` (runs
the engine may have cut, or that came back silent, which run_once ran again) and ``refused``
(calls that raised OutputCut: cut on every attempt); exits 1 when any call was lost or wrong.
A measurement to run, not a timed test:

    PYTHONPATH=harness python benchmarks/run_output_stress.py --calls 5000 --processes 4 --busy 1

The image (``multiarch-bench-output:1``, a busybox with ``/target-arch``) is built with buildx
for both platforms when the engine lacks it. ``--diagnose`` also records, per call, how long
the engine took from the command's exit to its ``die`` event (the engine cuts the output
streams of a container whose output it has not copied within 2 s of the exit: moby's
``StreamConfig.Wait``), and prints the slowest calls and the lost ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

IMAGE = "multiarch-bench-output:1"
PLATFORMS = ("amd64", "arm64")
DOCKERFILE = 'FROM busybox:latest\nARG TARGETARCH\nRUN echo "$TARGETARCH" > /target-arch\n'


def ensure_image() -> None:
    """Build IMAGE for both platforms unless the engine has it."""
    have = subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, check=False
    ).returncode
    if have == 0:
        return
    with tempfile.TemporaryDirectory() as context:
        Path(context, "Dockerfile").write_text(DOCKERFILE)
        platforms = ",".join(f"linux/{name}" for name in PLATFORMS)
        subprocess.run(
            ["docker", "buildx", "build", "--load", "-t", IMAGE, "--platform", platforms, context],
            check=True,
        )


def _engine_time(text: str) -> float:
    """Seconds since the epoch of an engine timestamp (RFC 3339 with nanoseconds)."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    return seconds + float("0." + (fraction or "0"))


def worker(job: tuple[int, int, bool]) -> dict[str, object]:
    index, calls, diagnose = job
    from pytest_multiarch.core.platforms import lookup
    from pytest_multiarch.engine.api import EngineApi
    from pytest_multiarch.engine.labels import Labels
    from pytest_multiarch.runtime import oneshot
    from pytest_multiarch.runtime.oneshot import OutputCut, run_once

    engine = EngineApi()
    labels = Labels(f"bench-output-{index}", "benchmark", False)
    lost: list[dict[str, object]] = []
    wrong: list[dict[str, object]] = []
    delays: list[tuple[float, str]] = []
    seen: list[str] = []
    refused = 0
    cuts: list[dict[str, object]] = []
    attached = oneshot._run_attached

    def counted(*args: Any, **kwargs: Any) -> Any:
        # Instrumentation only: count the runs run again: the engine may have cut their output
        # (late), or they came back silent (exit 0, no output: `cat` always prints here, so a
        # silent run is one whose output the engine lost whole).
        ran = attached(*args, **kwargs)
        if ran.cut or ran.silent:  # with what the attach stream gave
            cut = {
                "at": round(time.time(), 1),
                "exit": ran.code,
                "out": ran.out.decode(),
                "why": "late" if ran.cut else "silent",
            }
            cuts.append(cut)
            print("rerun", json.dumps(cut), flush=True)  # as it happens: a long run can be cut
        return ran

    oneshot._run_attached = counted
    if diagnose:
        # Instrumentation only: keep the container until its exit and die times are read.
        remove = engine.remove_later

        def keep(container_id: str) -> None:
            seen.append(container_id)

        engine.remove_later = keep  # type: ignore[method-assign]
    for call in range(calls):
        name = PLATFORMS[call % 2]
        began = time.time()
        try:
            result = run_once(
                IMAGE, lookup(name), ["cat", "/target-arch"], labels, timeout=120, engine=engine
            )
        except OutputCut:
            refused += 1
            continue
        record: dict[str, object] = {"call": call, "platform": name, "at": began}
        if diagnose and seen:
            container_id = seen.pop()
            api = engine.client.api
            state = api.inspect_container(container_id)["State"]
            finished = _engine_time(state["FinishedAt"])
            events = list(
                api.events(
                    since=int(began) - 1,
                    until=int(time.time()) + 1,
                    decode=True,
                    filters={"container": container_id, "event": "die"},
                )
            )
            died = events[0]["timeNano"] / 1e9 if events else float("nan")
            record["exit_to_die"] = round(died - finished, 3)
            delays.append((died - finished, container_id[:12]))
            remove(container_id)
        if result.exit_code == 0 and not result.stdout_bytes and not result.stderr_bytes:
            lost.append(record)
            print("lost", json.dumps(record), flush=True)
        elif result.exit_code != 0 or result.stdout.strip() != name:
            record.update(exit=result.exit_code, out=result.stdout, err=result.stderr[-200:])
            wrong.append(record)
            print("wrong", json.dumps(record), flush=True)
        if call % 100 == 99:
            print(f"worker {index}: {call + 1} calls", flush=True)
    engine.close()
    delays.sort(reverse=True)
    return {
        "cuts": cuts,
        "refused": refused,
        "lost": lost,
        "wrong": wrong,
        "slowest": delays[:5],
        "count": len(delays),
        "over_2s": sum(1 for delay, _ in delays if delay >= 2.0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls in all (default 5000)")
    parser.add_argument("--processes", type=int, default=4, help="processes calling at once")
    parser.add_argument("--busy", type=int, default=1, help="`yes > /dev/null` processes")
    parser.add_argument("--diagnose", action="store_true", help="time each exit-to-die")
    options = parser.parse_args()
    ensure_image()
    share, extra = divmod(options.calls, options.processes)
    jobs = [
        (index, share + (index < extra), options.diagnose) for index in range(options.processes)
    ]
    busy = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(options.busy)]
    began = time.monotonic()
    try:
        with ProcessPoolExecutor(options.processes) as pool:
            results = list(pool.map(worker, jobs))
    finally:
        for process in busy:
            process.kill()
            process.wait()
    seconds = time.monotonic() - began
    lost = [record for result in results for record in result["lost"]]  # type: ignore[attr-defined]
    wrong = [record for result in results for record in result["wrong"]]  # type: ignore[attr-defined]
    print(f"calls {options.calls}")
    print(f"lost {len(lost)}")
    print(f"wrong {len(wrong)}")
    print(f"seconds {seconds:.1f}")
    cuts = [cut for result in results for cut in result["cuts"]]  # type: ignore[attr-defined]
    print(
        f"reruns {len(cuts)} (of which the engine had lost the output: "
        f"{sum(1 for cut in cuts if not cut['out'])})"
    )
    for cut in cuts[:20]:
        print("  ", json.dumps(cut))
    print(f"refused {sum(int(result['refused']) for result in results)}")  # type: ignore[call-overload]
    for record in (lost + wrong)[:20]:
        print("  ", json.dumps(record))
    if options.diagnose:
        over = sum(int(result["over_2s"]) for result in results)  # type: ignore[call-overload]
        print(f"exit-to-die >= 2 s: {over}")
        slowest = sorted((s for r in results for s in r["slowest"]), reverse=True)[:10]  # type: ignore[attr-defined]
        print("slowest exit-to-die:", slowest)
    return 1 if lost or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
