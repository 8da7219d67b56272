"""The services images declare (``[services.<alias>]`` in image.toml) as a graph of image names,
and the cycles in it. Pure functions over plain names, so that image.toml validation
(pytest_multiarch.core.images) and the stacks' start (pytest_multiarch.runtime.stacks) share
them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# A service's alias is a host name on its stack's network: one DNS label.
ALIAS = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str]:
    """A cycle of ``edges`` (image -> images of its services) as the path that closes it,
    ``["a", "b", "a"]``; [] when there is none. Names without an entry have no edges."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done (no cycle through it)
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(edges):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return []
