"""One test, every platform: the ``images`` fixture's mapping from platform to a runner of that
platform's verified image, and the comparison of what one command does on each."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import pytest
from typing_extensions import Unpack

from pytest_multiarch.core.errors import PlatformError
from pytest_multiarch.core.platforms import lookup
from pytest_multiarch.runtime.oneshot import RunResult
from pytest_multiarch.runtime.process import Runner, RunOptions

Field = Literal["exit_code", "stdout", "stderr"]
FIELDS: tuple[Field, ...] = ("exit_code", "stdout", "stderr")
# Longer outputs are cut in the failure table; the whole of each is in the RunResults.
SHOWN_CHARS = 120


class PlatformImages(Mapping[str, Runner]):
    """Every selected platform's image of one image name, as runners: ``images["s390x"].run(
    [...])``. Keys are short platform names (``arm-v7``) in ``--platforms`` order; lookups also
    take OCI names and aliases (``linux/s390x``, ``aarch64``)."""

    def __init__(self, image: str, runners: Mapping[str, Runner]) -> None:
        self.image = image
        self._runners = dict(runners)

    def __getitem__(self, key: str) -> Runner:
        try:
            short = lookup(key).short
        except PlatformError:
            short = key
        runner = self._runners.get(short)
        if runner is None:
            raise KeyError(
                f"{key!r} is not a platform of image {self.image!r} in this run (it has: "
                f"{', '.join(self._runners) or 'none'}); add it to --platforms"
            )
        return runner

    def __iter__(self) -> Iterator[str]:
        return iter(self._runners)

    def __len__(self) -> int:
        return len(self._runners)

    def run_everywhere(
        self, cmd: Sequence[str] = (), **options: Unpack[RunOptions]
    ) -> dict[str, RunResult]:
        """Run ``cmd`` once on every platform (``run``'s keywords): platform -> RunResult, in
        platform order."""
        __tracebackhide__ = True
        return {short: runner.run(cmd, **options) for short, runner in self._runners.items()}

    def assert_same_on_every_platform(
        self,
        cmd: Sequence[str] = (),
        *,
        compare: Sequence[Field] = ("exit_code", "stdout"),
        **options: Unpack[RunOptions],
    ) -> RunResult:
        """Run ``cmd`` on every platform and fail the test, with a table of each platform's
        values, unless the ``compare`` fields (bytes, for the outputs) are the same everywhere.
        Returns the (common) result of the first platform."""
        __tracebackhide__ = True
        unknown = [f for f in compare if f not in FIELDS]
        if unknown or not compare:
            raise ValueError(
                f"assert_same_on_every_platform(compare={list(compare)!r}): compare takes one "
                f"or more of {', '.join(FIELDS)}"
            )
        if not self._runners:
            pytest.fail(f"image {self.image!r} has no platform in this run", pytrace=False)
        results = self.run_everywhere(cmd, **options)
        if len({tuple(_value(r, f) for f in compare) for r in results.values()}) > 1:
            pytest.fail(difference_table(list(cmd), results, compare), pytrace=False)
        return next(iter(results.values()))


def _value(result: RunResult, name: Field) -> int | bytes:
    if name == "exit_code":
        return result.exit_code
    return result.stdout_bytes if name == "stdout" else result.stderr_bytes


def _shown(value: int | bytes) -> str:
    if isinstance(value, int):
        return str(value)
    try:
        text = repr(value.decode("utf-8"))
    except UnicodeDecodeError:
        text = repr(value)  # b'\xff\x00' says more than replacement characters would
    if len(text) > SHOWN_CHARS:
        text = f"{text[: SHOWN_CHARS - 3]}... ({len(value)} bytes)"
    return text


def difference_table(
    command: Sequence[str], results: Mapping[str, RunResult], compare: Sequence[Field]
) -> str:
    """The failure message of a comparison: one row per platform, one column per compared field
    that differs, and which platforms agree with each other."""
    differing = [f for f in compare if len({_value(r, f) for r in results.values()}) > 1]
    rows = [["platform", *differing]]
    rows += [[short, *(_shown(_value(r, f)) for f in differing)] for short, r in results.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = ["  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    groups: dict[tuple[int | bytes, ...], list[str]] = {}
    for short, result in results.items():
        groups.setdefault(tuple(_value(result, f) for f in compare), []).append(short)
    agree = " | ".join(", ".join(shorts) for shorts in groups.values())
    return "\n".join(
        [
            f"{command} differs between platforms ({', '.join(differing)}):",
            *table,
            f"platforms that agree: {agree}",
        ]
    )


__all__ = ["PlatformImages", "difference_table"]
